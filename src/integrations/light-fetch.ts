import http from 'node:http';
import https from 'node:https';

/**
 * The part of `fetch` our vendor and Slack clients use (method, headers, a string body, an abort
 * signal; status, headers, text), over node:http(s) with keep-alive agents. Node's fetch (undici
 * with WHATWG streams) costs noticeably more CPU per call, and a chat command or a new alert makes
 * two or three such calls: on a 2-core machine that is throughput (docs/BENCHMARKS.md, chat).
 *
 * Differences from fetch, on purpose: redirects are never followed (a 3xx comes back as is, which
 * our callers treat as a failure, as they asked fetch with `redirect: 'error'` or by checking
 * `ok`), no response decompression (we send no Accept-Encoding, so servers answer uncompressed),
 * and only string bodies. nock intercepts node:http, so tests see these calls as before.
 */
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

export interface LightResponse {
  ok: boolean;
  status: number;
  headers: Headers;
  text(): Promise<string>;
}

export function lightFetch(input: URL | string, init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {}): Promise<LightResponse> {
  const url = typeof input === 'string' ? new URL(input) : input;
  const protocol = url.protocol as keyof typeof agents;
  const transport = protocol === 'https:' ? https : protocol === 'http:' ? http : undefined;
  if (!transport) return Promise.reject(new TypeError(`lightFetch: unsupported protocol ${url.protocol}`));
  return new Promise((resolve, reject) => {
    init.signal?.throwIfAborted();
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
    const req = transport.request(url, { method: init.method ?? 'GET', headers, agent: agents[protocol], ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      const body = new Promise<string>((done, fail) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('response aborted')));
      });
      // Read the body right away (a caller that never reads it must not hold the socket).
      body.catch(() => undefined);
      const h = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) h.append(name, v);
      }
      const status = res.statusCode ?? 0;
      resolve({ ok: status >= 200 && status < 300, status, headers: h, text: () => body });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
