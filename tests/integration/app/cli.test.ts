import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import { TEST_DATABASE_URL } from '../../helpers/env.ts';
import { runReflex } from '../../helpers/processes.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

describe('reflex CLI', () => {
  let t: TestDatabase;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    t = await createTestDatabase();
    env = { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REFLEX_DB_SCHEMA: t.schema, REFLEX_MASTER_KEY: randomBytes(32).toString('base64'), REFLEX_API_TOKEN: randomBytes(24).toString('hex') };
    await auditedWrite(t.db, 'test', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: {} }).execute();
      audit({ tenantId: 'acme', action: 'tenant.create', target: 'tenant:acme', delta: { name: 'Acme' } });
    });
    for (const title of ['one', 'two', 'three']) {
      await auditedWrite(t.db, 'test', async (trx, audit) => {
        await trx.insertInto('incidents').values({ tenant_id: 'acme', title, severity: 3, created_by: 'test' }).execute();
        audit({ tenantId: 'acme', action: 'incident.create', target: 'incident', delta: { title } });
      });
    }
  });
  afterAll(() => t.drop());

  it.each([[[]], [['start']], [['worker']], [['migrate']], [['audit', 'verify']], [['secrets', 'set']], [['secrets', 'list']]])(
    'prints help for %j',
    async (args) => {
      const r = await runReflex([...args, '--help'], env);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: reflex/);
    },
  );

  it('rejects a bad configuration with a message naming the variable', async () => {
    const r = await runReflex(['migrate'], { ...env, PORT: 'not-a-port' });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('PORT');
  });

  it('audit verify passes on an intact chain and reports the first row edited behind the store\'s back', async () => {
    const ok = await runReflex(['audit', 'verify'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/audit chain OK: 4 rows/);
    await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(t.db);
    await sql`update audit_log set actor = 'someone-else' where chain_pos = 3`.execute(t.db);
    await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(t.db);
    const broken = await runReflex(['audit', 'verify'], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('audit chain BROKEN at position 3');
    expect(broken.stdout).toContain('2 rows verified before it');
  });

  it('sets a secret from stdin and lists its name, never its value', async () => {
    const set = await runReflex(['secrets', 'set', 'abuseipdb.api_key', '--tenant', 'acme'], env, 'abuse-key-123\n');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('stored acme/abuseipdb.api_key');
    const list = await runReflex(['secrets', 'list', '--tenant', 'acme'], env);
    expect(list.stdout).toContain('abuseipdb.api_key');
    expect(list.stdout).not.toContain('abuse-key-123');
    const empty = await runReflex(['secrets', 'set', 'empty.one'], env, '');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('No value on standard input');
  });
});
