import { sql, type Kysely } from 'kysely';
import { ReflexError } from '../../errors.ts';
import type { CaseObservableKind, CaseSystem } from '../../integrations/ports.ts';
import { TheHiveClient } from '../../integrations/thehive/thehive-client.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline, createIncident, type IncidentEvents } from '../../store/incidents.ts';
import type { Database } from '../../store/schema.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../../store/secrets-vault.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertRef } from '../jobs.ts';
import type { TenantPipelineConfig } from '../tenant-config.ts';
import type { TenantDirectory } from '../tenant-directory.ts';

export interface CaseDeps {
  db: Kysely<Database>;
  tenants: TenantDirectory;
  vault: Pick<SecretsVault, 'get'>;
  incidentEvents?: IncidentEvents;
  /** Builds the tenant's case system; default: TheHive from tenant config + `thehive.api_key`. */
  caseSystemFor?: (tenantId: string, config: TenantPipelineConfig) => Promise<CaseSystem | undefined>;
}

export interface CaseOutcome {
  incidentId: string | null;
  correlated: boolean;
  createdIncident: boolean;
  thehive?: { alertId: string; created: boolean; caseId?: string };
}

/**
 * case: internal incident and TheHive sync, idempotent end to end.
 * - An alert already linked to an incident (a retry) is not linked again.
 * - Correlation: an open incident holding an alert with the same host or a shared IP/hash seen
 *   within the tenant's window takes this alert too, whatever its severity.
 * - Otherwise severity at or above the tenant threshold opens a new incident.
 * Opening an incident runs under advisory locks on the alert's correlation keys (its host, its
 * IPs and hashes, see correlationLocks), so two related alerts processed at once cannot open two
 * incidents, while unrelated ones (a storm's SEV1s on different hosts) do not wait for each other.
 * - TheHive: an alert for SEV2+ with sourceRef = fingerprint (TheHive's own dedupe key; its 400
 *   CreateError on a duplicate means "already there"), promoted to a case for SEV1 or correlated
 *   alerts; the ids are stored on the alert.
 */
export async function runCaseStage(job: AlertRef, deps: CaseDeps): Promise<CaseOutcome> {
  const alert = await deps.db.selectFrom('alerts').selectAll().where('id', '=', job.alertId).executeTakeFirst();
  if (!alert) throw new ReflexError('not_found', `alert ${job.alertId} vanished`, { retryable: false });
  const config = await deps.tenants.config(job.tenantId);
  const event = alert.event as SentinelEvent;

  let incidentId = alert.incident_id;
  let correlated = false;
  let createdIncident = false;
  if (!incidentId) {
    // Attaching to a related incident is safe without a lock (it only fills a null). Opening a new
    // incident is not: two related alerts at once must not open two, so that path re-checks under
    // locks on the alert's correlation keys. Most alerts in a storm are below the threshold and
    // never take them.
    const related = await findCorrelatedIncident(deps.db, job.tenantId, alert.id, event, config.correlation_window_seconds);
    if (related) {
      incidentId = await attachToIncident(deps.db, job.tenantId, alert, related);
      correlated = incidentId === related;
    } else if (alert.severity <= config.incident_threshold) {
      const decided = await deps.db.connection().execute(async (conn) => {
        const locks = await correlationLocks(conn, job.tenantId, alert.id, event);
        for (const id of locks) await sql`select pg_advisory_lock(${id}::bigint)`.execute(conn);
        try {
          const again = await conn.selectFrom('alerts').select('incident_id').where('id', '=', alert.id).executeTakeFirstOrThrow();
          if (again.incident_id) return { incidentId: again.incident_id, correlated: false, created: false };
          const late = await findCorrelatedIncident(conn, job.tenantId, alert.id, event, config.correlation_window_seconds);
          if (late) return { incidentId: await attachToIncident(conn, job.tenantId, alert, late), correlated: true, created: false };
          const incident = await createIncident(
            conn,
            { tenantId: job.tenantId, title: alert.title.length >= 3 ? alert.title : `${alert.event_type} alert`, severity: alert.severity, createdBy: 'pipeline', alertIds: [alert.id], summary: summaryOf(event) },
            deps.incidentEvents,
          );
          return { incidentId: incident.id, correlated: false, created: true };
        } finally {
          for (const id of locks.reverse()) await sql`select pg_advisory_unlock(${id}::bigint)`.execute(conn);
        }
      });
      incidentId = decided.incidentId;
      correlated = decided.correlated;
      createdIncident = decided.created;
    }
  }

  const outcome: CaseOutcome = { incidentId, correlated, createdIncident };
  const caseSystem = await (deps.caseSystemFor ?? defaultCaseSystem(deps.vault))(job.tenantId, config);
  if (caseSystem && alert.severity <= 2) {
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
        tags: [event.event_type, `tenant:${job.tenantId}`],
        observables: caseObservables(event),
      });
      hiveAlertId = r.id;
      created = r.created;
    }
    let caseId = refs.thehive?.caseId;
    if (!caseId && (alert.severity === 1 || correlated)) caseId = (await caseSystem.promoteAlertToCase(hiveAlertId)).id;
    outcome.thehive = { alertId: hiveAlertId, created, ...(caseId ? { caseId } : {}) };
    await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
      await trx
        .updateTable('alerts')
        .set({ case_refs: JSON.stringify({ ...refs, thehive: { alertId: hiveAlertId, ...(caseId ? { caseId } : {}) } }) })
        .where('id', '=', alert.id)
        .execute();
      audit({ tenantId: job.tenantId, action: 'alert.case_sync', target: `alert:${alert.id}`, delta: { thehive: outcome.thehive } });
    });
  }

  return outcome;
}

