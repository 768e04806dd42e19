import { isIP } from 'node:net';
import { ReflexError } from '../../errors.ts';
import { compileBareExpression } from '../expressions.ts';
import { parseDuration } from '../manifest/duration.ts';
import type { ActionExecutor } from './registry.ts';

/**
 * The `http.request` action: calls any REST endpoint a playbook names.
 *
 * - `url` is an absolute http(s) URL, or `secret:<name>` to take it from the vault (webhook URLs
 *   often carry their token). Tenant configuration reaches it through `${{ tenant.<key> }}`.
 * - `secret` names a vault secret sent as `Authorization: Bearer …`; tokens never live in a manifest.
 * - Every call carries `Idempotency-Key: <run>-<step>`, the same on every attempt.
 * - Redirects are followed only to the same origin (at most 5); a redirect to another host, or
 *   from https to http, is refused: a compromised endpoint must not bounce our bearer token on.
 * - Link-local and cloud metadata addresses are always refused; loopback and private addresses
 *   only when the server allows them (`allowPrivateNetworks`, on outside production). Host names
 *   are not resolved first, so a DNS name pointing inward is the operator's network policy to stop.
 * - `success` is JSONata over `{ response: { status, headers, body }, event, inputs, steps, tenant }`
 *   evaluated after the call (default: 2xx). A failed check is retryable for 5xx/429/408 only.
 *
 * @example
 * registry.register('http.request', createHttpRequestExecutor({ allowPrivateNetworks: false }));
 */
export interface HttpRequestExecutorOptions {
  allowPrivateNetworks: boolean;
  fetch?: typeof fetch;
  /** Largest response body read, in bytes. */
  maxBodyBytes?: number;
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;

function refuse(message: string, safe = message): ReflexError {
  return new ReflexError('input.invalid', message, { retryable: false, safeMessage: safe });
}

function ipv4Parts(host: string): number[] | undefined {
  return isIP(host) === 4 ? host.split('.').map(Number) : undefined;
}

/** Classifies a literal host: 'metadata' is never allowed, 'private' only when configured. */
export function hostClass(hostname: string): 'public' | 'private' | 'metadata' {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'metadata.google.internal' || host === 'metadata') return 'metadata';
  if (host === 'localhost' || host.endsWith('.localhost')) return 'private';
  const v4 = ipv4Parts(host);
  if (v4) {
    const [a, b] = v4 as [number, number];
    if (a === 169 && b === 254) return 'metadata';
    if (a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)) {
      return 'private';
    }
    return 'public';
  }
  if (isIP(host) === 6) {
    if (host.startsWith('fe80:') || host === 'fd00:ec2::254') return 'metadata';
    if (host === '::1' || host === '::' || host.startsWith('fc') || host.startsWith('fd')) return 'private';
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
    if (mapped) return hostClass(mapped[1]!);
  }
  return 'public';
}

