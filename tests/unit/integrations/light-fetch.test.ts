import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lightFetch } from '../../../src/integrations/light-fetch.ts';

// A real local server: lightFetch is node:http underneath, and this checks what its callers read.
describe('lightFetch', () => {
  let server: http.Server;
  let base: string;
  const seen: { method?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        if (req.url === '/moved') return void res.writeHead(302, { location: '/elsewhere' }).end();
        if (req.url === '/slow') return void setTimeout(() => res.end('late'), 2000);
        res.writeHead(429, [['retry-after', '7'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['content-type', 'application/json']]);
        res.end('{"error":"ratelimited","ü":"✓"}');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends method, headers and a UTF-8 body, and gives back status, headers and text', async () => {
    const res = await lightFetch(`${base}/x`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-key': 'k' }, body: '{"q":"ü"}' });
    expect(res.ok).toBe(false);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(await res.text()).toBe('{"error":"ratelimited","ü":"✓"}');
    const req = seen.at(-1)!;
    expect(req).toMatchObject({ method: 'POST', body: '{"q":"ü"}' });
    expect(req.headers['x-key']).toBe('k');
    expect(req.headers['content-length']).toBe(String(Buffer.byteLength('{"q":"ü"}')));
  });

  it('does not follow a redirect: the 3xx comes back as a failure', async () => {
    const res = await lightFetch(new URL(`${base}/moved`));
    expect(res.status).toBe(302);
    expect(res.ok).toBe(false);
    expect(seen.filter((r) => r.method === 'GET')).toHaveLength(1);
  });

  it('gives up when the signal fires, with an AbortError the vendor client maps to a timeout', async () => {
    const err = await lightFetch(`${base}/slow`, { signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
  });

  it('refuses a protocol it does not speak', async () => {
    await expect(lightFetch('ftp://example.com/x')).rejects.toThrow(/unsupported protocol/);
  });
});
