import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { parseRetryAfter } from '../../integrations/http.ts';

/** Renew this long before expiry, so a token never dies in flight. */
const EARLY_RENEWAL_MS = 5 * 60_000;

const tokenResponse = z.object({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().int().positive(),
  token_type: z.string().optional(),
});

export interface TeamsTokensOptions {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs?: number;
  now?: () => number;
}

/**
 * App-only tokens of the bot's Entra ID app registration (OAuth 2.0 client credentials), one per
 * scope: the Bot Connector's (`https://api.botframework.com/.default`) and Microsoft Graph's.
 * Cached until five minutes before they expire; concurrent callers share one request.
 *
 * Written here rather than taken from the Teams SDK's TokenManager because that one goes through
 * MSAL, whose authority discovery cannot be pointed at a sovereign or test token endpoint by URL.
 * Neither the secret nor a token is ever put in an error message.
 *
 * @example
 * const tokens = new TeamsTokens({ tokenUrl, clientId, clientSecret });
 * const bearer = await tokens.get('https://api.botframework.com/.default');
 */
export class TeamsTokens {
  private readonly cache = new Map<string, { token: string; renewAt: number }>();
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly now: () => number;

  constructor(private readonly opts: TeamsTokensOptions) {
    this.now = opts.now ?? Date.now;
  }

  async get(scope: string): Promise<string> {
    const hit = this.cache.get(scope);
    if (hit && this.now() < hit.renewAt) return hit.token;
    let pending = this.inFlight.get(scope);
    if (!pending) {
      pending = this.fetchToken(scope).finally(() => this.inFlight.delete(scope));
      this.inFlight.set(scope, pending);
    }
    return pending;
  }

  /** Forgets a token the service refused (401), so the next call asks for a new one. */
  invalidate(scope: string): void {
    this.cache.delete(scope);
  }

  private async fetchToken(scope: string): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.opts.clientId, client_secret: this.opts.clientSecret, scope });
    let res: Response;
    try {
      res = await fetch(this.opts.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new ReflexError('upstream.unavailable', `Entra ID token endpoint unreachable: ${err instanceof Error ? err.message : String(err)}`, {
        safeMessage: 'Microsoft sign-in is unreachable; retrying.',
        details: { vendor: 'Microsoft Entra ID' },
      });
    }
    const json = (await res.json().catch(() => undefined)) as unknown;
    if (!res.ok) {
      // `error` is an OAuth code (invalid_client, unauthorized_client…): safe to log, unlike the description's echoes.
      const code = typeof (json as { error?: unknown } | undefined)?.error === 'string' ? (json as { error: string }).error : `HTTP ${res.status}`;
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now());
      if (res.status === 429) {
        throw new ReflexError('upstream.rate_limited', `Entra ID token endpoint: 429`, { retryAfterMs: retryAfterMs ?? 1000, details: { vendor: 'Microsoft Entra ID' } });
      }
      if (res.status >= 500) throw new ReflexError('upstream.unavailable', `Entra ID token endpoint: ${code}`, { ...(retryAfterMs ? { retryAfterMs } : {}), details: { vendor: 'Microsoft Entra ID' } });
      throw new ReflexError('upstream.rejected', `Entra ID refused the Teams app credentials: ${code}`, {
        retryable: false,
        safeMessage: 'Microsoft refused the Teams app credentials (check TEAMS_CLIENT_ID, TEAMS_CLIENT_SECRET, TEAMS_TENANT_ID).',
        details: { vendor: 'Microsoft Entra ID', error: code },
      });
    }
    const parsed = tokenResponse.safeParse(json);
    if (!parsed.success) throw new ReflexError('upstream.unavailable', 'Entra ID token endpoint answered without an access_token', { details: { vendor: 'Microsoft Entra ID' } });
    const lifetimeMs = parsed.data.expires_in * 1000;
    this.cache.set(scope, { token: parsed.data.access_token, renewAt: this.now() + Math.max(lifetimeMs - EARLY_RENEWAL_MS, lifetimeMs / 2) });
    return parsed.data.access_token;
  }
}
