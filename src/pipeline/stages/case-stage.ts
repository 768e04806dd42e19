import { sql, type Kysely, type Transaction } from 'kysely';
import { ReflexError } from '../../errors.ts';
import type { CaseObservableKind, CaseSystem } from '../../integrations/ports.ts';
import { TheHiveClient } from '../../integrations/thehive/thehive-client.ts';
import { linkAlertsToIncidents, lockAlertRows } from '../../store/alert-rows.ts';
import { auditedWrite, type AuditEntry } from '../../store/audit-log.ts';
import { findIncidentsByKeys, incidentsTakePending, recordPendingAlerts } from '../../store/correlation-keys.ts';
import { appendTimelineEntries, createIncidentsIn, type IncidentEvents } from '../../store/incidents.ts';
import type { Database, Incident } from '../../store/schema.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../../store/secrets-vault.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertBatch } from '../jobs.ts';
import type { TenantPipelineConfig } from '../tenant-config.ts';
import type { TenantDirectory } from '../tenant-directory.ts';
import { alertsTarget, eachLimited, loadBatchAlerts, type AlertRow, type BatchOutcome } from './alert-batch.ts';

export interface CaseDeps {
  db: Kysely<Database>;
  tenants: TenantDirectory;
  vault: Pick<SecretsVault, 'get'>;
  incidentEvents?: IncidentEvents;
  /** Builds the tenant's case system; default: TheHive from tenant config + `thehive.api_key`. */
  caseSystemFor?: (tenantId: string, config: TenantPipelineConfig) => Promise<CaseSystem | undefined>;
  /** Incident openings and TheHive syncs of a batch in flight at once; default 4. */
  concurrency?: number;
}

export interface CaseOutcome {
  incidentId: string | null;
  correlated: boolean;
  createdIncident: boolean;
  thehive?: { alertId: string; created: boolean; caseId?: string };
}

/**
 * case: internal incident and TheHive sync for a batch of alerts, idempotent end to end.
 * - An alert already linked to an incident (a retry) is not linked again.
 * - Correlation: an open incident holding an alert with the same host or a shared IP/hash seen
 *   within the tenant's window takes this alert too, whatever its severity. The batch's alerts
 *   are matched in one query and attached in one audited transaction.
 * - Otherwise severity at or above the tenant threshold opens a new incident (openIncidents: one
 *   transaction for the batch, under advisory locks on the alerts' correlation keys: their hosts,
 *   IPs and hashes), so two related alerts processed at once cannot open two incidents, while
 *   unrelated batches (a storm's SEV1s on different hosts) do not wait for each other. The
 *   batch's routine alerts then get one more look, for incidents their neighbours just opened.
 * - An alert still without an incident leaves its keys for the window (correlation_pending) and
 *   looks once more; an incident opened here takes in the pending alerts that share its keys. So
 *   a routine alert and a related SEV1 in the urgent lane meet whichever is handled first.
 * - TheHive: an alert for SEV2+ with sourceRef = fingerprint (TheHive's own dedupe key; its 400
 *   CreateError on a duplicate means "already there"), promoted to a case for SEV1 or correlated
 *   alerts; the ids are stored on the alert.
 */
export async function runCaseStage(batch: AlertBatch, deps: CaseDeps): Promise<BatchOutcome<CaseOutcome>> {
  const { rows, missing } = await loadBatchAlerts(deps.db, batch);
  const failed = new Map(missing);
  const config = await deps.tenants.config(batch.tenantId);
  const window = config.correlation_window_seconds;
  const outcomes = new Map<string, CaseOutcome>(rows.filter((a) => a.incident_id).map((a) => [a.id, { incidentId: a.incident_id, correlated: false, createdIncident: false }]));
  const unlinked = rows.filter((a) => !a.incident_id);
  const attach = async (alerts: AlertRow[]) => {
    const related = await findCorrelatedIncidents(deps.db, batch.tenantId, alerts, window);
    const linked = await attachToIncidents(deps.db, batch.tenantId, alerts.filter((a) => related.has(a.id)).map((alert) => ({ alert, incidentId: related.get(alert.id)! })));
    for (const [id, l] of linked) outcomes.set(id, { incidentId: l.incidentId, correlated: l.correlated, createdIncident: false });
  };
  // Attaching to a related incident is safe without a lock (it only fills a null).
  await attach(unlinked);
  // Opening one is not: two related alerts at once must not open two, so that path re-checks
  // under locks on the alerts' correlation keys. Most alerts in a storm are below the threshold
  // and never take them.
  const openers = unlinked.filter((a) => !outcomes.has(a.id) && a.severity <= config.incident_threshold);
  if (openers.length > 0) for (const [id, o] of await openIncidents(deps, batch.tenantId, openers, window)) outcomes.set(id, o);
  // Still alone: leave the keys where an incident opening now will look (a SEV1's lane may be a
  // moment behind), then look once more, which also finds what this batch's openers just opened.
  const rest = unlinked.filter((a) => !outcomes.has(a.id) && !failed.has(a.id));
  if (rest.length > 0) {
    await recordPendingAlerts(deps.db, rest.map((a) => a.id));
    await attach(rest);
  }
  for (const a of rest) if (!outcomes.has(a.id)) outcomes.set(a.id, { incidentId: null, correlated: false, createdIncident: false });

  const hiveBound = rows.filter((a) => a.severity <= 2 && outcomes.has(a.id));
  if (hiveBound.length > 0) {
    const caseSystem = await (deps.caseSystemFor ?? defaultCaseSystem(deps.vault))(batch.tenantId, config);
    if (caseSystem) {
      await eachLimited(hiveBound, deps.concurrency ?? 4, async (alert) => {
        try {
          await syncCaseSystem(deps.db, caseSystem, batch.tenantId, alert, outcomes.get(alert.id)!);
        } catch (err) {
          outcomes.delete(alert.id);
          failed.set(alert.id, err);
        }
      });
    }
  }
  for (const id of failed.keys()) outcomes.delete(id);
  return { results: outcomes, failed };
}

