import { sql } from 'kysely';
import { ReflexError, assertNever, toReflexError } from '../../errors.ts';
import { appendTimeline } from '../../store/incidents.ts';
import { engineDb } from '../engine-schema.ts';
import { evaluateCondition, type ExpressionContext } from '../expressions.ts';
import type { ConditionStep, ParallelStep, Step } from '../manifest/types.ts';
import { TERMINAL_RUN, type RunRecord } from '../run/run-record.ts';
import type { Definition } from '../run/definition-cache.ts';
import { maskSecrets } from '../run/secret-masking.ts';
import type { RunEngine, TransitionTx } from '../run-engine.ts';
import { executeSideEffectStep, type SideEffectOutcome } from '../step-kinds/side-effect-steps.ts';

/**
 * Steps: the job of one step attempt (`jobId = <runId>-<stepId>-<attempt>`), and the state
 * machine that settles a step and decides what runs next.
 *
 * A step row goes `queued -> running -> succeeded | failed | skipped` (or `waiting` first, for
 * approvals and waits; `cancelled` when its run or branch ended). Every change is a guarded
 * UPDATE (`where status in (…)`) in a transaction that holds the run row's lock, so a step is
 * settled exactly once even when two workers hold the same job (a stalled job handed on while
 * the first worker was only slow): the loser's UPDATE matches nothing and it stops there.
 *
 * What comes next is decided from the manifest (StepGraph) and the recorded statuses only:
 * - success, skip, or failure with `on_error: continue`: the next step of the same list;
 * - failure with `on_error: { goto }`: the target, closing the condition branches left on the way;
 * - failure with `on_error: fail` (the default): the list stops; a branch failure fails its
 *   condition step (whose own on_error then applies) or, once every branch has finished, its
 *   parallel step; at the top level the run fails;
 * - a retryable failure with attempts left: the same step again as attempt + 1, delayed by the
 *   retry policy (a new job, so each attempt is its own job).
 * The end of a list settles its container; the end of the top-level list ends the run.
 */
export const STEP_QUEUE = 'engine.steps';

export interface StepJob {
  runId: string;
  stepId: string;
  attempt: number;
}

export interface SettleOutcome {
  status: 'succeeded' | 'failed' | 'skipped' | 'cancelled';
  output?: unknown;
  error?: string;
  /** Whether a failure may be retried (from the error's `retryable`). */
  retryable?: boolean;
  retryAfterMs?: number;
  logs?: string[];
  /** Container bookkeeping to store with the settled row. */
  state?: Record<string, unknown>;
}

const LIVE_STEP = ['queued', 'running', 'waiting'] as const;

export function stepJobId(runId: string, stepId: string, attempt: number): string {
  return `${runId}-${stepId}-${attempt}`;
}

export function idempotencyKey(runId: string, stepId: string): string {
  return `reflex-${runId}-${stepId}`;
}

function retryPolicyOf(step: Step): { maxAttempts: number; delayMs: number; backoff: 'fixed' | 'exponential' } | undefined {
  return step.kind === 'action' || step.kind === 'script' || step.kind === 'notify' ? step.retry : undefined;
}

export class StepsSystem {
  constructor(private readonly engine: RunEngine) {}

  async enqueue(job: StepJob, delayMs = 0): Promise<void> {
    await this.engine.deps.queues.add(STEP_QUEUE, 'step', job, {
      jobId: stepJobId(job.runId, job.stepId, job.attempt),
      ...(delayMs > 0 ? { delay: Math.round(delayMs) } : {}),
      // Our state lives in PostgreSQL and the processor is idempotent, so BullMQ's own retries are
      // only for infrastructure hiccups (a dropped database connection), never for the step's work.
      attempts: 5,
      backoff: { type: 'exponential', delay: 250 },
    });
  }

