import { sql, type Kysely } from 'kysely';

/**
 * Indexes for the case stage's correlation lookup (src/pipeline/stages/case-stage.ts,
 * findCorrelatedIncidents): "the latest alert within the window, already in an open incident,
 * with this host, or sharing one of these IPs or hashes". Without them every lookup scanned all
 * of a tenant's linked alerts and evaluated their JSON; during the 20,000-alert storm of
 * bench/pipeline that grew to ~130 ms per batch lookup and bounded the whole pipeline. Only
 * linked alerts are indexed (the lookup asks for nothing else), so routine alerts cost nothing.
 * The host expression must stay identical to the query's. The GIN indexes do without fastupdate:
 * with it, rows linked since the last vacuum sit in a pending list that every lookup scans, and
 * a storm links thousands (measured on 10,000 alerts: 500 lookups took 135 ms with the pending
 * list, 10 ms without).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index alerts_correlation_host on alerts (tenant_id, (coalesce(event->'host'->>'name', event->'host'->>'ip')), last_received_at)
            where incident_id is not null`.execute(db);
  await sql`create index alerts_correlation_ip on alerts using gin ((event->'observables'->'ip')) with (fastupdate = off) where incident_id is not null`.execute(db);
  await sql`create index alerts_correlation_hash on alerts using gin ((event->'observables'->'hash')) with (fastupdate = off) where incident_id is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index alerts_correlation_hash`.execute(db);
  await sql`drop index alerts_correlation_ip`.execute(db);
  await sql`drop index alerts_correlation_host`.execute(db);
}
