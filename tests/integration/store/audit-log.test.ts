import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, auditedWrite, verifyAuditChain, GENESIS_HASH, auditHash, sealAuditLog } from '../../../src/store/audit-log.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

describe('audit log', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t.drop());

  async function createIncident(title: string) {
    return auditedWrite(t.db, 'test:alice', async (trx, audit) => {
      const inc = await trx
        .insertInto('incidents')
        .values({ tenant_id: 'acme', title, severity: 2, created_by: 'test:alice' })
        .returningAll()
        .executeTakeFirstOrThrow();
      audit({ tenantId: 'acme', action: 'incident.create', target: `incident:${inc.id}`, delta: { title, severity: 2 } });
      return inc;
    });
  }

  it('chains every audited write, also under concurrent writers', async () => {
    await auditedWrite(t.db, 'system', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: {} }).execute();
      audit({ tenantId: 'acme', action: 'tenant.create', target: 'tenant:acme', delta: { name: 'Acme' } });
    });
    await Promise.all(Array.from({ length: 25 }, (_, i) => createIncident(`incident ${i}`)));
    // Written, not yet linked: the sealer links committed rows after the fact.
    const pending = await t.db.selectFrom('audit_log').select('seq').where('hash', 'is', null).execute();
    expect(pending).toHaveLength(26);
    expect(await sealAuditLog(t.db)).toBe(26);
    expect(await sealAuditLog(t.db)).toBe(0);
    const rows = await t.db.selectFrom('audit_log').selectAll().orderBy('chain_pos').execute();
    expect(rows).toHaveLength(26);
    expect(rows[0]!.prev_hash).toBe(GENESIS_HASH);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prev_hash).toBe(rows[i - 1]!.hash);
    expect(rows.map((r) => Number(r.chain_pos))).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    const v = await verifyAuditChain(t.db);
    expect(v).toEqual({ ok: true, checked: 26, head: rows[25]!.hash, unsealed: 0 });
    expect(rows[0]!.hash).toBe(auditHash(GENESIS_HASH, rows[0]!));
  });

  it('links a row that commits after later rows were sealed, and never re-links a sealed row', async () => {
    // A slow transaction takes its seq first but commits after a quick one has been sealed.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let slowSeq!: bigint;
    let appended!: () => void;
    const slowAppended = new Promise<void>((r) => (appended = r));
    const slow = t.db.transaction().execute(async (trx) => {
      await appendAudit(trx, 'test:slow', [{ tenantId: 'acme', action: 'slow.write', target: 'x', delta: {} }]);
      slowSeq = BigInt((await trx.selectFrom('audit_log').select('seq').where('action', '=', 'slow.write').executeTakeFirstOrThrow()).seq);
      appended();
      await gate;
    });
    try {
      await slowAppended;
      await createIncident('quick');
      const visible = await t.db.selectFrom('audit_log').select('seq').where('hash', 'is', null).execute();
      expect(visible).toHaveLength(1); // the slow row is not committed, so not visible
      expect(BigInt(visible[0]!.seq)).toBeGreaterThan(slowSeq);
      expect(await sealAuditLog(t.db)).toBe(1);
    } finally {
      release();
      await slow;
    }
    expect(await sealAuditLog(t.db)).toBe(1);
    const last = await t.db.selectFrom('audit_log').select(['action', 'chain_pos']).orderBy('chain_pos', 'desc').limit(2).execute();
    expect(last.map((r) => r.action)).toEqual(['slow.write', 'incident.create']);
    expect((await verifyAuditChain(t.db)).ok).toBe(true);
  });

  it('rolls back a write that records no audit entry, and the write it describes with it', async () => {
    await expect(
      auditedWrite(t.db, 'test', async (trx) => {
        await trx.insertInto('incidents').values({ tenant_id: 'acme', title: 'unaudited', severity: 3, created_by: 't' }).execute();
      }),
    ).rejects.toThrow(/no audit entry/);
    const found = await t.db.selectFrom('incidents').select('id').where('title', '=', 'unaudited').execute();
    expect(found).toHaveLength(0);
  });

  it('is refused UPDATE, DELETE and TRUNCATE by the database, sealed or not, and a sealed row cannot be re-sealed', async () => {
    await expect(sql`update audit_log set actor = 'mallory' where chain_pos = 2`.execute(t.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log where chain_pos = 2`.execute(t.db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_log`.execute(t.db)).rejects.toThrow(/append-only/);
    await expect(sql`update audit_log set hash = 'forged', prev_hash = 'x', chain_pos = 999 where chain_pos = 3`.execute(t.db)).rejects.toThrow(/append-only/);
    await auditedWrite(t.db, 'test', async (_trx, audit) => audit({ tenantId: 'acme', action: 'pending.row', target: 'x', delta: {} }));
    // Sealing is the one change allowed, and only to the chain fields: not the actor as well.
    await expect(sql`update audit_log set actor = 'mallory', hash = 'h', prev_hash = 'p', chain_pos = 998 where hash is null`.execute(t.db)).rejects.toThrow(/append-only/);
    await sealAuditLog(t.db);
    expect((await verifyAuditChain(t.db)).ok).toBe(true);
  });

  it('reports the first row edited behind the store\'s back', async () => {
    // Someone with superuser rights disables the trigger and rewrites history.
    await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(t.db);
    await sql`update audit_log set delta = '{"title":"nothing happened","severity":4}'::jsonb where chain_pos = 7`.execute(t.db);
    await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(t.db);
    const v = await verifyAuditChain(t.db);
    expect(v).toMatchObject({ ok: false, brokenAt: '7', checked: 6, reason: expect.stringContaining('edited') });
  });
});
