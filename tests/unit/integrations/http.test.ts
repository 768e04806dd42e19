import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { VendorHttpClient, parseResetEpoch, parseRetryAfter } from '../../../src/integrations/http.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const VT_DOMAIN = 'intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json';
const VT_ERROR = 'intel/virustotal_v3_error_envelope__vt-py_tests.json';

const BASE = 'https://vendor.example.test';
const KEY = 'k3y-0123456789abcdef';
const NOW = Date.parse('2025-03-01T12:00:00.000Z');

function client(extra: Partial<ConstructorParameters<typeof VendorHttpClient>[0]> = {}): VendorHttpClient {
  return new VendorHttpClient({
    vendor: 'Acme Intel',
    baseUrl: BASE,
    headers: { 'X-Apikey': KEY },
    secretHeaders: ['X-Apikey'],
    now: () => NOW,
    describeError: (body) => {
      const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
      return e ? `${e.code}: ${e.message}` : undefined;
    },
    ...extra,
  });
}


useStrictNock();

describe('parseRetryAfter', () => {
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', NOW)).toBe(120_000);
    expect(parseRetryAfter(' 1.5 ', NOW)).toBe(1_500);
  });

  it('reads an HTTP date relative to now, never negative', () => {
    expect(parseRetryAfter('Sat, 01 Mar 2025 12:00:45 GMT', NOW)).toBe(45_000);
    expect(parseRetryAfter('Sat, 01 Mar 2025 11:00:00 GMT', NOW)).toBe(0);
  });

  it('ignores absent or unreadable values', () => {
    expect(parseRetryAfter(null, NOW)).toBeUndefined();
    expect(parseRetryAfter('', NOW)).toBeUndefined();
    expect(parseRetryAfter('soon', NOW)).toBeUndefined();
  });

  it('reads epoch-second reset headers', () => {
    expect(parseResetEpoch(String(NOW / 1000 + 30), NOW)).toBe(30_000);
    expect(parseResetEpoch('not-a-number', NOW)).toBeUndefined();
  });
});

