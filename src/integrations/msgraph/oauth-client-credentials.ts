import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorFailure, VendorRequest, VendorResponse } from '../http.ts';

/**
 * Where a bearer token comes from. Shared by the OAuth2 client-credentials vendors (Microsoft
 * Graph, Defender for Endpoint, CrowdStrike) and Wazuh's JWT login.
 *
 * Lives beside the Graph client because Graph was its first user; it is vendor-neutral and would
 * sit better next to `../http.ts`.
 */
export interface TokenSource {
  /** A token valid for at least the refresh margin; fetched once and shared by concurrent callers. */
  token(): Promise<string>;
  /** Forgets `token` (the API answered 401 to it), so the next `token()` fetches a fresh one. */
  invalidate(token: string): void;
}

export interface ClientCredentialsOptions {
  /** Human name of the token issuer, for messages ("Microsoft Entra ID", "CrowdStrike"). */
  vendor: string;
  /** Full token endpoint URL, e.g. https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token. */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** `scope` form field (Entra ID: `https://graph.microsoft.com/.default`); CrowdStrike needs none. */
  scope?: string;
  /** Further form fields (CrowdStrike's `member_cid` for an MSSP child tenant). */
  extraParams?: Record<string, string>;
  /** Refresh this long before the token expires. Default 120 s. */
  refreshMarginMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

// Entra ID's v1 endpoint answers expires_in as a string ("3599"), v2 and CrowdStrike as a number.
const tokenResponse = z.object({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().positive().optional(),
});

/** A token the issuer did not give a lifetime for is kept this long. */
const DEFAULT_LIFETIME_MS = 300_000;

/**
 * OAuth 2.0 client-credentials grant (RFC 6749 §4.4) with the token cached until shortly before
 * it expires. One request in flight at a time: fifty parallel playbook steps share one login.
 *
 * @example
 * const tokens = new ClientCredentialsTokenSource({
 *   vendor: 'Microsoft Entra ID',
 *   tokenUrl: `https://login.microsoftonline.com/${tenantId}/oauth2/v2.0/token`,
 *   clientId, clientSecret, scope: 'https://graph.microsoft.com/.default',
 * });
 * const bearer = await tokens.token();
 */
export class ClientCredentialsTokenSource implements TokenSource {
  private readonly http: VendorHttpClient;
  private readonly path: string;
  private readonly form: Record<string, string>;
  private readonly marginMs: number;
  private readonly now: () => number;
  private readonly opts: ClientCredentialsOptions;
  private cached: { token: string; expiresAt: number } | undefined;
  private inflight: Promise<string> | undefined;

