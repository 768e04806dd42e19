import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { BatchedWrites, type StepSucceeded } from '../../../src/engine/systems/batched-writes.ts';
import { sealAuditLog, verifyAuditChain } from '../../../src/store/audit-log.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

/**
 * The engine's batched hot path (src/engine/systems/batched-writes.ts): a linear playbook's run
 * writes the same execution log, timeline and audit rows as the locked transitions do, and its
 * guards hold when the same step is started or settled many times at once, in one statement or
 * in racing ones, through Kysely and through named prepared statements on the pg Pool.
 */
const LINEAR = playbook(
  `id: linear
name: Linear local steps
version: 1
trigger: { manual: true }
inputs:
  host: { type: host, default: web-01 }
  token: { type: string, sensitive: true, default: "s3cret-token-value" }
steps:
  - id: first
    name: First comment
    action: case.comment
    with: { text: "on \${{ inputs.host }} with \${{ inputs.token }}" }
  - id: second
    action: case.comment
    with: { text: "second" }
  - id: third
    action: case.comment
    with: { text: "third" }
`,
  'linear.yaml',
);

let h: Harness;
beforeAll(async () => {
  // No workers: the race tests play the workers themselves; the last test starts them.
  h = await createHarness({ playbooks: [LINEAR], workers: false });
  h.actions.register('case.comment', async (input, ctx) => ({ commented: input['text'], key: ctx.idempotencyKey }));
});
afterAll(async () => {
  h?.actions.unregister('case.comment');
  await h?.stop();
});

