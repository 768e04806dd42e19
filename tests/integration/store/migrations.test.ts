import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../../migrations/index.ts';
import { migrateToLatest } from '../../../src/store/database.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

describe('migrations', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrate: false });
  });
  afterAll(() => t.drop());

  it('apply on an empty schema, create every table, and are a no-op the second time', async () => {
    const applied = await migrateToLatest(t.db, t.schema);
    expect(applied).toEqual(Object.keys(migrations).sort());
    expect(applied[0]).toBe('20261121_0001_initial');
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = ${t.schema} order by table_name`.execute(t.db);
    const names = tables.rows.map((r) => r.table_name);
    for (const table of [
      'tenants', 'principals', 'chat_identities', 'principal_roles', 'events', 'alerts', 'incidents',
      'incident_channels', 'playbook_runs', 'run_steps', 'approvals', 'approval_decisions',
      'timeline_entries', 'audit_log', 'secrets', 'notification_throttle', 'dead_letters',
    ]) {
      expect(names).toContain(table);
    }
    expect(await migrateToLatest(t.db, t.schema)).toEqual([]);
  });

  it('serialise concurrent runs on one schema, and ignore schemas other processes drop meanwhile', async () => {
    const other = await createTestDatabase({ migrate: false });
    try {
      // Two starts racing on a fresh schema while a third process creates and drops unrelated
      // schemas: exactly one run applies the migrations, the other finds nothing to do.
      const churn = (async () => {
        for (let i = 0; i < 5; i++) {
          const s = await createTestDatabase();
          await s.drop();
        }
      })();
      const [a, b] = await Promise.all([migrateToLatest(other.db, other.schema), migrateToLatest(other.db, other.schema)]);
      await churn;
      expect([a.length, b.length].sort()).toEqual([0, Object.keys(migrations).length]);
    } finally {
      await other.drop();
    }
  });

  it('puts tenant_id on every table that belongs to a tenant', async () => {
    const cols = await sql<{ table_name: string }>`
      select table_name from information_schema.columns
      where table_schema = ${t.schema} and column_name = 'tenant_id'`.execute(t.db);
    const withTenant = new Set(cols.rows.map((r) => r.table_name));
    for (const table of ['events', 'alerts', 'incidents', 'incident_channels', 'playbook_runs', 'run_steps', 'approvals',
      'approval_decisions', 'timeline_entries', 'audit_log', 'secrets', 'notification_throttle', 'principal_roles']) {
      expect(withTenant, table).toContain(table);
    }
  });

  it('rejects rows that break the model (severity outside 1..4, unknown role)', async () => {
    await t.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: {} }).execute();
    await expect(
      t.db.insertInto('incidents').values({ tenant_id: 'acme', title: 'x', severity: 5, created_by: 'test' }).execute(),
    ).rejects.toThrow(/check constraint/);
    const p = await t.db.insertInto('principals').values({ display_name: 'Ann' }).returning('id').executeTakeFirstOrThrow();
    await expect(
      t.db.insertInto('principal_roles').values({ tenant_id: 'acme', principal_id: p.id, role: 'root' as never, granted_by: 't' }).execute(),
    ).rejects.toThrow(/check constraint/);
  });

  it('0008 fills correlation_keys from the alerts already linked, and rolls back to 0007', async () => {
    const old = await createTestDatabase({ migrate: false });
    try {
      // A schema as a 0007 release left it, with a linked and an unlinked alert.
      const names = Object.keys(migrations).sort();
      const upTo7 = names.slice(0, names.indexOf('20261122_0008_correlation_keys'));
      expect(upTo7.at(-1)).toBe('20261121_0007_correlation_indexes');
      await old.db.transaction().execute(async (trx) => {
        await sql`create table kysely_migration (name varchar(255) primary key, timestamp varchar(255) not null)`.execute(trx);
        for (const name of upTo7) {
          await migrations[name]!.up(trx);
          await sql`insert into kysely_migration (name, timestamp) values (${name}, ${new Date().toISOString()})`.execute(trx);
        }
      });
      await old.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: {} }).execute();
      const incident = await old.db.insertInto('incidents').values({ tenant_id: 'acme', title: 'old one', severity: 2, created_by: 'test' }).returning('id').executeTakeFirstOrThrow();
      const event = (host: string, ip: string[], hash: string[]) => JSON.stringify({ host: { name: host, ip: null }, observables: { ip, hash, domain: [], url: [] } });
      const alert = (host: string, ip: string[], hash: string[], incidentId: string | null, at: string) => ({
        tenant_id: 'acme', fingerprint: `fp-${host}`, source: 'wazuh', event_type: 'auth.failed', severity: 3, title: 'x',
        first_seen: at, last_seen: at, last_received_at: at, event: event(host, ip, hash), incident_id: incidentId,
      });
      await old.db.insertInto('alerts').values([
        alert('web-1', ['203.0.113.5'], ['d41d8cd98f00b204e9800998ecf8427e'], incident.id, '2026-11-20T10:00:00Z'),
        alert('web-2', ['203.0.113.5'], [], incident.id, '2026-11-20T11:00:00Z'),
        alert('web-3', ['198.51.100.9'], [], null, '2026-11-20T12:00:00Z'),
      ]).execute();

      expect(await migrateToLatest(old.db, old.schema)).toEqual(names.slice(names.indexOf('20261122_0008_correlation_keys')));
      const keys = await old.db.selectFrom('correlation_keys').select(['key', 'incident_id', 'last_received_at']).orderBy('key').execute();
      expect(keys).toEqual([
        { key: 'host:web-1', incident_id: incident.id, last_received_at: new Date('2026-11-20T10:00:00Z') },
        { key: 'host:web-2', incident_id: incident.id, last_received_at: new Date('2026-11-20T11:00:00Z') },
        // Shared by both linked alerts: the later of the two.
        { key: 'obs:203.0.113.5', incident_id: incident.id, last_received_at: new Date('2026-11-20T11:00:00Z') },
        { key: 'obs:d41d8cd98f00b204e9800998ecf8427e', incident_id: incident.id, last_received_at: new Date('2026-11-20T10:00:00Z') },
      ]);
      const indexes = async () =>
        (await sql<{ indexname: string }>`select indexname from pg_indexes where schemaname = ${old.schema} and tablename = 'alerts' order by 1`.execute(old.db)).rows.map((r) => r.indexname);
      expect(await indexes()).not.toContain('alerts_correlation_ip');

      // Back to 0007: the later migrations first.
      for (const name of names.slice(names.indexOf('20261122_0008_correlation_keys')).reverse()) {
        await old.db.transaction().execute((trx) => migrations[name]!.down!(trx));
      }
      expect(await indexes()).toEqual(expect.arrayContaining(['alerts_correlation_host', 'alerts_correlation_ip', 'alerts_correlation_hash', 'alerts_dedupe', 'alerts_tenant_fingerprint']));
      expect((await sql<{ t: string | null }>`select to_regclass(${`${old.schema}.correlation_keys`})::text as t`.execute(old.db)).rows[0]!.t).toBeNull();
    } finally {
      await old.drop();
    }
  });
});
