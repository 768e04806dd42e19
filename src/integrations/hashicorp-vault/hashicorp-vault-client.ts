import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ReflexError, toReflexError } from '../../errors.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { ContainmentFailure, CredentialRotationReceipt, CredentialRotationResult, CredentialVault, IdempotencyStore, MutationOptions } from '../containment-ports.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';

export interface HashiCorpVaultClientOptions {
  /** The Vault server, e.g. `https://vault.acme.example:8200` (tenant config `hashicorp_vault.url`). */
  baseUrl: string;
  /** A Vault token allowed to `update` the rotate paths (vault secret `hashicorp_vault.token`). */
  token: string;
  /** Vault Enterprise / HCP namespace, sent as `X-Vault-Namespace`. */
  namespace?: string;
  /** Mount path of the database secrets engine. Default `database`. */
  databaseMount?: string;
  /** Mount path of the LDAP secrets engine. Default `ldap`. */
  ldapMount?: string;
  /** Remembers which assets an idempotency key rotated (the engine's database store). */
  store: IdempotencyStore;
  /** How long a rotation is remembered. Default 24 h (longer than any step's retry window). */
  recordTtlMs?: number;
  logger?: Pick<Logger, 'warn'>;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

const VENDOR = 'HashiCorp Vault';
/** More would be a mistake in a manifest (or an event stuffed with ids), not a real incident. */
export const MAX_ASSETS = 100;

/** A role or connection name as a Vault path segment: no slash, no `..`, not ending in a period. */
const NAME = /^[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?$/;

/** The asset forms this adapter rotates, as shown in the refusal of any other form. */
export const SUPPORTED_ASSET_FORMS = ['database/static-role/<role>', 'database/root/<connection>', 'ldap/static-role/<role>'] as const;

interface Operation {
  asset: string;
  /** Shown in results and logs: engine + endpoint + name, never a credential. */
  label: string;
  path: string;
}

interface RotationRecord {
  operation: string;
  rotatedAt: string;
}

/**
 * HashiCorp Vault as a `CredentialVault` (HTTP API v1, token auth).
 *
 * An asset id names a credential Vault itself can rotate (KV secrets cannot be rotated by Vault:
 * it has no idea what system the stored password belongs to, so a KV path is refused rather than
 * overwritten with a value nobody else knows):
 *
 * | asset | call | Vault docs |
 * |---|---|---|
 * | `database/static-role/<role>` | `POST /v1/<database mount>/rotate-role/<role>` | api-docs/secret/databases, "Rotate Static Role Credentials" |
 * | `database/root/<connection>` | `POST /v1/<database mount>/rotate-root/<connection>` | api-docs/secret/databases, "Rotate Root Credentials" |
 * | `ldap/static-role/<role>` | `POST /v1/<ldap mount>/rotate-role/<role>` | docs/secrets/ldap, "Manually rotate static role credentials" |
 *
 * Every request carries `X-Vault-Token` (redacted from every message) and, when set,
 * `X-Vault-Namespace`. Vault answers `204` (or `200` with warnings) on success and
 * `{"errors": [...]}` with a 4xx/5xx otherwise (api-docs/index, "Error response"). 5xx, 429 and
 * 412 (Enterprise eventual consistency, "should be retried") are retryable; other 4xx are not
 * (403 token or policy, 404 unknown role or mount, 400 bad request).
 *
 * Idempotency: every rotate call makes a new password, so a retried step must not repeat one
 * that succeeded. Each rotated asset is recorded under "idempotency key + asset" in the injected
 * store and a repeat answers `already_rotated` without calling Vault. A failed asset records
 * nothing, so its retry really rotates. The window left, a crash between Vault's answer and the
 * record, rotates that asset twice: harmless, the credential is new either way.
 *
 * @example
 * const vault = new HashiCorpVaultClient({ baseUrl: 'https://vault.acme.example:8200', token, store });
 * const r = await vault.rotate(['database/static-role/billing-app'], { idempotencyKey: 'run_42:rotate' });
 */
export class HashiCorpVaultClient implements CredentialVault {
  readonly name = 'hashicorp-vault';
  private readonly http: VendorHttpClient;
  private readonly opts: HashiCorpVaultClientOptions;
  private readonly databaseMount: string;
  private readonly ldapMount: string;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** Records are per Vault server and namespace: a tenant that moves to another Vault starts afresh. */
  private readonly recordScope: string;

  constructor(opts: HashiCorpVaultClientOptions) {
    if (!opts.token) throw new ReflexError('config.invalid', 'HashiCorp Vault token is empty', { safeMessage: 'HashiCorp Vault is misconfigured (token).' });
    this.opts = opts;
    this.databaseMount = mountPath(opts.databaseMount ?? 'database', 'hashicorp_vault.database_mount');
    this.ldapMount = mountPath(opts.ldapMount ?? 'ldap', 'hashicorp_vault.ldap_mount');
    this.ttlMs = opts.recordTtlMs ?? 86_400_000;
    this.now = opts.now ?? Date.now;
    this.recordScope = createHash('sha256').update(`${opts.baseUrl}\u0000${opts.namespace ?? ''}`).digest('hex').slice(0, 16);
    this.http = new VendorHttpClient({
      vendor: VENDOR,
      baseUrl: opts.baseUrl,
      headers: { 'X-Vault-Token': opts.token, ...(opts.namespace ? { 'X-Vault-Namespace': opts.namespace } : {}) },
      secretHeaders: ['X-Vault-Token'],
      describeError: describeVaultError,
      mapError: mapVaultError,
      now: this.now,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  /**
   * Which Vault call an asset id means, or a `config.invalid` naming the supported forms.
   *
   * @example
   * vault.operationFor('database/static-role/app-ro') // { label: 'database/rotate-role/app-ro', path: '/v1/database/rotate-role/app-ro', … }
   */
  operationFor(asset: string): Operation {
    const trimmed = typeof asset === 'string' ? asset.trim() : '';
    const m = /^(database|ldap)\/(static-role|root)\/([^/]+)$/.exec(trimmed);
    const name = m?.[3];
    if (!m || name === undefined || !NAME.test(name) || (m[1] === 'ldap' && m[2] === 'root')) {
      throw new ReflexError('config.invalid', `HashiCorp Vault cannot rotate asset ${JSON.stringify(trimmed.slice(0, 120))}: supported forms are ${SUPPORTED_ASSET_FORMS.join(', ')}`, {
        retryable: false,
        safeMessage: `"${trimmed.slice(0, 120)}" is not a credential HashiCorp Vault can rotate. Use ${SUPPORTED_ASSET_FORMS.join(', ')} (a KV secret cannot be rotated by Vault).`,
        details: { asset: trimmed.slice(0, 120), supported: [...SUPPORTED_ASSET_FORMS] },
      });
    }
    const [, engine, kind] = m;
    const mount = engine === 'database' ? this.databaseMount : this.ldapMount;
    const endpoint = kind === 'root' ? 'rotate-root' : 'rotate-role';
    return { asset: trimmed, label: `${mount}/${endpoint}/${name}`, path: `/v1/${mount}/${endpoint}/${encodeURIComponent(name)}` };
  }

  async rotate(assets: readonly string[], opts: MutationOptions): Promise<CredentialRotationReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    if (!Array.isArray(assets) || assets.length === 0) {
      throw new ReflexError('input.invalid', 'HashiCorp Vault: no assets to rotate', { safeMessage: 'Name at least one credential to rotate.' });
    }
    // Every id is checked before anything is rotated: a typo in the third asset must not leave
    // the first two rotated and the run failed half-way.
    const operations = [...new Map(assets.map((a) => this.operationFor(a)).map((op) => [op.asset, op])).values()];
    if (operations.length > MAX_ASSETS) {
      throw new ReflexError('input.too_large', `HashiCorp Vault: ${operations.length} assets in one call, over ${MAX_ASSETS}`, {
        safeMessage: `At most ${MAX_ASSETS} credentials can be rotated by one step.`,
      });
    }

    const results: CredentialRotationResult[] = [];
    for (const op of operations) results.push(await this.rotateOne(op, key));
    const failures: ContainmentFailure[] = results
      .filter((r) => r.status === 'failed')
      .map((r) => ({ target: r.asset, code: r.code ?? 'unknown', reason: r.reason ?? 'failed', retryable: r.retryable ?? false }));
    return { vendor: this.name, results, failures };
  }

  private async rotateOne(op: Operation, key: string): Promise<CredentialRotationResult> {
    const recordKey = `hashicorp-vault:rotate:${this.recordScope}:${key}:${op.asset}`;
    const earlier = parseRecord(await this.opts.store.get(recordKey));
    if (earlier) return { asset: op.asset, status: 'already_rotated', operation: earlier.operation, rotatedAt: earlier.rotatedAt };

    try {
      await this.http.request({ method: 'POST', path: op.path });
    } catch (err) {
      const e = err instanceof ReflexError ? err : toReflexError(err);
      const status = typeof e.details?.['status'] === 'number' ? String(e.details['status']) : e.code;
      return {
        asset: op.asset,
        status: 'failed',
        operation: op.label,
        code: status,
        reason: this.http.redact(e.message).slice(0, 300),
        retryable: e.retryable,
        ...(e.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }),
      };
    }
    const record: RotationRecord = { operation: op.label, rotatedAt: new Date(this.now()).toISOString() };
    try {
      await this.opts.store.set(recordKey, JSON.stringify(record), this.ttlMs);
    } catch (err) {
      // Rotated already; failing now would only make the retry rotate it again.
      this.opts.logger?.warn({ err, asset: op.asset }, 'hashicorp-vault: could not record the rotation; a retry may rotate it again');
    }
    return { asset: op.asset, status: 'rotated', ...record };
  }
}

function mountPath(raw: string, key: string): string {
  const mount = raw.trim().replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/.test(mount) || mount.length > 200) {
    throw new ReflexError('config.invalid', `HashiCorp Vault: ${key} is not a mount path`, { safeMessage: `HashiCorp Vault is misconfigured (${key}).`, details: { key } });
  }
  return mount;
}

function parseRecord(raw: string | undefined): RotationRecord | undefined {
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    if (isRecord(v) && typeof v.operation === 'string' && typeof v.rotatedAt === 'string') return { operation: v.operation, rotatedAt: v.rotatedAt };
  } catch {
    // an unreadable record is treated as absent
  }
  return undefined;
}

/** `{"errors": ["message", "another message"]}` (api-docs/index, "Error response"). */
function describeVaultError(body: unknown): string | undefined {
  if (!isRecord(body) || !Array.isArray(body.errors)) return undefined;
  const errors = body.errors.filter((e): e is string => typeof e === 'string' && e !== '');
  return errors.length > 0 ? errors.join('; ').slice(0, 300) : undefined;
}

/** 412: Enterprise "missing eventually consistent data", documented as "should be retried". */
function mapVaultError(f: VendorFailure): ReflexError | undefined {
  if (f.status !== 412) return undefined;
  return new ReflexError('upstream.unavailable', `HashiCorp Vault answered 412 (not consistent yet)${f.detail ? `: ${f.detail}` : ''}`, {
    retryAfterMs: f.retryAfterMs ?? 1000,
    details: { vendor: VENDOR, status: 412 },
    safeMessage: 'HashiCorp Vault is not ready yet; retrying later.',
  });
}
