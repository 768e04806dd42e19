import type { Kysely, Transaction } from 'kysely';
import { sql } from 'kysely';
import type { Logger } from '../app/logger.ts';
import type { QueueSystem, WorkerSpec } from '../app/queue.ts';
import { ApprovalGates } from '../approvals/approval-gates.ts';
import { ApprovalNotifier } from '../approvals/approval-notifier.ts';
import type { ApprovalLinkSender, Pager } from '../approvals/approval-ports.ts';
import { OnCallDirectory } from '../approvals/oncall-directory.ts';
import type { ChatTransport } from '../bot/chat-types.ts';
import { auditedWrite, type AuditEntry } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import type { SecretsVault } from '../store/secrets-vault.ts';
import type { ActionRegistry } from './actions/registry.ts';
import { engineDb } from './engine-schema.ts';
import { DefinitionCache } from './run/definition-cache.ts';
import type { PlaybookCatalog } from './run/playbook-catalog.ts';
import { buildRunContext, isVaultRef, runContextFrom, sensitiveValues, TenantInfoCache } from './run/run-context.ts';
import type { ExpressionContext, StepResultView } from './expressions.ts';
import type { Playbook } from './manifest/types.ts';
import { loadRun, type Effect, type RunRecord, type RunStatus } from './run/run-record.ts';
import { ApprovalsSystem } from './systems/approvals-system.ts';
import { RevertsSystem } from './systems/reverts-system.ts';
import { RunsSystem } from './systems/runs-system.ts';
import { BatchedWrites, type PreparedQueryPool } from './systems/batched-writes.ts';
import { STEP_QUEUE, StepsSystem, type StepJob } from './systems/steps-system.ts';
import { TIMER_QUEUE, TimersSystem } from './systems/timers-system.ts';
import { WaitsSystem } from './systems/waits-system.ts';
import { Slots } from './sandbox/slots.ts';

/**
 * The playbook run engine, as small systems (STYLE.md, after trigger.dev's run engine):
 * runs (start, finish, fan-out), steps (the job per step attempt and the state machine), waits,
 * approvals (the step kind; the gates themselves live in src/approvals), reverts and timers.
 *
 * Every state change is a *transition*: one audited transaction that first locks the run's row,
 * changes rows under guards, and lists the jobs to enqueue once it has committed. Because jobs
 * are only hints ("look at this step now") and the database holds the state, a job that runs
 * twice, late, or after its worker was SIGKILLed changes nothing twice. A reconciler re-adds the
 * jobs of queued steps and due timers, in case a crash fell between a commit and its enqueue.
 *
 * @example
 * const engine = new RunEngine({ db, queues, vault, catalog, actions, chat: () => transport, … });
 * engine.startWorkers();
 * const { id } = await engine.runs.start({ tenantId: 'acme', playbookId: 'brute-force-containment', inputs: { source_ip: '203.0.113.9' }, startedBy: 'api:admin', manual: true });
 */
export interface RunEngineDeps {
  db: Kysely<Database>;
  /**
   * The pg Pool under `db`, when there is one: the batched statements (systems/batched-writes.ts)
   * then run as named prepared statements, planned once per connection.
   */
  pool?: PreparedQueryPool;
  queues: QueueSystem;
  vault: Pick<SecretsVault, 'get' | 'set'>;
  catalog: PlaybookCatalog;
  actions: ActionRegistry;
  chat: () => ChatTransport | undefined;
  pager: () => Pager | undefined;
  linkSender: () => ApprovalLinkSender | undefined;
  /** HMAC key of the one-time approval links. */
  linkSecret: Buffer;
  /** Base URL for links we send (`REFLEX_PUBLIC_URL`). */
  publicUrl: () => string;
  scriptsDir: string;
  logger: Logger;
  concurrency?: number;
  /** Script steps running at once in this process (default 8): each is an isolate or a process. */
  scriptConcurrency?: number;
  /** Lock and stalled-job settings of the engine's workers (tests shorten them). */
  workerOptions?: WorkerSpec<unknown, unknown>['options'];
  reconcileIntervalMs?: number;
  now?: () => Date;
}

export interface TransitionTx {
  trx: Transaction<Database>;
  audit: (e: AuditEntry) => void;
  /** The run, locked for this transaction. */
  run: RunRecord;
  effects: Effect[];
  /** Abandons the transition: nothing is written (the state moved on meanwhile). */
  nothing(): never;
}

class NothingToDo extends Error {}

export type RunFinishedListener = (runId: string, status: RunStatus) => void;