describe('batched writes', () => {
  for (const via of ['kysely', 'named prepared statements'] as const) {
    it(`starts and settles a step once however many callers race (${via})`, async () => {
      const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'linear', inputs: {}, startedBy: 'test', manual: true });
      // Two writers as two worker processes would be: separate batchers racing, and within each,
      // duplicates that leave in one statement once the first flushes are in flight.
      const writers = [0, 1].map(() => new BatchedWrites(h.db, via === 'kysely' ? undefined : h.database.pool));
      const start = { runId: run.id, stepId: 'first', attempt: 1, tenantId: h.tenantId, actor: 'playbook:linear', input: { text: 'x' }, idempotencyKey: `reflex-${run.id}-first`, kind: 'action', auditDelta: { kind: 'action' } };
      // A step that is running may be started again (a stalled job re-run after a crash), so only
      // the first start is exclusive: everything after it sees `running` and is let through.
      const starts = await Promise.all(writers.flatMap((w) => Array.from({ length: 6 }, () => w.stepStarts.submit(start))));
      expect(starts.filter(Boolean).length).toBeGreaterThanOrEqual(1);

      const settle: StepSucceeded = {
        runId: run.id,
        stepId: 'first',
        attempt: 1,
        tenantId: h.tenantId,
        actor: 'playbook:linear',
        playbookId: 'linear',
        incidentId: null,
        kind: 'action',
        label: 'first',
        output: { ok: true },
        logs: null,
        finishedAt: new Date(),
        next: { stepId: 'second', kind: 'action' },
      };
      const settles = await Promise.all(writers.flatMap((w) => Array.from({ length: 6 }, () => w.stepSucceeded.submit(settle))));
      expect(settles.filter((s) => s.settled)).toEqual([{ settled: true, queuedNext: true, finished: false }]);
      expect(writers.some((w) => w.stepSucceeded.stats.batches < w.stepSucceeded.stats.items)).toBe(true);

      const rows = await engineDb(h.db).selectFrom('run_steps').select(['step_id', 'attempt', 'status']).where('run_id', '=', run.id).orderBy('queued_at').execute();
      expect(rows).toEqual([
        { step_id: 'first', attempt: 1, status: 'succeeded' },
        { step_id: 'second', attempt: 1, status: 'queued' },
      ]);
      const succeeded = await h.db.selectFrom('audit_log').select('action').where('target', '=', `run:${run.id}/step:first`).where('action', '=', 'run.step.succeeded').execute();
      expect(succeeded).toHaveLength(1);

      // The last step ends the run exactly once too.
      for (const stepId of ['second', 'third']) {
        await writers[0]!.stepStarts.submit({ ...start, stepId });
        if (stepId === 'second') await writers[0]!.stepSucceeded.submit({ ...settle, stepId, next: { stepId: 'third', kind: 'action' } });
      }
      const last = await Promise.all(writers.flatMap((w) => [1, 2, 3].map(() => w.stepSucceeded.submit({ ...settle, stepId: 'third', next: null }))));
      expect(last.filter((s) => s.finished)).toEqual([{ settled: true, queuedNext: false, finished: true }]);
      expect(await h.db.selectFrom('playbook_runs').select('status').where('id', '=', run.id).executeTakeFirstOrThrow()).toEqual({ status: 'succeeded' });
      const ended = await h.db.selectFrom('audit_log').select('action').where('target', '=', `run:${run.id}`).where('action', '=', 'run.succeeded').execute();
      expect(ended).toHaveLength(1);
    });
  }

  it('neither starts nor advances a step of a cancelled run', async () => {
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'linear', inputs: {}, startedBy: 'test', manual: true });
    expect(await h.engine.runs.cancel(run.id, 'test', 'analyst stopped it')).toBe(true);
    const writes = new BatchedWrites(h.db, h.database.pool);
    const started = await writes.stepStarts.submit({ runId: run.id, stepId: 'first', attempt: 1, tenantId: h.tenantId, actor: 'playbook:linear', input: {}, idempotencyKey: 'k', kind: 'action', auditDelta: {} });
    expect(started).toBe(false);
    const rows = await engineDb(h.db).selectFrom('run_steps').select(['step_id', 'status']).where('run_id', '=', run.id).execute();
    expect(rows).toEqual([{ step_id: 'first', status: 'cancelled' }]);
  });

  it('does not run the next step of a run that ended after the previous step left its context behind', async () => {
    const calls: string[] = [];
    h.actions.unregister('case.comment');
    h.actions.register('case.comment', async (input, ctx) => {
      calls.push(ctx.stepId);
      return { commented: input['text'], key: ctx.idempotencyKey };
    });
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'linear', inputs: {}, startedBy: 'test', manual: true });
    // Play the worker: the first step settles and leaves the second step's context in memory.
    await h.engine.steps.process({ runId: run.id, stepId: 'first', attempt: 1 });
    expect(calls).toEqual(['first']);
    // The run ends behind that hint's back, leaving the second step queued (the race a cancel
    // can lose against a settle that just queued the next step).
    await h.db.updateTable('playbook_runs').set({ status: 'cancelled', finished_at: new Date() }).where('id', '=', run.id).execute();
    await h.engine.steps.process({ runId: run.id, stepId: 'second', attempt: 1 });
    expect(calls).toEqual(['first']);
    const rows = await engineDb(h.db).selectFrom('run_steps').select(['step_id', 'status', 'error']).where('run_id', '=', run.id).orderBy('queued_at').execute();
    expect(rows).toEqual([
      { step_id: 'first', status: 'succeeded', error: null },
      { step_id: 'second', status: 'cancelled', error: 'run cancelled' },
    ]);
  });

  it('runs a linear playbook with the execution log, timeline and audit rows of the locked path', async () => {
    const incidentId = await h.incident();
    h.engine.startWorkers();
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'linear', inputs: {}, startedBy: 'test', manual: true, incidentId });
    expect(await h.waitForRun(run.id)).toMatchObject({ status: 'succeeded' });

    const log = await h.engine.runs.log(run.id);
    expect(log!.steps.map((s) => [s.step_id, s.attempt, s.status])).toEqual([
      ['first', 1, 'succeeded'],
      ['second', 1, 'succeeded'],
      ['third', 1, 'succeeded'],
    ]);
    const first = log!.steps[0]!;
    expect(first.input).toEqual({ text: 'on web-01 with [masked]' });
    expect(first.output).toEqual({ commented: 'on web-01 with [masked]', key: `reflex-${run.id}-first` });
    expect(first.idempotency_key).toBe(`reflex-${run.id}-first`);
    expect(first.started_at).toBeInstanceOf(Date);
    expect(first.finished_at!.getTime()).toBeGreaterThanOrEqual(first.started_at!.getTime());
    expect(typeof first.duration_ms).toBe('number');
    expect(JSON.stringify(log)).not.toContain('s3cret-token-value');

    const timeline = await h.db.selectFrom('timeline_entries').select(['kind', 'text', 'actor', 'data']).where('incident_id', '=', incidentId).orderBy('id').execute();
    expect(timeline.map((t) => t.kind)).toEqual(['incident.created', 'playbook.run.started', 'playbook.step.succeeded', 'playbook.step.succeeded', 'playbook.step.succeeded', 'playbook.run.succeeded']);
    expect(timeline[2]!.text).toMatch(/^linear › First comment: succeeded in \d+ ms$/);
    expect(timeline[2]).toMatchObject({ actor: 'playbook:linear', data: { runId: run.id, stepId: 'first', attempt: 1, kind: 'action' } });
    expect(timeline[5]).toMatchObject({ text: 'Playbook linear succeeded', data: { runId: run.id } });

    const audit = await h.db.selectFrom('audit_log').select(['action', 'target', 'actor', 'delta']).where('target', 'like', `run:${run.id}%`).orderBy('seq').execute();
    expect(audit.map((a) => `${a.action} ${a.target.replace(`run:${run.id}`, 'run')}`)).toEqual([
      'run.start run',
      'run.step.start run/step:first',
      'run.step.succeeded run/step:first',
      'run.step.start run/step:second',
      'run.step.succeeded run/step:second',
      'run.step.start run/step:third',
      'run.step.succeeded run/step:third',
      'run.succeeded run',
    ]);
    expect(audit[1]).toMatchObject({ actor: 'playbook:linear', delta: { kind: 'action', attempt: 1, idempotencyKey: `reflex-${run.id}-first`, action: 'case.comment' } });
    expect(JSON.stringify(audit)).not.toContain('s3cret-token-value');
    await sealAuditLog(h.db);
    expect(await verifyAuditChain(h.db)).toMatchObject({ ok: true, unsealed: 0 });
  });
});
