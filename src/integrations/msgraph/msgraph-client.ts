import { createHash, randomInt } from 'node:crypto';
import { ReflexError } from '../../errors.ts';
import { isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { IdentityProvider, IdentityReceipt, MutationOptions, ResetPasswordOptions } from '../containment-ports.ts';
import { entraAppApi, type BearerHttp } from './oauth-client-credentials.ts';
import type { TokenSource } from './oauth-client-credentials.ts';

export interface MicrosoftGraphClientOptions {
  /** Entra ID tenant (directory) id or verified domain. */
  tenantId: string;
  /** Application (client) id of the app registration. */
  clientId: string;
  /** Its client secret (vault: `msgraph.client_secret`). */
  clientSecret: string;
  /** Default https://graph.microsoft.com (national clouds: https://graph.microsoft.us, …). */
  graphUrl?: string;
  /** Default https://login.microsoftonline.com (national clouds: https://login.microsoftonline.us, …). */
  loginUrl?: string;
  /** Default `<graphUrl origin>/.default`. */
  scope?: string;
  /** Also call revokeSignInSessions after a disable (the catalogue's `identity.disable_user` promises it). Default true. */
  revokeSessionsOnDisable?: boolean;
  /** A token source to share (tests, or one login for several clients). Built from the options above otherwise. */
  tokens?: TokenSource;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

export const VENDOR = 'Microsoft Graph';

/**
 * The Graph API as the app behind `opts` (client credentials against Entra ID, or `opts.tokens`):
 * a bearer client over VendorHttpClient with Graph's error bodies described and failures mapped
 * by `mapError`, and the API's base URL. Shared by the identity and mailbox clients.
 */
export function graphApi(opts: MicrosoftGraphClientOptions, mapError: (failure: VendorFailure) => ReflexError | undefined): { api: BearerHttp; base: URL } {
  return entraAppApi(opts, {
    vendor: VENDOR,
    label: 'Microsoft Graph',
    baseUrl: opts.graphUrl ?? 'https://graph.microsoft.com',
    defaultScope: (base) => `${base.origin}/.default`,
    describeError: describeGraphError,
    mapError,
  });
}

/**
 * Microsoft Entra ID users through Microsoft Graph v1.0, as an `IdentityProvider`.
 *
 * - disable / enable: `PATCH /v1.0/users/{id}` `{accountEnabled:false|true}`, answered 204 with an
 *   empty body. Setting a state is naturally idempotent.
 * - revoke sessions: `POST /v1.0/users/{id}/revokeSignInSessions`. Documented as 204, but the
 *   service answers `200 {"value": true}` (Graph known issue): any 2xx is success.
 * - reset password: `PATCH` of `passwordProfile`.
 *
 * Graph has no idempotency header; every request carries `client-request-id`, a GUID derived
 * from the idempotency key, so a retried step shows up under one id in Microsoft's sign-in and
 * audit logs. App permissions (least privilege): User.EnableDisableAccount.All + User.Read.All,
 * User.RevokeSessions.All, User-PasswordProfile.ReadWrite.All.
 *
 * @example
 * const graph = new MicrosoftGraphClient({ tenantId, clientId, clientSecret: await vault.get(t, 'msgraph.client_secret') });
 * await graph.disableUser('alice@contoso.example', { idempotencyKey: 'run_42:disable_user' });
 */
export class MicrosoftGraphClient implements IdentityProvider {
  readonly name = 'msgraph';
  private readonly api: BearerHttp;
  private readonly revokeOnDisable: boolean;

  constructor(opts: MicrosoftGraphClientOptions) {
    this.api = graphApi(opts, mapGraphError).api;
    this.revokeOnDisable = opts.revokeSessionsOnDisable ?? true;
  }

  async disableUser(user: string, opts: MutationOptions): Promise<IdentityReceipt> {
    const id = userPath(user);
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    await this.api.request({
      method: 'PATCH',
      path: `/v1.0/users/${id}`,
      json: { accountEnabled: false },
      headers: traceHeaders(key),
    });
    // Disabling blocks new sign-ins only; refresh tokens keep working for up to an hour unless revoked.
    let raw: unknown;
    if (this.revokeOnDisable) raw = await this.revoke(id, key);
    return receipt(user, { sessionsRevoked: this.revokeOnDisable, raw });
  }

  async enableUser(user: string, opts: MutationOptions): Promise<IdentityReceipt> {
    const id = userPath(user);
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    await this.api.request({ method: 'PATCH', path: `/v1.0/users/${id}`, json: { accountEnabled: true }, headers: traceHeaders(key) });
    return receipt(user, {});
  }

  async revokeSessions(user: string, opts: MutationOptions): Promise<IdentityReceipt> {
    const id = userPath(user);
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    return receipt(user, { raw: await this.revoke(id, key) });
  }

  async resetPassword(user: string, opts: ResetPasswordOptions): Promise<IdentityReceipt> {
    const id = userPath(user);
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    if (opts.newPassword !== undefined && (opts.newPassword.length < 8 || opts.newPassword.length > 256)) {
      throw new ReflexError('input.invalid', 'Microsoft Graph: a password must be 8 to 256 characters', {
        safeMessage: 'The new password must be 8 to 256 characters long.',
      });
    }
    await this.api.request({
      method: 'PATCH',
      path: `/v1.0/users/${id}`,
      json: {
        passwordProfile: {
          forceChangePasswordNextSignIn: opts.forceChangeAtLogin ?? true,
          password: opts.newPassword ?? randomPassword(),
        },
      },
      headers: traceHeaders(key),
    });
    return receipt(user, {});
  }

  private async revoke(id: string, key: string): Promise<unknown> {
    // Any 2xx: documented 204, observed 200 {"value": true}.
    const res = await this.api.request({ method: 'POST', path: `/v1.0/users/${id}/revokeSignInSessions`, headers: traceHeaders(key) });
    return res.body;
  }
}

/**
 * A GUID derived from the idempotency key (sha-256, RFC 9562 version 8), so every attempt of one
 * step carries the same `client-request-id`.
 */
export function graphRequestId(idempotencyKey: string): string {
  const b = createHash('sha256').update(idempotencyKey).digest().subarray(0, 16);
  b.writeUInt8((b.readUInt8(6) & 0x0f) | 0x80, 6);
  b.writeUInt8((b.readUInt8(8) & 0x3f) | 0x80, 8);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function traceHeaders(key: string): Record<string, string> {
  return { 'client-request-id': graphRequestId(key), 'return-client-request-id': 'true' };
}

function receipt(user: string, extra: { sessionsRevoked?: boolean; raw?: unknown }): IdentityReceipt {
  return {
    vendor: 'msgraph',
    target: user.trim(),
    state: 'done',
    alreadyInState: false,
    failures: [],
    ...(extra.sessionsRevoked === undefined ? {} : { sessionsRevoked: extra.sessionsRevoked }),
    ...(extra.raw === undefined ? {} : { raw: extra.raw }),
  };
}

/**
 * A user is an object id (GUID) or a userPrincipalName. Guest UPNs hold `#EXT#`, which must be
 * percent-encoded or the fetch layer cuts it off as a URL fragment.
 */
function userPath(user: string): string {
  const u = typeof user === 'string' ? user.trim() : '';
  if (u === '' || u.length > 1024 || /[\u0000-\u001f/\\?]/.test(u)) {
    throw new ReflexError('input.invalid', `Microsoft Graph: not a user id or UPN: ${JSON.stringify(String(user).slice(0, 100))}`, {
      safeMessage: 'Give the user as a user principal name (alice@contoso.example) or an object id.',
    });
  }
  return encodeURIComponent(u);
}

/** Graph's error envelope: `{"error":{"code":"Request_ResourceNotFound","message":"…"}}`. */
function describeGraphError(body: unknown): string | undefined {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { code, message } = body.error;
  return [code, message].filter((s) => typeof s === 'string' && s !== '').join(': ') || undefined;
}

/**
 * Graph's 404 and 403 as ReflexErrors with the caller's words for them (what is missing, which
 * permission the app lacks), Graph's own error code in the details; other statuses fall through
 * to the shared status mapping. Used by the identity and the mailbox clients.
 */
export function graphFailure(f: VendorFailure, safe: { notFound: string; forbidden: string }): ReflexError | undefined {
  const code = isRecord(f.body) && isRecord(f.body.error) && typeof f.body.error.code === 'string' ? f.body.error.code : undefined;
  const message = `Microsoft Graph answered ${f.status}${f.detail ? `: ${f.detail}` : ''}`;
  const details = { vendor: VENDOR, status: f.status, ...(code ? { graphCode: code } : {}) };
  if (f.status === 404) return new ReflexError('not_found', message, { details, safeMessage: safe.notFound });
  if (f.status === 403) return new ReflexError('upstream.rejected', message, { retryable: false, details, safeMessage: safe.forbidden });
  return undefined;
}

const mapGraphError = (f: VendorFailure): ReflexError | undefined =>
  graphFailure(f, {
    notFound: 'Microsoft Entra ID has no such user.',
    // Also what Graph answers for privileged users (admins) when the app lacks the extra role.
    forbidden: 'Microsoft Graph refused: the app lacks the permission, or the user is an administrator it may not change.',
  });

const PASSWORD_SETS = ['ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789', '!#$%&*+-=?@^_'] as const;

/** 32 characters with every class Entra's complexity rule counts; nobody ever sees it. */
function randomPassword(): string {
  const pick = (s: string): string => s.charAt(randomInt(s.length));
  const chars = PASSWORD_SETS.map(pick);
  const all = PASSWORD_SETS.join('');
  while (chars.length < 32) chars.push(pick(all));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] ?? '', chars[i] ?? ''];
  }
  return chars.join('');
}

