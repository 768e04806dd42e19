import type { Kysely } from 'kysely';
import { Gauge, type Registry } from 'prom-client';
import type { Database } from '../store/schema.ts';
import { COUNTERS } from './counters.ts';
import { readRollup, type RollupSnapshot } from './rollup.ts';

/** Scrapes within this period share one read of the views. */
export const ROLLUP_CACHE_MS = 15_000;

export interface RollupMetricsOptions {
  /** At least ROLLUP_CACHE_MS; a shorter value is raised to it. Tests pass a clock instead. */
  ttlMs?: number;
  now?: () => number;
  /** Told when a read fails; the scrape then serves the last good snapshot (or nothing). */
  onError?: (err: unknown) => void;
  read?: (db: Kysely<Database>) => Promise<RollupSnapshot>;
}

/**
 * The rollup as Prometheus gauges on an app's registry, read at scrape time from the database
 * (so every API and worker process reports the same numbers: use `max by (…)` across instances
 * in PromQL) through a cache of at least 15 s, so a scrape every few seconds, or several
 * Prometheus servers, cost one read of the views per period.
 *
 * - `reflex_alerts_total{tenant,severity,event_type}`: alerts created (deduplicated alerts, not
 *   events; all time).
 * - `reflex_incidents_open{tenant,severity}`: incidents not closed.
 * - `reflex_incident_mtta_seconds{tenant}` / `reflex_incident_mttr_seconds{tenant}`: means over
 *   the last 30 days; absent for a tenant with no acknowledged / closed incident in that time.
 * - `reflex_pipeline_events_total{tenant,outcome}`: the exact pipeline counters (accepted, new,
 *   deduplicated, suppressed, dead_lettered, in_flight).
 * - `reflex_dead_letters_pending{tenant,queue}`: dead letters not replayed yet.
 *
 * @example
 * const rollup = registerRollupMetrics(ctx.metrics.registry, ctx.store.db, { onError: (err) => log.warn({ err }, 'rollup read failed') });
 */
export class RollupMetrics {
  private cached: { snapshot: RollupSnapshot; at: number } | undefined;
  private reading: Promise<RollupSnapshot | undefined> | undefined;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly opts: RollupMetricsOptions = {},
  ) {
    this.ttlMs = Math.max(ROLLUP_CACHE_MS, opts.ttlMs ?? ROLLUP_CACHE_MS);
    this.now = opts.now ?? Date.now;
  }

  /** The cached snapshot, read afresh when older than the cache period; concurrent callers share a read. */
  async snapshot(): Promise<RollupSnapshot | undefined> {
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return this.cached.snapshot;
    this.reading ??= (async () => {
      try {
        const snapshot = await (this.opts.read ?? readRollup)(this.db);
        this.cached = { snapshot, at: this.now() };
        return snapshot;
      } catch (err) {
        this.opts.onError?.(err);
        return this.cached?.snapshot;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  register(registry: Registry): void {
    const self = this;
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (g: Gauge<L>, s: RollupSnapshot) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          const s = await self.snapshot();
          this.reset();
          if (s) fill(this, s);
        },
      });
    gauge('reflex_alerts_total', 'Alerts created, per tenant, severity (1 = critical) and event type', ['tenant', 'severity', 'event_type'], (g, s) => {
      for (const a of s.alerts) g.set({ tenant: a.tenantId, severity: String(a.severity), event_type: a.eventType }, a.alerts);
    });
    gauge('reflex_incidents_open', 'Incidents not closed, per tenant and severity', ['tenant', 'severity'], (g, s) => {
      for (const o of s.openIncidents) g.set({ tenant: o.tenantId, severity: String(o.severity) }, o.open);
    });
    gauge('reflex_incident_mtta_seconds', 'Mean time to acknowledge (or close, when never acknowledged) incidents acknowledged in the last 30 days', ['tenant'], (g, s) => {
      for (const r of s.response) if (r.mttaSeconds !== null) g.set({ tenant: r.tenantId }, r.mttaSeconds);
    });
    gauge('reflex_incident_mttr_seconds', 'Mean time to close incidents closed in the last 30 days', ['tenant'], (g, s) => {
      for (const r of s.response) if (r.mttrSeconds !== null) g.set({ tenant: r.tenantId }, r.mttrSeconds);
    });
    gauge('reflex_pipeline_events_total', 'Events through the SentinelNet pipeline per tenant and outcome (exact counters; in_flight = accepted minus settled)', ['tenant', 'outcome'], (g, s) => {
      for (const p of s.pipeline) {
        for (const c of COUNTERS) g.set({ tenant: p.tenantId, outcome: c }, p.stats[c]);
        g.set({ tenant: p.tenantId, outcome: 'in_flight' }, p.stats.in_flight);
      }
    });
    gauge('reflex_dead_letters_pending', 'Dead letters not replayed yet, per tenant and queue', ['tenant', 'queue'], (g, s) => {
      for (const d of s.deadLetters) g.set({ tenant: d.tenantId, queue: d.queue }, d.pending);
    });
  }
}

export function registerRollupMetrics(registry: Registry, db: Kysely<Database>, opts: RollupMetricsOptions = {}): RollupMetrics {
  const rollup = new RollupMetrics(db, opts);
  rollup.register(registry);
  return rollup;
}
