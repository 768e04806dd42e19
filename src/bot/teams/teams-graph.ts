import { ReflexError } from '../../errors.ts';
import { parseRetryAfter } from '../../integrations/http.ts';
import type { TeamsTokens } from './teams-tokens.ts';

export interface GraphResult<T> {
  status: number;
  body: T;
}

/** A Graph error's code and message (`{"error":{"code","message"}}`), for deciding and for logs. */
export interface GraphErrorInfo {
  status: number;
  code: string;
  message: string;
}

/**
 * Microsoft Graph with the bot's app-only token (application permissions), one call per method,
 * no retries of its own: the SEV1 channel job retries, durably, and honours `Retry-After`.
 * A failure leaves as a ReflexError carrying `details.graph` (status, code, message) so callers
 * can recognise "already exists" answers.
 *
 * @example
 * const graph = new TeamsGraph({ baseUrl: 'https://graph.microsoft.com', tokens, scope: 'https://graph.microsoft.com/.default' });
 * const { body } = await graph.call<{ id: string }>('POST', `/v1.0/teams/${teamId}/channels`, { displayName: 'inc-…' });
 */
export class TeamsGraph {
  constructor(private readonly opts: { baseUrl: string; tokens: TeamsTokens; scope: string; timeoutMs?: number }) {}

  /** e.g. https://graph.microsoft.com, for `@odata.bind` references. */
  get baseUrl(): string {
    return this.opts.baseUrl;
  }

  async call<T>(method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown): Promise<GraphResult<T>> {
    const token = await this.opts.tokens.get(this.opts.scope);
    let res: Response;
    try {
      res = await fetch(`${this.opts.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
    } catch (err) {
      throw new ReflexError('upstream.unavailable', `Graph ${method} ${path}: ${err instanceof Error ? err.message : String(err)}`, {
        safeMessage: 'Microsoft Graph is unreachable; retrying.',
        details: { vendor: 'Microsoft Graph' },
      });
    }
    const text = await res.text().catch(() => '');
    const json = parseJson(text);
    if (res.ok) return { status: res.status, body: json as T };
    const err = json as { error?: { code?: unknown; message?: unknown } } | undefined;
    const graph: GraphErrorInfo = {
      status: res.status,
      code: typeof err?.error?.code === 'string' ? err.error.code : `HTTP ${res.status}`,
      message: typeof err?.error?.message === 'string' ? err.error.message.slice(0, 300) : '',
    };
    const what = `Graph ${method} ${path}: ${graph.status} ${graph.code}`;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now());
    if (res.status === 401) this.opts.tokens.invalidate(this.opts.scope);
    if (res.status === 429) throw new ReflexError('upstream.rate_limited', what, { retryAfterMs: retryAfterMs ?? 1000, details: { vendor: 'Microsoft Graph', graph } });
    if (res.status >= 500 || res.status === 401) throw new ReflexError('upstream.unavailable', what, { ...(retryAfterMs ? { retryAfterMs } : {}), details: { vendor: 'Microsoft Graph', graph } });
    throw new ReflexError('upstream.rejected', what, { retryable: false, safeMessage: `Microsoft Graph refused the request (${graph.code}).`, details: { vendor: 'Microsoft Graph', graph } });
  }
}

/** The Graph error details of a ReflexError from `TeamsGraph.call`, if it is one. */
export function graphError(err: unknown): GraphErrorInfo | undefined {
  return err instanceof ReflexError ? (err.details?.graph as GraphErrorInfo | undefined) : undefined;
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A Graph 403 turned into an error an operator can act on: what failed and which application
 * permission the app registration lacks (Graph's own text says "Missing role permissions on the
 * request…"). Other errors are returned as they are.
 *
 * @example
 * throw withPermissionHint(err, 'Creating the SEV1 group chat', 'Chat.Create');
 */
export function withPermissionHint(err: unknown, what: string, permission: string): unknown {
  const g = graphError(err);
  if (!g || g.status !== 403) return err;
  return new ReflexError(
    'upstream.rejected',
    `${what} failed: Microsoft Graph answered 403 ${g.code}${g.message ? ` (${g.message})` : ''}. ` +
      `Grant the app registration the Microsoft Graph application permission ${permission} with admin consent (docs/CHAT.md, "Installing the Teams app").`,
    {
      retryable: false,
      safeMessage: `${what} failed: SENTreflex lacks the Microsoft Graph permission ${permission}.`,
      details: { vendor: 'Microsoft Graph', graph: g, permission },
    },
  );
}
