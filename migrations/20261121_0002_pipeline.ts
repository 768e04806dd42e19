import { sql, type Kysely } from 'kysely';

/** The SentinelNet pipeline: hook credentials, exact counters, batch idempotency, suppression, intel cache. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Bearer tokens are stored as sha256 (lookup by hash; a database dump does not leak them).
  // HMAC secrets live in the vault under `secret_name`.
  await db.schema
    .createTable('ingest_credentials')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('bearer','hmac')`))
    .addColumn('token_sha256', 'text', (c) => c.unique())
    .addColumn('secret_name', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .addCheckConstraint('ingest_credentials_kind_fields', sql`(kind = 'bearer' and token_sha256 is not null) or (kind = 'hmac' and secret_name is not null)`)
    .execute();
  await db.schema.createIndex('ingest_credentials_tenant').on('ingest_credentials').columns(['tenant_id', 'source']).execute();

  // Counters are sharded so thousands of writers a second do not queue on one row; read = sum.
  await db.schema
    .createTable('pipeline_counters')
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('counter', 'text', (c) => c.notNull())
    .addColumn('shard', 'smallint', (c) => c.notNull())
    .addColumn('value', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('pipeline_counters_pk', ['tenant_id', 'counter', 'shard'])
    .execute();

  // A batch job records here, in the transaction that applies it, that it was applied: a retry
  // after a crash between commit and ack finds the row and does not count or insert twice.
  await db.schema
    .createTable('pipeline_batches')
    .addColumn('batch_id', 'text', (c) => c.notNull())
    .addColumn('stage', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('result', 'jsonb', (c) => c.notNull())
    .addColumn('processed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('pipeline_batches_pk', ['batch_id', 'stage'])
    .execute();

  await db.schema
    .createTable('suppression_rules')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('match', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('hits', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_hit_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('suppression_rules_tenant').on('suppression_rules').columns(['tenant_id', 'expires_at']).execute();

  await db.schema
    .createTable('intel_cache')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('verdict', 'jsonb', (c) => c.notNull())
    .addColumn('fetched_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('intel_cache_pk', ['kind', 'value', 'provider'])
    .execute();

  // Suppressed events are counted, and kept, never silently dropped.
  await db.schema.alterTable('events').addColumn('outcome', 'text', (c) => c.notNull().defaultTo('new')).execute();
  await db.schema.alterTable('events').addColumn('suppressed_by', 'uuid').execute();
  await db.schema.createIndex('alerts_tenant_incident').on('alerts').columns(['tenant_id', 'incident_id']).execute();
  // Dedupe and correlation windows run on arrival time: a replayed or late alert carries an old
  // event timestamp, and must still dedupe against what arrived a minute ago.
  await db.schema.alterTable('alerts').addColumn('last_received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`)).execute();
  await db.schema.createIndex('alerts_dedupe').on('alerts').columns(['tenant_id', 'fingerprint', 'last_received_at']).execute();
  // Correlation looks for alerts already in an incident that share the host or an IP/hash: partial
  // indexes over just those, so the lookup stays an index probe however many alerts a storm brings.
  await sql`create index alerts_corr_host on alerts (tenant_id, (coalesce(event->'host'->>'name', event->'host'->>'ip'))) where incident_id is not null`.execute(db);
  await sql`create index alerts_corr_ip on alerts using gin ((event->'observables'->'ip')) where incident_id is not null`.execute(db);
  await sql`create index alerts_corr_hash on alerts using gin ((event->'observables'->'hash')) where incident_id is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const i of ['alerts_corr_host', 'alerts_corr_ip', 'alerts_corr_hash', 'alerts_dedupe']) await db.schema.dropIndex(i).ifExists().execute();
  await db.schema.alterTable('alerts').dropColumn('last_received_at').execute();
  await db.schema.dropIndex('alerts_tenant_incident').ifExists().execute();
  await db.schema.alterTable('events').dropColumn('suppressed_by').execute();
  await db.schema.alterTable('events').dropColumn('outcome').execute();
  for (const t of ['intel_cache', 'suppression_rules', 'pipeline_batches', 'pipeline_counters', 'ingest_credentials']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
