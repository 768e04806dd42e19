import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STEP_QUEUE, stepJobId } from '../../../src/engine/systems/steps-system.ts';
import { TIMER_QUEUE } from '../../../src/engine/systems/timers-system.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

/**
 * Timers and the reconciler: a job lost between a transition's commit and its enqueue (a crash in
 * that gap) is re-added from the database, and a parallel step's timeout fails it and cancels what
 * its branches still have open.
 */
const SHORT = playbook(`
id: short
name: Two quick steps
version: 1
trigger: { manual: true }
steps:
  - id: first
    script: { javascript: "return 1" }
  - id: nap
    wait: { duration: 1s }
  - id: last
    script: { javascript: "return 2" }
`);

const SLOW_PARALLEL = playbook(`
id: slow-parallel
name: A branch that never ends
version: 1
trigger: { manual: true }
steps:
  - id: both
    parallel:
      stuck:
        - id: forever
          wait: { duration: 1h }
      quick:
        - id: fast
          script: { javascript: "return 'fast'" }
    timeout: 1s
  - id: never
    script: { javascript: "return 'never'" }
`);

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ playbooks: [SHORT, SLOW_PARALLEL], workers: false });
});
afterAll(async () => {
  await h.stop();
});

describe('timers and the reconciler', () => {
  it('re-adds a step job and a timer job that a crash lost after their commit', async () => {
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'short', inputs: {}, startedBy: 'test', manual: true });
    // As if the process died right after the commit: the step row is queued, its job is gone.
    const job = await h.queues.queue(STEP_QUEUE).getJob(stepJobId(run.id, 'first', 1));
    await job!.remove();
    expect(await h.queues.queue(STEP_QUEUE).getJob(stepJobId(run.id, 'first', 1))).toBeUndefined();

    // Lose the wait's timer job the same way, as soon as it exists.
    const timerId = `wake-${run.id}-nap-1`;
    let timerRemoved = false;
    const stopWatching = setInterval(() => {
      void h.queues.queue(TIMER_QUEUE).getJob(`timer-${timerId}`).then(async (j) => {
        if (j && !timerRemoved) {
          timerRemoved = true;
          await j.remove();
        }
      });
    }, 5);
    try {
      h.engine.startWorkers();
      expect(await h.waitForRun(run.id, ['succeeded', 'failed'], 30_000)).toMatchObject({ status: 'succeeded' });
    } finally {
      clearInterval(stopWatching);
    }
    expect(timerRemoved).toBe(true);
    expect((await h.steps(run.id)).map((s) => [s.step_id, s.status])).toEqual([
      ['first', 'succeeded'],
      ['nap', 'succeeded'],
      ['last', 'succeeded'],
    ]);
  });

  it('fails a parallel step at its timeout and cancels its open branch', async () => {
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'slow-parallel', inputs: {}, startedBy: 'test', manual: true });
    const done = await h.waitForRun(run.id, ['succeeded', 'failed'], 20_000);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/did not finish within 1000 ms/);
    const steps = Object.fromEntries((await h.steps(run.id)).map((s) => [s.step_id, s.status]));
    expect(steps).toEqual({ both: 'failed', forever: 'cancelled', fast: 'succeeded' });
  });
});
