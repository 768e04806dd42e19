import { sql } from 'kysely';
import { ReflexError, assertNever, toReflexError } from '../../errors.ts';
import { appendTimeline } from '../../store/incidents.ts';
import { engineDb } from '../engine-schema.ts';
import { evaluateCondition, type ExpressionContext, type StepResultView } from '../expressions.ts';
import type { ConditionStep, ParallelStep, Step } from '../manifest/types.ts';
import { GroupCommit } from '../../store/group-commit.ts';
import { TERMINAL_RUN, type RunRecord } from '../run/run-record.ts';
import type { Definition } from '../run/definition-cache.ts';
import { maskSecrets } from '../run/secret-masking.ts';
import type { RunEngine, TransitionTx } from '../run-engine.ts';
import { executeSideEffectStep, type SideEffectOutcome } from '../step-kinds/side-effect-steps.ts';
import type { JobState } from './batched-writes.ts';

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
const HINT_TTL_MS = 5_000;
const MAX_HINTS = 10_000;

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

  /**
   * Adds the job of a step attempt. Concurrent adds leave together (`addBulk`: one Redis round
   * trip, one PostgreSQL transaction), each resolving once its job is stored.
   */
  async enqueue(job: StepJob, delayMs = 0): Promise<void> {
    await this.adds.submit({ job, delayMs });
  }

  readonly adds = new GroupCommit<{ job: StepJob; delayMs: number }, void>({
    name: 'step.enqueue',
    flush: async (items) => {
      await this.engine.deps.queues.addBulk(
        STEP_QUEUE,
        items.map(({ job, delayMs }) => ({
          name: 'step',
          data: { runId: job.runId, stepId: job.stepId, attempt: job.attempt },
          opts: {
            jobId: stepJobId(job.runId, job.stepId, job.attempt),
            ...(delayMs > 0 ? { delay: Math.round(delayMs) } : {}),
            // Our state lives in PostgreSQL and the processor is idempotent, so BullMQ's own retries are
            // only for infrastructure hiccups (a dropped database connection), never for the step's work.
            attempts: 5,
            backoff: { type: 'exponential', delay: 250 },
          },
        })),
      );
      return items.map(() => undefined);
    },
  });

  /** The step job. Safe to run twice for one attempt: whatever was settled stays settled. */
  async process(job: StepJob): Promise<void> {
    // The context the previous step's settle left for this job in this process, else one batched
    // read: the attempt's row, its run and the run's step results.
    const hinted = this.takeHint(job);
    const state = hinted ?? (await this.engine.writes.reads.submit({ runId: job.runId, stepId: job.stepId, attempt: job.attempt }));
    const { row } = state;
    if (!row) return;
    if (row.status !== 'queued' && row.status !== 'running') {
      // Settled (or waiting) already: a re-delivered job. Make sure what it started is queued,
      // and that a gate opened just before a crash was shown to someone.
      await this.engine.ensureQueued(job.runId);
      if (row.status === 'waiting' && row.kind === 'approval') await this.engine.approvals.announceIfSilent(job.runId, job.stepId);
      return;
    }
    const { run } = state;
    if (!run) return;
    if (TERMINAL_RUN.includes(run.status)) {
      await this.settle(run.id, job.stepId, job.attempt, { status: 'cancelled', error: `run ${run.status}` }, 'system:engine');
      return;
    }
    const def = await this.engine.definitions.get(run.definitionHash);
    const step = def.graph.step(job.stepId);
    let ctx: ExpressionContext;
    try {
      ctx = await this.engine.contextFrom(run, state.steps);
      if (step.if !== undefined && !(await evaluateCondition(step.if, ctx, `${step.id}.if`))) {
        await this.settle(run.id, step.id, job.attempt, { status: 'skipped', output: { reason: `if: ${step.if} is false` } }, this.actor(run));
        return;
      }
    } catch (err) {
      await this.settle(run.id, step.id, job.attempt, { status: 'failed', error: toReflexError(err).message, retryable: false }, this.actor(run));
      return;
    }
    if (hinted && (step.kind === 'action' || step.kind === 'script' || step.kind === 'notify')) {
      // The start's guards (step queued or running, run live) are the read the hint stood in
      // for; when they refuse, read the truth and act on it (a cancelled run cancels the step).
      const started = await this.runSideEffect(run, def, step, job.attempt, ctx);
      if (!started) await this.process(job);
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
        await this.runSideEffect(run, def, step, attempt, ctx);
        return;
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

  /**
   * A side-effect step: the start (`running`, masked input, idempotency key, audit row) is written
   * before the executor runs, so a crash mid-call leaves the step `running` and the re-delivered
   * job calls again with the same idempotency key. Start and, for linear playbooks, a successful
   * settle go through the batched write path (batched-writes.ts); everything else settles in a
   * locked transition.
   */
  private async runSideEffect(run: RunRecord, def: Definition, step: Step & { kind: 'action' | 'script' | 'notify' }, attempt: number, ctx: ExpressionContext): Promise<boolean> {
    const key = idempotencyKey(run.id, step.id);
    const secrets = await this.engine.sensitive(run, def.playbook);
    const prepared = await executeSideEffectStep.prepare(step, ctx);
    const started = await this.engine.writes.stepStarts.submit({
      runId: run.id,
      stepId: step.id,
      attempt,
      tenantId: run.tenantId,
      actor: this.actor(run),
      input: maskSecrets(prepared.logInput, secrets),
      idempotencyKey: key,
      kind: step.kind,
      auditDelta: { kind: step.kind, attempt, idempotencyKey: key, ...(step.kind === 'action' ? { action: step.action } : {}) },
    });
    if (!started) return false;
    const outcome: SideEffectOutcome = await executeSideEffectStep.run(this.engine, { run, step, attempt, ctx, prepared, idempotencyKey: key, secrets });
    if (def.linear && outcome.status === 'succeeded') {
      await this.settleSucceededLinear(run, def, step, attempt, outcome, secrets, ctx);
      return true;
    }
    await this.settle(run.id, step.id, attempt, outcome, this.actor(run));
    return true;
  }

  /** `settleIn` for a success in a linear playbook, as one batched statement (batched-writes.ts). */
  private async settleSucceededLinear(run: RunRecord, def: Definition, step: Step, attempt: number, outcome: SettleOutcome, secrets: string[], ctx: ExpressionContext): Promise<void> {
    const next = def.graph.next(step.id);
    const nextStep = next.kind === 'step' ? next.step : undefined;
    const output = maskSecrets(outcome.output ?? null, secrets);
    const result = await this.engine.writes.stepSucceeded.submit({
      runId: run.id,
      stepId: step.id,
      attempt,
      tenantId: run.tenantId,
      actor: this.actor(run),
      playbookId: run.playbookId,
      incidentId: run.incidentId,
      kind: step.kind,
      label: step.name ?? step.id,
      output,
      logs: outcome.logs?.length ? (maskSecrets(outcome.logs.slice(0, 200), secrets) as string[]) : null,
      finishedAt: this.engine.now(),
      next: nextStep ? { stepId: nextStep.id, kind: nextStep.kind } : null,
    });
    if (result.queuedNext && nextStep) {
      if (nextStep.if === undefined) {
        // In a linear playbook nothing else of the run moves between this commit and the next
        // step's start, so what this job knows is exactly what the next job would read.
        const stored = JSON.parse(JSON.stringify(output)) as unknown;
        const steps: Record<string, StepResultView> = {
          ...(ctx.steps as Record<string, StepResultView>),
          [step.id]: { status: 'succeeded', ...(stored !== null ? { output: stored } : {}) },
          [nextStep.id]: { status: 'queued' },
        };
        this.leaveHint({ runId: run.id, stepId: nextStep.id, attempt: 1 }, { row: { status: 'queued', kind: nextStep.kind }, run: { ...run, status: 'running' }, steps });
      }
      await this.enqueue({ runId: run.id, stepId: nextStep.id, attempt: 1 });
    }
    if (result.finished) this.engine.emitFinished(run.id, 'succeeded');
  }

  /**
   * Hints: the context a linear step's settle leaves for the next step's job, used when that job
   * runs in this process (always, with one worker process; 1 in N with N). It only saves the
   * read: the next step's start still checks, in its statement, that the step is queued or
   * running and the run live, and a refused start falls back to a fresh read (process()).
   * Taken once; at most MAX_HINTS, each dropped after HINT_TTL_MS (a job that waited longer reads).
   */
  private readonly hints = new Map<string, { at: number; state: JobState }>();

  private leaveHint(job: StepJob, state: JobState): void {
    const now = Date.now();
    // Oldest first (a Map keeps insertion order): drop what expired, or the oldest when full;
    // hints whose jobs ran in another process are never taken here.
    for (const [id, hint] of this.hints) {
      if (now - hint.at < HINT_TTL_MS && this.hints.size < MAX_HINTS) break;
      this.hints.delete(id);
    }
    this.hints.set(stepJobId(job.runId, job.stepId, job.attempt), { at: now, state });
  }

  private takeHint(job: StepJob): JobState | undefined {
    const id = stepJobId(job.runId, job.stepId, job.attempt);
    const hint = this.hints.get(id);
    if (!hint) return undefined;
    this.hints.delete(id);
    return Date.now() - hint.at < HINT_TTL_MS ? hint.state : undefined;
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
