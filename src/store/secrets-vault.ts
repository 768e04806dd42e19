import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from './audit-log.ts';
import type { Database } from './schema.ts';

/** Platform-wide secrets (not owned by a tenant) use this tenant id. */
export const GLOBAL_TENANT = '';

export interface SecretListing {
  tenantId: string;
  name: string;
  keyId: string;
  updatedAt: Date;
}

/** A short, stable id for a master key, stored beside each value so keys can be rotated. */
export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update('sentreflex.master-key.v1').update(key).digest('hex').slice(0, 16);
}

/**
 * Integration credentials encrypted with AES-256-GCM under the master key: a random 96-bit nonce
 * per value, and `<tenant>/<name>` as associated data so a ciphertext copied onto another row
 * fails to decrypt. Values are never logged, never audited (only the name is), and the API only
 * ever lists names.
 *
 * @example
 * const vault = new SecretsVault(db, masterKey);
 * await vault.set('acme', 'virustotal.api_key', key, 'cli');
 * const key = await vault.get('acme', 'virustotal.api_key');
 */
export class SecretsVault {
  private readonly keys = new Map<string, Buffer>();
  private readonly currentKeyId: string;

  /** `previousKeys` decrypt values written before a rotation; new writes use `masterKey`. */
  constructor(
    private readonly db: Kysely<Database>,
    masterKey: Buffer,
    previousKeys: Buffer[] = [],
  ) {
    if (masterKey.length !== 32) throw new ReflexError('config.invalid', 'master key must be 32 bytes');
    this.currentKeyId = masterKeyId(masterKey);
    this.keys.set(this.currentKeyId, masterKey);
    for (const k of previousKeys) this.keys.set(masterKeyId(k), k);
  }

  async set(tenantId: string, name: string, value: string, actor: string): Promise<void> {
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(name)) {
      throw new ReflexError('input.invalid', `invalid secret name ${JSON.stringify(name)}`, {
        safeMessage: 'Secret names use letters, digits and . _ : - (at most 128).',
      });
    }
    if (value.length === 0) throw new ReflexError('input.invalid', 'empty secret', { safeMessage: 'A secret cannot be empty.' });
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, nonce);
    cipher.setAAD(Buffer.from(`${tenantId}/${name}`));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    const authTag = cipher.getAuthTag();
    await auditedWrite(this.db, actor, async (trx, audit) => {
      const row = { tenant_id: tenantId, name, key_id: this.currentKeyId, nonce, ciphertext, auth_tag: authTag };
      await trx
        .insertInto('secrets')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['tenant_id', 'name']).doUpdateSet({ key_id: row.key_id, nonce, ciphertext, auth_tag: authTag, updated_at: new Date() }),
        )
        .execute();
      audit({ tenantId: tenantId || null, action: 'secret.set', target: `secret:${tenantId || '*'}/${name}`, delta: { keyId: this.currentKeyId } });
    });
  }

  /** Decrypts a secret, or returns undefined when none is set. */
  async get(tenantId: string, name: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('secrets')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) return undefined;
    const key = this.keys.get(row.key_id);
    if (!key) {
      throw new ReflexError('config.invalid', `secret ${name} was written under key ${row.key_id}, which is not loaded`, {
        safeMessage: 'A stored secret was encrypted with a master key that is not configured.',
      });
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, row.nonce);
      decipher.setAAD(Buffer.from(`${tenantId}/${name}`));
      decipher.setAuthTag(row.auth_tag);
      return Buffer.concat([decipher.update(row.ciphertext), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new ReflexError('internal', `secret ${tenantId}/${name} failed authentication (tampered or wrong key)`, { cause: err });
    }
  }

  async list(tenantId?: string): Promise<SecretListing[]> {
    let q = this.db.selectFrom('secrets').select(['tenant_id', 'name', 'key_id', 'updated_at']).orderBy('tenant_id').orderBy('name');
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    const rows = await q.execute();
    return rows.map((r) => ({ tenantId: r.tenant_id, name: r.name, keyId: r.key_id, updatedAt: r.updated_at }));
  }

  async delete(tenantId: string, name: string, actor: string): Promise<boolean> {
    return auditedWrite(this.db, actor, async (trx, audit) => {
      const res = await trx.deleteFrom('secrets').where('tenant_id', '=', tenantId).where('name', '=', name).executeTakeFirst();
      audit({ tenantId: tenantId || null, action: 'secret.delete', target: `secret:${tenantId || '*'}/${name}`, delta: {} });
      return Number(res.numDeletedRows) > 0;
    });
  }
}
