import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsVault, masterKeyId } from '../../../src/store/secrets-vault.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

describe('secrets vault', () => {
  let t: TestDatabase;
  const key = randomBytes(32);
  const plaintext = 'vt-api-key-0123456789abcdef';
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t.drop());

  it('round-trips a secret and stores neither the plaintext nor anything that contains it', async () => {
    const vault = new SecretsVault(t.db, key);
    await vault.set('acme', 'virustotal.api_key', plaintext, 'cli');
    expect(await vault.get('acme', 'virustotal.api_key')).toBe(plaintext);
    const row = await t.db.selectFrom('secrets').selectAll().executeTakeFirstOrThrow();
    expect(row.ciphertext.equals(Buffer.from(plaintext))).toBe(false);
    expect(row.ciphertext.includes(Buffer.from(plaintext))).toBe(false);
    expect(row.nonce).toHaveLength(12);
    expect(row.key_id).toBe(masterKeyId(key));
    // The audit row names the secret but never carries its value.
    const audit = await sql<{ all: string }>`select string_agg(a::text, '') as all from audit_log a`.execute(t.db);
    expect(audit.rows[0]!.all).toContain('virustotal.api_key');
    expect(audit.rows[0]!.all).not.toContain(plaintext);
  });

  it('uses a fresh nonce per value', async () => {
    const vault = new SecretsVault(t.db, key);
    await vault.set('acme', 'a', 'same', 'cli');
    await vault.set('acme', 'b', 'same', 'cli');
    const rows = await t.db.selectFrom('secrets').selectAll().where('name', 'in', ['a', 'b']).execute();
    expect(rows[0]!.nonce.equals(rows[1]!.nonce)).toBe(false);
    expect(rows[0]!.ciphertext.equals(rows[1]!.ciphertext)).toBe(false);
  });

  it('refuses a ciphertext moved onto another secret\'s row', async () => {
    const vault = new SecretsVault(t.db, key);
    await vault.set('acme', 'thehive.api_key', 'hive-key', 'cli');
    await vault.set('globex', 'thehive.api_key', 'other-key', 'cli');
    const src = await t.db.selectFrom('secrets').selectAll().where('tenant_id', '=', 'acme').where('name', '=', 'thehive.api_key').executeTakeFirstOrThrow();
    await t.db
      .updateTable('secrets')
      .set({ nonce: src.nonce, ciphertext: src.ciphertext, auth_tag: src.auth_tag })
      .where('tenant_id', '=', 'globex')
      .where('name', '=', 'thehive.api_key')
      .execute();
    await expect(vault.get('globex', 'thehive.api_key')).rejects.toThrow(/failed authentication/);
  });

  it('reads values written under a previous master key after rotation, and lists names only', async () => {
    const old = new SecretsVault(t.db, key);
    await old.set('', 'slack.bot_token', 'xoxb-1', 'cli');
    const newKey = randomBytes(32);
    const rotated = new SecretsVault(t.db, newKey, [key]);
    expect(await rotated.get('', 'slack.bot_token')).toBe('xoxb-1');
    await rotated.set('', 'slack.bot_token', 'xoxb-2', 'cli');
    expect(await new SecretsVault(t.db, newKey).get('', 'slack.bot_token')).toBe('xoxb-2');
    await expect(new SecretsVault(t.db, key).get('', 'slack.bot_token')).rejects.toThrow(/not loaded/);
    const listing = await rotated.list();
    expect(listing.map((l) => `${l.tenantId}/${l.name}`)).toContain('/slack.bot_token');
    expect(JSON.stringify(listing)).not.toContain('xoxb');
  });

  it('rejects bad names and empty values without writing', async () => {
    const vault = new SecretsVault(t.db, key);
    const before = await t.db.selectFrom('secrets').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    await expect(vault.set('acme', 'bad name; drop table', 'x', 'cli')).rejects.toMatchObject({ code: 'input.invalid' });
    await expect(vault.set('acme', 'ok', '', 'cli')).rejects.toMatchObject({ code: 'input.invalid' });
    const after = await t.db.selectFrom('secrets').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });
});
