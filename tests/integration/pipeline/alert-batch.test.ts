import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueSystem, type QueueBackendConfig } from '../../../src/app/queue.ts';
import { ReflexError } from '../../../src/errors.ts';
import { PIPELINE_QUEUES, alertJob, type AlertJob } from '../../../src/pipeline/jobs.ts';
import { runAlertBatch } from '../../../src/pipeline/stages/alert-batch.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';

const redis = QUEUE_BACKENDS.find((b) => b.name === 'redis')!;

describe('per-alert stages over batch jobs', () => {
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
      concurrency: 2,
      perAlert: async (ref) => {
        seen.push(ref.alertId);
        if (ref.alertId === bad) throw new ReflexError('upstream.unavailable', 'vendor down');
        return ref.alertId.length;
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
    await runAlertBatch(job, { stage: 'enrich', queues: qs, concurrency: 2, perAlert: async () => 1, next: [{ stage: 'case' }] });
    expect(await waiting(PIPELINE_QUEUES.case)).toHaveLength(1);
  });

  it('keeps SEV1/SEV2 batches unprioritised (ahead of the routine backlog) at the next stage', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const run = (job: AlertJob) => runAlertBatch(job, { stage: 'case', queues: qs!, concurrency: 2, perAlert: async () => 1, next: [{ stage: 'notify', kind: 'first' }] });
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
        concurrency: 4,
        perAlert: async () => {
          throw new ReflexError('upstream.unavailable', 'smtp down');
        },
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