describe('VendorHttpClient', () => {
  it('joins the base path, sends credentials and parses JSON', async () => {
    const body = fixture(VT_DOMAIN);
    nock(`${BASE}`, { reqheaders: { 'x-apikey': KEY, accept: 'application/json' } })
      .get('/prefix/api/v3/domains/example.org')
      .query({ a: '1', flag: '' })
      .reply(200, body, { 'Content-Type': 'application/json' });

    const http = client({ baseUrl: `${BASE}/prefix/` });
    const res = await http.request({ method: 'GET', path: '/api/v3/domains/example.org', query: { a: 1, flag: true, skip: undefined } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(JSON.parse(body));
  });

  it('writes a bare flag for `true` query values', () => {
    expect(client().url('/x', { ipAddress: '198.51.100.1', verbose: true }).toString()).toBe(
      `${BASE}/x?ipAddress=198.51.100.1&verbose`,
    );
  });

  it('returns accepted non-2xx statuses instead of throwing', async () => {
    nock(BASE).get('/files/abc').reply(404, fixture(VT_ERROR));
    const res = await client().request({ method: 'GET', path: '/files/abc', accept: [404] });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'NotFoundError', message: 'Resource not found.' } });
  });

  it('maps 429 to a retryable rate limit with Retry-After as an HTTP date', async () => {
    nock(BASE).get('/x').reply(429, undefined, { 'Retry-After': 'Sat, 01 Mar 2025 12:01:00 GMT' });
    const err = await failure(client().request({ method: 'GET', path: '/x' }));
    expect(err.code).toBe('upstream.rate_limited');
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBe(60_000);
  });

  it('falls back to the vendor reset header when Retry-After is absent', async () => {
    nock(BASE).get('/x').reply(429, undefined, { 'X-RateLimit-Reset': String(NOW / 1000 + 90) });
    const err = await failure(client({ rateLimitResetHeader: 'X-RateLimit-Reset' }).request({ method: 'GET', path: '/x' }));
    expect(err.retryAfterMs).toBe(90_000);
  });

  it('maps 5xx to retryable upstream.unavailable and 504 to timeout', async () => {
    nock(BASE).get('/x').reply(502).get('/y').reply(504);
    const e502 = await failure(client().request({ method: 'GET', path: '/x' }));
    expect([e502.code, e502.retryable]).toEqual(['upstream.unavailable', true]);
    const e504 = await failure(client().request({ method: 'GET', path: '/y' }));
    expect([e504.code, e504.retryable]).toEqual(['timeout', true]);
  });

  it('maps 401 and 403 to non-retryable rejections that name the vendor', async () => {
    nock(BASE).get('/x').reply(401).get('/y').reply(403);
    const e401 = await failure(client().request({ method: 'GET', path: '/x' }));
    expect([e401.code, e401.retryable, e401.safeMessage]).toEqual(['upstream.rejected', false, 'Acme Intel rejected the API key.']);
    const e403 = await failure(client().request({ method: 'GET', path: '/y' }));
    expect([e403.code, e403.retryable]).toEqual(['upstream.rejected', false]);
  });

  it('redacts the API key when the vendor echoes it back', async () => {
    // Built from the VT error envelope fixture, message changed to echo the key as some vendors do.
    const envelope = JSON.parse(fixture(VT_ERROR)) as { error: { code: string; message: string } };
    envelope.error = { code: 'WrongCredentialsError', message: `Wrong API key ${KEY}` };
    nock(BASE).get('/x').reply(401, JSON.stringify(envelope));

    const err = await failure(client().request({ method: 'GET', path: '/x' }));
    expect(err.message).toContain('WrongCredentialsError');
    expect(err.message).toContain('[REDACTED]');
    expect(err.message).not.toContain(KEY);
    expect(JSON.stringify(err.details)).not.toContain(KEY);
  });

  it('lets an adapter map by vendor error code before the status', async () => {
    nock(BASE).get('/x').reply(400, fixture(VT_ERROR));
    const mapped = new ReflexError('not_found', 'mapped');
    const err = await failure(
      client({ mapError: (f) => (f.detail?.startsWith('NotFoundError') ? mapped : undefined) }).request({ method: 'GET', path: '/x' }),
    );
    expect(err).toBe(mapped);
  });

  it('turns a timeout into a retryable timeout error', async () => {
    nock(BASE).get('/slow').delay(500).reply(200, fixture(VT_DOMAIN));
    const err = await failure(client({ timeoutMs: 50 }).request({ method: 'GET', path: '/slow' }));
    expect(err.code).toBe('timeout');
    expect(err.retryable).toBe(true);
  });

  it('turns a network failure into retryable upstream.unavailable', async () => {
    // The string form: nock 14 never emits the object form ({ code, message }) on node:http requests.
    nock(BASE).get('/x').replyWithError('socket hang up');
    const err = await failure(client().request({ method: 'GET', path: '/x' }));
    expect(err.code).toBe('upstream.unavailable');
    expect(err.retryable).toBe(true);
  });

  it('sends JSON and form bodies with their content types', async () => {
    nock(BASE)
      .post('/json', { a: 1 })
      .matchHeader('content-type', 'application/json')
      .reply(201, fixture(VT_DOMAIN))
      .post('/form', 'ip=198.51.100.100&categories=18%2C22')
      .matchHeader('content-type', 'application/x-www-form-urlencoded')
      .reply(200, fixture(VT_DOMAIN));
    await client().request({ method: 'POST', path: '/json', json: { a: 1 } });
    await client().request({ method: 'POST', path: '/form', form: { ip: '198.51.100.100', categories: '18,22' } });
  });

  it('rejects a base URL that is not http(s)', () => {
    expect(() => client({ baseUrl: 'ftp://vendor.example.test' })).toThrow(ReflexError);
  });
});
