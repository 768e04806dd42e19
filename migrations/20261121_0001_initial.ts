import { sql, type Kysely } from 'kysely';

/**
 * The foundation's tables. Every row that belongs to a tenant carries `tenant_id` (the SentinelNet
 * seed's `client_id`). Timestamps are timestamptz. JSON payloads are jsonb.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'text', (c) => c.primaryKey().check(sql`id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('config', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('principals')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // A chat user (Slack/Teams/SENTchat) is one identity of a principal.
  await db.schema
    .createTable('chat_identities')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id').onDelete('cascade'))
    .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('slack','teams','sentchat')`))
    .addColumn('workspace', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('chat_identities_platform_user', ['platform', 'workspace', 'user_id'])
    .execute();

  await db.schema
    .createTable('principal_roles')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) =>
      c.notNull().check(sql`role in ('viewer','analyst','responder','approver','admin')`),
    )
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('granted_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('principal_roles_pk', ['tenant_id', 'principal_id', 'role'])
    .execute();

  await db.schema
    .createTable('incidents')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('severity', 'smallint', (c) => c.notNull().check(sql`severity between 1 and 4`))
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('open').check(sql`status in ('open','acknowledged','contained','closed')`),
    )
    .addColumn('summary', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('acknowledged_at', 'timestamptz')
    .addColumn('closed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('incidents_tenant_created').on('incidents').columns(['tenant_id', 'created_at']).execute();

  await db.schema
    .createTable('incident_channels')
    .addColumn('incident_id', 'uuid', (c) => c.notNull().references('incidents.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('incident_channels_pk', ['incident_id', 'platform'])
    .execute();

  await db.schema
    .createTable('alerts')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('severity', 'smallint', (c) => c.notNull().check(sql`severity between 1 and 4`))
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('new').check(sql`status in ('new','suppressed','acknowledged','closed')`),
    )
    .addColumn('occurrences', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('first_seen', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen', 'timestamptz', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('enrichment', 'jsonb')
    .addColumn('incident_id', 'uuid', (c) => c.references('incidents.id'))
    .addColumn('case_refs', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('alerts_tenant_fingerprint')
    .on('alerts')
    .columns(['tenant_id', 'fingerprint', 'last_seen'])
    .execute();
  await db.schema.createIndex('alerts_tenant_created').on('alerts').columns(['tenant_id', 'created_at']).execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('severity', 'smallint', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('alert_id', 'uuid', (c) => c.references('alerts.id'))
    .addColumn('normalized', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_tenant_received').on('events').columns(['tenant_id', 'received_at']).execute();

  await db.schema
    .createTable('playbook_runs')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('playbook_id', 'text', (c) => c.notNull())
    .addColumn('playbook_version', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('queued')
        .check(sql`status in ('queued','running','waiting','succeeded','failed','cancelled')`),
    )
    .addColumn('trigger', 'jsonb', (c) => c.notNull())
    .addColumn('inputs', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('incident_id', 'uuid', (c) => c.references('incidents.id'))
    .addColumn('started_by', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('runs_tenant_created').on('playbook_runs').columns(['tenant_id', 'created_at']).execute();

  await db.schema
    .createTable('run_steps')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('playbook_runs.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(sql`status in ('queued','running','waiting','succeeded','failed','skipped','cancelled')`),
    )
    .addColumn('input', 'jsonb')
    .addColumn('output', 'jsonb')
    .addColumn('error', 'text')
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addUniqueConstraint('run_steps_attempt', ['run_id', 'step_id', 'attempt'])
    .execute();

  await db.schema
    .createTable('approvals')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('run_id', 'uuid', (c) => c.references('playbook_runs.id'))
    .addColumn('step_id', 'text')
    .addColumn('summary', 'text', (c) => c.notNull())
    .addColumn('policy', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('pending').check(sql`status in ('pending','approved','denied','expired','cancelled')`),
    )
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('decided_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('approvals_tenant_status').on('approvals').columns(['tenant_id', 'status']).execute();

  await db.schema
    .createTable('approval_decisions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('approval_id', 'uuid', (c) => c.notNull().references('approvals.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id'))
    .addColumn('decision', 'text', (c) => c.notNull().check(sql`decision in ('approve','deny')`))
    .addColumn('reason', 'text')
    .addColumn('via', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('approval_decisions_once', ['approval_id', 'principal_id'])
    .execute();

  await db.schema
    .createTable('timeline_entries')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('incident_id', 'uuid', (c) => c.notNull().references('incidents.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('timeline_incident').on('timeline_entries').columns(['incident_id', 'id']).execute();

  // Append-only, hash-chained. A write appends its row (seq from a sequence) in its own
  // transaction, without a lock; the sealer (src/store/audit-log.ts) links committed rows into the
  // chain shortly after, in batches: chain_pos, prev_hash, hash. So concurrent writers never queue
  // on one lock, and the chain still covers every committed write.
  await sql`create sequence audit_log_seq`.execute(db);
  await db.schema
    .createTable('audit_log')
    .addColumn('seq', 'bigint', (c) => c.primaryKey().defaultTo(sql`nextval('audit_log_seq')`))
    .addColumn('tenant_id', 'text')
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('delta', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('chain_pos', 'bigint', (c) => c.unique())
    .addColumn('prev_hash', 'text')
    .addColumn('hash', 'text', (c) => c.unique())
    .addCheckConstraint('audit_log_sealed_whole', sql`(chain_pos is null) = (hash is null) and (hash is null) = (prev_hash is null)`)
    .execute();
  await sql`alter sequence audit_log_seq owned by audit_log.seq`.execute(db);
  await db.schema.createIndex('audit_tenant_seq').on('audit_log').columns(['tenant_id', 'seq']).execute();
  await sql`create index audit_unsealed on audit_log (seq) where hash is null`.execute(db);
  // The only change ever allowed: sealing an unsealed row, i.e. setting its chain fields once
  // and nothing else. Everything else (UPDATE, DELETE, TRUNCATE) is refused.
  await sql`
    create function audit_log_refuse_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and old.hash is null and new.hash is not null
         and new.seq = old.seq and new.tenant_id is not distinct from old.tenant_id and new.actor = old.actor
         and new.action = old.action and new.target = old.target and new.delta = old.delta
         and new.created_at = old.created_at then
        return new;
      end if;
      raise exception 'audit_log is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`create trigger audit_log_no_update_delete before update or delete on audit_log
    for each row execute function audit_log_refuse_change()`.execute(db);
  await sql`create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_refuse_change()`.execute(db);

  // Integration credentials. tenant_id '' holds platform-wide secrets (a NULL would defeat the
  // unique constraint).
  await db.schema
    .createTable('secrets')
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().check(sql`name ~ '^[A-Za-z0-9_.:-]{1,128}$'`))
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('nonce', 'bytea', (c) => c.notNull())
    .addColumn('ciphertext', 'bytea', (c) => c.notNull())
    .addColumn('auth_tag', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('secrets_pk', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('notification_throttle')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('window_start', 'timestamptz', (c) => c.notNull())
    .addColumn('sent', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('held', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('thread_ref', 'jsonb')
    .addColumn('last_sent_at', 'timestamptz')
    .addPrimaryKeyConstraint('notification_throttle_pk', ['tenant_id', 'fingerprint', 'channel'])
    .execute();

  // BullMQ has no dead-letter queue of its own; the queue module copies a job here (and to
  // `<queue>.dlq`) on its last failed attempt.
  await db.schema
    .createTable('dead_letters')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text')
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('error', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('failed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('replayed_at', 'timestamptz')
    .addUniqueConstraint('dead_letters_job', ['queue', 'job_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'dead_letters',
    'notification_throttle',
    'secrets',
    'audit_log',
    'timeline_entries',
    'approval_decisions',
    'approvals',
    'run_steps',
    'playbook_runs',
    'events',
    'alerts',
    'incident_channels',
    'incidents',
    'principal_roles',
    'chat_identities',
    'principals',
    'tenants',
  ]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
  await sql`drop function if exists audit_log_refuse_change()`.execute(db);
  await sql`drop sequence if exists audit_log_seq`.execute(db);
}
