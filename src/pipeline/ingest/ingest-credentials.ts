import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { ReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import type { SecretsVault } from '../../store/secrets-vault.ts';
import { verifyHookSignature } from './hook-signature.ts';

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

interface CachedCredential {
  tenantId: string;
  source: string;
  kind: 'bearer' | 'hmac';
  secretName: string | null;
}

/**
 * Who may post to `/hooks/<source>`: a per-tenant bearer token (stored as its sha256) or an HMAC
 * secret (in the vault). Credentials are cached in memory and reloaded every few seconds, so the
 * hot path costs a hash and a map lookup; a revoked token stops working within `ttlMs`.
 */
export class IngestAuthenticator {
  private byTokenHash = new Map<string, CachedCredential>();
  private hmacByTenant = new Map<string, CachedCredential[]>();
  private secretCache = new Map<string, { value: string; until: number }>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly vault: SecretsVault,
    private readonly ttlMs = 5000,
  ) {}

  private async refresh(): Promise<void> {
    if (Date.now() - this.loadedAt < this.ttlMs) return;
    this.loading ??= (async () => {
      try {
        const rows = await this.db.selectFrom('ingest_credentials').selectAll().where('revoked_at', 'is', null).execute();
        const byToken = new Map<string, CachedCredential>();
        const hmac = new Map<string, CachedCredential[]>();
        for (const r of rows) {
          const c: CachedCredential = { tenantId: r.tenant_id, source: r.source, kind: r.kind, secretName: r.secret_name };
          if (r.kind === 'bearer' && r.token_sha256) byToken.set(r.token_sha256, c);
          if (r.kind === 'hmac') hmac.set(r.tenant_id, [...(hmac.get(r.tenant_id) ?? []), c]);
        }
        this.byTokenHash = byToken;
        this.hmacByTenant = hmac;
        this.loadedAt = Date.now();
      } finally {
        this.loading = undefined;
      }
    })();
    await this.loading;
  }

  /**
   * Returns the tenant a request is for, or throws `auth.unauthenticated`.
   * HMAC requests name their tenant with `?tenant=` (default `default`); bearer tokens imply it.
   */
  async authenticate(req: {
    source: string;
    authorization: string | undefined;
    signature: string | undefined;
    timestamp: string | undefined;
    tenantHint: string | undefined;
    body: Buffer;
    nowMs: number;
  }): Promise<string> {
    await this.refresh();
    const matches = (c: CachedCredential) => c.source === '*' || c.source === req.source || (req.source.startsWith('generic:') && c.source === 'generic');
    if (req.authorization) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.authorization);
      if (m) {
        const hash = sha256Hex(m[1]!);
        // A miss costs one indexed lookup, so a token created a moment ago (by the CLI, in
        // another process) works at once.
        const cred = this.byTokenHash.get(hash) ?? (await this.lookupToken(hash));
        if (cred && matches(cred)) return cred.tenantId;
      }
      // Same message whatever was wrong: do not tell a prober which tokens exist.
      throw new ReflexError('auth.unauthenticated', 'unknown, revoked or wrong-source ingest token', {
        safeMessage: 'The ingest token is not valid for this source.',
      });
    }
    if (req.signature) {
      const tenantId = req.tenantHint ?? 'default';
      let creds = (this.hmacByTenant.get(tenantId) ?? []).filter(matches);
      if (creds.length === 0) creds = (await this.lookupHmac(tenantId)).filter(matches);
      let lastErr: unknown = new ReflexError('auth.unauthenticated', `no HMAC secret for ${tenantId}/${req.source}`, {
        safeMessage: 'Signature rejected: no HMAC secret is configured for this tenant and source.',
      });
      for (const c of creds) {
        const secret = await this.secret(tenantId, c.secretName!);
        if (!secret) continue;
        try {
          verifyHookSignature({ secret, body: req.body, timestamp: req.timestamp, signature: req.signature, nowMs: req.nowMs });
          return tenantId;
        } catch (err) {
          lastErr = err;
        }
      }
      throw lastErr;
    }
    throw new ReflexError('auth.unauthenticated', 'no credentials on hook request', {
      safeMessage: 'Send Authorization: Bearer <ingest token>, or X-Reflex-Signature and X-Reflex-Timestamp.',
    });
  }

  private async lookupToken(hash: string): Promise<CachedCredential | undefined> {
    const r = await this.db.selectFrom('ingest_credentials').selectAll().where('token_sha256', '=', hash).where('revoked_at', 'is', null).executeTakeFirst();
    if (!r) return undefined;
    const c: CachedCredential = { tenantId: r.tenant_id, source: r.source, kind: r.kind, secretName: r.secret_name };
    this.byTokenHash.set(hash, c);
    return c;
  }

  private async lookupHmac(tenantId: string): Promise<CachedCredential[]> {
    const rows = await this.db.selectFrom('ingest_credentials').selectAll().where('tenant_id', '=', tenantId).where('kind', '=', 'hmac').where('revoked_at', 'is', null).execute();
    const creds = rows.map((r) => ({ tenantId: r.tenant_id, source: r.source, kind: r.kind, secretName: r.secret_name }));
    if (creds.length) this.hmacByTenant.set(tenantId, creds);
    return creds;
  }

  private async secret(tenantId: string, name: string): Promise<string | undefined> {
    const key = `${tenantId}/${name}`;
    const hit = this.secretCache.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = await this.vault.get(tenantId, name);
    if (value) this.secretCache.set(key, { value, until: Date.now() + this.ttlMs });
    return value;
  }
}

