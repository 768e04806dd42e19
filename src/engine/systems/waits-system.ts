import { engineDb } from '../engine-schema.ts';
import { compileBareExpression } from '../expressions.ts';
import type { WaitStep } from '../manifest/types.ts';
import type { RunRecord } from '../run/run-record.ts';
import type { RunEngine } from '../run-engine.ts';

/**
 * Waits: `wait: { duration }` parks the step and wakes it with a timer; `wait: { until, timeout }`
 * parks it until a new event of the run's tenant matches `until` (the event becomes the step's
 * output) or the timeout fails it. Whichever comes first wins inside one transaction (the wait row
 * and the timer row are both claimed there), so a late event never resumes a timed-out wait.
 *
 * Events reach waits through `deliverEvent`, which the playbook trigger calls for every new alert.
 *
 * @example
 * await engine.waits.deliverEvent('acme', event);
 */
export class WaitsSystem {
  constructor(private readonly engine: RunEngine) {}

  async begin(run: RunRecord, step: WaitStep, attempt: number): Promise<void> {
    const now = this.engine.now().getTime();
    await this.engine.transition(`playbook:${run.playbookId}`, run.id, async (tx) => {
      if (!(await this.engine.steps.markWaiting(tx, step.id, attempt, 'wait'))) tx.nothing();
      if (step.mode === 'duration') {
        tx.effects.push(
          await this.engine.timers.schedule(tx.trx, {
            id: `wake-${run.id}-${step.id}-${attempt}`,
            kind: 'wait.wake',
            tenantId: run.tenantId,
            runId: run.id,
            stepId: step.id,
            dueAt: new Date(now + step.durationMs),
            data: { attempt },
          }),
        );
      } else {
        await engineDb(tx.trx)
          .insertInto('run_waits')
          .values({ run_id: run.id, step_id: step.id, attempt, tenant_id: run.tenantId, until: step.until, expires_at: new Date(now + step.timeoutMs) })
          .onConflict((oc) => oc.columns(['run_id', 'step_id']).doNothing())
          .execute();
        tx.effects.push(
          await this.engine.timers.schedule(tx.trx, {
            id: `waitto-${run.id}-${step.id}-${attempt}`,
            kind: 'wait.timeout',
            tenantId: run.tenantId,
            runId: run.id,
            stepId: step.id,
            dueAt: new Date(now + step.timeoutMs),
            data: { attempt },
          }),
        );
      }
      tx.audit({ tenantId: run.tenantId, action: 'run.step.wait', target: `run:${run.id}/step:${step.id}`, delta: step.mode === 'duration' ? { durationMs: step.durationMs } : { until: step.until, timeoutMs: step.timeoutMs } });
    });
  }

  async wake(timerId: string, runId: string, stepId: string, attempt: number): Promise<void> {
    await this.engine.transition('system:engine', runId, async (tx) => {
      if (!(await this.engine.timers.claim(tx.trx, timerId))) tx.nothing();
      const def = await this.engine.definitions.get(tx.run.definitionHash);
      await this.engine.steps.settleIn(tx, def, stepId, attempt, { status: 'succeeded', output: { woke_at: this.engine.now().toISOString() } });
    });
  }

  async timeout(timerId: string, runId: string, stepId: string, attempt: number): Promise<void> {
    await this.engine.transition('system:engine', runId, async (tx) => {
      if (!(await this.engine.timers.claim(tx.trx, timerId))) tx.nothing();
      const res = await engineDb(tx.trx).updateTable('run_waits').set({ status: 'timed_out' }).where('run_id', '=', runId).where('step_id', '=', stepId).where('status', '=', 'waiting').executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) tx.nothing();
      const def = await this.engine.definitions.get(tx.run.definitionHash);
      await this.engine.steps.settleIn(tx, def, stepId, attempt, { status: 'failed', error: `no matching event arrived before the wait timed out`, retryable: false });
    });
  }

  /** Offers a new event of a tenant to every run of that tenant waiting for one. Returns the runs it resumed. */
  async deliverEvent(tenantId: string, event: unknown): Promise<string[]> {
    const waits = await engineDb(this.engine.deps.db).selectFrom('run_waits').selectAll().where('tenant_id', '=', tenantId).where('status', '=', 'waiting').limit(1000).execute();
    const resumed: string[] = [];
    for (const w of waits) {
      const run = await this.engine.runs.load(w.run_id);
      if (!run) continue;
      let matches = false;
      try {
        const ctx = await this.engine.context(run);
        matches = await compileBareExpression(w.until, `${w.step_id}.wait.until`).test({ ...ctx, event });
      } catch (err) {
        this.engine.deps.logger.warn({ err, runId: w.run_id, stepId: w.step_id }, 'wait.until could not be evaluated for an event');
      }
      if (!matches) continue;
      const done = await this.engine.transition('system:engine', w.run_id, async (tx) => {
        const res = await engineDb(tx.trx).updateTable('run_waits').set({ status: 'matched' }).where('run_id', '=', w.run_id).where('step_id', '=', w.step_id).where('status', '=', 'waiting').executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) tx.nothing();
        await this.engine.timers.cancel(tx.trx, [`waitto-${w.run_id}-${w.step_id}-${w.attempt}`]);
        const def = await this.engine.definitions.get(tx.run.definitionHash);
        await this.engine.steps.settleIn(tx, def, w.step_id, w.attempt, { status: 'succeeded', output: event });
      });
      if (done) resumed.push(w.run_id);
    }
    return resumed;
  }
}
