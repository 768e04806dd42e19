import { sql, type Transaction } from 'kysely';
import type { Database } from '../../store/schema.ts';
import { engineDb, type TimerKind } from '../engine-schema.ts';
import type { Effect } from '../run/run-record.ts';
import type { RunEngine } from '../run-engine.ts';

/**
 * Everything the engine does later: wake a `wait`, time out a wait-for-event or a parallel step,
 * expire (or escalate) an approval, run a scheduled revert. A timer is a row in engine_timers,
 * written in the transaction that needs it, plus a delayed BullMQ job whose id is the row's id.
 * The row is the truth: the job only says "look now", and a fired or cancelled row makes the job a
 * no-op. The reconciler re-adds the job of a pending timer whose job was lost to a crash between
 * commit and enqueue.
 *
 * @example
 * tx.effects.push(await engine.timers.schedule(tx.trx, { id: `wake-${run.id}-${step.id}`, kind: 'wait.wake', tenantId, runId, stepId, dueAt }));
 */
export interface TimerSpec {
  /** Deterministic, so scheduling twice (a re-delivered job) is one timer; no `:` (BullMQ job ids). */
  id: string;
  kind: TimerKind;
  tenantId: string;
  runId?: string;
  stepId?: string;
  refId?: string;
  dueAt: Date;
  data?: Record<string, unknown>;
}

export const TIMER_QUEUE = 'engine.timers';

export class TimersSystem {
  constructor(private readonly engine: RunEngine) {}

  async schedule(trx: Transaction<Database>, spec: TimerSpec): Promise<Effect> {
    await engineDb(trx)
      .insertInto('engine_timers')
      .values({
        id: spec.id,
        kind: spec.kind,
        tenant_id: spec.tenantId,
        run_id: spec.runId ?? null,
        step_id: spec.stepId ?? null,
        ref_id: spec.refId ?? null,
        due_at: spec.dueAt,
        data: JSON.stringify(spec.data ?? {}),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    return { kind: 'timer', timerId: spec.id, delayMs: Math.max(0, spec.dueAt.getTime() - this.engine.now().getTime()) };
  }

  /** Marks a pending timer fired; false when another worker (or a cancellation) got there first. */
  async claim(trx: Transaction<Database>, timerId: string): Promise<boolean> {
    const res = await engineDb(trx)
      .updateTable('engine_timers')
      .set({ status: 'fired', fired_at: this.engine.now() })
      .where('id', '=', timerId)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async cancel(trx: Transaction<Database>, timerIds: string[]): Promise<void> {
    if (timerIds.length === 0) return;
    await engineDb(trx).updateTable('engine_timers').set({ status: 'cancelled' }).where('id', 'in', timerIds).where('status', '=', 'pending').execute();
  }

  /** Cancels a run's pending timers, except scheduled reverts: an undo outlives its run. */
  async cancelForRun(trx: Transaction<Database>, runId: string): Promise<void> {
    await engineDb(trx)
      .updateTable('engine_timers')
      .set({ status: 'cancelled' })
      .where('run_id', '=', runId)
      .where('status', '=', 'pending')
      .where('kind', '!=', 'revert.run')
      .execute();
  }

  async enqueue(timerId: string, delayMs: number): Promise<void> {
    await this.engine.deps.queues.add(TIMER_QUEUE, 'timer', { timerId }, { jobId: `timer-${timerId}`, delay: Math.max(0, Math.round(delayMs)) });
  }

  /** The timer job: dispatches a due timer to the system that owns it. */
  async process(timerId: string): Promise<void> {
    const timer = await engineDb(this.engine.deps.db).selectFrom('engine_timers').selectAll().where('id', '=', timerId).executeTakeFirst();
    if (!timer || timer.status !== 'pending') return;
    const early = timer.due_at.getTime() - this.engine.now().getTime();
    if (early > 50) {
      // Re-added by the reconciler with a stale delay, or a clock skew between processes: look again later.
      await this.engine.deps.queues.add(TIMER_QUEUE, 'timer', { timerId }, { jobId: `timer-${timerId}-${timer.due_at.getTime()}`, delay: early });
      return;
    }
    switch (timer.kind) {
      case 'wait.wake':
        return this.engine.waits.wake(timer.id, timer.run_id!, timer.step_id!, Number(timer.data['attempt'] ?? 1));
      case 'wait.timeout':
        return this.engine.waits.timeout(timer.id, timer.run_id!, timer.step_id!, Number(timer.data['attempt'] ?? 1));
      case 'parallel.timeout':
        return this.engine.steps.parallelTimeout(timer.id, timer.run_id!, timer.step_id!);
      case 'approval.expire':
        return this.engine.approvals.expire(timer.id, timer.ref_id!, Number(timer.data['level'] ?? 0));
      case 'revert.run':
        return this.engine.reverts.fire(timer.id, timer.ref_id!);
    }
  }

  /** Re-adds the delayed job of timers due soon (their jobs may have been lost in a crash). */
  async reconcile(): Promise<number> {
    const rows = await engineDb(this.engine.deps.db)
      .selectFrom('engine_timers')
      .select(['id', 'due_at'])
      .where('status', '=', 'pending')
      .where('due_at', '<', sql<Date>`now() + interval '15 seconds'`)
      .where('created_at', '<', sql<Date>`now() - interval '3 seconds'`)
      .orderBy('due_at')
      .limit(500)
      .execute();
    for (const r of rows) await this.enqueue(r.id, r.due_at.getTime() - this.engine.now().getTime());
    return rows.length;
  }
}
