import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { readCounters, type PipelineStats } from './counters.ts';

/**
 * The rollup: per-tenant alert counts by severity and event type, open incidents, MTTA/MTTR and
 * the pipeline's exact counters, read from the views of migration 0005 (the views are the
 * contract; the Grafana dashboard queries the same ones). One snapshot is a handful of queries;
 * `RollupMetrics` caches it so a Prometheus scrape stays cheap.
 */
export const ROLLUP_VIEWS = {
  alertsPerMinute: 'rollup_alerts_minute',
  alertTotals: 'rollup_alert_totals',
  incidentsOpen: 'rollup_incidents_open',
  incidentTimes: 'rollup_incident_times',
  incidentResponse: 'rollup_incident_response',
  deadLetters: 'rollup_dead_letters',
} as const;

export interface AlertTotal {
  tenantId: string;
  severity: number;
  eventType: string;
  alerts: number;
  occurrences: number;
}

export interface OpenIncidents {
  tenantId: string;
  severity: number;
  open: number;
}

export interface IncidentResponse {
  tenantId: string;
  /** Mean seconds from creation to acknowledgement (or close) over the last 30 days; null when none. */
  mttaSeconds: number | null;
  acknowledged: number;
  /** Mean seconds from creation to close over the last 30 days; null when none. */
  mttrSeconds: number | null;
  closed: number;
}

export interface PendingDeadLetters {
  tenantId: string;
  queue: string;
  pending: number;
}

export interface RollupSnapshot {
  alerts: AlertTotal[];
  openIncidents: OpenIncidents[];
  response: IncidentResponse[];
  pipeline: { tenantId: string; stats: PipelineStats }[];
  deadLetters: PendingDeadLetters[];
  takenAt: Date;
}

const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Reads every view once (and the counters of every tenant). */
export async function readRollup(db: Kysely<Database>): Promise<RollupSnapshot> {
  const [alerts, open, response, deadLetters, tenants] = await Promise.all([
    sql<{ tenant_id: string; severity: number; event_type: string; alerts: string; occurrences: string }>`
      select tenant_id, severity, event_type, alerts, occurrences from rollup_alert_totals order by 1, 2, 3`.execute(db),
    sql<{ tenant_id: string; severity: number; open: string }>`select tenant_id, severity, open from rollup_incidents_open order by 1, 2`.execute(db),
    sql<{ tenant_id: string; mtta_seconds: number | null; acknowledged: string; mttr_seconds: number | null; closed: string }>`
      select tenant_id, mtta_seconds, acknowledged, mttr_seconds, closed from rollup_incident_response order by 1`.execute(db),
    sql<{ tenant_id: string; queue: string; pending: string }>`select tenant_id, queue, pending from rollup_dead_letters where pending > 0 order by 1, 2`.execute(db),
    db.selectFrom('tenants').select('id').orderBy('id').execute(),
  ]);
  const pipeline: RollupSnapshot['pipeline'] = [];
  for (const t of tenants) pipeline.push({ tenantId: t.id, stats: await readCounters(db, t.id) });
  return {
    alerts: alerts.rows.map((r) => ({ tenantId: r.tenant_id, severity: num(r.severity), eventType: r.event_type, alerts: num(r.alerts), occurrences: num(r.occurrences) })),
    openIncidents: open.rows.map((r) => ({ tenantId: r.tenant_id, severity: num(r.severity), open: num(r.open) })),
    response: response.rows.map((r) => ({
      tenantId: r.tenant_id,
      mttaSeconds: numOrNull(r.mtta_seconds),
      acknowledged: num(r.acknowledged),
      mttrSeconds: numOrNull(r.mttr_seconds),
      closed: num(r.closed),
    })),
    pipeline,
    deadLetters: deadLetters.rows.map((r) => ({ tenantId: r.tenant_id, queue: r.queue, pending: num(r.pending) })),
    takenAt: new Date(),
  };
}
