import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** Kysely's view of our tables (migrations/ is the source of truth; keep the two in step). */
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type Json<T = unknown> = ColumnType<T, string | T, string | T>;

export type Role = 'viewer' | 'analyst' | 'responder' | 'approver' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'analyst', 'responder', 'approver', 'admin'];
export type Severity = 1 | 2 | 3 | 4;

export interface TenantsTable {
  id: string;
  name: string;
  config: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface PrincipalsTable {
  id: Generated<string>;
  display_name: string;
  email: string | null;
  created_at: CreatedAt;
}

export interface ChatIdentitiesTable {
  id: Generated<string>;
  principal_id: string;
  platform: 'slack' | 'teams' | 'sentchat';
  workspace: string;
  user_id: string;
  created_at: CreatedAt;
}

export interface PrincipalRolesTable {
  tenant_id: string;
  principal_id: string;
  role: Role;
  granted_by: string;
  granted_at: CreatedAt;
}

export interface IncidentsTable {
  id: Generated<string>;
  tenant_id: string;
  title: string;
  severity: number;
  status: ColumnType<'open' | 'acknowledged' | 'contained' | 'closed', string | undefined, string>;
  summary: string | null;
  created_by: string;
  created_at: CreatedAt;
  acknowledged_at: Date | null;
  closed_at: Date | null;
}

export interface IncidentChannelsTable {
  incident_id: string;
  tenant_id: string;
  platform: string;
  channel_id: string;
  name: string;
  created_at: CreatedAt;
}

export interface AlertsTable {
  id: Generated<string>;
  tenant_id: string;
  fingerprint: string;
  source: string;
  event_type: string;
  severity: number;
  title: string;
  status: ColumnType<'new' | 'suppressed' | 'acknowledged' | 'closed', string | undefined, string>;
  occurrences: ColumnType<number, number | undefined, number>;
  first_seen: ColumnType<Date, Date | string, Date | string>;
  last_seen: ColumnType<Date, Date | string, Date | string>;
  event: Json;
  enrichment: ColumnType<unknown, string | null | undefined, string | null>;
  incident_id: ColumnType<string | null, string | null | undefined, string | null>;
  case_refs: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: CreatedAt;
  last_received_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Per tenant, correlation key (`host:…`, `obs:…`) and incident: when an alert of it with the key was last received. */
export interface CorrelationKeysTable {
  tenant_id: string;
  key: string;
  incident_id: string;
  last_received_at: ColumnType<Date, Date | string, Date | string>;
}

/** Keys of alerts left without an incident, kept for the correlation window (see correlation-keys.ts). */
export interface CorrelationPendingTable {
  tenant_id: string;
  key: string;
  alert_id: string;
  created_at: CreatedAt;
}

export interface EventsTable {
  id: Generated<string>;
  tenant_id: string;
  source: string;
  event_type: string;
  severity: number;
  fingerprint: string;
  occurred_at: ColumnType<Date, Date | string, never>;
  received_at: CreatedAt;
  alert_id: string | null;
  normalized: Json;
  outcome: ColumnType<'new' | 'deduplicated' | 'suppressed', string | undefined, string>;
  suppressed_by: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PlaybookRunsTable {
  id: Generated<string>;
  tenant_id: string;
  playbook_id: string;
  playbook_version: string;
  status: ColumnType<string, string | undefined, string>;
  trigger: Json;
  inputs: Json<Record<string, unknown>>;
  incident_id: string | null;
  started_by: string;
  error: string | null;
  created_at: CreatedAt;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface RunStepsTable {
  id: Generated<string>;
  run_id: string;
  tenant_id: string;
  step_id: string;
  attempt: number;
  status: string;
  input: Json | null;
  output: Json | null;
  error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface ApprovalsTable {
  id: Generated<string>;
  tenant_id: string;
  run_id: string | null;
  step_id: string | null;
  summary: string;
  policy: Json;
  status: ColumnType<'pending' | 'approved' | 'denied' | 'expired' | 'cancelled', string | undefined, string>;
  requested_by: string;
  expires_at: ColumnType<Date, Date | string, Date | string>;
  created_at: CreatedAt;
  decided_at: Date | null;
}

export interface ApprovalDecisionsTable {
  id: Generated<string>;
  approval_id: string;
  tenant_id: string;
  principal_id: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  via: string;
  created_at: CreatedAt;
}

export interface TimelineEntriesTable {
  id: Generated<string>;
  tenant_id: string;
  incident_id: string;
  kind: string;
  actor: string;
  text: string;
  data: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface AuditLogTable {
  seq: ColumnType<string, never, never>;
  tenant_id: string | null;
  actor: string;
  action: string;
  target: string;
  delta: Json;
  created_at: ColumnType<Date, Date | string, never>;
  /** Set once by the sealer: the row's place in the chain, and its links. */
  chain_pos: ColumnType<string | null, never, string>;
  prev_hash: ColumnType<string | null, never, string>;
  hash: ColumnType<string | null, never, string>;
}

export interface SecretsTable {
  tenant_id: string;
  name: string;
  key_id: string;
  nonce: Buffer;
  ciphertext: Buffer;
  auth_tag: Buffer;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface NotificationThrottleTable {
  tenant_id: string;
  fingerprint: string;
  channel: string;
  window_start: ColumnType<Date, Date | string, Date | string>;
  sent: ColumnType<number, number | undefined, number>;
  held: ColumnType<number, number | undefined, number>;
  thread_ref: Json | null;
  last_sent_at: Date | null;
}

export interface DeadLettersTable {
  id: Generated<string>;
  queue: string;
  job_id: string;
  tenant_id: string | null;
  data: Json;
  error: string;
  attempts: number;
  failed_at: CreatedAt;
  replayed_at: Date | null;
}

export interface IngestCredentialsTable {
  id: Generated<string>;
  tenant_id: string;
  /** A source name (`wazuh`, `generic:<name>`) or `*` for every source. */
  source: string;
  kind: 'bearer' | 'hmac';
  token_sha256: string | null;
  secret_name: string | null;
  created_by: string;
  created_at: CreatedAt;
  revoked_at: Date | null;
}

export interface PipelineCountersTable {
  tenant_id: string;
  counter: string;
  shard: number;
  value: ColumnType<string, number | string, number | string>;
}

export interface PipelineBatchesTable {
  batch_id: string;
  stage: string;
  tenant_id: string;
  result: Json;
  processed_at: CreatedAt;
}

export interface SuppressionRulesTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  /** A JSONata expression over the event; true suppresses it. */
  match: string;
  owner: string;
  reason: string;
  expires_at: ColumnType<Date, Date | string, Date | string>;
  hits: ColumnType<string, number | string | undefined, number | string>;
  last_hit_at: Date | null;
  created_at: CreatedAt;
}

export interface IntelCacheTable {
  kind: string;
  value: string;
  provider: string;
  verdict: Json;
  fetched_at: ColumnType<Date, Date | string, Date | string>;
  expires_at: ColumnType<Date, Date | string, Date | string>;
}

/** migrations/20261122_0009_intel_reports.ts: a vendor's answer to one lookup, named by verdicts. */
export interface IntelReportsTable {
  id: string;
  provider: string;
  kind: string;
  value: string;
  fetched_at: ColumnType<Date, Date | string, never>;
  raw: Json;
}

/** migrations/20261121_0006_sentchat.ts: SENTchat, the built-in web chat. */
export interface SentchatChannelsTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  topic: ColumnType<string, string | undefined, string>;
  kind: 'public' | 'incident' | 'dm';
  private: ColumnType<boolean, boolean | undefined, boolean>;
  created_by: string;
  created_at: CreatedAt;
}

export interface SentchatChannelMembersTable {
  channel_id: string;
  principal_id: string;
  added_by: string;
  added_at: CreatedAt;
}

export interface SentchatMessagesTable {
  id: Generated<string>;
  seq: ColumnType<string, never, never>;
  tenant_id: string;
  channel_id: string;
  thread_parent_id: string | null;
  author_kind: 'user' | 'bot';
  author_principal_id: string | null;
  author_name: string;
  text: string;
  card: ColumnType<unknown, string | null | undefined, string | null>;
  visible_to: string | null;
  pinned: ColumnType<boolean, boolean | undefined, boolean>;
  version: ColumnType<number, number | undefined, number>;
  dedupe_key: string | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface SentchatSessionsTable {
  token_sha256: string;
  workspace: string;
  user_id: string;
  display_name: string;
  method: 'api-token' | 'principal-token' | 'oidc';
  created_at: CreatedAt;
  expires_at: ColumnType<Date, Date | string, Date | string>;
}

export interface Database {
  ingest_credentials: IngestCredentialsTable;
  pipeline_counters: PipelineCountersTable;
  pipeline_batches: PipelineBatchesTable;
  suppression_rules: SuppressionRulesTable;
  intel_cache: IntelCacheTable;
  intel_reports: IntelReportsTable;
  tenants: TenantsTable;
  principals: PrincipalsTable;
  chat_identities: ChatIdentitiesTable;
  principal_roles: PrincipalRolesTable;
  incidents: IncidentsTable;
  incident_channels: IncidentChannelsTable;
  alerts: AlertsTable;
  correlation_keys: CorrelationKeysTable;
  correlation_pending: CorrelationPendingTable;
  events: EventsTable;
  playbook_runs: PlaybookRunsTable;
  run_steps: RunStepsTable;
  approvals: ApprovalsTable;
  approval_decisions: ApprovalDecisionsTable;
  timeline_entries: TimelineEntriesTable;
  audit_log: AuditLogTable;
  secrets: SecretsTable;
  notification_throttle: NotificationThrottleTable;
  dead_letters: DeadLettersTable;
  sentchat_channels: SentchatChannelsTable;
  sentchat_channel_members: SentchatChannelMembersTable;
  sentchat_messages: SentchatMessagesTable;
  sentchat_sessions: SentchatSessionsTable;
}

export type Tenant = Selectable<TenantsTable>;
export type Incident = Selectable<IncidentsTable>;
export type Alert = Selectable<AlertsTable>;
export type AuditRow = Selectable<AuditLogTable>;
export type NewIncident = Insertable<IncidentsTable>;
