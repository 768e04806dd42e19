import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { incrementCounters } from '../../../src/pipeline/counters.ts';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { IngestWriter } from '../../../src/pipeline/ingest/ingest-writer.ts';
import type { NormalizeJob } from '../../../src/pipeline/jobs.ts';
import { recordDeadLetter } from '../../../src/pipeline/pipeline-feature.ts';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import type { Database } from '../../../src/store/schema.ts';
import { fixtureText } from '../../helpers/fixtures.ts';
import { postHook, settle, stats, type PipelineStats } from '../../helpers/pipeline.ts';
import { runReflex } from '../../helpers/processes.ts';
import { startTestServer, type TestServer, cliEnv } from '../../helpers/test-server.ts';

const sshd = JSON.parse(fixtureText('wazuh/docs_alert_5716_sshd_auth_failed.json')) as Record<string, unknown>;
/** Passes the hook's dry run no more: the Wazuh normalizer needs rule.level. */
const noLevel = { ...sshd, rule: Object.fromEntries(Object.entries(sshd.rule as Record<string, unknown>).filter(([k]) => k !== 'level')) };


/** A CLI command expected to succeed; a failure shows its stderr. */
async function ok(args: string[], env: NodeJS.ProcessEnv) {
  const r = await runReflex(args, env);
  expect(r.code, `reflex ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

async function setTenantConfig(db: Kysely<Database>, tenantId: string, config: Record<string, unknown>): Promise<void> {
  await auditedWrite(db, 'test', async (trx, audit) => {
    await trx.updateTable('tenants').set({ config: JSON.stringify(config) }).where('id', '=', tenantId).execute();
    audit({ tenantId, action: 'tenant.config', target: `tenant:${tenantId}`, delta: config });
  });
}

/** accepted = new + deduplicated + suppressed + dead_lettered, nothing in flight. */
function expectBalanced(st: PipelineStats): void {
  expect(st.in_flight).toBe(0);
  expect(st.accepted).toBe(st.new + st.deduplicated + st.suppressed + st.dead_lettered);
}

async function pendingDeadLetters(db: Kysely<Database>, tenantId: string) {
  return db.selectFrom('dead_letters').select(['queue', 'job_id', 'error']).where('tenant_id', '=', tenantId).where('replayed_at', 'is', null).orderBy('id').execute();
}

describe('reflex dlq (PostgreSQL queue backend)', () => {
  let s: TestServer;
  let env: NodeJS.ProcessEnv;
  let acmeToken: string;
  beforeAll(async () => {
    s = await startTestServer();
    env = cliEnv(s);
    for (const id of ['acme', 'beta']) await ensureTenant(s.store.db, id, id);
    acmeToken = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId: 'acme', source: '*', token: acmeToken, actor: 'test' });
  });
  afterAll(() => s.stop());

  it(
    'lists and shows a dedupe batch that died on a broken tenant config, and replays it into new + deduplicated once fixed',
    async () => {
      // Break the tenant's config behind the CLI's back: the dedupe stage refuses it (not retryable).
      await setTenantConfig(s.store.db, 'acme', { dedupe_window_seconds: 'soon' });
      const body = [sshd, sshd].map((e) => JSON.stringify(e)).join('\n');
      const res = await postHook(s, '/hooks/wazuh', body, { authorization: `Bearer ${acmeToken}`, 'content-type': 'application/x-ndjson' });
      expect(res.status).toBe(202);
      expect(await settle(s, { tenant: 'acme' })).toMatchObject({ accepted: 2, new: 0, deduplicated: 0, dead_lettered: 2, in_flight: 0 });

      const list = await ok(['dlq', 'list', 'pipeline.dedupe', '--tenant', 'acme', '--json'], env);
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { job_id: string; tenant: string; error: string; replayed_at: string | null; queue: string });
      expect(rows).toHaveLength(1);
      const dead = rows[0]!;
      expect(dead).toMatchObject({ queue: 'pipeline.dedupe', tenant: 'acme', replayed_at: null });
      expect(dead.job_id).toMatch(/^dedupe-/);
      expect(dead.error).toContain('dedupe_window_seconds');
      const table = await ok(['dlq', 'list'], env);
      expect(table.stdout).toContain(dead.job_id);
      expect(table.stdout).toContain('pending');

      const show = await ok(['dlq', 'show', 'pipeline.dedupe', dead.job_id], env);
      expect(show.code).toBe(0);
      expect(show.stdout).toContain('events       2 (counted as dead_lettered)');
      expect(show.stdout).toContain(`reflex dlq replay pipeline.dedupe ${dead.job_id}`);
      expect(show.stdout).toContain('"event_type": "auth.failed"');
      expect(await s.queues.depth('pipeline.dedupe.dlq')).toBe(1);

      // Replayed while the config is still broken: it dies again, and the books still balance.
      const first = await ok(['dlq', 'replay', 'pipeline.dedupe', dead.job_id], env);
      expect(first.stderr).toBe('');
      expect(first.stdout).toContain(`replayed pipeline.dedupe/${dead.job_id} as ${dead.job_id}-replay-1 (2 event(s) taken off acme's dead_lettered count)`);
      await vi.waitFor(async () => expect((await pendingDeadLetters(s.store.db, 'acme')).map((d) => d.job_id)).toEqual([`${dead.job_id}-replay-1`]), { timeout: 30_000, interval: 100 });
      const afterFirst = await settle(s, { tenant: 'acme' });
      expect(afterFirst).toMatchObject({ accepted: 2, new: 0, dead_lettered: 2 });
      expectBalanced(afterFirst);

      // A dead letter is replayed once: a second replay is refused and changes nothing.
      const again = await runReflex(['dlq', 'replay', 'pipeline.dedupe', dead.job_id], env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`was replayed at`);
      expect(again.stderr).toContain(`as job ${dead.job_id}-replay-1`);
      expect(await stats(s, 'acme')).toEqual(afterFirst);

      // Fix the config with the CLI, replay the replay: the events end as one new alert and one repeat.
      await ok(['tenant', 'config', 'acme', '--set', 'dedupe_window_seconds=600'], env);
      const second = await ok(['dlq', 'replay', 'pipeline.dedupe', `${dead.job_id}-replay-1`], env);
      expect(second.stdout).toContain(`as ${dead.job_id}-replay-2`);
      const final = await settle(s, { tenant: 'acme' });
      expect(final).toEqual({ accepted: 2, new: 1, deduplicated: 1, suppressed: 0, dead_lettered: 0, in_flight: 0 });
      const alerts = await s.store.db.selectFrom('alerts').select(['occurrences', 'event_type']).where('tenant_id', '=', 'acme').execute();
      expect(alerts).toEqual([{ occurrences: 2, event_type: 'auth.failed' }]);
      expect(await pendingDeadLetters(s.store.db, 'acme')).toEqual([]);
      // The BullMQ copies went with their replays (reflex_dlq_size counts what is left).
      expect(await s.queues.depth('pipeline.dedupe.dlq')).toBe(0);
      const audit = await s.store.db.selectFrom('audit_log').select('target').where('action', '=', 'queue.dead_letter.replay').execute();
      expect(audit.map((a) => a.target)).toEqual([`job:pipeline.dedupe/${dead.job_id}`, `job:pipeline.dedupe/${dead.job_id}-replay-1`]);
    },
    300_000,
  );

  it(
    'replays every normalize dead letter of a tenant with --all: whole batches and per-item ones, with progress',
    async () => {
      // A per-item dead letter, for real: the payload no longer normalizes once queued (the
      // writer is the hooks' own; only the HTTP dry run is skipped).
      const writer = new IngestWriter(s.queues, s.store.db);
      await writer.submit({ tenantId: 'beta', source: 'wazuh', genericName: undefined, items: [sshd, noLevel], counts: [1, 1] });
      await writer.close();
      expect(await settle(s, { tenant: 'beta' })).toMatchObject({ accepted: 2, new: 1, dead_lettered: 1, in_flight: 0 });
      const [perItem] = await pendingDeadLetters(s.store.db, 'beta');
      expect(perItem!.job_id).toMatch(/^normalize-[0-9a-f-]{36}#1$/);
      expect(perItem!.error).toContain('rule.level');

      // A whole normalize batch dead-lettered by the queue (its worker lost the database, say),
      // recorded the way the app records it, after ingest counted it as accepted.
      const batchId = randomUUID();
      const job: NormalizeJob = { batchId, tenantId: 'beta', source: 'wazuh', receivedAt: new Date().toISOString(), items: [sshd], counts: [1] };
      await incrementCounters(s.store.db, [{ tenantId: 'beta', delta: { accepted: 1 } }]);
      await recordDeadLetter(s.store.db, { queue: 'pipeline.normalize', jobId: `normalize-${batchId}`, name: 'wazuh', data: job, error: 'Connection terminated unexpectedly', attempts: 5 });
      expect(await stats(s, 'beta')).toMatchObject({ accepted: 3, new: 1, dead_lettered: 2, in_flight: 0 });

      const replay = await ok(['dlq', 'replay', 'pipeline.normalize', '--all', '--tenant', 'beta'], env);
      expect(replay.stderr).toBe('');
      expect(replay.code).toBe(0);
      expect(replay.stdout).toContain(`[1 of 2] replayed ${perItem!.job_id} as ${perItem!.job_id}-replay-1 (1 event(s))`);
      expect(replay.stdout).toContain(`[2 of 2] replayed normalize-${batchId} as normalize-${batchId}-replay-1 (1 event(s))`);
      expect(replay.stdout).toContain('replayed 2 of 2 dead letter(s) from pipeline.normalize');

      // The good batch ran to a repeat of the existing alert; the bad item died again, on its
      // own, and is counted once.
      await vi.waitFor(async () => expect(await pendingDeadLetters(s.store.db, 'beta')).toHaveLength(1), { timeout: 30_000, interval: 100 });
      const final = await settle(s, { tenant: 'beta' });
      expect(final).toEqual({ accepted: 3, new: 1, deduplicated: 1, suppressed: 0, dead_lettered: 1, in_flight: 0 });
      const [again] = await pendingDeadLetters(s.store.db, 'beta');
      expect(again!.job_id).toBe(`normalize-${perItem!.job_id}-replay-1#0`);
      expect(again!.error).toContain('rule.level');
      const alerts = await s.store.db.selectFrom('alerts').select('occurrences').where('tenant_id', '=', 'beta').execute();
      expect(alerts).toEqual([{ occurrences: 2 }]);

      const nothing = await ok(['dlq', 'replay', 'pipeline.normalize', '--all', '--tenant', 'acme'], env);
      expect(nothing.stdout).toContain('no pending dead letters in pipeline.normalize for acme');
    },
    300_000,
  );

  it('refuses bad replay requests and writes nothing', async () => {
    const before = await s.store.db.selectFrom('audit_log').select(({ fn }) => fn.countAll<string>().as('n')).where('actor', '=', 'cli').executeTakeFirstOrThrow();
    const missing = await runReflex(['dlq', 'replay', 'pipeline.dedupe', 'dedupe-no-such-job'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No dead letter with job id "dedupe-no-such-job" in queue "pipeline.dedupe"');
    const neither = await runReflex(['dlq', 'replay', 'pipeline.dedupe'], env);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toContain('--all');
    const badQueue = await runReflex(['dlq', 'list', 'no queue'], env);
    expect(badQueue.code).toBe(1);
    expect(badQueue.stderr).toContain('"no queue" is not a queue name');
    const after = await s.store.db.selectFrom('audit_log').select(({ fn }) => fn.countAll<string>().as('n')).where('actor', '=', 'cli').executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  }, 300_000);
});

describe('reflex dlq (Redis queue backend)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ queue: 'redis' });
  });
  afterAll(() => s.stop());

  it(
    'replays through the same Redis prefix the server uses',
    async () => {
      await setTenantConfig(s.store.db, 'default', { notify: { min_severity: 'high' } });
      // Dedupe reads the config and refuses it.
      const res = await postHook(s, '/hooks/wazuh', JSON.stringify(sshd));
      expect(res.status).toBe(202);
      expect(await settle(s, { tenant: 'default' })).toMatchObject({ accepted: 1, dead_lettered: 1 });
      expect(await s.queues.depth('pipeline.dedupe.dlq')).toBe(1);
      await setTenantConfig(s.store.db, 'default', {});
      const replay = await ok(['dlq', 'replay', 'pipeline.dedupe', '--all'], cliEnv(s));
      expect(replay.stderr).toBe('');
      expect(replay.stdout).toContain('replayed 1 of 1 dead letter(s) from pipeline.dedupe');
      expect(await settle(s, { tenant: 'default' })).toEqual({ accepted: 1, new: 1, deduplicated: 0, suppressed: 0, dead_lettered: 0, in_flight: 0 });
      expect(await s.queues.depth('pipeline.dedupe.dlq')).toBe(0);
    },
    300_000,
  );
});