export class RunEngine {
  readonly runs: RunsSystem;
  readonly steps: StepsSystem;
  readonly waits: WaitsSystem;
  readonly approvals: ApprovalsSystem;
  readonly reverts: RevertsSystem;
  readonly timers: TimersSystem;
  readonly gates: ApprovalGates;
  readonly notifier: ApprovalNotifier;
  readonly oncall: OnCallDirectory;
  readonly definitions: DefinitionCache;
  readonly tenants: TenantInfoCache;
  /** The hot path as group commits: step reads, starts and linear settles, run starts. */
  readonly writes: BatchedWrites;
  /** Slots for script steps: step concurrency is for steps that wait, not for sandboxes. */
  readonly scriptSlots: Slots;
  private readonly finishedListeners = new Set<RunFinishedListener>();
  private readonly inputCache = new Map<string, Record<string, unknown>>();
  private reconciler: NodeJS.Timeout | undefined;
  private reconciling = false;

  constructor(readonly deps: RunEngineDeps) {
    this.definitions = new DefinitionCache(deps.db, deps.catalog);
    this.tenants = new TenantInfoCache(deps.db);
    this.oncall = new OnCallDirectory(deps.db);
    this.writes = new BatchedWrites(deps.db, deps.pool);
    this.scriptSlots = new Slots(deps.scriptConcurrency ?? 8);
    this.runs = new RunsSystem(this);
    this.steps = new StepsSystem(this);
    this.waits = new WaitsSystem(this);
    this.approvals = new ApprovalsSystem(this);
    this.reverts = new RevertsSystem(this);
    this.timers = new TimersSystem(this);
    let notifier: ApprovalNotifier | undefined;
    this.gates = new ApprovalGates({
      db: deps.db,
      oncall: this.oncall,
      pager: deps.pager,
      linkSecret: deps.linkSecret,
      publicUrl: deps.publicUrl,
      ...(deps.now ? { now: deps.now } : {}),
      changed: async (id) => notifier?.refresh(id),
      escalated: async (gate, principalId) => notifier?.announce(gate, [principalId]),
      onError: (err, what) => deps.logger.warn({ err }, what),
    });
    this.gates.hooks = this.approvals.hooks();
    notifier = new ApprovalNotifier({
      db: deps.db,
      gates: this.gates,
      transport: deps.chat,
      linkSender: deps.linkSender,
      onError: (err, what) => deps.logger.warn({ err }, `${what} failed`),
    });
    this.notifier = notifier;
  }