function checkUrl(raw: string, allowPrivate: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse(`http.request: url ${JSON.stringify(raw.slice(0, 200))} is not an absolute URL`, 'http.request needs an absolute http(s) URL.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse(`http.request: scheme ${url.protocol} is not allowed`);
  if (url.username || url.password) throw refuse('http.request: credentials in the URL are refused; use secret:');
  const cls = hostClass(url.hostname);
  if (cls === 'metadata') throw refuse(`http.request: ${url.hostname} is a link-local / metadata address and is always refused`);
  if (cls === 'private' && !allowPrivate) {
    throw refuse(`http.request: ${url.hostname} is a private or loopback address, which this server does not call`);
  }
  return url;
}

function parseBody(text: string, contentType: string | null): unknown {
  if (text === '') return null;
  if (contentType?.includes('json') || /^[[{]/.test(text.trim())) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function statusRetryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export function createHttpRequestExecutor(options: HttpRequestExecutorOptions): ActionExecutor {
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  return async (input, ctx) => {
    const method = String(input['method'] ?? '').toUpperCase();
    if (!METHODS.has(method)) throw refuse(`http.request: method ${JSON.stringify(input['method'])} is not one of ${[...METHODS].join(', ')}`);
    let rawUrl = String(input['url'] ?? '');
    if (rawUrl.startsWith('secret:')) rawUrl = await ctx.secrets.require(rawUrl.slice('secret:'.length));
    let url = checkUrl(rawUrl, options.allowPrivateNetworks);

    const headers: Record<string, string> = {};
    const given = input['headers'];
    if (given !== undefined) {
      if (typeof given !== 'object' || given === null || Array.isArray(given)) throw refuse('http.request: headers must be a mapping');
      for (const [k, v] of Object.entries(given)) headers[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    if (typeof input['secret'] === 'string') headers['Authorization'] = `Bearer ${await ctx.secrets.require(input['secret'])}`;
    headers['Idempotency-Key'] = ctx.idempotencyKey;
    let body: string | undefined;
    const b = input['body'];
    if (b !== undefined && b !== null) {
      if (typeof b === 'string') body = b;
      else {
        body = JSON.stringify(b);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
      }
    }
    const own = typeof input['timeout'] === 'string' ? parseDuration(input['timeout']) : undefined;
    const timeoutMs = Math.min(own ?? DEFAULT_TIMEOUT_MS, ctx.timeoutMs);
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
    const doFetch = options.fetch ?? ((i: URL, init: RequestInit) => fetch(i, init));

    let res: Response | undefined;
    for (let hop = 0; ; hop++) {
      try {
        res = await doFetch(url, { method, headers, ...(body === undefined ? {} : { body }), redirect: 'manual', signal });
      } catch (err) {
        const name = err instanceof Error ? err.name : '';
        if (name === 'TimeoutError' || name === 'AbortError') {
          throw new ReflexError('timeout', `http.request ${method} ${url.origin}${url.pathname} did not answer within ${timeoutMs} ms`, {
            safeMessage: `${url.host} did not answer in time.`,
          });
        }
        const cause = (err as { cause?: { message?: string } }).cause?.message;
        throw new ReflexError('upstream.unavailable', `http.request ${method} ${url.origin}${url.pathname} failed: ${cause ?? String(err)}`, {
          safeMessage: `${url.host} is unreachable.`,
          cause: err,
        });
      }
      if (res.status < 300 || res.status >= 400 || !res.headers.get('location')) break;
      const next = new URL(res.headers.get('location')!, url);
      if (next.host !== url.host || (url.protocol === 'https:' && next.protocol !== 'https:')) {
        await res.body?.cancel();
        throw new ReflexError('upstream.rejected', `http.request: ${url.host} redirected to ${next.protocol}//${next.host}, another host; refused`, {
          retryable: false,
          safeMessage: `${url.host} redirected to another host; SENTreflex does not follow it.`,
        });
      }
      if (hop + 1 >= MAX_REDIRECTS) {
        await res.body?.cancel();
        throw new ReflexError('upstream.rejected', `http.request: more than ${MAX_REDIRECTS} redirects`, { retryable: false });
      }
      await res.body?.cancel();
      url = checkUrl(next.toString(), options.allowPrivateNetworks);
    }

    const buf = Buffer.from(await res.arrayBuffer());
    const text = buf.subarray(0, maxBody).toString('utf8');
    const response = {
      status: res.status,
      headers: Object.fromEntries([...res.headers.entries()].filter(([k]) => !/^set-cookie$/i.test(k))),
      body: parseBody(text, res.headers.get('content-type')),
    };
    ctx.log(`${method} ${url.origin}${url.pathname} -> ${res.status}`);
    let ok: boolean;
    if (typeof input['success'] === 'string' && input['success'].trim() !== '') {
      ok = await compileBareExpression(input['success'], `${ctx.stepId}.with.success`).test({ ...ctx.expressionContext, response });
    } else {
      ok = res.status >= 200 && res.status < 300;
    }
    if (!ok) {
      throw new ReflexError(statusRetryable(res.status) ? 'upstream.unavailable' : 'upstream.rejected', `http.request ${method} ${url.origin}${url.pathname} answered ${res.status}, which the success check refused`, {
        retryable: statusRetryable(res.status),
        safeMessage: `${url.host} answered ${res.status}.`,
        details: { status: res.status },
      });
    }
    return response;
  };
}
