import { ReflexError } from '../errors.ts';
import { lightFetch } from './light-fetch.ts';

/** A value in a query string. `true` writes a bare flag (`?verbose`); `false` and `undefined` omit the key. */
export type QueryValue = string | number | boolean | undefined;

export interface VendorHttpClientOptions {
  /** Human name of the vendor, used in messages shown to analysts ("VirusTotal rejected the API key"). */
  vendor: string;
  baseUrl: string;
  /** Sent on every request. Values of `secretHeaders` are redacted from every error message. */
  headers?: Record<string, string>;
  /** Header names whose values are credentials. */
  secretHeaders?: readonly string[];
  /** Per-request timeout unless the request sets its own. */
  timeoutMs?: number;
  /**
   * Header carrying the epoch second at which a rate-limit window resets (AbuseIPDB's
   * `X-RateLimit-Reset`). Used only when `Retry-After` is absent.
   */
  rateLimitResetHeader?: string;
  /** Pulls the vendor's own error text out of an error body, for the internal message. */
  describeError?: (body: unknown) => string | undefined;
  /**
   * Lets an adapter map a failure by the vendor's own error code before the status-based mapping
   * (VirusTotal's `QuotaExceededError`, for instance). Return undefined to fall through.
   */
  mapError?: (failure: VendorFailure) => ReflexError | undefined;
  /** How requests go out; default lightFetch (node:http(s) with keep-alive). Node's fetch fits too. */
  fetch?: VendorFetch;
  now?: () => number;
}

/** The slice of fetch the client calls. */
export type VendorFetch = (
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{ ok: boolean; status: number; headers: Headers; text(): Promise<string> }>;

export interface VendorRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Joined onto the base URL; may not change its origin. */
  path: string;
  query?: Record<string, QueryValue>;
  json?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Non-2xx statuses the caller handles itself (e.g. 404 = "unknown" for intel); returned, not thrown. */
  accept?: readonly number[];
}

export interface VendorResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, the text when the body is not JSON, or undefined when empty. */
  body: unknown;
}

/** What went wrong, handed to `mapError` with the secrets already redacted from `detail`. */
export interface VendorFailure {
  status: number;
  body: unknown;
  headers: Headers;
  detail: string | undefined;
  retryAfterMs: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const REDACTED = '[REDACTED]';

/**
 * A fetch wrapper shared by the vendor clients: joins URLs, enforces a timeout, parses JSON and
 * turns every failure into a `ReflexError` whose retry behaviour the queue can trust.
 *
 * @example
 * const http = new VendorHttpClient({
 *   vendor: 'VirusTotal', baseUrl: 'https://www.virustotal.com',
 *   headers: { 'X-Apikey': key }, secretHeaders: ['X-Apikey'],
 * });
 * const { body } = await http.request({ method: 'GET', path: '/api/v3/domains/example.org', accept: [404] });
 */
export class VendorHttpClient {
  readonly vendor: string;
  private readonly base: URL;
  private readonly headers: Record<string, string>;
  private readonly secrets: string[];
  private readonly timeoutMs: number;
  private readonly opts: VendorHttpClientOptions;
  private readonly fetchImpl: VendorFetch;
  private readonly now: () => number;

  constructor(opts: VendorHttpClientOptions) {
    this.opts = opts;
    this.vendor = opts.vendor;
    this.base = parseBaseUrl(opts.vendor, opts.baseUrl);
    this.headers = { ...opts.headers };
    const secretNames = new Set((opts.secretHeaders ?? []).map((h) => h.toLowerCase()));
    this.secrets = Object.entries(this.headers)
      .filter(([name]) => secretNames.has(name.toLowerCase()))
      .flatMap(([, value]) => secretVariants(value));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetchImpl = opts.fetch ?? lightFetch;
    this.now = opts.now ?? Date.now;
  }

