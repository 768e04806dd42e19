import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incrementCounters } from '../../../src/pipeline/counters.ts';
import { readRollup } from '../../../src/pipeline/rollup.ts';
import { RollupMetrics, ROLLUP_CACHE_MS } from '../../../src/pipeline/rollup-metrics.ts';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import type { Database } from '../../../src/store/schema.ts';
import { fixtureText } from '../../helpers/fixtures.ts';
import { postHook, settle } from '../../helpers/pipeline.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/**
 * Known numbers: two tenants, four alerts in two minute buckets, five incidents (one older than
 * the 30-day MTTA/MTTR window), two dead letters. Every expected value below is worked out by hand.
 */
async function seed(db: Kysely<Database>, now: number): Promise<{ t0: Date }> {
  const t0 = new Date(Math.floor((now - HOUR) / MIN) * MIN); // minute-aligned, an hour ago
  const at = (ms: number) => new Date(ms);
  await auditedWrite(db, 'test', async (trx, audit) => {
    await trx.insertInto('tenants').values([{ id: 'acme', name: 'Acme', config: '{}' }, { id: 'beta', name: 'Beta', config: '{}' }]).onConflict((oc) => oc.doNothing()).execute();
    const alert = (tenant: string, severity: number, eventType: string, occurrences: number, createdAt: Date) => ({
      tenant_id: tenant,
      fingerprint: randomUUID(),
      source: 'wazuh',
      event_type: eventType,
      severity,
      title: `${eventType} test alert`,
      occurrences,
      first_seen: createdAt,
      last_seen: createdAt,
      event: JSON.stringify({ event_type: eventType }),
      created_at: createdAt,
    });
    await trx
      .insertInto('alerts')
      .values([
        alert('acme', 1, 'authentication_failed', 1, t0),
        alert('acme', 1, 'authentication_failed', 3, at(t0.getTime() + 20_000)),
        alert('acme', 3, 'malware', 1, at(t0.getTime() + MIN + 5_000)),
        alert('beta', 2, 'port_scan', 5, at(t0.getTime() + 59_000)),
      ])
      .execute();
    const incident = (tenant: string, severity: number, status: string, created: number, ack: number | null, closed: number | null) => ({
      tenant_id: tenant,
      title: 'seeded incident',
      severity,
      status,
      created_by: 'test',
      created_at: at(created),
      acknowledged_at: ack === null ? null : at(ack),
      closed_at: closed === null ? null : at(closed),
    });
    await trx
      .insertInto('incidents')
      .values([
        // acknowledged after 10 min, closed after 60 min
        incident('acme', 1, 'closed', now - 2 * HOUR, now - 2 * HOUR + 10 * MIN, now - HOUR),
        // closed after 30 min, never acknowledged: counts as acknowledged when closed
        incident('acme', 2, 'closed', now - 3 * HOUR, null, now - 3 * HOUR + 30 * MIN),
        // acknowledged after 5 min, still open
        incident('acme', 2, 'acknowledged', now - 30 * MIN, now - 25 * MIN, null),
        // open, untouched
        incident('acme', 1, 'open', now - 10 * MIN, null, null),
        // outside the 30-day window
        incident('acme', 3, 'closed', now - 40 * DAY, now - 40 * DAY + 100_000, now - 39 * DAY),
        incident('beta', 4, 'open', now - 5 * MIN, null, null),
      ])
      .execute();
    await trx
      .insertInto('dead_letters')
      .values([
        { queue: 'pipeline.dedupe', job_id: 'dedupe-seeded-1', tenant_id: 'acme', data: '{}', error: 'seeded', attempts: 5 },
        { queue: 'pipeline.enrich', job_id: 'enrich-seeded-1', tenant_id: 'acme', data: '{}', error: 'seeded', attempts: 5, replayed_at: new Date() },
      ])
      .execute();
    audit({ tenantId: null, action: 'test.seed', target: 'rollup', delta: {} });
  });
  return { t0 };
}

