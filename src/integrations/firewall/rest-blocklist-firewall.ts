import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { Firewall, FirewallBlockOptions, FirewallReceipt, MutationOptions } from '../containment-ports.ts';
import { normaliseBlockAddress } from './block-address.ts';

export interface RestBlocklistFirewallOptions {
  /** e.g. https://sentgrid.internal/api (the blocklist lives at `<baseUrl>/blocklist`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` (vault: `firewall.api_token`). */
  apiToken: string;
  /** Shown in messages. Default `SENTgrid`. */
  vendor?: string;
  /** Longest TTL the firewall accepts; longer requests are capped, not refused. Default 30 days. */
  maxTtlSeconds?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/**
 * A perimeter firewall with a small REST blocklist (SENTgrid, or any stand-in speaking the same
 * contract), as a `Firewall`:
 *
 * - `POST {base}/blocklist/{address}` with `{ttl_seconds?, comment?}` adds or refreshes an entry:
 *   `201` new, `200` (or `409`) already there. The address is percent-encoded, so a CIDR travels
 *   as `198.51.100.0%2F24`.
 * - `DELETE {base}/blocklist/{address}` removes it: `200`/`204`, or `404` when it is not there.
 *
 * Both send `Idempotency-Key` (the step's key), and both are idempotent by meaning: adding an
 * address that is there, or removing one that is not, is success with `alreadyInState: true`.
 * An optional response body may carry `expires_at`; without it the expiry is computed from the TTL.
 *
 * @example
 * const fw = new RestBlocklistFirewall({ baseUrl: 'https://sentgrid.internal/api', apiToken });
 * const r = await fw.block('198.51.100.7', { idempotencyKey: 'run_42:block_ip', ttlSeconds: 86_400 });
 * // r.expiresAt === '2025-03-02T12:00:00.000Z'
 */
export class RestBlocklistFirewall implements Firewall {
  readonly name = 'firewall';
  private readonly http: VendorHttpClient;
  private readonly vendor: string;
  private readonly maxTtlSeconds: number;
  private readonly now: () => number;

  constructor(opts: RestBlocklistFirewallOptions) {
    this.vendor = opts.vendor ?? 'SENTgrid';
    if (!opts.apiToken) throw new ReflexError('config.invalid', `${this.vendor} API token is empty`);
    this.maxTtlSeconds = opts.maxTtlSeconds ?? 30 * 86_400;
    this.now = opts.now ?? Date.now;
    this.http = new VendorHttpClient({
      vendor: this.vendor,
      baseUrl: opts.baseUrl,
      headers: { Authorization: `Bearer ${opts.apiToken}` },
      secretHeaders: ['Authorization'],
      describeError: (body) =>
        isRecord(body) && isRecord(body.error) && typeof body.error.message === 'string'
          ? body.error.message
          : isRecord(body) && typeof body.message === 'string'
            ? body.message
            : undefined,
      now: this.now,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  async block(address: string, opts: FirewallBlockOptions): Promise<FirewallReceipt> {
    const addr = normaliseBlockAddress(this.vendor, address);
    const key = requireIdempotencyKey(this.vendor, opts.idempotencyKey);
    const ttl = opts.ttlSeconds === undefined ? undefined : this.validTtl(opts.ttlSeconds);
    const sentAt = this.now();
    const res = await this.http.request({
      method: 'POST',
      path: `/blocklist/${encodeURIComponent(addr)}`,
      json: { ...(ttl === undefined ? {} : { ttl_seconds: ttl }), ...(opts.comment ? { comment: opts.comment } : {}) },
      headers: { 'Idempotency-Key': key },
      accept: [409],
    });
    const bodyExpiry = isRecord(res.body) && typeof res.body.expires_at === 'string' ? res.body.expires_at : undefined;
    const expiresAt = bodyExpiry ?? (ttl === undefined ? undefined : new Date(sentAt + ttl * 1000).toISOString());
    return {
      vendor: this.name,
      target: addr,
      address: addr,
      state: 'done',
      alreadyInState: res.status !== 201,
      failures: [],
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(res.body === undefined ? {} : { raw: res.body }),
    };
  }

  async unblock(address: string, opts: MutationOptions): Promise<FirewallReceipt> {
    const addr = normaliseBlockAddress(this.vendor, address);
    const key = requireIdempotencyKey(this.vendor, opts.idempotencyKey);
    const res = await this.http.request({
      method: 'DELETE',
      path: `/blocklist/${encodeURIComponent(addr)}`,
      headers: { 'Idempotency-Key': key },
      accept: [404],
    });
    return {
      vendor: this.name,
      target: addr,
      address: addr,
      state: 'done',
      alreadyInState: res.status === 404,
      failures: [],
      ...(res.body === undefined ? {} : { raw: res.body }),
    };
  }

  private validTtl(ttl: number): number {
    if (!Number.isInteger(ttl) || ttl <= 0) {
      throw new ReflexError('input.invalid', `${this.vendor}: ttlSeconds must be a positive whole number, got ${ttl}`, {
        safeMessage: 'The block duration must be a positive number of seconds.',
      });
    }
    return Math.min(ttl, this.maxTtlSeconds);
  }
}

