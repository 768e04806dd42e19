import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHousekeeping } from '../../../src/pipeline/housekeeping.ts';
import { createIncident } from '../../../src/store/incidents.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { startTestServer } from '../../helpers/test-server.ts';

const A = 'hk-a'; // default windows: 3600 s each, so keys live 3600 + 3600 s, pending rows 3600 s
const B = 'hk-b'; // correlation 60 s, dedupe 7200 s: keys live 7200 + 3600 s, pending rows 60 s

describe('pipeline housekeeping', () => {
  let t: TestDatabase;
  const incidents: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db
      .insertInto('tenants')
      .values([
        { id: A, name: A, config: '{}' },
        { id: B, name: B, config: JSON.stringify({ correlation_window_seconds: 60, dedupe_window_seconds: 7200 }) },
      ])
      .execute();
    for (const tenantId of [A, B]) {
      incidents[tenantId] = (await createIncident(t.db, { tenantId, title: `${tenantId} incident`, severity: 2, createdBy: 'test', alertIds: [] })).id;
    }
  });
  afterAll(() => t.drop());

  const ago = (seconds: number) => sql<Date>`now() - make_interval(secs => ${seconds})`;

  async function key(tenantId: string, name: string, secondsAgo: number): Promise<void> {
    await sql`insert into correlation_keys (tenant_id, key, incident_id, last_received_at) values (${tenantId}, ${name}, ${incidents[tenantId]!}, ${ago(secondsAgo)})`.execute(t.db);
  }

  async function pending(tenantId: string, name: string, secondsAgo: number): Promise<string> {
    const alert = await t.db
      .insertInto('alerts')
      .values({ tenant_id: tenantId, fingerprint: name, source: 'wazuh', event_type: 'auth.failed', severity: 3, title: name, first_seen: new Date(), last_seen: new Date(), event: '{}' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await sql`insert into correlation_pending (tenant_id, key, alert_id, created_at) values (${tenantId}, ${name}, ${alert.id}, ${ago(secondsAgo)})`.execute(t.db);
    return alert.id;
  }

  async function cached(value: string, expiredSecondsAgo: number): Promise<void> {
    await sql`insert into intel_cache (kind, value, provider, verdict, fetched_at, expires_at)
              values ('ip', ${value}, 'virustotal', '{}', now(), ${ago(expiredSecondsAgo)})`.execute(t.db);
  }

  const names = async (table: 'correlation_keys' | 'correlation_pending', tenantId: string) =>
    (await sql<{ key: string }>`select key from ${sql.table(table)} where tenant_id = ${tenantId} order by key`.execute(t.db)).rows.map((r) => r.key);
  const housekeepingAudit = async () =>
    (await t.db.selectFrom('audit_log').select(['tenant_id', 'actor', 'target', 'delta']).where('action', '=', 'pipeline.housekeeping').orderBy('seq').execute());

  it('deletes rows past each tenant window plus the grace period, in chunks, and audits what it deleted', async () => {
    // Tenant A: kept up to 7200 s after the last alert.
    await key(A, 'a-fresh', 10);
    await key(A, 'a-edge', 7000);
    for (let i = 0; i < 5; i++) await key(A, `a-stale-${i}`, 7400 + i * 1000);
    await pending(A, 'a-pending-fresh', 3000);
    await pending(A, 'a-pending-stale', 4000);
    // Tenant B: the longer dedupe window keeps its keys (a repeat refreshes them), pending rows go after 60 s.
    await key(B, 'b-kept-for-repeats', 9000);
    await key(B, 'b-stale', 11_000);
    await pending(B, 'b-pending-fresh', 30);
    await pending(B, 'b-pending-stale', 120);
    // The cache: rows that expired within the grace period stay, as do unexpired ones.
    await cached('203.0.113.1', -600);
    await cached('203.0.113.2', 600);
    await cached('203.0.113.3', 4000);
    await cached('203.0.113.4', 90_000);

    const result = await runHousekeeping(t.db, { chunk: 2 });

    expect(result).toEqual({ correlationKeys: 6, correlationPending: 2, intelCache: 2, markers: 0, attached: 0, skipped: [] });
    expect(await names('correlation_keys', A)).toEqual(['a-edge', 'a-fresh']);
    expect(await names('correlation_keys', B)).toEqual(['b-kept-for-repeats']);
    expect(await names('correlation_pending', A)).toEqual(['a-pending-fresh']);
    expect(await names('correlation_pending', B)).toEqual(['b-pending-fresh']);
    const cache = await t.db.selectFrom('intel_cache').select('value').orderBy('value').execute();
    expect(cache.map((r) => r.value)).toEqual(['203.0.113.1', '203.0.113.2']);

    // Chunks of 2: tenant A's five stale keys take three transactions, each with its own entry.
    const audit = await housekeepingAudit();
    const deletedBy = (tenantId: string | null, table: string) =>
      audit.filter((a) => a.tenant_id === tenantId).reduce((n, a) => n + ((a.delta as { deleted: Record<string, number> }).deleted[table] ?? 0), 0);
    expect(audit.filter((a) => a.tenant_id === A)).toHaveLength(3);
    expect(deletedBy(A, 'correlation_keys')).toBe(5);
    expect(deletedBy(A, 'correlation_pending')).toBe(1);
    expect(deletedBy(B, 'correlation_keys')).toBe(1);
    expect(deletedBy(B, 'correlation_pending')).toBe(1);
    expect(deletedBy(null, 'intel_cache')).toBe(2);
    expect(audit.every((a) => a.actor === 'system')).toBe(true);
    expect(audit.find((a) => a.tenant_id === null)?.target).toBe('intel_cache');

    // Nothing left to do: zero counts, and no audit entry for an empty sweep.
    expect(await runHousekeeping(t.db, { chunk: 2 })).toEqual({ correlationKeys: 0, correlationPending: 0, intelCache: 0, markers: 0, attached: 0, skipped: [] });
    expect(await housekeepingAudit()).toHaveLength(audit.length);
  });

  it('deletes stage retry markers past retention and expired vendor records, and keeps phone acknowledgements', async () => {
    const marker = async (batchId: string, stage: string, secondsAgo: number, result: unknown = {}) =>
      sql`insert into pipeline_batches (batch_id, stage, tenant_id, result, processed_at)
          values (${batchId}, ${stage}, ${A}, ${JSON.stringify(result)}, ${ago(secondsAgo)})`.execute(t.db);
    const week = 7 * 86_400;
    await marker('b-fresh', 'dedupe', week - 600);
    await marker('b-old', 'dedupe', week + 600);
    await marker('b-old', 'normalize', week + 600, { failures: 1, lost: 1 });
    // Other stages' rows are not retry markers, however old.
    await marker('run-1:call', 'phone-ack', 90 * 86_400, { call_sid: 'CA1' });
    // Vendor records go an hour (the grace period) after they expire, whatever their age.
    const nowMs = Date.now();
    await marker('twilio:live', `vendor-idempotency:${A}`, 10 * 86_400, { value: 'x', expires_at: nowMs + 60_000 });
    await marker('twilio:recent', `vendor-idempotency:${A}`, 10 * 86_400, { value: 'x', expires_at: nowMs - 600_000 });
    await marker('twilio:expired', `vendor-idempotency:${A}`, 60, { value: 'x', expires_at: nowMs - 7_200_000 });
    await marker('twilio:odd', `vendor-idempotency:${A}`, 10 * 86_400, { value: 'x', expires_at: 'never' });

    const result = await runHousekeeping(t.db, { chunk: 2 });

    expect(result.markers).toBe(3);
    const left = await t.db.selectFrom('pipeline_batches').select(['batch_id', 'stage']).orderBy('stage').orderBy('batch_id').execute();
    expect(left.map((r) => `${r.stage}/${r.batch_id}`)).toEqual([
      'dedupe/b-fresh',
      'phone-ack/run-1:call',
      `vendor-idempotency:${A}/twilio:live`,
      `vendor-idempotency:${A}/twilio:odd`,
      `vendor-idempotency:${A}/twilio:recent`,
    ]);
    const audit = (await housekeepingAudit()).filter((a) => a.target === 'pipeline_batches');
    expect(audit.reduce((n, a) => n + ((a.delta as { deleted: { pipeline_batches: number } }).deleted.pipeline_batches ?? 0), 0)).toBe(3);
    // A shorter retention (the option) reaches the fresher marker too.
    expect((await runHousekeeping(t.db, { markerRetentionSeconds: 60 })).markers).toBe(1);
    await t.db.deleteFrom('pipeline_batches').execute();
  });

  it('attaches a pending alert to an open incident sharing its key (a back-fill lost after the incident committed)', async () => {
    const C = 'hk-c';
    await t.db.insertInto('tenants').values({ id: C, name: C, config: '{}' }).execute();
    const open = await createIncident(t.db, { tenantId: C, title: 'web-9 incident', severity: 1, createdBy: 'test', alertIds: [] });
    const closed = await createIncident(t.db, { tenantId: C, title: 'web-10 incident', severity: 1, createdBy: 'test', alertIds: [] });
    await t.db.updateTable('incidents').set({ status: 'closed' }).where('id', '=', closed.id).execute();
    await sql`insert into correlation_keys (tenant_id, key, incident_id, last_received_at)
              values (${C}, 'host:web-9', ${open.id}, now()), (${C}, 'host:web-10', ${closed.id}, now())`.execute(t.db);
    const joins = await pending(C, 'host:web-9', 60);
    const stays = await pending(C, 'host:web-10', 60);

    expect((await runHousekeeping(t.db)).attached).toBe(1);

    const linked = await t.db.selectFrom('alerts').select(['id', 'incident_id']).where('id', 'in', [joins, stays]).execute();
    expect(Object.fromEntries(linked.map((a) => [a.id, a.incident_id]))).toEqual({ [joins]: open.id, [stays]: null });
    expect(await names('correlation_pending', C)).toEqual(['host:web-10']);
    const timeline = await t.db.selectFrom('timeline_entries').select(['kind', 'data']).where('incident_id', '=', open.id).where('kind', '=', 'alert.correlated').execute();
    expect(timeline.map((e) => (e.data as { alertId: string }).alertId)).toEqual([joins]);
    const audit = await t.db.selectFrom('audit_log').select(['delta']).where('action', '=', 'alert.correlate').where('target', '=', `incident:${open.id}`).execute();
    expect(audit.map((a) => a.delta)).toEqual([{ alerts: [joins] }]);
    // Once attached it is no longer pending: the next sweep has nothing to do.
    expect((await runHousekeeping(t.db)).attached).toBe(0);
  });

  it('skips a tenant whose config is invalid, deleting nothing of it, and sweeps the others', async () => {
    // Sorted before hk-a, so the broken tenant comes first.
    await t.db.insertInto('tenants').values({ id: 'hk-0-broken', name: 'broken', config: JSON.stringify({ correlation_window_seconds: -1 }) }).execute();
    const broken = (await createIncident(t.db, { tenantId: 'hk-0-broken', title: 'broken', severity: 2, createdBy: 'test', alertIds: [] })).id;
    await sql`insert into correlation_keys (tenant_id, key, incident_id, last_received_at) values ('hk-0-broken', 'old', ${broken}, now() - interval '30 days')`.execute(t.db);
    await key(A, 'a-after-broken', 9000);

    const result = await runHousekeeping(t.db);

    expect(result.skipped).toEqual([{ tenantId: 'hk-0-broken', reason: expect.stringContaining('correlation_window_seconds') }]);
    expect(result.correlationKeys).toBe(1);
    expect(await names('correlation_keys', 'hk-0-broken')).toEqual(['old']);
    expect(await names('correlation_keys', A)).not.toContain('a-after-broken');
    // Out of the way of the tests after this one.
    await t.db.deleteFrom('correlation_keys').where('tenant_id', '=', 'hk-0-broken').execute();
    await t.db.updateTable('tenants').set({ config: '{}' }).where('id', '=', 'hk-0-broken').execute();
  });

  it('leaves a row another transaction holds for the next sweep instead of waiting on it', async () => {
    await key(A, 'a-held', 8000);
    await key(A, 'a-free', 8000);
    await t.db.transaction().execute(async (trx) => {
      await sql`select 1 from correlation_keys where tenant_id = ${A} and key = 'a-held' for no key update`.execute(trx);
      expect((await runHousekeeping(t.db)).correlationKeys).toBe(1);
    });
    expect(await names('correlation_keys', A)).toEqual(['a-edge', 'a-fresh', 'a-held']);
    expect((await runHousekeeping(t.db)).correlationKeys).toBe(1);
    expect(await names('correlation_keys', A)).toEqual(['a-edge', 'a-fresh']);
  });
});

describe('pipeline housekeeping in a running server', () => {
  it('sweeps on its interval in a process that runs workers', async () => {
    const s = await startTestServer({ env: { REFLEX_HOUSEKEEPING_INTERVAL_SECONDS: '1', REFLEX_DISABLED_FEATURES: 'chat,engine' } });
    try {
      const db = s.store.db;
      const incident = await createIncident(db, { tenantId: 'default', title: 'swept', severity: 2, createdBy: 'test', alertIds: [] });
      await sql`insert into correlation_keys (tenant_id, key, incident_id, last_received_at)
                values ('default', 'host:old', ${incident.id}, now() - interval '3 hours'), ('default', 'host:new', ${incident.id}, now())`.execute(db);
      const left = async () => (await sql<{ key: string }>`select key from correlation_keys where incident_id = ${incident.id} order by key`.execute(db)).rows.map((r) => r.key);
      const deadline = Date.now() + 30_000;
      while ((await left()).includes('host:old') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await left()).toEqual(['host:new']);
    } finally {
      await s.stop();
    }
  });
});