  now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** A run's inputs with its sensitive ones read back from the vault. */
  async runInputs(run: RunRecord): Promise<Record<string, unknown>> {
    if (!Object.values(run.inputs).some(isVaultRef)) return run.inputs;
    const hit = this.inputCache.get(run.id);
    if (hit) return hit;
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(run.inputs)) {
      if (!isVaultRef(value)) out[name] = value;
      else {
        const stored = await this.deps.vault.get(run.tenantId, value.$vault);
        if (stored !== undefined) out[name] = JSON.parse(stored) as unknown;
      }
    }
    if (this.inputCache.size > 1000) this.inputCache.clear();
    this.inputCache.set(run.id, out);
    return out;
  }

  /** The expression context of a run: `{ event, inputs, steps, tenant }`, read now. */
  async context(run: RunRecord): Promise<ExpressionContext> {
    return buildRunContext(this.deps.db, this.tenants, run, await this.runInputs(run));
  }

  /** The same context from step results already read with the step's job (steps-system). */
  async contextFrom(run: RunRecord, steps: Record<string, StepResultView>): Promise<ExpressionContext> {
    return runContextFrom(this.tenants, run, await this.runInputs(run), steps);
  }

  /** Values a run's logs must never show (its sensitive inputs). */
  async sensitive(run: RunRecord, playbook: Playbook): Promise<string[]> {
    return sensitiveValues(playbook, await this.runInputs(run));
  }

  /**
   * One state change of a run: an audited transaction holding the run's row lock. `fn` calls
   * `tx.nothing()` when the state already moved on; then nothing is written and this answers false.
   */
  async transition(actor: string, runId: string, fn: (tx: TransitionTx) => Promise<void>): Promise<boolean> {
    let effects: Effect[] = [];
    try {
      await auditedWrite(this.deps.db, actor, async (trx, audit) => {
        const run = await loadRun(trx, runId, true);
        if (!run) throw new NothingToDo();
        const tx: TransitionTx = {
          trx,
          audit,
          run,
          effects: [],
          nothing: () => {
            throw new NothingToDo();
          },
        };
        await fn(tx);
        effects = tx.effects;
      });
    } catch (err) {
      if (err instanceof NothingToDo) return false;
      throw err;
    }
    await this.apply(effects);
    return true;
  }

  /** Performs a committed transition's effects: jobs to enqueue, calls to make. */
  async apply(effects: readonly Effect[]): Promise<void> {
    for (const e of effects) {
      if (e.kind === 'step') await this.steps.enqueue({ runId: e.runId, stepId: e.stepId, attempt: e.attempt }, e.delayMs);
      else if (e.kind === 'timer') await this.timers.enqueue(e.timerId, e.delayMs);
      else {
        try {
          await e.fn();
        } catch (err) {
          this.deps.logger.error({ err }, `after-commit ${e.what} failed`);
        }
      }
    }
  }

  /** Re-adds the jobs of a run's queued steps (after a re-delivered job found its step settled). */
  async ensureQueued(runId: string): Promise<void> {
    const rows = await engineDb(this.deps.db).selectFrom('run_steps').select(['step_id', 'attempt', 'not_before']).where('run_id', '=', runId).where('status', '=', 'queued').execute();
    for (const r of rows) {
      await this.steps.enqueue({ runId, stepId: r.step_id, attempt: r.attempt }, r.not_before ? r.not_before.getTime() - this.now().getTime() : 0);
    }
  }

  async markTimerFired(timerId: string): Promise<void> {
    const row = await engineDb(this.deps.db).selectFrom('engine_timers').select(['status', 'tenant_id']).where('id', '=', timerId).executeTakeFirst();
    if (row?.status !== 'pending') return;
    await auditedWrite(this.deps.db, 'system:engine', async (trx, audit) => {
      await this.timers.claim(trx, timerId);
      audit({ tenantId: row.tenant_id, action: 'engine.timer.fired', target: `timer:${timerId}`, delta: {} });
    });
  }

  onRunFinished(listener: RunFinishedListener): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  emitFinished(runId: string, status: RunStatus): void {
    for (const l of this.finishedListeners) l(runId, status);
  }

  /** Starts the step and timer workers of this process and the reconciler. */
  startWorkers(): void {
    const { queues } = this.deps;
    const options = this.deps.workerOptions ?? {};
    queues.createWorker<StepJob, void>({
      name: STEP_QUEUE,
      concurrency: this.deps.concurrency ?? 16,
      options: { maxStalledCount: 5, ...options },
      onDeadLetter: (info) => this.deps.logger.error({ jobId: info.jobId, error: info.error, attempts: info.attempts }, 'step job dead-lettered after its infrastructure retries; the step stays queued (replay it from engine.steps.dlq)'),
      processor: async (job) => this.steps.process(job.data),
    });
    queues.createWorker<{ timerId: string }, void>({
      name: TIMER_QUEUE,
      concurrency: Math.max(2, Math.ceil((this.deps.concurrency ?? 16) / 4)),
      options: { maxStalledCount: 5, ...options },
      onDeadLetter: (info) => this.deps.logger.error({ jobId: info.jobId, error: info.error, attempts: info.attempts }, 'timer job dead-lettered'),
      processor: async (job) => this.timers.process(job.data.timerId),
    });
    const every = this.deps.reconcileIntervalMs ?? 5_000;
    this.reconciler = setInterval(() => void this.reconcile().catch((err: unknown) => this.deps.logger.warn({ err }, 'engine reconcile failed')), every);
    this.reconciler.unref();
  }

  /**
   * Repairs the one gap transitions leave: a crash after a commit and before its enqueue. Steps
   * queued for more than a few seconds and timers due soon get their job added again; job ids
   * make that a no-op when the job exists.
   */
  async reconcile(): Promise<{ steps: number; timers: number }> {
    if (this.reconciling) return { steps: 0, timers: 0 };
    this.reconciling = true;
    try {
      const rows = await engineDb(this.deps.db)
        .selectFrom('run_steps')
        .select(['run_id', 'step_id', 'attempt', 'not_before'])
        .where('status', '=', 'queued')
        .where('queued_at', '<', sql<Date>`now() - interval '3 seconds'`)
        .orderBy('queued_at')
        .limit(500)
        .execute();
      for (const r of rows) {
        await this.steps.enqueue({ runId: r.run_id, stepId: r.step_id, attempt: r.attempt }, r.not_before ? r.not_before.getTime() - this.now().getTime() : 0);
      }
      const timers = await this.timers.reconcile();
      return { steps: rows.length, timers };
    } finally {
      this.reconciling = false;
    }
  }

  async close(): Promise<void> {
    if (this.reconciler) clearInterval(this.reconciler);
    this.reconciler = undefined;
  }
}