/**
 * Opens incidents for the batch's unrelated alerts at or above the threshold, in one transaction
 * under advisory locks on all their correlation keys (correlationLocks). Under the locks it looks
 * again: an alert linked meanwhile keeps its incident, one whose related incident appeared
 * meanwhile attaches to it; the rest are grouped by the keys they share in this batch (the same
 * host, IP or hash), and each group opens one incident, led by its most severe alert, that the
 * others attach to. Listeners hear of the new incidents after the commit.
 */
async function openIncidents(deps: CaseDeps, tenantId: string, openers: AlertRow[], windowSeconds: number): Promise<Map<string, CaseOutcome>> {
  const opened: Incident[] = [];
  const out = await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
    const result = new Map<string, CaseOutcome>();
    await sql`select pg_advisory_xact_lock(l.id) from (${correlationLocks(tenantId, openers)}) as l order by l.id`.execute(trx);
    // All the rows this transaction may link, in one ordered step (see lockAlertRows); an alert
    // linked meanwhile keeps its incident.
    for (const r of await lockAlertRows(trx, openers.map((a) => a.id))) {
      if (r.incident_id) result.set(r.id, { incidentId: r.incident_id, correlated: false, createdIncident: false });
    }
    const pending = openers.filter((a) => !result.has(a.id));
    const late = await findCorrelatedIncidents(trx, tenantId, pending, windowSeconds);
    const links: { alert: AlertRow; incidentId: string }[] = [];
    const groups: { lead: AlertRow; rest: AlertRow[] }[] = [];
    for (const group of relatedGroups(pending)) {
      const found = group.map((a) => late.get(a.id)).find(Boolean);
      if (found) for (const alert of group) links.push({ alert, incidentId: late.get(alert.id) ?? found });
      else {
        const lead = group.reduce((a, b) => (b.severity < a.severity ? b : a));
        groups.push({ lead, rest: group.filter((a) => a !== lead) });
      }
    }
    const incidents = await createIncidentsIn(
      trx,
      audit,
      groups.map(({ lead }) => ({
        tenantId,
        title: lead.title.length >= 3 ? lead.title : `${lead.event_type} alert`,
        severity: lead.severity,
        createdBy: 'pipeline',
        alertIds: [lead.id],
        summary: summaryOf(lead.event as SentinelEvent),
      })),
    );
    groups.forEach(({ lead, rest }, i) => {
      result.set(lead.id, { incidentId: incidents[i]!.id, correlated: false, createdIncident: true });
      for (const alert of rest) links.push({ alert, incidentId: incidents[i]!.id });
    });
    for (const [id, l] of await attachIn(trx, audit, tenantId, links)) result.set(id, { incidentId: l.incidentId, correlated: l.correlated, createdIncident: false });
    opened.push(...incidents);
    return result;
  });
  for (const incident of opened) await deps.incidentEvents?.emit({ type: 'incident.created', incident });
  // Related alerts that went through this stage a moment ago and found no incident: they join.
  await attachPendingAlerts(deps.db, tenantId, opened.map((i) => i.id), windowSeconds);
  return out;
}

/**
 * Attaches the tenant's pending alerts (left without an incident, see recordPendingAlerts) to the
 * incidents that share a key with them within the window: the incidents just opened, or any open
 * one (`'any'`, the housekeeping sweep). Returns how many alerts it attached.
 */