  /** The absolute URL for a path and query, as it would be requested. */
  url(path: string, query?: Record<string, QueryValue>): URL {
    const basePath = this.base.pathname.replace(/\/+$/, '');
    const url = new URL(this.base.origin);
    url.pathname = `${basePath}/${path.replace(/^\/+/, '')}`;
    const parts: string[] = [];
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === false) continue;
      parts.push(value === true ? encodeURIComponent(key) : `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
    }
    if (parts.length > 0) url.search = parts.join('&');
    return url;
  }

  async request(req: VendorRequest): Promise<VendorResponse> {
    const url = this.url(req.path, req.query);
    const headers: Record<string, string> = { Accept: 'application/json', ...this.headers, ...req.headers };
    let body: string | undefined;
    if (req.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(req.json);
    } else if (req.form !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(req.form).toString();
    }
    const where = `${req.method} ${this.redact(url.pathname)}`;
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;

    let res: Awaited<ReturnType<VendorFetch>>;
    try {
      res = await this.fetchImpl(url, {
        method: req.method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw this.transportError(err, where, timeoutMs);
    }

    let parsed: unknown;
    try {
      parsed = parseBody(await res.text());
    } catch (err) {
      throw this.transportError(err, where, timeoutMs);
    }

    if (res.ok || req.accept?.includes(res.status)) {
      return { status: res.status, headers: res.headers, body: parsed };
    }
    throw this.statusError(res.status, res.headers, parsed, where);
  }

  /** Removes every credential this client holds from a string. */
  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join(REDACTED);
    return out;
  }

  private statusError(status: number, headers: Headers, body: unknown, where: string): ReflexError {
    const rawDetail = this.opts.describeError?.(body) ?? (typeof body === 'string' ? body.slice(0, 300) : undefined);
    const detail = rawDetail === undefined ? undefined : this.redact(rawDetail);
    const retryAfterMs =
      parseRetryAfter(headers.get('retry-after'), this.now()) ??
      (this.opts.rateLimitResetHeader
        ? parseResetEpoch(headers.get(this.opts.rateLimitResetHeader), this.now())
        : undefined);

    const mapped = this.opts.mapError?.({ status, body, headers, detail, retryAfterMs });
    if (mapped) return mapped;

    const message = `${this.vendor} answered ${status} to ${where}${detail ? `: ${detail}` : ''}`;
    const details = { vendor: this.vendor, status };
    const v = this.vendor;
    if (status === 429) {
      return new ReflexError('upstream.rate_limited', message, {
        retryAfterMs,
        details,
        safeMessage: `${v} is rate limiting us; retrying later.`,
      });
    }
    if (status === 401 || status === 403) {
      return new ReflexError('upstream.rejected', message, {
        retryable: false,
        details,
        safeMessage: status === 401 ? `${v} rejected the API key.` : `${v} rejected the API key for this request.`,
      });
    }
    if (status === 408 || status === 504) {
      return new ReflexError('timeout', message, { retryAfterMs, details, safeMessage: `${v} timed out.` });
    }
    if (status >= 500) {
      return new ReflexError('upstream.unavailable', message, {
        retryAfterMs,
        details,
        safeMessage: `${v} is unavailable; retrying later.`,
      });
    }
    if (status === 404) {
      return new ReflexError('not_found', message, { details, safeMessage: `${v} could not find that.` });
    }
    return new ReflexError('upstream.rejected', message, {
      retryable: false,
      details,
      safeMessage: `${v} rejected the request.`,
    });
  }

  private transportError(err: unknown, where: string, timeoutMs: number): ReflexError {
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new ReflexError('timeout', `${this.vendor} did not answer ${where} within ${timeoutMs} ms`, {
        details: { vendor: this.vendor },
        safeMessage: `${this.vendor} timed out.`,
      });
    }
    const reason = err instanceof Error ? describeCause(err) : String(err);
    return new ReflexError('upstream.unavailable', `${this.vendor} unreachable on ${where}: ${this.redact(reason)}`, {
      details: { vendor: this.vendor },
      safeMessage: `${this.vendor} is unavailable; retrying later.`,
      cause: err,
    });
  }
}

/**
 * `Retry-After` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). Returns milliseconds
 * from `nowMs`, never negative, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** A reset header holding epoch seconds (AbuseIPDB `X-RateLimit-Reset`) as milliseconds from now. */
export function parseResetEpoch(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Math.max(0, Number(value.trim()) * 1000 - nowMs);
}

function parseBaseUrl(vendor: string, raw: string): URL {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`unsupported scheme ${url.protocol}`);
    return url;
  } catch (err) {
    throw new ReflexError('config.invalid', `${vendor} base URL is not a valid http(s) URL`, {
      safeMessage: `${vendor} is misconfigured (base URL).`,
      cause: err,
    });
  }
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // Proxies and load balancers answer HTML error pages; keep the text for the error message.
    return text;
  }
}

function secretVariants(value: string): string[] {
  const bare = value.replace(/^(Bearer|Basic|Token)\s+/i, '');
  // Short values would redact ordinary words out of messages; real API keys are long.
  return [...new Set([value, bare])].filter((s) => s.length >= 6);
}

function describeCause(err: Error): string {
  // undici hides the useful part (ECONNREFUSED, ENOTFOUND) in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}

/** A JSON object (not null, not an array): the first check on any vendor body. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Cortex and TheHive share the Play framework's `{"type": "...", "message": "..."}` error body. */
export function describePlayError(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const type = typeof body.type === 'string' ? body.type : undefined;
  const message = typeof body.message === 'string' ? body.message : undefined;
  return type || message ? [type, message].filter(Boolean).join(': ') : undefined;
}

/** A vendor answered 2xx with a body we cannot use: retryable, as a half-deployed upgrade would be. */
export function unexpectedAnswer(vendor: string, what: string): ReflexError {
  return new ReflexError('upstream.unavailable', `${vendor} answered unexpectedly: ${what}`, {
    details: { vendor },
    safeMessage: `${vendor} answered in an unexpected way.`,
  });
}