describe('rollup views', () => {
  let t: TestDatabase;
  let t0: Date;
  beforeAll(async () => {
    t = await createTestDatabase();
    ({ t0 } = await seed(t.db, Date.now()));
  });
  afterAll(() => t.drop());

  it('count alerts per tenant, minute, severity and event type', async () => {
    const rows = await sql<{ tenant_id: string; bucket: Date; severity: number; event_type: string; alerts: string; occurrences: string }>`
      select * from rollup_alerts_minute order by tenant_id, bucket, severity`.execute(t.db);
    expect(rows.rows.map((r) => ({ ...r, bucket: r.bucket.toISOString(), alerts: Number(r.alerts), occurrences: Number(r.occurrences) }))).toEqual([
      { tenant_id: 'acme', bucket: t0.toISOString(), severity: 1, event_type: 'authentication_failed', alerts: 2, occurrences: 4 },
      { tenant_id: 'acme', bucket: new Date(t0.getTime() + MIN).toISOString(), severity: 3, event_type: 'malware', alerts: 1, occurrences: 1 },
      { tenant_id: 'beta', bucket: t0.toISOString(), severity: 2, event_type: 'port_scan', alerts: 1, occurrences: 5 },
    ]);
  });

  it('give open incidents, MTTA and MTTR over the last 30 days, and pending dead letters', async () => {
    const snap = await readRollup(t.db);
    expect(snap.alerts).toEqual([
      { tenantId: 'acme', severity: 1, eventType: 'authentication_failed', alerts: 2, occurrences: 4 },
      { tenantId: 'acme', severity: 3, eventType: 'malware', alerts: 1, occurrences: 1 },
      { tenantId: 'beta', severity: 2, eventType: 'port_scan', alerts: 1, occurrences: 5 },
    ]);
    expect(snap.openIncidents).toEqual([
      { tenantId: 'acme', severity: 1, open: 1 },
      { tenantId: 'acme', severity: 2, open: 1 },
      { tenantId: 'beta', severity: 4, open: 1 },
    ]);
    // MTTA: (10 min + 30 min + 5 min) / 3 = 15 min; MTTR: (60 min + 30 min) / 2 = 45 min.
    expect(snap.response).toEqual([
      { tenantId: 'acme', mttaSeconds: 900, acknowledged: 3, mttrSeconds: 2700, closed: 2 },
      { tenantId: 'beta', mttaSeconds: null, acknowledged: 0, mttrSeconds: null, closed: 0 },
    ]);
    expect(snap.deadLetters).toEqual([{ tenantId: 'acme', queue: 'pipeline.dedupe', pending: 1 }]);
  });

  it('serve one snapshot per cache period, whatever shorter period is asked for', async () => {
    let clock = 1_000_000;
    let reads = 0;
    const rollup = new RollupMetrics(t.db, {
      ttlMs: 1000,
      now: () => clock,
      read: async (db) => {
        reads += 1;
        return readRollup(db);
      },
    });
    const first = await Promise.all([rollup.snapshot(), rollup.snapshot(), rollup.snapshot()]);
    expect(reads).toBe(1);
    expect(first[0]!.pipeline.find((p) => p.tenantId === 'acme')!.stats.accepted).toBe(0);
    await incrementCounters(t.db, [{ tenantId: 'acme', delta: { accepted: 7 } }]);
    clock += ROLLUP_CACHE_MS - 1;
    expect((await rollup.snapshot())!.pipeline.find((p) => p.tenantId === 'acme')!.stats.accepted).toBe(0);
    expect(reads).toBe(1);
    clock += 1;
    expect((await rollup.snapshot())!.pipeline.find((p) => p.tenantId === 'acme')!.stats.accepted).toBe(7);
    expect(reads).toBe(2);
  });
});

interface DashboardTarget {
  refId: string;
  rawSql?: string;
  expr?: string;
  datasource: { type: string; uid: string };
}
interface DashboardPanel {
  id: number;
  title: string;
  type: string;
  datasource: { type: string; uid: string };
  targets: DashboardTarget[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query: string }[] };
}

/** What Grafana would send PostgreSQL for a 7-day range and tenants acme and beta. */
function expandGrafanaMacros(rawSql: string, schema: string): string {
  return rawSql
    .replace(/\$__timeGroupAlias\(([^,]+),[^)]*\)/g, `date_bin('1 hour', $1, timestamptz '2000-01-01 00:00:00+00') as "time"`)
    .replace(/\$__timeFilter\(([^)]+)\)/g, `$1 between now() - interval '7 days' and now()`)
    .replaceAll('${schema}', schema)
    .replaceAll('$tenant', `'acme','beta'`);
}