export async function attachPendingAlerts(db: Kysely<Database>, tenantId: string, incidentIds: readonly string[] | 'any', windowSeconds: number): Promise<number> {
  const taken = await incidentsTakePending(db, tenantId, incidentIds, windowSeconds);
  if (taken.size === 0) return 0;
  const { rows } = await loadBatchAlerts(db, { tenantId, alertIds: [...taken.keys()] });
  const linked = await attachToIncidents(db, tenantId, rows.filter((a) => !a.incident_id).map((alert) => ({ alert, incidentId: taken.get(alert.id)! })));
  return [...linked.values()].filter((l) => l.correlated).length;
}

/** The alerts grouped by the correlation keys they share (host, IPs, hashes), transitively. */
function relatedGroups(alerts: AlertRow[]): AlertRow[][] {
  const parent = alerts.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const owner = new Map<string, number>();
  alerts.forEach((a, i) => {
    for (const key of correlationKeys(a.event as SentinelEvent)) {
      const j = owner.get(key);
      if (j === undefined) owner.set(key, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, AlertRow[]>();
  alerts.forEach((a, i) => {
    const root = find(i);
    const group = groups.get(root);
    if (group) group.push(a);
    else groups.set(root, [a]);
  });
  return [...groups.values()];
}

/**
 * What an alert correlates on, also its lock and grouping keys: `host:<name, else ip>` and
 * `obs:<ip or hash>`. The SQL function `correlation_keys_of` (migration 0008) derives the same
 * keys for the correlation index; a test holds the two equal.
 */
export function correlationKeys(e: SentinelEvent): string[] {
  const host = e.host.name ?? e.host.ip ?? null;
  return [...new Set([...(host ? [`host:${host}`] : []), ...[...e.observables.ip, ...e.observables.hash].map((k) => `obs:${k}`)])];
}

/** TheHive alert (and case for SEV1 or correlated alerts) for one alert, ids stored back on it. */
async function syncCaseSystem(db: Kysely<Database>, caseSystem: CaseSystem, tenantId: string, alert: AlertRow, outcome: CaseOutcome): Promise<void> {
  const event = alert.event as SentinelEvent;
  const refs = (alert.case_refs ?? {}) as { thehive?: { alertId: string; caseId?: string } };
  let hiveAlertId = refs.thehive?.alertId;
  let created = false;
  if (!hiveAlertId) {
    const r = await caseSystem.createAlert({
      type: event.source.split(':')[0]!.slice(0, 32),
      source: 'sentinelnet',
      sourceRef: alert.fingerprint,
      title: alert.title,
      description: summaryOf(event),
      severity: alert.severity as 1 | 2 | 3 | 4,
      tags: [event.event_type, `tenant:${tenantId}`],
      observables: caseObservables(event),
    });
    hiveAlertId = r.id;
    created = r.created;
  }
  let caseId = refs.thehive?.caseId;
  if (!caseId && (alert.severity === 1 || outcome.correlated)) caseId = (await caseSystem.promoteAlertToCase(hiveAlertId)).id;
  outcome.thehive = { alertId: hiveAlertId, created, ...(caseId ? { caseId } : {}) };
  await auditedWrite(db, 'pipeline', async (trx, audit) => {
    await trx
      .updateTable('alerts')
      .set({ case_refs: JSON.stringify({ ...refs, thehive: { alertId: hiveAlertId, ...(caseId ? { caseId } : {}) } }) })
      .where('id', '=', alert.id)
      .execute();
    audit({ tenantId, action: 'alert.case_sync', target: `alert:${alert.id}`, delta: { thehive: outcome.thehive } });
  });
}

/**
 * Links each alert to its incident (if it is still unlinked), with a timeline entry each, in one
 * audited transaction; returns each alert's incident, and whether it was this link (correlated)
 * or another that got there first.
 */
async function attachToIncidents(db: Kysely<Database>, tenantId: string, links: { alert: AlertRow; incidentId: string }[]): Promise<Map<string, { incidentId: string; correlated: boolean }>> {
  if (links.length === 0) return new Map();
  return auditedWrite(db, 'pipeline', (trx, audit) => attachIn(trx, audit, tenantId, links));
}

/** attachToIncidents inside the caller's audited transaction. */
async function attachIn(
  trx: Transaction<Database>,
  audit: (entry: AuditEntry) => void,
  tenantId: string,
  links: { alert: AlertRow; incidentId: string }[],
): Promise<Map<string, { incidentId: string; correlated: boolean }>> {
  const out = new Map<string, { incidentId: string; correlated: boolean }>();
  if (links.length === 0) return out;
  const locked = new Map((await lockAlertRows(trx, links.map((l) => l.alert.id))).map((r) => [r.id, r]));
  // Only the tenant's alerts that are still unlinked; the others keep what they have.
  const attached = links.filter((l) => {
    const row = locked.get(l.alert.id);
    return row?.tenant_id === tenantId && row.incident_id === null;
  });
  await linkAlertsToIncidents(trx, attached.map((l) => ({ alertId: l.alert.id, incidentId: l.incidentId })));
  const linking = new Set(attached);
  // One audit entry for the alerts skipped and one per incident joined, each naming its alerts.
  const skipped: Record<string, string | null> = {};
  for (const l of links) {
    const row = locked.get(l.alert.id);
    if (!row || linking.has(l)) continue;
    out.set(row.id, { incidentId: row.incident_id!, correlated: false });
    skipped[row.id] = row.incident_id;
  }
  const skippedIds = Object.keys(skipped);
  if (skippedIds.length > 0) audit({ tenantId, action: 'alert.correlate.skipped', target: alertsTarget(skippedIds), delta: { alerts: skipped } });
  await appendTimelineEntries(
    trx,
    attached.map(({ alert, incidentId }) => ({
      tenantId,
      incidentId,
      kind: 'alert.correlated',
      actor: 'pipeline',
      text: `Related alert attached: ${alert.title} (SEV${alert.severity})`,
      data: { alertId: alert.id, fingerprint: alert.fingerprint },
    })),
  );
  const joined = new Map<string, string[]>();
  for (const { alert, incidentId } of attached) {
    out.set(alert.id, { incidentId, correlated: true });
    const ids = joined.get(incidentId);
    if (ids) ids.push(alert.id);
    else joined.set(incidentId, [alert.id]);
  }
  for (const [incidentId, alerts] of joined) audit({ tenantId, action: 'alert.correlate', target: `incident:${incidentId}`, delta: { alerts } });
  return out;
}

/**
 * The advisory lock ids to hold while deciding whether alerts open incidents, as a query of
 * distinct `id`s: one per key findCorrelatedIncidents matches on (host; each IP and hash), plus
 * each alert itself (two runs of one alert), per tenant. Related alerts share a key, so they take
 * turns; unrelated ones do not wait. Every caller takes them in `id` order in one statement, so
 * two callers cannot deadlock (PostgreSQL would detect it and fail one job, which retries).
 */
function correlationLocks(tenantId: string, alerts: AlertRow[]) {
  const keys = [...new Set(alerts.flatMap((a) => [`alert:${a.id}`, ...correlationKeys(a.event as SentinelEvent)]))].map((k) => `case:${tenantId}:${k}`);
  return sql<{ id: string }>`select distinct hashtextextended(k, 0) as id from unnest(${keys}::text[]) k`;
}

/**
 * For each alert, the open incident with an alert sharing its host, or one of its IPs or hashes,
 * received within the window: one query for the batch (findIncidentsByKeys). Asked only for
 * alerts not linked yet, so an alert never finds itself.
 */
async function findCorrelatedIncidents(db: Kysely<Database>, tenantId: string, alerts: AlertRow[], windowSeconds: number): Promise<Map<string, string>> {
  return findIncidentsByKeys(db, tenantId, alerts.map((a) => ({ id: a.id, keys: correlationKeys(a.event as SentinelEvent) })), windowSeconds);
}

function summaryOf(e: SentinelEvent): string {
  const lines = [
    `${e.event_type} (SEV${e.severity}) from ${e.source} at ${e.timestamp}`,
    e.rule ? `Rule ${e.rule.id}: ${e.rule.name ?? ''}` : null,
    e.host.name || e.host.ip ? `Host: ${[e.host.name, e.host.ip].filter(Boolean).join(' / ')}` : null,
    e.principal.user ? `User: ${e.principal.user}` : null,
    e.observables.ip.length ? `IPs: ${e.observables.ip.join(', ')}` : null,
    e.observables.hash.length ? `Hashes: ${e.observables.hash.join(', ')}` : null,
  ];
  return lines.filter(Boolean).join('\n');
}

function caseObservables(e: SentinelEvent): { kind: CaseObservableKind; value: string; ioc?: boolean }[] {
  return [
    ...e.observables.ip.map((value) => ({ kind: 'ip' as const, value })),
    ...e.observables.domain.map((value) => ({ kind: 'domain' as const, value })),
    ...e.observables.url.map((value) => ({ kind: 'url' as const, value })),
    ...e.observables.hash.map((value) => ({ kind: 'hash' as const, value })),
  ];
}

function defaultCaseSystem(vault: Pick<SecretsVault, 'get'>) {
  return async (tenantId: string, config: TenantPipelineConfig): Promise<CaseSystem | undefined> => {
    if (!config.thehive) return undefined;
    const apiKey = (await vault.get(tenantId, 'thehive.api_key')) ?? (await vault.get(GLOBAL_TENANT, 'thehive.api_key'));
    if (!apiKey) return undefined;
    return new TheHiveClient({ baseUrl: config.thehive.url, apiKey, ...(config.thehive.organisation ? { organisation: config.thehive.organisation } : {}) });
  };
}
