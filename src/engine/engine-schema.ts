import type { ColumnType, Generated, Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';

/**
 * Kysely's view of what migrations/20261121_0004_engine.ts adds: new tables, and the columns it
 * adds to playbook_runs, run_steps and approvals. src/store/schema.ts describes the foundation;
 * the engine reads and writes through `engineDb(db)` so both views apply.
 */
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type Json<T = unknown> = ColumnType<T, string | T, string | T>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;

export interface PlaybookDefinitionsTable {
  hash: string;
  playbook_id: string;
  version: number;
  definition: Json;
  created_at: CreatedAt;
}

export interface RunBatchesTable {
  id: Generated<string>;
  playbook_id: string;
  tenants: Json<string[]>;
  started_by: string;
  created_at: CreatedAt;
}

export interface RunColumns {
  definition_hash: string | null;
  event: Json | null;
  trigger_key: string | null;
  batch_id: string | null;
}

export interface RunStepColumns {
  kind: string | null;
  idempotency_key: string | null;
  duration_ms: number | null;
  state: Json<Record<string, unknown>> | null;
  logs: Json<string[]> | null;
  queued_at: ColumnType<Date, Date | string | undefined, Date | string>;
  not_before: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface ApprovalColumns {
  incident_id: string | null;
  escalation_level: ColumnType<number, number | undefined, number>;
}

export interface ApprovalCardsTable {
  approval_id: string;
  platform: string;
  channel_id: string;
  message_id: string | null;
  kind: 'channel' | 'dm';
  principal_id: string | null;
  created_at: CreatedAt;
}

export interface ApprovalLinksTable {
  id: string;
  approval_id: string;
  tenant_id: string;
  principal_id: string;
  expires_at: Timestamp;
  sent_via: string | null;
  used_at: Date | null;
  created_at: CreatedAt;
}

export interface PrincipalTokensTable {
  id: Generated<string>;
  principal_id: string;
  token_sha256: string;
  label: string;
  created_by: string;
  created_at: CreatedAt;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface OncallSchedulesTable {
  tenant_id: string;
  schedule: string;
  position: number;
  principal_id: string;
  updated_by: string;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export type TimerKind = 'wait.wake' | 'wait.timeout' | 'approval.expire' | 'revert.run' | 'parallel.timeout';

export interface EngineTimersTable {
  id: string;
  kind: TimerKind;
  tenant_id: string;
  run_id: string | null;
  step_id: string | null;
  ref_id: string | null;
  due_at: Timestamp;
  status: ColumnType<'pending' | 'fired' | 'cancelled', string | undefined, string>;
  data: Json<Record<string, unknown>>;
  created_at: CreatedAt;
  fired_at: Date | null;
}

export interface RunWaitsTable {
  run_id: string;
  step_id: string;
  attempt: number;
  tenant_id: string;
  until: string;
  expires_at: Timestamp;
  status: ColumnType<'waiting' | 'matched' | 'timed_out' | 'cancelled', string | undefined, string>;
  created_at: CreatedAt;
}

export interface RunRevertsTable {
  id: Generated<string>;
  tenant_id: string;
  run_id: string;
  step_id: string;
  target_step: string;
  action: string;
  input: Json<Record<string, unknown>>;
  due_at: Timestamp;
  status: ColumnType<'scheduled' | 'running' | 'succeeded' | 'failed' | 'cancelled', string | undefined, string>;
  output: Json | null;
  error: string | null;
  executed_by: string | null;
  created_at: CreatedAt;
  finished_at: Date | null;
}

// A type alias, not an interface: withTables<T> needs T to be indexable.
export type EngineTables = {
  playbook_definitions: PlaybookDefinitionsTable;
  run_batches: RunBatchesTable;
  playbook_runs: RunColumns;
  run_steps: RunStepColumns;
  approvals: ApprovalColumns;
  approval_cards: ApprovalCardsTable;
  approval_links: ApprovalLinksTable;
  principal_tokens: PrincipalTokensTable;
  oncall_schedules: OncallSchedulesTable;
  engine_timers: EngineTimersTable;
  run_waits: RunWaitsTable;
  run_reverts: RunRevertsTable;
};

export type EngineDatabase = Database & EngineTables;

/**
 * The database (or a transaction on it) with the engine's tables and columns visible.
 *
 * @example
 * const run = await engineDb(trx).selectFrom('playbook_runs').select(['id', 'definition_hash']).executeTakeFirst();
 */
export function engineDb(db: Kysely<Database>): Kysely<EngineDatabase>;
export function engineDb(db: Transaction<Database>): Transaction<EngineDatabase>;
export function engineDb(db: Kysely<Database> | Transaction<Database>): Kysely<EngineDatabase> {
  return db.withTables<EngineTables>() as unknown as Kysely<EngineDatabase>;
}
