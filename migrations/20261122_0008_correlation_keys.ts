import { sql, type Kysely } from 'kysely';

/**
 * Correlation by key instead of by alert, and alerts whose repeats are cheap to record.
 *
 * `correlation_keys` holds, per tenant, correlation key and incident, when an alert of that
 * incident with that key was last received. The keys are the ones the case stage correlates on:
 * `host:<name, else ip>` and `obs:<ip or hash>` (`correlation_keys_of(event)`, the SQL twin of
 * correlationKeys in src/pipeline/stages/case-stage.ts). "Is there an open incident with an alert sharing
 * a key within the window?" is then an index probe per key, whatever the number of alerts sharing
 * it. Before this, the lookup read every linked alert with the key (the storm of bench/pipeline
 * links hundreds to one attacker IP and thousands to one honeypot host): 7.5 ms per alert asked,
 * measured on the 20,000-alert storm's data. The rows are written when alerts are linked to an
 * incident and refreshed when a linked alert repeats (at most once a second per row).
 *
 * `correlation_pending` holds the keys of alerts the case stage left without an incident, for the
 * correlation window, so an incident that opens meanwhile (a SEV1 in its own lane, racing a
 * related routine alert) takes them in (src/store/correlation-keys.ts).
 *
 * With that, the alerts table no longer needs the six correlation indexes (migration 0002's
 * and 0007's, the latter a duplicate set of the former), nor `alerts_tenant_fingerprint`, which no
 * query uses since `alerts_dedupe`. The dedupe index drops `last_received_at`: a repeat updates
 * only columns no index holds, so PostgreSQL records it as a heap-only (HOT) update, with no index
 * entries at all, on a page with room for it (fillfactor 80 keeps that room on new pages). The
 * storm measured 287 HOT updates out of 25,815 before. A fingerprint has one alert per dedupe
 * window, so `last_received_at` is filtered from a handful of rows per fingerprint.
 *
 * These build and drop indexes inside the migration's transaction (not CONCURRENTLY): on a large
 * alerts table, writes to alerts wait while `alerts_dedupe` is rebuilt.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function correlation_keys_of(event jsonb) returns setof text language sql immutable parallel safe as $$
      select 'host:' || h from (select coalesce(event->'host'->>'name', event->'host'->>'ip') as h) host where h <> ''
      union
      select 'obs:' || v from jsonb_array_elements_text(coalesce(event->'observables'->'ip', '[]')) v
      union
      select 'obs:' || v from jsonb_array_elements_text(coalesce(event->'observables'->'hash', '[]')) v
    $$`.execute(db);
  await sql`
    create table correlation_keys (
      tenant_id text not null,
      key text not null,
      incident_id uuid not null references incidents(id) on delete cascade,
      last_received_at timestamptz not null,
      primary key (tenant_id, key, incident_id)
    )`.execute(db);
  await sql`create index correlation_keys_incident on correlation_keys (incident_id)`.execute(db);
  // Alerts the case stage left without an incident, by key, for the window: an incident opened
  // at the same moment (a SEV1 in its own lane) looks here and takes them in.
  await sql`
    create table correlation_pending (
      tenant_id text not null,
      key text not null,
      alert_id uuid not null references alerts(id) on delete cascade,
      created_at timestamptz not null default now(),
      primary key (tenant_id, key, alert_id)
    )`.execute(db);
  await sql`create index correlation_pending_alert on correlation_pending (alert_id)`.execute(db);
  await sql`create index correlation_pending_age on correlation_pending (tenant_id, created_at)`.execute(db);
  await sql`
    insert into correlation_keys (tenant_id, key, incident_id, last_received_at)
    select a.tenant_id, k.key, a.incident_id, max(a.last_received_at)
    from alerts a cross join lateral correlation_keys_of(a.event) as k(key)
    where a.incident_id is not null
    group by 1, 2, 3`.execute(db);
  for (const index of ['alerts_corr_host', 'alerts_corr_ip', 'alerts_corr_hash', 'alerts_correlation_host', 'alerts_correlation_ip', 'alerts_correlation_hash', 'alerts_tenant_fingerprint']) {
    await sql`drop index if exists ${sql.id(index)}`.execute(db);
  }
  await sql`drop index alerts_dedupe`.execute(db);
  await sql`create index alerts_dedupe on alerts (tenant_id, fingerprint)`.execute(db);
  await sql`alter table alerts set (fillfactor = 80)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table alerts reset (fillfactor)`.execute(db);
  await sql`drop index alerts_dedupe`.execute(db);
  await sql`create index alerts_dedupe on alerts (tenant_id, fingerprint, last_received_at)`.execute(db);
  await sql`create index alerts_tenant_fingerprint on alerts (tenant_id, fingerprint, last_seen)`.execute(db);
  await sql`create index alerts_correlation_host on alerts (tenant_id, (coalesce(event->'host'->>'name', event->'host'->>'ip')), last_received_at)
            where incident_id is not null`.execute(db);
  await sql`create index alerts_correlation_ip on alerts using gin ((event->'observables'->'ip')) with (fastupdate = off) where incident_id is not null`.execute(db);
  await sql`create index alerts_correlation_hash on alerts using gin ((event->'observables'->'hash')) with (fastupdate = off) where incident_id is not null`.execute(db);
  await sql`drop table correlation_pending`.execute(db);
  await sql`drop table correlation_keys`.execute(db);
  await sql`drop function correlation_keys_of(jsonb)`.execute(db);
}
