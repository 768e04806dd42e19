import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { verifyIdToken, type IdTokenClaims, type Jwk } from './oidc-id-token.ts';

/**
 * SENTchat's OpenID Connect sign-in: authorization code flow with PKCE (S256), the ID token
 * verified against the issuer's JWKS (`oidc-id-token.ts`). Discovery and keys are fetched from
 * `<issuer>/.well-known/openid-configuration` and cached; an unknown `kid` refetches the keys (the
 * issuer rotated them), at most once a minute.
 *
 * The state, nonce and PKCE verifier of a sign-in in progress travel in a short-lived cookie
 * signed with a key derived from the master key, so any API process can finish a sign-in another
 * one started.
 *
 * @example
 * const client = new OidcClient({ issuer: 'https://login.acme.example', clientId: 'sentreflex' });
 * const { url, pending } = await client.begin(`${publicUrl}/sentchat/auth/oidc/callback`);
 * // … the browser comes back with ?code&state …
 * const claims = await client.finish({ code, state, pending, redirectUri });
 */
const metadataSchema = z.object({
  issuer: z.string().url(),
  authorization_endpoint: z.string().url(),
  token_endpoint: z.string().url(),
  jwks_uri: z.string().url(),
  code_challenge_methods_supported: z.array(z.string()).optional(),
});
export type OidcMetadata = z.infer<typeof metadataSchema>;

const jwksSchema = z.object({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional(), alg: z.string().optional(), use: z.string().optional() })) });
const tokenResponse = z.object({ id_token: z.string().min(10).max(20_000) });

export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  /** Unix ms after which the sign-in must start over. */
  exp: number;
}
const pendingSchema = z.object({ state: z.string().min(20).max(100), nonce: z.string().min(20).max(100), verifier: z.string().min(43).max(128), exp: z.number() });

const METADATA_TTL_MS = 3600_000;
const KEYS_REFRESH_MIN_MS = 60_000;
export const PENDING_TTL_MS = 10 * 60_000;

function unauthenticated(message: string, safeMessage = 'The sign-in could not be verified; try again.'): ReflexError {
  return new ReflexError('auth.unauthenticated', message, { safeMessage });
}

export class OidcClient {
  private metadataCache: { value: OidcMetadata; at: number } | undefined;
  private keysCache: { keys: Jwk[]; at: number } | undefined;

  constructor(
    private readonly opts: { issuer: string; clientId: string; clientSecret?: string | undefined; timeoutMs?: number; now?: () => number },
  ) {}

