import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueSystem, type QueueBackendConfig } from '../../../src/app/queue.ts';
import { ReflexError } from '../../../src/errors.ts';
import { alertJob, PIPELINE_QUEUES, stageQueue, type AlertJob } from '../../../src/pipeline/jobs.ts';
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

  it('hands SEV1/SEV2 batches on in the urgent lane, where a storm\'s busy routine workers cannot hold them', async () => {
    config = redis.fresh();
    qs = new QueueSystem(config);
    const run = (job: AlertJob) => runAlertBatch(job, { stage: 'case', queues: qs!, concurrency: 2, perAlert: async () => 1, next: [{ stage: 'notify', kind: 'first' }] });
    await run({ tenantId: 'acme', alertIds: [randomUUID(), randomUUID()], batchKey: 'b2-r0' });
    await run({ tenantId: 'acme', alertIds: [randomUUID()], batchKey: 'b2-u0', urgent: true });
    const routine = await qs.queue(PIPELINE_QUEUES.notify).getJobs(['waiting']);
    const urgent = await qs.queue(stageQueue('notify', true)).getJobs(['waiting']);
    expect(routine.map((j) => j.id)).toEqual(['notify-b2-r0-first']);
    expect(urgent.map((j) => j.id)).toEqual(['notify-b2-u0-first']);
    expect((urgent[0]!.data as AlertJob).urgent).toBe(true);
    // The routine lane's only worker is stuck on a long job; the urgent lane's worker still runs.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    qs.createWorker({ name: PIPELINE_QUEUES.notify, concurrency: 1, processor: () => held });
    const ran = await new Promise<string>((resolve) => {
      qs!.createWorker({ name: stageQueue('notify', true), concurrency: 1, processor: async (job) => resolve(job.id!) });
    });
    expect(ran).toBe('notify-b2-u0-first');
    release();
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
