import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueSystem, type QueueBackendConfig } from '../../../src/app/queue.ts';
import { ReflexError } from '../../../src/errors.ts';
import { PIPELINE_QUEUES, alertJob, type AlertBatch, type AlertJob } from '../../../src/pipeline/jobs.ts';
import { NO_PLAYBOOKS } from '../../../src/pipeline/playbook-trigger.ts';
import { runAlertBatch } from '../../../src/pipeline/stages/alert-batch.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';

const redis = QUEUE_BACKENDS.find((b) => b.name === 'redis')!;

/** A batch handler that handles every alert with this result. */
const all =
  <R>(r: R) =>
  async (batch: AlertBatch) => ({ results: new Map(batch.alertIds.map((id) => [id, r])), failed: new Map<string, unknown>() });

describe('alert stages over batch jobs', () => {
  let config: QueueBackendConfig | undefined;
  let qs: QueueSystem | undefined;
  afterEach(async () => {
    await qs?.close();
    if (config) await redis.cleanup(config);
    qs = undefined;
    config = undefined;
  });

  async function waiting(queue: string) {
    return (await qs!.queue(queue).getJobs(['waiting', 'prioritized', 'delayed'])).map((j) => ({ id: j.id, data: j.data as AlertJob }));
  }

  it('hands the handled alerts on in one job and re-queues a failing one alone', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const bad = ids[1]!;
    const seen: string[] = [];
    const job: AlertJob = { tenantId: 'acme', alertIds: ids, batchKey: 'b1-0' };
    const out = await runAlertBatch(job, {
      stage: 'enrich',
      queues: qs,
      perBatch: async (batch) => {
        const r = { results: new Map<string, number>(), failed: new Map<string, unknown>() };
        for (const id of batch.alertIds) {
          seen.push(id);
          if (id === bad) r.failed.set(id, new ReflexError('upstream.unavailable', 'vendor down'));
          else r.results.set(id, id.length);
        }
        return r;
      },
      next: [{ stage: 'case' }],
    });
    expect(seen.sort()).toEqual([...ids].sort());
    expect(out.split).toEqual([bad]);
    const cases = await waiting(PIPELINE_QUEUES.case);
    expect(cases).toHaveLength(1);
    expect(cases[0]!.id).toBe('case-b1-0');
    expect(cases[0]!.data.alertIds.sort()).toEqual(ids.filter((i) => i !== bad).sort());
    const retried = await waiting(PIPELINE_QUEUES.enrich);
    expect(retried.map((j) => j.id)).toEqual([`enrich-${bad}`]);
    expect(retried[0]!.data.alertIds).toEqual([bad]);

    // The same batch run again (a worker died after queueing) adds nothing new.
    await runAlertBatch(job, { stage: 'enrich', queues: qs, perBatch: all(1), next: [{ stage: 'case' }] });
    expect(await waiting(PIPELINE_QUEUES.case)).toHaveLength(1);
  });

  it('queues no job for a next stage that says it can do nothing for the tenant (no notifier, no engine)', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const asked: string[] = [];
    const job: AlertJob = { tenantId: 'acme', alertIds: [randomUUID(), randomUUID()], batchKey: 'b2-0' };
    await runAlertBatch(job, {
      stage: 'case',
      queues: qs,
      perBatch: all(1),
      next: [
        { stage: 'notify', kind: 'first', when: async (tenantId) => (asked.push(tenantId), false) },
        { stage: 'trigger', when: NO_PLAYBOOKS.wants },
      ],
    });
    expect(asked).toEqual(['acme']);
    expect(await waiting(PIPELINE_QUEUES.notify)).toEqual([]);
    expect(await waiting(PIPELINE_QUEUES.trigger)).toEqual([]);

    // The same batch where the tenant has a notifier: its first-message job is queued.
    await runAlertBatch(job, { stage: 'case', queues: qs, perBatch: all(1), next: [{ stage: 'notify', kind: 'first', when: () => true }, { stage: 'trigger', when: NO_PLAYBOOKS.wants }] });
    expect((await waiting(PIPELINE_QUEUES.notify)).map((j) => j.id)).toEqual(['notify-b2-0-first']);
    expect(await waiting(PIPELINE_QUEUES.trigger)).toEqual([]);
  });

  it('re-queues every alert alone when the batch itself fails (its shared read or write), and hands nothing on', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const failedAlone: string[] = [];
    const out = await runAlertBatch(
      { tenantId: 'acme', alertIds: ids, batchKey: 'b3-0' },
      {
        stage: 'case',
        queues: qs,
        perBatch: async () => {
          throw new ReflexError('internal', 'deadlock detected');
        },
        next: [{ stage: 'notify', kind: 'first' }],
        onAlertFailed: (id) => failedAlone.push(id),
      },
    );
    expect(out.split.sort()).toEqual([...ids].sort());
    expect(failedAlone.sort()).toEqual([...ids].sort());
    expect((await waiting(PIPELINE_QUEUES.case)).map((j) => j.id).sort()).toEqual(ids.map((id) => `case-${id}`).sort());
    expect(await waiting(PIPELINE_QUEUES.notify)).toEqual([]);
  });

  it('re-queues an alert the handler neither handled nor reported, instead of dropping it', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const ids = [randomUUID(), randomUUID()];
    const out = await runAlertBatch(
      { tenantId: 'acme', alertIds: ids, batchKey: 'b4-0' },
      { stage: 'trigger', queues: qs, perBatch: async () => ({ results: new Map([[ids[0]!, 1]]), failed: new Map() }), next: [] },
    );
    expect(out.split).toEqual([ids[1]]);
    expect((await waiting(PIPELINE_QUEUES.trigger)).map((j) => j.id)).toEqual([`trigger-${ids[1]}`]);
  });

  it('keeps SEV1/SEV2 batches unprioritised (ahead of the routine backlog) at the next stage', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const run = (job: AlertJob) => runAlertBatch(job, { stage: 'case', queues: qs!, perBatch: all(1), next: [{ stage: 'notify', kind: 'first' }] });
    await run({ tenantId: 'acme', alertIds: [randomUUID(), randomUUID()], batchKey: 'b2-r0' });
    await run({ tenantId: 'acme', alertIds: [randomUUID()], batchKey: 'b2-u0', urgent: true });
    const jobs = await qs.queue(PIPELINE_QUEUES.notify).getJobs(['waiting', 'prioritized']);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    expect(byId.get('notify-b2-u0-first')!.opts.priority ?? 0).toBe(0);
    expect((byId.get('notify-b2-u0-first')!.data as AlertJob).urgent).toBe(true);
    expect(byId.get('notify-b2-r0-first')!.opts.priority).toBe(10);
    // A worker takes the urgent one first although it was queued last.
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      qs!.createWorker({ name: PIPELINE_QUEUES.notify, concurrency: 1, processor: async (job) => { order.push(job.id!); if (order.length === 2) resolve(); } });
    });
    expect(order).toEqual(['notify-b2-u0-first', 'notify-b2-r0-first']);
  });

  it('lets a single-alert job fail as a whole, so BullMQ retries and dead-letters it', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const id = randomUUID();
    await expect(
      runAlertBatch({ tenantId: 'acme', alertIds: [id] }, {
        stage: 'notify',
        queues: qs,
        perBatch: async (batch) => ({ results: new Map(), failed: new Map(batch.alertIds.map((a) => [a, new ReflexError('upstream.unavailable', 'smtp down')])) }),
        next: [],
      }),
    ).rejects.toThrow(/smtp down/);
    expect(await waiting(PIPELINE_QUEUES.notify)).toEqual([]);
  });

  it('accepts jobs queued before batching (one alertId) and refuses malformed ones', () => {
    const id = randomUUID();
    expect(alertJob.parse({ tenantId: 'acme', alertId: id, kind: 'first' })).toEqual({ tenantId: 'acme', alertIds: [id], kind: 'first' });
    expect(alertJob.safeParse({ tenantId: 'acme', alertIds: [] }).success).toBe(false);
    expect(alertJob.safeParse({ tenantId: 'acme', alertIds: ['not-a-uuid'] }).success).toBe(false);
  });
});
