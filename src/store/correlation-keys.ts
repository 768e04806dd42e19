import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

/**
 * The correlation index (migration 0008): per tenant, key and incident, when an alert of that
 * incident carrying the key was last received. Keys are `host:<name, else ip>` and
 * `obs:<ip or hash>`, derived from an alert's event by the SQL function `correlation_keys_of`
 * (its JavaScript twin is correlationKeys in src/pipeline/stages/case-stage.ts; a test holds
 * them equal). Written wherever alerts are linked to incidents, refreshed when linked alerts
 * repeat, read by the case stage's correlation lookup.
 */

type Db = Kysely<Database> | Transaction<Database>;

/** `alerts a` (these alerts) with each of their correlation keys as `k.key`, for a FROM clause. */
const keysOfAlerts = (alertIds: readonly string[]) =>
  sql`alerts a cross join lateral correlation_keys_of(a.event) as k(key) where a.id = any(${[...alertIds]}::uuid[])`;

/** Records the keys of these alerts under their incidents (alerts not linked are skipped). */
export async function recordCorrelationKeys(trx: Db, alertIds: readonly string[]): Promise<void> {
  if (alertIds.length === 0) return;
  // Sorted by key, so two transactions recording overlapping keys lock the rows in one order. A
  // row already as fresh (to the second, as refreshCorrelationKeys keeps them) is not touched:
  // in a storm most links land on a few hot keys, and an upsert locks the row even when it
  // changes nothing.
  await sql`
    insert into correlation_keys (tenant_id, key, incident_id, last_received_at)
    select n.tenant_id, n.key, n.incident_id, n.last_received_at from (
      select a.tenant_id, k.key, a.incident_id, max(a.last_received_at) as last_received_at
      from ${keysOfAlerts(alertIds)} and a.incident_id is not null
      group by 1, 2, 3
    ) n
    where not exists (
      select 1 from correlation_keys c
      where c.tenant_id = n.tenant_id and c.key = n.key and c.incident_id = n.incident_id
        and c.last_received_at >= n.last_received_at - interval '1 second')
    order by 1, 2, 3
    on conflict (tenant_id, key, incident_id) do update
      set last_received_at = greatest(correlation_keys.last_received_at, excluded.last_received_at)`.execute(trx);
}

/**
 * A linked alert repeated: its keys were seen now. A row refreshed within the last second is left
 * alone (and not locked), so a storm of repeats on one incident writes each key about once a
 * second; the window check is at most that much stale.
 */
export async function refreshCorrelationKeys(trx: Db, alertIds: readonly string[]): Promise<void> {
  if (alertIds.length === 0) return;
  // The keys first, then each row by its primary key: joined in one step, the planner matched the
  // alerts' incidents to every key of those incidents (113,688 pairs for 60 alerts) before
  // filtering on the key. Rows are locked in key order, as recordCorrelationKeys writes them.
  await sql`
    with wanted as materialized (
      select distinct a.tenant_id, k.key, a.incident_id
      from ${keysOfAlerts(alertIds)} and a.incident_id is not null
    ), stale as (
      select c.tenant_id, c.key, c.incident_id from correlation_keys c
      join wanted w on c.tenant_id = w.tenant_id and c.key = w.key and c.incident_id = w.incident_id
      where c.last_received_at < now() - interval '1 second'
      order by 1, 2, 3
      for no key update of c
    )
    update correlation_keys c set last_received_at = now()
    from stale s
    where c.tenant_id = s.tenant_id and c.key = s.key and c.incident_id = s.incident_id`.execute(trx);
}

/**
 * For each ask, the open incident with one of its keys seen most recently within the window, in
 * one query: an index probe per key. The incident's status is read per candidate (a subquery on
 * its primary key), which keeps the plan an index lookup however stale the table statistics are.
 */
export async function findIncidentsByKeys(
  db: Db,
  tenantId: string,
  asks: readonly { id: string; keys: string[] }[],
  windowSeconds: number,
): Promise<Map<string, string>> {
  const wanted = asks.filter((a) => a.keys.length > 0);
  if (wanted.length === 0) return new Map();
  const { rows } = await sql<{ id: string; incident_id: string | null }>`
    select q.id, (
      select c.incident_id from correlation_keys c
      where c.tenant_id = ${tenantId} and c.key = any(q.keys)
        and c.last_received_at >= now() - make_interval(secs => ${windowSeconds})
        and (select i.status from incidents i where i.id = c.incident_id) <> 'closed'
      order by c.last_received_at desc limit 1
    ) as incident_id
    from jsonb_to_recordset(${JSON.stringify(wanted)}::jsonb) as q(id uuid, keys text[])`.execute(db);
  return new Map(rows.filter((r) => r.incident_id).map((r) => [r.id, r.incident_id!]));
}

/**
 * Alerts the case stage left without an incident: their keys are kept for the window, so an
 * incident that opens meanwhile can take them in (incidentsTakePending). Written in a statement
 * of its own (committed) before the caller looks for incidents once more: whichever of that
 * look and the opening of a related incident comes second sees the other.
 */
export async function recordPendingAlerts(db: Db, alertIds: readonly string[]): Promise<void> {
  if (alertIds.length === 0) return;
  await sql`
    insert into correlation_pending (tenant_id, key, alert_id)
    select a.tenant_id, k.key, a.id
    from ${keysOfAlerts(alertIds)} and a.incident_id is null
    order by 1, 2, 3
    on conflict do nothing`.execute(db);
}

/** These alerts are linked now: nothing is pending for them any more. */
export async function clearPendingAlerts(db: Db, alertIds: readonly string[]): Promise<void> {
  if (alertIds.length === 0) return;
  await sql`delete from correlation_pending where alert_id = any(${[...alertIds]}::uuid[])`.execute(db);
}

/**
 * The pending alerts of the tenant within the window that share a key, seen within the window,
 * with an open incident: each with the incident whose key was seen last. `incidentIds` limits the
 * incidents to those (just opened and committed, by the case stage); `'any'` takes every open one
 * (the housekeeping sweep, which repairs a back-fill that failed after its incident's commit).
 * Only reads: rows older than the window are skipped here and deleted, audited, by the sweep
 * (src/pipeline/housekeeping.ts).
 */
export async function incidentsTakePending(db: Db, tenantId: string, incidentIds: readonly string[] | 'any', windowSeconds: number): Promise<Map<string, string>> {
  if (incidentIds !== 'any' && incidentIds.length === 0) return new Map();
  const only = incidentIds === 'any' ? sql`` : sql`and c.incident_id = any(${[...incidentIds]}::uuid[])`;
  const { rows } = await sql<{ alert_id: string; incident_id: string }>`
    select distinct on (p.alert_id) p.alert_id, c.incident_id
    from correlation_pending p
    join correlation_keys c on c.tenant_id = p.tenant_id and c.key = p.key
    where p.tenant_id = ${tenantId} ${only}
      and p.created_at >= now() - make_interval(secs => ${windowSeconds})
      and c.last_received_at >= now() - make_interval(secs => ${windowSeconds})
      and (select i.status from incidents i where i.id = c.incident_id) <> 'closed'
    order by p.alert_id, c.last_received_at desc`.execute(db);
  return new Map(rows.map((r) => [r.alert_id, r.incident_id]));
}