  get issuer(): string {
    return this.opts.issuer;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private async getJson(url: string, what: string, init?: RequestInit): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
    } catch (err) {
      throw new ReflexError('upstream.unavailable', `oidc ${what}: ${String(err)}`, { safeMessage: 'The sign-in provider cannot be reached; try again shortly.', cause: err });
    }
    const text = await res.text();
    if (!res.ok) {
      // A token endpoint's refusal (invalid_grant: a code used twice or expired) is the user's to retry.
      const retryable = res.status >= 500;
      throw new ReflexError(retryable ? 'upstream.unavailable' : 'auth.unauthenticated', `oidc ${what}: HTTP ${res.status} ${text.slice(0, 200)}`, {
        safeMessage: retryable ? 'The sign-in provider is failing; try again shortly.' : 'The sign-in provider refused the sign-in; start again.',
      });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ReflexError('upstream.rejected', `oidc ${what}: not JSON`, { safeMessage: 'The sign-in provider answered something SENTreflex cannot read.' });
    }
  }

  async metadata(): Promise<OidcMetadata> {
    const cached = this.metadataCache;
    if (cached && this.now() - cached.at < METADATA_TTL_MS) return cached.value;
    const raw = await this.getJson(`${this.opts.issuer}/.well-known/openid-configuration`, 'discovery');
    const m = metadataSchema.safeParse(raw);
    if (!m.success) throw new ReflexError('upstream.rejected', `oidc discovery: ${m.error.issues[0]!.path.join('.')}: ${m.error.issues[0]!.message}`, { safeMessage: 'The sign-in provider published an unusable configuration.' });
    // The discovery document must be the configured issuer's own (OpenID Connect Discovery §4.3).
    if (m.data.issuer.replace(/\/+$/, '') !== this.opts.issuer) {
      throw new ReflexError('upstream.rejected', `oidc discovery: issuer ${m.data.issuer} is not ${this.opts.issuer}`, { safeMessage: 'The sign-in provider names a different issuer than configured.' });
    }
    if (m.data.code_challenge_methods_supported && !m.data.code_challenge_methods_supported.includes('S256')) {
      throw new ReflexError('upstream.rejected', 'oidc discovery: S256 PKCE not supported', { safeMessage: 'The sign-in provider does not support PKCE (S256).' });
    }
    this.metadataCache = { value: m.data, at: this.now() };
    return m.data;
  }

  private async keys(refresh: boolean): Promise<Jwk[]> {
    const cached = this.keysCache;
    if (cached && !(refresh && this.now() - cached.at >= KEYS_REFRESH_MIN_MS) && this.now() - cached.at < METADATA_TTL_MS) return cached.keys;
    const meta = await this.metadata();
    const raw = jwksSchema.safeParse(await this.getJson(meta.jwks_uri, 'jwks'));
    if (!raw.success) throw new ReflexError('upstream.rejected', 'oidc jwks unreadable', { safeMessage: 'The sign-in provider published unusable keys.' });
    this.keysCache = { keys: raw.data.keys as Jwk[], at: this.now() };
    return this.keysCache.keys;
  }

  /** Where to send the browser, and what to remember until it comes back. */
  async begin(redirectUri: string): Promise<{ url: string; pending: PendingSignIn }> {
    const meta = await this.metadata();
    const pending: PendingSignIn = {
      state: randomBytes(24).toString('base64url'),
      nonce: randomBytes(24).toString('base64url'),
      verifier: randomBytes(48).toString('base64url'),
      exp: this.now() + PENDING_TTL_MS,
    };
    const url = new URL(meta.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.opts.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('scope', 'openid profile email');
    url.searchParams.set('state', pending.state);
    url.searchParams.set('nonce', pending.nonce);
    url.searchParams.set('code_challenge', createHash('sha256').update(pending.verifier).digest('base64url'));
    url.searchParams.set('code_challenge_method', 'S256');
    return { url: url.toString(), pending };
  }

  /** Redeems the code and verifies the ID token; the claims of the person who signed in. */
  async finish(input: { code: string; state: string; pending: PendingSignIn; redirectUri: string }): Promise<IdTokenClaims> {
    if (input.pending.exp < this.now()) throw unauthenticated('oidc: sign-in took too long', 'The sign-in took too long; start again.');
    if (!secretsMatch(input.state, input.pending.state)) throw unauthenticated('oidc: state mismatch', 'The sign-in did not start here (state mismatch); start again.');
    const meta = await this.metadata();
    const body = new URLSearchParams({ grant_type: 'authorization_code', code: input.code, redirect_uri: input.redirectUri, client_id: this.opts.clientId, code_verifier: input.pending.verifier });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.opts.clientSecret) {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(this.opts.clientId)}:${encodeURIComponent(this.opts.clientSecret)}`).toString('base64')}`;
    }
    const raw = tokenResponse.safeParse(await this.getJson(meta.token_endpoint, 'token', { method: 'POST', headers, body: body.toString() }));
    if (!raw.success) throw unauthenticated('oidc: token response without id_token');
    let check = verifyIdToken({ idToken: raw.data.id_token, keys: await this.keys(false), issuer: meta.issuer, clientId: this.opts.clientId, nonce: input.pending.nonce, nowMs: this.now() });
    if (!check.ok && check.reason.startsWith('no ')) {
      check = verifyIdToken({ idToken: raw.data.id_token, keys: await this.keys(true), issuer: meta.issuer, clientId: this.opts.clientId, nonce: input.pending.nonce, nowMs: this.now() });
    }
    if (!check.ok) throw unauthenticated(`oidc: id token refused: ${check.reason}`);
    return check.claims;
  }
}

function secretsMatch(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

/** `pending` as a cookie value: base64url JSON and its HMAC-SHA256. */
export function sealPending(pending: PendingSignIn, key: Buffer): string {
  const body = Buffer.from(JSON.stringify(pending)).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

export function openPending(value: string | undefined, key: Buffer): PendingSignIn | undefined {
  if (!value || value.length > 2000) return undefined;
  const [body, mac, extra] = value.split('.');
  if (!body || !mac || extra !== undefined) return undefined;
  const expected = createHmac('sha256', key).update(body).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const r = pendingSchema.safeParse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The SENTchat realm of an issuer: its host and path in the characters an identity allows
 * (`https://login.acme.example/realms/soc` -> `login.acme.example-realms-soc`).
 */
export function oidcRealmOf(issuer: string): string {
  const u = new URL(issuer);
  const realm = `${u.host}${u.pathname}`.replace(/\/+$/, '').replace(/[^A-Za-z0-9.-]+/g, '-');
  return realm.length <= 64 ? realm : `oidc-${createHash('sha256').update(issuer).digest('hex').slice(0, 16)}`;
}

/**
 * A `sub` as a SENTchat user id: letters, digits, `.` and `-` kept, every other byte `_xx`, so
 * distinct subjects stay distinct (`auth0|42` -> `auth0_7c42`) and `reflex role grant` accepts it.
 */
export function oidcUserIdOf(sub: string): string {
  const encoded = [...Buffer.from(sub, 'utf8')].map((b) => (/[A-Za-z0-9.-]/.test(String.fromCharCode(b)) && b < 128 ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, '0')}`)).join('');
  return encoded.length <= 128 ? encoded : `sub-${createHash('sha256').update(sub).digest('hex').slice(0, 40)}`;
}