/** Links the alert to the incident (if it is still unlinked) with a timeline entry; returns its incident. */
async function attachToIncident(
  db: Kysely<Database>,
  tenantId: string,
  alert: { id: string; title: string; severity: number; fingerprint: string },
  incidentId: string,
): Promise<string> {
  return auditedWrite(db, 'pipeline', async (trx, audit) => {
    const res = await trx.updateTable('alerts').set({ incident_id: incidentId }).where('id', '=', alert.id).where('incident_id', 'is', null).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) {
      const now = await trx.selectFrom('alerts').select('incident_id').where('id', '=', alert.id).executeTakeFirstOrThrow();
      audit({ tenantId, action: 'alert.correlate.skipped', target: `alert:${alert.id}`, delta: { incident: now.incident_id } });
      return now.incident_id!;
    }
    await appendTimeline(trx, {
      tenantId,
      incidentId,
      kind: 'alert.correlated',
      actor: 'pipeline',
      text: `Related alert attached: ${alert.title} (SEV${alert.severity})`,
      data: { alertId: alert.id, fingerprint: alert.fingerprint },
    });
    audit({ tenantId, action: 'alert.correlate', target: `alert:${alert.id}`, delta: { incident: incidentId } });
    return incidentId;
  });
}

/**
 * The advisory lock ids to hold while deciding whether an alert opens an incident: one per key
 * findCorrelatedIncident matches on (host; each IP and hash), plus the alert itself (two runs of
 * one alert), per tenant. Related alerts share a key, so they take turns; unrelated ones do not
 * wait. The ids come back sorted and unique, and are taken in that order by every caller, so two
 * callers cannot deadlock (PostgreSQL would detect it and fail one job, which retries).
 */
async function correlationLocks(db: Kysely<Database>, tenantId: string, alertId: string, e: SentinelEvent): Promise<string[]> {
  const host = e.host.name ?? e.host.ip;
  const keys = [`alert:${alertId}`, ...(host ? [`host:${host}`] : []), ...[...e.observables.ip, ...e.observables.hash].map((k) => `obs:${k}`)].map((k) => `case:${tenantId}:${k}`);
  // bigint arrives as a string; the order is PostgreSQL's numeric one.
  const { rows } = await sql<{ id: string }>`select distinct hashtextextended(k, 0) as id from unnest(${keys}::text[]) k order by id`.execute(db);
  return rows.map((r) => r.id);
}

async function findCorrelatedIncident(db: Kysely<Database>, tenantId: string, selfId: string, e: SentinelEvent, windowSeconds: number): Promise<string | null> {
  const keys = [...e.observables.ip, ...e.observables.hash];
  const host = e.host.name ?? e.host.ip;
  if (!host && keys.length === 0) return null;
  const row = await sql<{ incident_id: string }>`
    select a.incident_id from alerts a join incidents i on i.id = a.incident_id
    where a.tenant_id = ${tenantId} and a.id <> ${selfId} and a.incident_id is not null and i.status <> 'closed'
      and a.last_received_at >= now() - make_interval(secs => ${windowSeconds})
      and (
        ${host ? sql`coalesce(a.event->'host'->>'name', a.event->'host'->>'ip') = ${host}` : sql`false`}
        or (a.event->'observables'->'ip') ?| ${keys}::text[]
        or (a.event->'observables'->'hash') ?| ${keys}::text[]
      )
    order by a.last_received_at desc limit 1`.execute(db);
  return row.rows[0]?.incident_id ?? null;
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
