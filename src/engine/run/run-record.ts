import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../../store/schema.ts';
import { engineDb } from '../engine-schema.ts';
import type { StepResultView } from '../expressions.ts';

/**
 * A run as the systems see it: the row of playbook_runs, read (and in a transition, locked) fresh
 * from the database every time, because another worker may have moved it since.
 */
export type RunStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL_RUN: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface RunRecord {
  id: string;
  tenantId: string;
  playbookId: string;
  playbookVersion: string;
  status: RunStatus;
  incidentId: string | null;
  startedBy: string;
  inputs: Record<string, unknown>;
  event: unknown;
  definitionHash: string;
  batchId: string | null;
  createdAt: Date;
}

/**
 * What must happen after a transition's transaction commits: a step job to enqueue, a timer's
 * delayed job, or a call (post a card). Enqueued only after the commit, so a job never refers to
 * a state that was rolled back; a crash between the commit and the enqueue is repaired by the
 * reconciler, which re-adds jobs for queued steps and pending timers (their job ids make that a
 * no-op when the job exists).
 */
export type Effect =
  | { kind: 'step'; runId: string; stepId: string; attempt: number; delayMs: number }
  | { kind: 'timer'; timerId: string; delayMs: number }
  | { kind: 'call'; what: string; fn: () => Promise<void> };

/** The columns of playbook_runs a RunRecord is made of, as PostgreSQL returns them. */
export interface RunRow {
  id: string;
  tenant_id: string;
  playbook_id: string;
  playbook_version: string;
  status: string;
  incident_id: string | null;
  started_by: string;
  inputs: Record<string, unknown>;
  event: unknown;
  definition_hash: string | null;
  batch_id: string | null;
  created_at: Date;
}

/** A run row as the systems see it; undefined for a row without a definition (never executable). */
export function toRunRecord(r: RunRow): RunRecord | undefined {
  if (!r.definition_hash) return undefined;
  return {
    id: r.id,
    tenantId: r.tenant_id,
    playbookId: r.playbook_id,
    playbookVersion: r.playbook_version,
    status: r.status as RunStatus,
    incidentId: r.incident_id,
    startedBy: r.started_by,
    inputs: r.inputs,
    event: r.event,
    definitionHash: r.definition_hash,
    batchId: r.batch_id,
    createdAt: r.created_at,
  };
}

export async function loadRun(db: Kysely<Database> | Transaction<Database>, runId: string, lock = false): Promise<RunRecord | undefined> {
  let q = engineDb(db as Kysely<Database>)
    .selectFrom('playbook_runs')
    .select(['id', 'tenant_id', 'playbook_id', 'playbook_version', 'status', 'incident_id', 'started_by', 'inputs', 'event', 'definition_hash', 'batch_id', 'created_at'])
    .where('id', '=', runId);
  if (lock) q = q.forUpdate();
  const r = await q.executeTakeFirst();
  return r ? toRunRecord(r as RunRow) : undefined;
}

/** `steps.<id>` as expressions see them: the latest attempt of each step. */
export async function loadStepViews(db: Kysely<Database>, runId: string): Promise<Record<string, StepResultView>> {
  const rows = await db
    .selectFrom('run_steps')
    .select(['step_id', 'attempt', 'status', 'output', 'error'])
    .where('run_id', '=', runId)
    .orderBy('attempt')
    .execute();
  const out: Record<string, StepResultView> = {};
  for (const r of rows) {
    out[r.step_id] = { status: r.status, ...(r.output !== null ? { output: r.output } : {}), ...(r.error !== null ? { error: r.error } : {}) };
  }
  return out;
}
