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
});