describe('rollup metrics on /metrics, and the Grafana dashboard', () => {
  let s: TestServer;
  let metrics: string;
  const dashboard = JSON.parse(readFileSync('manifests/grafana/sentinelnet.json', 'utf8')) as Dashboard;
  beforeAll(async () => {
    s = await startTestServer();
    await seed(s.store.db, Date.now());
    // One real alert through the pipeline, so the default tenant's counters are not all zero.
    const res = await postHook(s, '/hooks/wazuh', fixtureText('wazuh/docs_alert_5716_sshd_auth_failed.json'));
    expect(res.status).toBe(202);
    await settle(s, { tenant: 'default' });
    metrics = await (await fetch(`${s.url}/metrics`)).text();
  });
  afterAll(() => s.stop());

  it('exports the rollup gauges with the seeded numbers', () => {
    const lines = metrics.split('\n');
    for (const line of [
      'reflex_alerts_total{tenant="acme",severity="1",event_type="authentication_failed"} 2',
      'reflex_alerts_total{tenant="acme",severity="3",event_type="malware"} 1',
      'reflex_alerts_total{tenant="beta",severity="2",event_type="port_scan"} 1',
      'reflex_incidents_open{tenant="acme",severity="1"} 1',
      'reflex_incidents_open{tenant="acme",severity="2"} 1',
      'reflex_incidents_open{tenant="beta",severity="4"} 1',
      'reflex_incident_mtta_seconds{tenant="acme"} 900',
      'reflex_incident_mttr_seconds{tenant="acme"} 2700',
      'reflex_pipeline_events_total{tenant="default",outcome="accepted"} 1',
      'reflex_pipeline_events_total{tenant="default",outcome="new"} 1',
      'reflex_pipeline_events_total{tenant="default",outcome="in_flight"} 0',
      'reflex_pipeline_events_total{tenant="acme",outcome="accepted"} 0',
      'reflex_dead_letters_pending{tenant="acme",queue="pipeline.dedupe"} 1',
    ]) {
      expect(lines).toContain(line);
    }
    // The pipeline's one alert, counted by the view too.
    expect(lines.filter((l) => l.startsWith('reflex_alerts_total{tenant="default"'))).toHaveLength(1);
    // No MTTA for a tenant without acknowledged incidents: absent, not 0.
    expect(metrics).not.toContain('reflex_incident_mtta_seconds{tenant="beta"}');
  });

  it('is a Grafana dashboard with PostgreSQL and Prometheus datasource variables', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(38);
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.DS_POSTGRES).toMatchObject({ type: 'datasource', query: 'grafana-postgresql-datasource' });
    expect(vars.DS_PROMETHEUS).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      for (const target of p.targets) {
        expect(['${DS_POSTGRES}', '${DS_PROMETHEUS}'], `${p.title} ${target.refId}`).toContain(target.datasource.uid);
        expect(Boolean(target.rawSql) !== Boolean(target.expr), `${p.title} ${target.refId} has one query`).toBe(true);
      }
    }
    const titles = dashboard.panels.map((p) => p.title);
    for (const t of ['Alerts by severity', 'Top event types', 'Dedupe ratio', 'Suppressed', 'Dead letters', 'Queue depth', 'MTTA', 'MTTR']) expect(titles).toContain(t);
  });

  it('runs every SQL panel query against the schema and finds the seeded data', async () => {
    const queries = dashboard.panels.flatMap((p) => p.targets.filter((x) => x.rawSql).map((x) => ({ name: `${p.title} ${x.refId}`, sql: x.rawSql! })));
    queries.push({ name: 'tenant variable', sql: dashboard.templating.list.find((v) => v.name === 'tenant')!.query });
    expect(queries.length).toBeGreaterThanOrEqual(8);
    for (const q of queries) {
      const text = expandGrafanaMacros(q.sql, s.config.dbSchema);
      expect(text, q.name).not.toMatch(/\$/);
      const res = await sql.raw<Record<string, unknown>>(text).execute(s.store.db);
      expect(res.rows.length, q.name).toBeGreaterThan(0);
      expect(Object.values(res.rows[0]!).some((v) => v !== null), `${q.name} returns values`).toBe(true);
    }
  });

  it('queries only metrics that /metrics exports', () => {
    const exported = new Set([...metrics.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const used = dashboard.panels.flatMap((p) => p.targets.flatMap((x) => [...(x.expr ?? '').matchAll(/\breflex_[a-z_]+/g)].map((m) => m[0])));
    expect(used.length).toBeGreaterThan(0);
    for (const name of new Set(used)) expect(exported, name).toContain(name);
  });
});
