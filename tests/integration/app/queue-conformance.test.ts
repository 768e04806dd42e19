import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Job } from 'bullmq';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QueueSystem, type DeadLetterInfo, type QueueBackendConfig, type QueueObserver } from '../../../src/app/queue.ts';
import { ReflexError } from '../../../src/errors.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe.each(QUEUE_BACKENDS)('queue conformance on $name', (backend) => {
  let config: QueueBackendConfig;
  const open: QueueSystem[] = [];
  function system(observer?: QueueObserver): QueueSystem {
    config ??= backend.fresh();
    const qs = new QueueSystem(config, observer);
    open.push(qs);
    return qs;
  }
  afterEach(async () => {
    await Promise.all(open.splice(0).map((q) => q.close()));
    if (config) await backend.cleanup(config);
    config = undefined as never;
  });

  it('adds a durable job and processes it with its result', async () => {
    const qs = system();
    const done = deferred<Job>();
    const worker = qs.createWorker<{ ip: string }, string>({
      name: 'enrich',
      processor: async (job) => `looked up ${job.data.ip}`,
    });
    worker.on('completed', (job) => done.resolve(job as Job));
    const added = await qs.add('enrich', 'ip', { ip: '203.0.113.7' }, { jobId: 'enrich-1' });
    expect(added.id).toBe('enrich-1');
    const job = await done.promise;
    expect(job.returnvalue).toBe('looked up 203.0.113.7');
    // The same jobId again is a no-op: retried enqueues never duplicate work.
    await qs.add('enrich', 'ip', { ip: '203.0.113.7' }, { jobId: 'enrich-1' });
    const counts = await qs.queue('enrich').getJobCounts('completed', 'waiting', 'active');
    expect(counts).toEqual({ completed: 1, waiting: 0, active: 0 });
  });

  it('adds bulks of one and of many, each job once however often its jobId is queued', async () => {
    const qs = system();
    const [one] = await qs.addBulk('bulk', [{ name: 'a', data: { n: 1 }, opts: { jobId: 'bulk-1' } }]);
    expect(one!.id).toBe('bulk-1');
    const many = await qs.addBulk('bulk', [
      { name: 'b', data: { n: 2 }, opts: { jobId: 'bulk-2' } },
      { name: 'c', data: { n: 3 }, opts: { jobId: 'bulk-3' } },
    ]);
    expect(many.map((j) => j.id)).toEqual(['bulk-2', 'bulk-3']);
    // Queued again (a retried hand-off), alone or in a bulk: nothing new.
    await qs.addBulk('bulk', [{ name: 'a', data: { n: 1 }, opts: { jobId: 'bulk-1' } }]);
    await qs.addBulk('bulk', [
      { name: 'a', data: { n: 1 }, opts: { jobId: 'bulk-1' } },
      { name: 'c', data: { n: 3 }, opts: { jobId: 'bulk-3' } },
    ]);
    expect(await qs.queue('bulk').getJobCounts('waiting')).toEqual({ waiting: 3 });
    expect((await qs.queue('bulk').getJob('bulk-1'))!.data).toEqual({ n: 1 });
  });

  it('retries a failing job with backoff until it succeeds', async () => {
    const qs = system();
    const attemptsAt: number[] = [];
    const done = deferred<Job>();
    const worker = qs.createWorker({
      name: 'flaky',
      processor: async () => {
        attemptsAt.push(Date.now());
        if (attemptsAt.length < 3) throw new ReflexError('upstream.unavailable', 'vendor down');
        return 'ok';
      },
    });
    worker.on('completed', (job) => done.resolve(job as Job));
    await qs.add('flaky', 'x', {}, { attempts: 5, backoff: { type: 'fixed', delay: 300 } });
    const job = await done.promise;
    expect(job.attemptsMade).toBe(3);
    expect(attemptsAt).toHaveLength(3);
    // Backoff is a lower bound on the gap between attempts.
    expect(attemptsAt[1]! - attemptsAt[0]!).toBeGreaterThanOrEqual(290);
    expect(attemptsAt[2]! - attemptsAt[1]!).toBeGreaterThanOrEqual(290);
    expect(await qs.queue('flaky.dlq').count()).toBe(0);
  });

  it('dead-letters a job after its last attempt, with its error', async () => {
    const seen: string[] = [];
    const qs = system({ completed: (q) => seen.push(`completed:${q}`), failed: (q) => seen.push(`failed:${q}`), deadLettered: (q) => seen.push(`dlq:${q}`) });
    const dead = deferred<DeadLetterInfo>();
    let calls = 0;
    qs.createWorker({
      name: 'case',
      processor: async () => {
        calls += 1;
        throw new ReflexError('upstream.unavailable', 'TheHive answered 503');
      },
      onDeadLetter: (info) => dead.resolve(info),
    });
    await qs.add('case', 'sync', { alert: 'a1' }, { jobId: 'case-a1', attempts: 3, backoff: { type: 'fixed', delay: 50 } });
    const info = await dead.promise;
    expect(calls).toBe(3);
    expect(info).toMatchObject({ queue: 'case', jobId: 'case-a1', error: 'TheHive answered 503', attempts: 3, data: { alert: 'a1' } });
    const dlq = await qs.queue('case.dlq').getJobs(['waiting', 'prioritized']);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.id).toBe('dlq-case-a1');
    expect(dlq[0]!.data).toMatchObject({ original: { alert: 'a1' }, error: 'TheHive answered 503', attempts: 3 });
    // The DLQ copy is made before the final throw; the original then settles as failed.
    await vi.waitFor(async () => expect(await (await qs.queue('case').getJob('case-a1'))!.getState()).toBe('failed'), { timeout: 5000 });
    await vi.waitFor(() => expect(seen.filter((s) => s === 'failed:case')).toHaveLength(3), { timeout: 5000 });
    expect(seen.filter((s) => s === 'dlq:case')).toHaveLength(1);
    expect(seen.filter((s) => s.startsWith('completed'))).toHaveLength(0);
  });

  it('dead-letters a non-retryable error at once, without spending the other attempts', async () => {
    const qs = system();
    const dead = deferred<DeadLetterInfo>();
    let calls = 0;
    qs.createWorker({
      name: 'normalize',
      processor: async () => {
        calls += 1;
        throw new ReflexError('input.invalid', 'rule.level is missing');
      },
      onDeadLetter: (info) => dead.resolve(info),
    });
    await qs.add('normalize', 'wazuh', { bad: true }, { attempts: 5 });
    const info = await dead.promise;
    expect(info.attempts).toBe(1);
    expect(info.error).toBe('rule.level is missing');
    expect(calls).toBe(1);
  });

  it('hands a job held by a worker that was killed mid-job to another worker', async () => {
    const qs = system();
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/helpers/queue-worker-child.ts'], {
      env: { ...process.env, QUEUE_CONFIG: JSON.stringify(config), QUEUE_NAME: 'contain' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const started = new Promise<void>((resolve) =>
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('started contain-1')) resolve();
      }),
    );
    await qs.add('contain', 'isolate', { host: 'web-01' }, { jobId: 'contain-1' });
    await started;
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(await (await qs.queue('contain').getJob('contain-1'))!.getState()).toBe('active');

    const done = deferred<Job>();
    const worker = qs.createWorker<{ host: string }, string>({
      name: 'contain',
      options: { stalledInterval: 500, lockDuration: 1500 },
      processor: async (job) => `isolated ${job.data.host}`,
    });
    worker.on('completed', (job) => done.resolve(job as Job));
    const job = await done.promise;
    expect(job.id).toBe('contain-1');
    expect(job.returnvalue).toBe('isolated web-01');
  }, 60_000);
});