  /** The step job. Safe to run twice for one attempt: whatever was settled stays settled. */
  async process(job: StepJob): Promise<void> {
    const { db } = this.engine.deps;
    const row = await engineDb(db)
      .selectFrom('run_steps')
      .select(['status', 'kind'])
      .where('run_id', '=', job.runId)
      .where('step_id', '=', job.stepId)
      .where('attempt', '=', job.attempt)
      .executeTakeFirst();
    if (!row) return;
    if (row.status !== 'queued' && row.status !== 'running') {
      // Settled (or waiting) already: a re-delivered job. Make sure what it started is queued,
      // and that a gate opened just before a crash was shown to someone.
      await this.engine.ensureQueued(job.runId);
      if (row.status === 'waiting' && row.kind === 'approval') await this.engine.approvals.announceIfSilent(job.runId, job.stepId);
      return;
    }
    const run = await this.engine.runs.load(job.runId);
    if (!run) return;
    if (TERMINAL_RUN.includes(run.status)) {
      await this.settle(run.id, job.stepId, job.attempt, { status: 'cancelled', error: `run ${run.status}` }, 'system:engine');
      return;
    }
    const def = await this.engine.definitions.get(run.definitionHash);
    const step = def.graph.step(job.stepId);
    let ctx: ExpressionContext;
    try {
      ctx = await this.engine.context(run);
      if (step.if !== undefined && !(await evaluateCondition(step.if, ctx, `${step.id}.if`))) {
        await this.settle(run.id, step.id, job.attempt, { status: 'skipped', output: { reason: `if: ${step.if} is false` } }, this.actor(run));
        return;
      }
    } catch (err) {
      await this.settle(run.id, step.id, job.attempt, { status: 'failed', error: toReflexError(err).message, retryable: false }, this.actor(run));
      return;
    }
    try {
      await this.begin(run, def, step, job.attempt, ctx);
    } catch (err) {
      const e = toReflexError(err);
      // Expression and input problems are the manifest's or the event's, never worth a retry.
      if (e.code === 'input.invalid' || e.code === 'config.invalid' || e.code === 'not_found') {
        await this.settle(run.id, step.id, job.attempt, { status: 'failed', error: e.message, retryable: false }, this.actor(run));
        return;
      }
      throw err;
    }
  }

  actor(run: RunRecord): string {
    return `playbook:${run.playbookId}`;
  }

  private async begin(run: RunRecord, def: Definition, step: Step, attempt: number, ctx: ExpressionContext): Promise<void> {
    switch (step.kind) {
      case 'action':
      case 'script':
      case 'notify':
        return this.runSideEffect(run, def, step, attempt, ctx);
      case 'condition':
        return this.beginCondition(run, step, ctx);
      case 'parallel':
        return this.beginParallel(run, def, step);
      case 'approval':
        return this.engine.approvals.begin(run, def, step, ctx);
      case 'wait':
        return this.engine.waits.begin(run, step, attempt);
      case 'revert':
        return this.engine.reverts.begin(run, def, step, ctx);
      default:
        return assertNever(step);
    }
  }