/** Registers a bearer token for a tenant's source (or `*`); only its hash is stored. */
export async function addIngestToken(db: Kysely<Database>, opts: { tenantId: string; source: string; token: string; actor: string }): Promise<void> {
  if (opts.token.length < 24) throw new ReflexError('input.invalid', 'ingest token too short', { safeMessage: 'An ingest token must be at least 24 characters.' });
  const hash = sha256Hex(opts.token);
  // Registering a token that exists (every start re-registers the configured one) writes nothing.
  const exists = await db.selectFrom('ingest_credentials').select('id').where('token_sha256', '=', hash).executeTakeFirst();
  if (exists) return;
  await auditedWrite(db, opts.actor, async (trx, audit) => {
    const row = await trx
      .insertInto('ingest_credentials')
      .values({ tenant_id: opts.tenantId, source: opts.source, kind: 'bearer', token_sha256: hash, created_by: opts.actor })
      .returning('id')
      .executeTakeFirstOrThrow();
    audit({ tenantId: opts.tenantId, action: 'ingest.token.create', target: `ingest:${opts.tenantId}/${opts.source}`, delta: { credential: row.id } });
  });
}

/** Creates an HMAC secret for a tenant's source, stores it in the vault and returns it (shown once). */
export async function createIngestHmacSecret(
  db: Kysely<Database>,
  vault: SecretsVault,
  opts: { tenantId: string; source: string; actor: string },
): Promise<string> {
  const secret = randomBytes(32).toString('base64url');
  // A name of its own per secret: a second secret for the same source never overwrites the first.
  const name = `ingest.hmac.${opts.source === '*' ? 'all' : opts.source.replace(':', '.')}.${randomBytes(4).toString('hex')}`;
  await vault.set(opts.tenantId, name, secret, opts.actor);
  await auditedWrite(db, opts.actor, async (trx, audit) => {
    await trx.insertInto('ingest_credentials').values({ tenant_id: opts.tenantId, source: opts.source, kind: 'hmac', secret_name: name, created_by: opts.actor }).execute();
    audit({ tenantId: opts.tenantId, action: 'ingest.hmac.create', target: `ingest:${opts.tenantId}/${opts.source}`, delta: { secret: name } });
  });
  return secret;
}

export function generateIngestToken(): string {
  return `rfi_${randomBytes(24).toString('base64url')}`;
}