  constructor(opts: ClientCredentialsOptions) {
    if (!opts.clientId) throw new ReflexError('config.invalid', `${opts.vendor} client id is empty`);
    if (!opts.clientSecret) throw new ReflexError('config.invalid', `${opts.vendor} client secret is empty`);
    this.opts = opts;
    let url: URL;
    try {
      url = new URL(opts.tokenUrl);
    } catch (err) {
      throw new ReflexError('config.invalid', `${opts.vendor} token URL is not a valid URL`, { cause: err });
    }
    this.path = url.pathname;
    this.form = {
      grant_type: 'client_credentials',
      client_id: opts.clientId,
      client_secret: opts.clientSecret,
      ...(opts.scope ? { scope: opts.scope } : {}),
      ...opts.extraParams,
    };
    this.marginMs = opts.refreshMarginMs ?? 120_000;
    this.now = opts.now ?? Date.now;
    this.http = new VendorHttpClient({
      vendor: opts.vendor,
      baseUrl: url.origin,
      describeError: (body) => redactSecret(describeOAuthError(body), opts.clientSecret),
      mapError: (f) => mapTokenError(opts.vendor, f),
      now: this.now,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  async token(): Promise<string> {
    const cached = this.cached;
    if (cached && this.now() < cached.expiresAt - this.marginMs) return cached.token;
    if (!this.inflight) {
      this.inflight = this.fetchToken().finally(() => {
        this.inflight = undefined;
      });
    }
    return this.inflight;
  }

  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<string> {
    const startedAt = this.now();
    const res = await this.http.request({ method: 'POST', path: this.path, form: this.form });
    const parsed = tokenResponse.safeParse(res.body);
    if (!parsed.success) {
      throw new ReflexError('upstream.unavailable', `${this.opts.vendor} token endpoint answered ${res.status} without an access_token`, {
        details: { vendor: this.opts.vendor },
        safeMessage: `${this.opts.vendor} answered the sign-in in an unexpected way.`,
      });
    }
    const lifetimeMs = parsed.data.expires_in === undefined ? DEFAULT_LIFETIME_MS : parsed.data.expires_in * 1000;
    this.cached = { token: parsed.data.access_token, expiresAt: startedAt + lifetimeMs };
    return parsed.data.access_token;
  }
}

/**
 * A vendor HTTP client that sends `Authorization: Bearer <token>` and, when the API answers 401
 * (a token revoked or expired early), fetches a fresh token and tries once more. A second 401
 * is a real rejection and surfaces as `upstream.rejected`, not retryable.
 *
 * @example
 * const api = new BearerHttp(new VendorHttpClient({ vendor: 'Microsoft Graph', baseUrl }), tokens);
 * await api.request({ method: 'PATCH', path: '/v1.0/users/alice%40contoso.example', json: { accountEnabled: false } });
 */
export class BearerHttp {
  readonly http: VendorHttpClient;
  private readonly tokens: TokenSource;

  constructor(http: VendorHttpClient, tokens: TokenSource) {
    this.http = http;
    this.tokens = tokens;
  }

  async request(req: VendorRequest): Promise<VendorResponse> {
    const callerHandles401 = req.accept?.includes(401) ?? false;
    const token = await this.tokens.token();
    const res = await this.http.request({
      ...req,
      accept: [...(req.accept ?? []), 401],
      headers: { ...req.headers, Authorization: `Bearer ${token}` },
    });
    if (res.status !== 401 || callerHandles401) return res;
    this.tokens.invalidate(token);
    const fresh = await this.tokens.token();
    return this.http.request({ ...req, headers: { ...req.headers, Authorization: `Bearer ${fresh}` } });
  }
}

/** Entra ID: `{error, error_description}`; CrowdStrike: `{errors:[{code, message}]}`. */
function describeOAuthError(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  if (typeof body.error_description === 'string') {
    // Entra's description carries a trace and correlation id on later lines; the first line is the reason.
    const first = body.error_description.split(/\r?\n/)[0] ?? '';
    return typeof body.error === 'string' ? `${body.error}: ${first}` : first;
  }
  if (typeof body.error === 'string') return body.error;
  if (Array.isArray(body.errors)) {
    const messages = body.errors.filter(isRecord).map((e) => e.message).filter((m): m is string => typeof m === 'string');
    if (messages.length > 0) return messages.join('; ');
  }
  return undefined;
}

function mapTokenError(vendor: string, f: VendorFailure): ReflexError | undefined {
  // RFC 6749 §5.2 lets a server say it is temporarily unavailable in a 400 body.
  if (isRecord(f.body) && f.body.error === 'temporarily_unavailable') {
    return new ReflexError('upstream.unavailable', `${vendor} token endpoint is temporarily unavailable${f.detail ? `: ${f.detail}` : ''}`, {
      retryAfterMs: f.retryAfterMs,
      details: { vendor, status: f.status },
      safeMessage: `${vendor} sign-in is unavailable; retrying later.`,
    });
  }
  if (f.status === 400 || f.status === 401 || f.status === 403) {
    return new ReflexError('upstream.rejected', `${vendor} refused the client credentials (${f.status})${f.detail ? `: ${f.detail}` : ''}`, {
      retryable: false,
      details: { vendor, status: f.status },
      safeMessage: `${vendor} rejected the client credentials.`,
    });
  }
  return undefined;
}

function redactSecret(text: string | undefined, secret: string): string | undefined {
  return text === undefined || secret.length < 6 ? text : text.split(secret).join('[REDACTED]');
}

/** The clock, timeout and fetch that were given, and only those (an absent option stays absent). */
function givenTransport(o: { now?: (() => number) | undefined; timeoutMs?: number | undefined; fetch?: typeof fetch | undefined }) {
  return {
    ...(o.now === undefined ? {} : { now: o.now }),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
  };
}

/**
 * A client-credentials token source against Microsoft Entra ID (Graph and Defender both sign in
 * there): `<loginUrl>/<tenantId>/oauth2/v2.0/token`.
 *
 * @example
 * const tokens = entraIdTokenSource({ tenantId, clientId, clientSecret, scope: 'https://graph.microsoft.com/.default' });
 */
export function entraIdTokenSource(opts: {
  loginUrl?: string | undefined;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  now?: (() => number) | undefined;
  timeoutMs?: number | undefined;
  fetch?: typeof fetch | undefined;
}): ClientCredentialsTokenSource {
  return new ClientCredentialsTokenSource({
    vendor: 'Microsoft Entra ID',
    tokenUrl: `${(opts.loginUrl ?? 'https://login.microsoftonline.com').replace(/\/+$/, '')}/${opts.tenantId}/oauth2/v2.0/token`,
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    scope: opts.scope,
    ...givenTransport(opts),
  });
}

/** How an Entra ID app registration that calls a Microsoft API (Graph, Defender) is configured. */
export interface EntraAppOptions {
  /** Entra ID tenant (directory) id or verified domain. */
  tenantId: string;
  clientId: string;
  clientSecret: string;
  loginUrl?: string | undefined;
  scope?: string | undefined;
  /** A token source to share (tests, or one login for several clients); built from the above otherwise. */
  tokens?: TokenSource | undefined;
  timeoutMs?: number | undefined;
  fetch?: typeof fetch | undefined;
  now?: (() => number) | undefined;
}

/**
 * A Microsoft API called as an Entra ID app: the tenant id checked, a VendorHttpClient with the
 * API's error description and mapping, client-credentials tokens (or `app.tokens`) for the scope
 * (default `defaultScope(base)`), bearer authentication. Returns the client and the API's base URL.
 */
export function entraAppApi(
  app: EntraAppOptions,
  api: {
    vendor: string;
    /** How messages name the API: "<label> tenant id is empty or malformed". */
    label: string;
    baseUrl: string;
    defaultScope: (base: URL) => string;
    describeError: (body: unknown) => string | undefined;
    mapError: (failure: VendorFailure) => ReflexError | undefined;
  },
): { api: BearerHttp; base: URL } {
  if (!app.tenantId || !/^[A-Za-z0-9.-]+$/.test(app.tenantId)) {
    throw new ReflexError('config.invalid', `${api.label} tenant id is empty or malformed`, { safeMessage: `${api.label} is misconfigured (tenant id).` });
  }
  const http = new VendorHttpClient({
    vendor: api.vendor,
    baseUrl: api.baseUrl,
    describeError: api.describeError,
    mapError: api.mapError,
    ...givenTransport(app),
  });
  const base = http.url('/');
  const tokens =
    app.tokens ??
    entraIdTokenSource({
      loginUrl: app.loginUrl,
      tenantId: app.tenantId,
      clientId: app.clientId,
      clientSecret: app.clientSecret,
      scope: app.scope ?? api.defaultScope(base),
      now: app.now,
      timeoutMs: app.timeoutMs,
      fetch: app.fetch,
    });
  return { api: new BearerHttp(http, tokens), base };
}