  private async runSideEffect(run: RunRecord, def: Definition, step: Step & { kind: 'action' | 'script' | 'notify' }, attempt: number, ctx: ExpressionContext): Promise<void> {
    const key = idempotencyKey(run.id, step.id);
    const secrets = await this.engine.sensitive(run, def.playbook);
    let outcome: SideEffectOutcome;
    const prepared = await executeSideEffectStep.prepare(step, ctx);
    const started = await this.engine.transition(this.actor(run), run.id, async (tx) => {
      const res = await engineDb(tx.trx)
        .updateTable('run_steps')
        .set({
          status: 'running',
          started_at: sql<Date>`coalesce(started_at, now())`,
          input: JSON.stringify(maskSecrets(prepared.logInput, secrets)),
          idempotency_key: key,
          kind: step.kind,
        })
        .where('run_id', '=', run.id)
        .where('step_id', '=', step.id)
        .where('attempt', '=', attempt)
        .where('status', 'in', ['queued', 'running'])
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) tx.nothing();
      if (tx.run.status === 'waiting' || tx.run.status === 'queued') {
        await tx.trx.updateTable('playbook_runs').set({ status: 'running' }).where('id', '=', run.id).execute();
      }
      tx.audit({
        tenantId: run.tenantId,
        action: 'run.step.start',
        target: `run:${run.id}/step:${step.id}`,
        delta: { kind: step.kind, attempt, idempotencyKey: key, ...(step.kind === 'action' ? { action: step.action } : {}) },
      });
    });
    if (!started) return;
    outcome = await executeSideEffectStep.run(this.engine, { run, step, attempt, ctx, prepared, idempotencyKey: key, secrets });
    await this.settle(run.id, step.id, attempt, outcome, this.actor(run));
  }

  private async beginCondition(run: RunRecord, step: ConditionStep, ctx: ExpressionContext): Promise<void> {
    const value = await evaluateCondition(step.condition, ctx, `${step.id}.condition.if`);
    const branch = value ? 'then' : 'else';
    await this.engine.transition(this.actor(run), run.id, async (tx) => {
      const res = await engineDb(tx.trx)
        .updateTable('run_steps')
        .set({ status: 'running', started_at: new Date(), kind: 'condition', state: JSON.stringify({ branch }), output: JSON.stringify({ branch }) })
        .where('run_id', '=', run.id)
        .where('step_id', '=', step.id)
        .where('attempt', '=', 1)
        .where('status', 'in', ['queued', 'running'])
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) tx.nothing();
      tx.audit({ tenantId: run.tenantId, action: 'run.step.start', target: `run:${run.id}/step:${step.id}`, delta: { kind: 'condition', branch } });
      const def = await this.engine.definitions.get(run.definitionHash);
      const first = def.graph.branchFirst(step.id, branch);
      if (first) await this.startStep(tx, first);
      else await this.settleIn(tx, def, step.id, 1, { status: 'succeeded', output: { branch } });
    });
  }

  private async beginParallel(run: RunRecord, def: Definition, step: ParallelStep): Promise<void> {
    await this.engine.transition(this.actor(run), run.id, async (tx) => {
      const branches = Object.fromEntries(step.branches.map((b) => [b.name, b.steps.length ? 'running' : 'succeeded']));
      const res = await engineDb(tx.trx)
        .updateTable('run_steps')
        .set({ status: 'running', started_at: new Date(), kind: 'parallel', state: JSON.stringify({ branches }) })
        .where('run_id', '=', run.id)
        .where('step_id', '=', step.id)
        .where('attempt', '=', 1)
        .where('status', 'in', ['queued', 'running'])
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) tx.nothing();
      tx.audit({ tenantId: run.tenantId, action: 'run.step.start', target: `run:${run.id}/step:${step.id}`, delta: { kind: 'parallel', branches: Object.keys(branches) } });
      tx.effects.push(
        await this.engine.timers.schedule(tx.trx, {
          id: `parallel-${run.id}-${step.id}`,
          kind: 'parallel.timeout',
          tenantId: run.tenantId,
          runId: run.id,
          stepId: step.id,
          dueAt: new Date(this.engine.now().getTime() + step.timeoutMs),
        }),
      );
      for (const b of step.branches) if (b.steps[0]) await this.startStep(tx, b.steps[0]);
      if (step.branches.every((b) => b.steps.length === 0)) await this.settleIn(tx, def, step.id, 1, { status: 'succeeded', output: { branches } });
    });
  }

  /** The parallel step's timeout fired: fail it and cancel what its branches still have open. */
  async parallelTimeout(timerId: string, runId: string, stepId: string): Promise<void> {
    await this.engine.transition('system:engine', runId, async (tx) => {
      if (!(await this.engine.timers.claim(tx.trx, timerId))) tx.nothing();
      const def = await this.engine.definitions.get(tx.run.definitionHash);
      const step = def.graph.step(stepId);
      if (step.kind !== 'parallel') tx.nothing();
      const row = await engineDb(tx.trx).selectFrom('run_steps').select(['status']).where('run_id', '=', runId).where('step_id', '=', stepId).where('attempt', '=', 1).executeTakeFirst();
      if (row?.status !== 'running') tx.nothing();
      const inside = def.graph.all().filter((s) => def.graph.ancestors(s.id).includes(stepId)).map((s) => s.id);
      if (inside.length) {
        await engineDb(tx.trx)
          .updateTable('run_steps')
          .set({ status: 'cancelled', finished_at: new Date(), error: 'the parallel step timed out' })
          .where('run_id', '=', runId)
          .where('step_id', 'in', inside)
          .where('status', 'in', [...LIVE_STEP])
          .execute();
      }
      await this.settleIn(tx, def, stepId, 1, { status: 'failed', error: `parallel step ${stepId} did not finish within ${(step as ParallelStep).timeoutMs} ms`, retryable: false });
    });
  }

  /** Settles one attempt of a step in a transition of its own. */
  async settle(runId: string, stepId: string, attempt: number, outcome: SettleOutcome, actor: string): Promise<void> {
    await this.engine.transition(actor, runId, async (tx) => {
      const def = await this.engine.definitions.get(tx.run.definitionHash);
      const settled = await this.settleIn(tx, def, stepId, attempt, outcome);
      if (!settled) tx.nothing();
    });
  }

  /**
   * Settles a step inside a transition and moves the run on. Returns false when the step had been
   * settled already (the guard), in which case nothing else happens.
   */
  async settleIn(tx: TransitionTx, def: Definition, stepId: string, attempt: number, outcome: SettleOutcome): Promise<boolean> {
    const step = def.graph.step(stepId);
    const now = this.engine.now();
    const policy = retryPolicyOf(step);
    const willRetry = outcome.status === 'failed' && outcome.retryable === true && policy !== undefined && attempt < policy.maxAttempts;
    const secrets = await this.engine.sensitive(tx.run, def.playbook);
    const res = await engineDb(tx.trx)
      .updateTable('run_steps')
      .set({
        status: outcome.status,
        finished_at: now,
        started_at: sql<Date>`coalesce(started_at, ${now})`,
        duration_ms: sql<number>`greatest(0, round(extract(epoch from (${now}::timestamptz - coalesce(started_at, ${now}))) * 1000))::int`,
        ...(outcome.output !== undefined ? { output: JSON.stringify(maskSecrets(outcome.output, secrets)) } : {}),
        ...(outcome.error !== undefined ? { error: String(maskSecrets(outcome.error, secrets)).slice(0, 4000) } : {}),
        ...(outcome.logs?.length ? { logs: JSON.stringify(maskSecrets(outcome.logs.slice(0, 200), secrets)) } : {}),
        ...(outcome.state ? { state: JSON.stringify(outcome.state) } : {}),
        kind: step.kind,
      })
      .where('run_id', '=', tx.run.id)
      .where('step_id', '=', stepId)
      .where('attempt', '=', attempt)
      .where('status', 'in', [...LIVE_STEP])
      .returning(['duration_ms'])
      .executeTakeFirst();
    if (!res) return false;
    const label = step.name ?? step.id;
    if (willRetry) {
      const base = policy.backoff === 'exponential' ? policy.delayMs * 2 ** (attempt - 1) : policy.delayMs;
      const delayMs = Math.max(base, outcome.retryAfterMs ?? 0);
      await engineDb(tx.trx)
        .insertInto('run_steps')
        .values({ run_id: tx.run.id, tenant_id: tx.run.tenantId, step_id: stepId, attempt: attempt + 1, status: 'queued', kind: step.kind, not_before: new Date(now.getTime() + delayMs) })
        .onConflict((oc) => oc.columns(['run_id', 'step_id', 'attempt']).doNothing())
        .execute();
      tx.effects.push({ kind: 'step', runId: tx.run.id, stepId, attempt: attempt + 1, delayMs });
      await this.timeline(tx, 'playbook.step.retry', `${label}: attempt ${attempt} failed (${(outcome.error ?? '').slice(0, 300)}); retrying in ${delayMs} ms`, { stepId, attempt });
      tx.audit({ tenantId: tx.run.tenantId, action: 'run.step.retry', target: `run:${tx.run.id}/step:${stepId}`, delta: { attempt, delayMs, error: (outcome.error ?? '').slice(0, 500) } });
      return true;
    }
    const duration = res.duration_ms ?? 0;
    const text =
      outcome.status === 'succeeded'
        ? `${label}: succeeded in ${duration} ms`
        : outcome.status === 'skipped'
          ? `${label}: skipped`
          : outcome.status === 'cancelled'
            ? `${label}: cancelled (${outcome.error ?? ''})`
            : `${label}: failed after ${attempt} attempt(s): ${(outcome.error ?? '').slice(0, 500)}`;
    await this.timeline(tx, `playbook.step.${outcome.status}`, text, { stepId, attempt, kind: step.kind, durationMs: duration });
    tx.audit({
      tenantId: tx.run.tenantId,
      action: `run.step.${outcome.status}`,
      target: `run:${tx.run.id}/step:${stepId}`,
      delta: { kind: step.kind, attempt, durationMs: duration, ...(outcome.error ? { error: outcome.error.slice(0, 500) } : {}) },
    });
    if (step.kind === 'parallel') await this.engine.timers.cancel(tx.trx, [`parallel-${tx.run.id}-${step.id}`]);
    if (outcome.status !== 'cancelled') await this.advance(tx, def, stepId, outcome.status, outcome.error);
    return true;
  }

  private async timeline(tx: TransitionTx, kind: string, text: string, data: Record<string, unknown>): Promise<void> {
    if (!tx.run.incidentId) return;
    await appendTimeline(tx.trx, {
      tenantId: tx.run.tenantId,
      incidentId: tx.run.incidentId,
      kind,
      actor: `playbook:${tx.run.playbookId}`,
      text: `${tx.run.playbookId} › ${text}`.slice(0, 4000),
      data: { runId: tx.run.id, ...data },
    });
  }

  /** Whether the step's containers (and the run) are all still going. */
  private async isLive(tx: TransitionTx, def: Definition, stepId: string): Promise<boolean> {
    if (TERMINAL_RUN.includes(tx.run.status)) return false;
    const ancestors = def.graph.ancestors(stepId);
    if (ancestors.length === 0) return true;
    const rows = await tx.trx.selectFrom('run_steps').select(['step_id', 'status']).where('run_id', '=', tx.run.id).where('step_id', 'in', ancestors).execute();
    return ancestors.every((a) => rows.some((r) => r.step_id === a && r.status === 'running'));
  }

  private async advance(tx: TransitionTx, def: Definition, stepId: string, status: 'succeeded' | 'failed' | 'skipped', error: string | undefined): Promise<void> {
    if (!(await this.isLive(tx, def, stepId))) return;
    const step = def.graph.step(stepId);
    const loc = def.graph.locate(stepId);
    if (status === 'failed') {
      const onError = step.onError;
      switch (onError.kind) {
        case 'fail':
          return this.endList(tx, def, loc.parentId, loc.branch, 'failed', `${stepId}: ${error ?? 'failed'}`);
        case 'continue':
          break;
        case 'goto': {
          for (const container of def.graph.gotoExits(stepId, onError.step)) {
            await this.closeContainer(tx, container, { exitedBy: 'goto', from: stepId, to: onError.step });
          }
          return this.startStep(tx, def.graph.step(onError.step));
        }
        default:
          return assertNever(onError);
      }
    }
    const next = def.graph.next(stepId);
    if (next.kind === 'step') return this.startStep(tx, next.step);
    return this.endList(tx, def, next.parentId, next.branch, 'succeeded');
  }

  private async closeContainer(tx: TransitionTx, containerId: string, output: Record<string, unknown>): Promise<void> {
    await engineDb(tx.trx)
      .updateTable('run_steps')
      .set({ status: 'succeeded', finished_at: this.engine.now(), output: JSON.stringify(output) })
      .where('run_id', '=', tx.run.id)
      .where('step_id', '=', containerId)
      .where('status', '=', 'running')
      .execute();
  }

  private async endList(tx: TransitionTx, def: Definition, parentId: string | null, branch: string | null, outcome: 'succeeded' | 'failed', error?: string): Promise<void> {
    if (parentId === null) {
      await this.engine.runs.finishIn(tx, outcome === 'succeeded' ? 'succeeded' : 'failed', error);
      return;
    }
    const container = def.graph.step(parentId);
    if (container.kind === 'condition') {
      const branchTaken = branch ?? 'then';
      await this.settleIn(tx, def, parentId, 1, {
        status: outcome,
        output: { branch: branchTaken },
        ...(error ? { error, retryable: false } : {}),
      });
      return;
    }
    if (container.kind === 'parallel') {
      const row = await engineDb(tx.trx).selectFrom('run_steps').select(['state']).where('run_id', '=', tx.run.id).where('step_id', '=', parentId).where('attempt', '=', 1).executeTakeFirst();
      const state = (row?.state ?? {}) as { branches?: Record<string, string> };
      const branches = { ...(state.branches ?? {}), [branch ?? '']: outcome };
      await engineDb(tx.trx).updateTable('run_steps').set({ state: JSON.stringify({ branches }) }).where('run_id', '=', tx.run.id).where('step_id', '=', parentId).where('attempt', '=', 1).execute();
      if (Object.values(branches).some((b) => b === 'running')) return;
      const failed = Object.entries(branches).filter(([, b]) => b === 'failed').map(([name]) => name);
      await this.settleIn(tx, def, parentId, 1, {
        status: failed.length ? 'failed' : 'succeeded',
        output: { branches },
        state: { branches },
        ...(failed.length ? { error: `branch(es) ${failed.join(', ')} failed${error ? `: ${error}` : ''}`, retryable: false } : {}),
      });
      return;
    }
    throw new ReflexError('internal', `step ${parentId} is not a container`);
  }

  /** Queues the first attempt of a step (inside a transition) and its job after the commit. */
  async startStep(tx: TransitionTx, step: Step): Promise<void> {
    await engineDb(tx.trx)
      .insertInto('run_steps')
      .values({ run_id: tx.run.id, tenant_id: tx.run.tenantId, step_id: step.id, attempt: 1, status: 'queued', kind: step.kind })
      .onConflict((oc) => oc.columns(['run_id', 'step_id', 'attempt']).doNothing())
      .execute();
    tx.effects.push({ kind: 'step', runId: tx.run.id, stepId: step.id, attempt: 1, delayMs: 0 });
  }

  /** Marks a step waiting (approval, wait) inside a transition; false when it was settled meanwhile. */
  async markWaiting(tx: TransitionTx, stepId: string, attempt: number, kind: string): Promise<boolean> {
    const res = await engineDb(tx.trx)
      .updateTable('run_steps')
      .set({ status: 'waiting', started_at: sql<Date>`coalesce(started_at, now())`, kind })
      .where('run_id', '=', tx.run.id)
      .where('step_id', '=', stepId)
      .where('attempt', '=', attempt)
      .where('status', 'in', ['queued', 'running'])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    if (tx.run.status === 'running' || tx.run.status === 'queued') {
      await tx.trx.updateTable('playbook_runs').set({ status: 'waiting' }).where('id', '=', tx.run.id).execute();
    }
    return true;
  }
}
