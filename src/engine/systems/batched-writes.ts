import { CompiledQuery, type Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { StepResultView } from '../expressions.ts';
import { GroupCommit } from '../../store/group-commit.ts';
import { toRunRecord, type RunRecord, type RunRow } from '../run/run-record.ts';

/**
 * The engine's hot path as group commits (store/group-commit.ts): what many concurrent step jobs
 * and run starts read and write travels to PostgreSQL as one statement per batch, instead of one
 * transaction of five to seven statements each. A statement is atomic on its own (an implicit
 * transaction, one commit), and every row change in it is guarded exactly as a transition guards
 * it, so a step still starts and settles at most once; a guard that matches nothing answers that
 * caller only (`false`, nothing written for it).
 *
 * - `reads`: a step job's attempt row, its run and the run's step results (`steps.*`).
 * - `stepStarts`: `queued|running -> running`, only while the run is live, with the masked input
 *   and the idempotency key, the run back to `running` if it was waiting, and the
 *   `run.step.start` audit row.
 * - `stepSucceeded`: for linear playbooks (only action/script/notify steps, no containers), a
 *   success: the step settles, the next step is queued or the run ends `succeeded`, with the
 *   timeline entries and audit rows (and texts) of the general settle (steps-system `settleIn`).
 *   Failures, retries, skips and every other kind still settle in a locked transition.
 * - `runStarts`: the definition (once per hash), the run row, its first step `queued`, the
 *   incident's `playbook.run.started` entry and the `run.start` audit row.
 *
 * These statements take no lock on the run row; they serialise on the rows they change. A
 * concurrent cancel (a locked transition) either settles the step first, and the guard here then
 * matches nothing, or finds it settled and the next step queued, whose job then sees the run ended
 * and cancels it (steps-system `process`).
 *
 * The SQL texts are constant (the items travel as one JSON parameter), so with a pg Pool they run
 * as named prepared statements: PostgreSQL plans each once per connection instead of per batch.
 */
export interface JobState {
  /** The step attempt's row; undefined when it does not exist. */
  row: { status: string; kind: string | null } | undefined;
  run: RunRecord | undefined;
  /** The run's step results (latest attempt per step), read only for a queued or running step. */
  steps: Record<string, StepResultView>;
}

export interface JobRef {
  runId: string;
  stepId: string;
  attempt: number;
}

export interface StepStart extends JobRef {
  tenantId: string;
  actor: string;
  /** The masked input, as the execution log shows it. */
  input: unknown;
  idempotencyKey: string;
  kind: string;
  auditDelta: Record<string, unknown>;
}

export interface StepSucceeded extends JobRef {
  tenantId: string;
  actor: string;
  playbookId: string;
  incidentId: string | null;
  kind: string;
  /** The step's name or id, as timeline entries show it. */
  label: string;
  /** Masked. */
  output: unknown;
  /** Masked. */
  logs: string[] | null;
  finishedAt: Date;
  /** The next step of the list, or null when this step ends the run. */
  next: { stepId: string; kind: string } | null;
}

export interface StepSucceededResult {
  /** False when the step had been settled already (nothing was written). */
  settled: boolean;
  /** The run is still going and `next` is queued. */
  queuedNext: boolean;
  /** This settle ended the run (`succeeded`). */
  finished: boolean;
}

export interface RunStart {
  id: string;
  tenantId: string;
  playbookId: string;
  playbookVersion: string;
  /** The canonical definition, when this process has not stored its hash yet. */
  definition: { hash: string; version: number; json: string } | null;
  definitionHash: string;
  trigger: Record<string, unknown>;
  inputs: Record<string, unknown>;
  incidentId: string | null;
  startedBy: string;
  event: unknown;
  triggerKey: string | null;
  batchId: string | null;
  first: { stepId: string; kind: string };
  timelineText: string;
  auditDelta: Record<string, unknown>;
}

/** What runs the statements: a pg Pool (named prepared statements), else Kysely. */
export interface PreparedQueryPool {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

const LIVE = `('queued', 'running', 'waiting')`;

const READ_JOBS = `
  select j.i, s.status as step_status, s.kind as step_kind,
         r.id, r.tenant_id, r.playbook_id, r.playbook_version, r.status, r.incident_id, r.started_by,
         r.inputs, r.event, r.definition_hash, r.batch_id, r.created_at,
         case when s.status in ('queued', 'running') then
           (select json_agg(json_build_object('step_id', v.step_id, 'status', v.status, 'output', v.output, 'error', v.error) order by v.attempt)
              from run_steps v where v.run_id = j.run_id)
         end as steps
    from jsonb_to_recordset($1::jsonb) as j(i int, run_id uuid, step_id text, attempt int)
    left join run_steps s on s.run_id = j.run_id and s.step_id = j.step_id and s.attempt = j.attempt
    left join playbook_runs r on r.id = j.run_id`;

// $2 is the audit rows' created_at: millisecond precision from JS, as appendAudit stores it.
const START_STEPS = `
  with v as (
    select * from jsonb_to_recordset($1::jsonb)
      as v(i int, run_id uuid, step_id text, attempt int, tenant_id text, actor text, input jsonb, idempotency_key text, kind text, target text, delta jsonb)
  ), s as (
    update run_steps t
       set status = 'running', started_at = coalesce(t.started_at, now()), input = v.input, idempotency_key = v.idempotency_key, kind = v.kind
      from v
     where t.run_id = v.run_id and t.step_id = v.step_id and t.attempt = v.attempt and t.status in ('queued', 'running')
       and exists (select 1 from playbook_runs p where p.id = t.run_id and p.status in ${LIVE})
    returning v.i, t.run_id
  ), r as (
    update playbook_runs p set status = 'running'
     where p.id in (select run_id from s) and p.status in ('queued', 'waiting')
  ), a as (
    insert into audit_log (tenant_id, actor, action, target, delta, created_at)
    select v.tenant_id, v.actor, 'run.step.start', v.target, v.delta, $2::timestamptz
      from v join s on s.i = v.i order by v.i
  )
  select i from s`;

const STEP_SUCCEEDED = `
  with v as (
    select * from jsonb_to_recordset($1::jsonb)
      as v(i int, run_id uuid, step_id text, attempt int, tenant_id text, actor text, playbook_id text, incident_id uuid,
           kind text, label text, output jsonb, logs jsonb, finished_at timestamptz, next_step text, next_kind text)
  ), s as (
    update run_steps t
       set status = 'succeeded', finished_at = v.finished_at, started_at = coalesce(t.started_at, v.finished_at),
           duration_ms = greatest(0, round(extract(epoch from (v.finished_at - coalesce(t.started_at, v.finished_at))) * 1000))::int,
           output = v.output, logs = coalesce(v.logs, t.logs), kind = v.kind
      from v
     where t.run_id = v.run_id and t.step_id = v.step_id and t.attempt = v.attempt and t.status in ${LIVE}
    returning v.i, t.duration_ms
  ), settled as (
    select v.*, coalesce(s.duration_ms, 0) as duration_ms from v join s on s.i = v.i
  ), live as (
    select * from settled where exists (select 1 from playbook_runs p where p.id = settled.run_id and p.status in ${LIVE})
  ), queued as (
    insert into run_steps (run_id, tenant_id, step_id, attempt, status, kind)
    select run_id, tenant_id, next_step, 1, 'queued', next_kind from live where next_step is not null
    on conflict (run_id, step_id, attempt) do nothing
  ), finished as (
    update playbook_runs p set status = 'succeeded', finished_at = live.finished_at, error = null
      from live
     where live.next_step is null and p.id = live.run_id and p.status in ${LIVE}
    returning p.id
  ), timeline as (
    insert into timeline_entries (tenant_id, incident_id, kind, actor, text, data)
    select tenant_id, incident_id, kind, actor, text, data from (
      select i, 0 as o, tenant_id, incident_id, 'playbook.step.succeeded' as kind, 'playbook:' || playbook_id as actor,
             left(playbook_id || ' › ' || label || ': succeeded in ' || duration_ms || ' ms', 4000) as text,
             jsonb_build_object('runId', run_id, 'stepId', step_id, 'attempt', attempt, 'kind', kind, 'durationMs', duration_ms) as data
        from settled where incident_id is not null
      union all
      select i, 1, tenant_id, incident_id, 'playbook.run.succeeded', 'playbook:' || playbook_id,
             'Playbook ' || playbook_id || ' succeeded', jsonb_build_object('runId', run_id)
        from live join finished on finished.id = live.run_id where incident_id is not null
    ) e order by i, o
  ), audit as (
    insert into audit_log (tenant_id, actor, action, target, delta, created_at)
    select tenant_id, actor, action, target, delta, $2::timestamptz from (
      select i, 0 as o, tenant_id, actor, 'run.step.succeeded' as action, 'run:' || run_id || '/step:' || step_id as target,
             jsonb_build_object('kind', kind, 'attempt', attempt, 'durationMs', duration_ms) as delta
        from settled
      union all
      select i, 1, tenant_id, actor, 'run.succeeded', 'run:' || run_id, '{}'::jsonb
        from live join finished on finished.id = live.run_id
    ) e order by i, o
  )
  select settled.i,
         exists (select 1 from live where live.i = settled.i) as live,
         exists (select 1 from finished where finished.id = settled.run_id) as finished
    from settled`;

const START_RUNS = `
  with v as (
    select * from jsonb_to_recordset($1::jsonb)
      as v(i int, id uuid, tenant_id text, playbook_id text, playbook_version text, definition_hash text, definition_version int,
           definition jsonb, trigger jsonb, inputs jsonb, incident_id uuid, started_by text, event jsonb, trigger_key text,
           batch_id uuid, first_step text, first_kind text, timeline_text text, delta jsonb)
  ), d as (
    insert into playbook_definitions (hash, playbook_id, version, definition)
    select distinct on (definition_hash) definition_hash, playbook_id, definition_version, definition from v where definition is not null
    on conflict (hash) do nothing
  ), r as (
    insert into playbook_runs (id, tenant_id, playbook_id, playbook_version, status, trigger, inputs, incident_id, started_by,
                               started_at, definition_hash, event, trigger_key, batch_id)
    select id, tenant_id, playbook_id, playbook_version, 'running', trigger, inputs, incident_id, started_by,
           $2::timestamptz, definition_hash, event, trigger_key, batch_id
      from v order by i
    on conflict (trigger_key) do nothing
    returning id
  ), started as (
    select v.* from v join r on r.id = v.id
  ), s as (
    insert into run_steps (run_id, tenant_id, step_id, attempt, status, kind)
    select id, tenant_id, first_step, 1, 'queued', first_kind from started
  ), tl as (
    insert into timeline_entries (tenant_id, incident_id, kind, actor, text, data)
    select tenant_id, incident_id, 'playbook.run.started', started_by, timeline_text, jsonb_build_object('runId', id, 'playbookId', playbook_id)
      from started where incident_id is not null order by i
  ), a as (
    insert into audit_log (tenant_id, actor, action, target, delta, created_at)
    select tenant_id, started_by, 'run.start', 'run:' || id, delta, $2::timestamptz from started order by i
  )
  select i from started`;

export class BatchedWrites {
  readonly reads: GroupCommit<JobRef, JobState>;
  readonly stepStarts: GroupCommit<StepStart, boolean>;
  readonly stepSucceeded: GroupCommit<StepSucceeded, StepSucceededResult>;
  /** true: started; false: another run holds the trigger key. */
  readonly runStarts: GroupCommit<RunStart, boolean>;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly pool?: PreparedQueryPool,
  ) {
    this.reads = new GroupCommit({ name: 'engine.read_jobs', flush: (items) => this.readJobs(items) });
    this.stepStarts = new GroupCommit({ name: 'engine.start_steps', flush: (items) => this.startSteps(items) });
    this.stepSucceeded = new GroupCommit({ name: 'engine.step_succeeded', flush: (items) => this.settleSucceeded(items) });
    this.runStarts = new GroupCommit({ name: 'engine.start_runs', flush: (items) => this.startRuns(items) });
  }

  private async query<R>(name: string, text: string, values: unknown[]): Promise<R[]> {
    if (this.pool) return (await this.pool.query({ name, text, values })).rows as R[];
    return (await this.db.executeQuery<R>(CompiledQuery.raw(text, values))).rows;
  }

  private async readJobs(items: readonly JobRef[]): Promise<JobState[]> {
    const input = JSON.stringify(items.map((j, i) => ({ i, run_id: j.runId, step_id: j.stepId, attempt: j.attempt })));
    type Row = RunRow & { i: number; step_status: string | null; step_kind: string | null; steps: { step_id: string; status: string; output: unknown; error: string | null }[] | null };
    const rows = await this.query<Row>('engine.read_jobs', READ_JOBS, [input]);
    const out: JobState[] = items.map(() => ({ row: undefined, run: undefined, steps: {} }));
    for (const r of rows) {
      const steps: Record<string, StepResultView> = {};
      // In attempt order: the latest attempt of a step is what `steps.<id>` shows.
      for (const v of r.steps ?? []) steps[v.step_id] = { status: v.status, ...(v.output !== null ? { output: v.output } : {}), ...(v.error !== null ? { error: v.error } : {}) };
      out[r.i] = {
        row: r.step_status === null ? undefined : { status: r.step_status, kind: r.step_kind },
        run: (r.id as string | null) === null ? undefined : toRunRecord(r),
        steps,
      };
    }
    return out;
  }

  private async startSteps(items: readonly StepStart[]): Promise<boolean[]> {
    const input = JSON.stringify(
      items.map((s, i) => ({
        i,
        run_id: s.runId,
        step_id: s.stepId,
        attempt: s.attempt,
        tenant_id: s.tenantId,
        actor: s.actor,
        input: s.input ?? null,
        idempotency_key: s.idempotencyKey,
        kind: s.kind,
        target: `run:${s.runId}/step:${s.stepId}`,
        delta: s.auditDelta,
      })),
    );
    const rows = await this.query<{ i: number }>('engine.start_steps', START_STEPS, [input, new Date()]);
    const started = new Set(rows.map((r) => r.i));
    return items.map((_, i) => started.has(i));
  }

  private async settleSucceeded(items: readonly StepSucceeded[]): Promise<StepSucceededResult[]> {
    const input = JSON.stringify(
      items.map((s, i) => ({
        i,
        run_id: s.runId,
        step_id: s.stepId,
        attempt: s.attempt,
        tenant_id: s.tenantId,
        actor: s.actor,
        playbook_id: s.playbookId,
        incident_id: s.incidentId,
        kind: s.kind,
        label: s.label,
        output: s.output === undefined ? null : s.output,
        logs: s.logs,
        finished_at: s.finishedAt.toISOString(),
        next_step: s.next?.stepId ?? null,
        next_kind: s.next?.kind ?? null,
      })),
    );
    const rows = await this.query<{ i: number; live: boolean; finished: boolean }>('engine.step_succeeded', STEP_SUCCEEDED, [input, new Date()]);
    const byIndex = new Map(rows.map((r) => [r.i, r]));
    return items.map((item, i) => {
      const r = byIndex.get(i);
      if (!r) return { settled: false, queuedNext: false, finished: false };
      return { settled: true, queuedNext: r.live && item.next !== null, finished: r.finished };
    });
  }

  private async startRuns(items: readonly RunStart[]): Promise<boolean[]> {
    const input = JSON.stringify(
      items.map((r, i) => ({
        i,
        id: r.id,
        tenant_id: r.tenantId,
        playbook_id: r.playbookId,
        playbook_version: r.playbookVersion,
        definition_hash: r.definitionHash,
        definition_version: r.definition?.version ?? null,
        definition: r.definition ? (JSON.parse(r.definition.json) as unknown) : null,
        trigger: r.trigger,
        inputs: r.inputs,
        incident_id: r.incidentId,
        started_by: r.startedBy,
        event: r.event === undefined ? null : r.event,
        trigger_key: r.triggerKey,
        batch_id: r.batchId,
        first_step: r.first.stepId,
        first_kind: r.first.kind,
        timeline_text: r.timelineText,
        delta: r.auditDelta,
      })),
    );
    const rows = await this.query<{ i: number }>('engine.start_runs', START_RUNS, [input, new Date()]);
    const started = new Set(rows.map((r) => r.i));
    return items.map((_, i) => started.has(i));
  }
}
