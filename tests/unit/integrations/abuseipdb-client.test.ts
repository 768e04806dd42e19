import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { AbuseIpdbClient } from '../../../src/integrations/abuseipdb/abuseipdb-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const CHECK_JSON = fixture('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json');
const BLOCK_JSON = fixture('intel/abuseipdb_v2_check-block__rapid7_check_cidr_data.json');
const REPORT_JSON = fixture('intel/abuseipdb_v2_report__rapid7_report_ip_data.json');

/** The /check fixture with some `data` fields changed where a test needs another answer. */
function checkWith(changes: Record<string, unknown>): string {
  const body = JSON.parse(CHECK_JSON) as { data: Record<string, unknown> };
  Object.assign(body.data, changes);
  return JSON.stringify(body);
}

const BASE = 'https://api.abuseipdb.com';
const KEY = 'abuseipdb-test-key-55aa';
const NOW = new Date('2025-03-01T12:00:00.000Z');
const abuse = () => new AbuseIpdbClient({ apiKey: KEY, now: () => NOW });
const api = () => nock(BASE, { reqheaders: { key: KEY, accept: 'application/json' } });
const CHECK_QUERY = { ipAddress: '198.51.100.100', maxAgeInDays: '90', verbose: '' };


useStrictNock();

describe('AbuseIpdbClient.lookup', () => {
  it('takes abuseConfidenceScore from the verbose /check fixture as the score', async () => {
    let seenPath = '';
    api()
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(function (uri) {
        seenPath = uri;
        return [200, CHECK_JSON, { 'Content-Type': 'application/json' }];
      });

    const v = await abuse().lookup({ kind: 'ip', value: ' 198.51.100.100 ' });

    expect(seenPath).toBe('/api/v2/check?ipAddress=198.51.100.100&maxAgeInDays=90&verbose');
    expect(v.score).toBe(100);
    expect(v.verdict).toBe('malicious');
    expect(v.summary).toBe(
      'abuse confidence 100%, 1 report(s) from 1 user(s) in 90 days (CN, Tencent Cloud Computing (Beijing) Co. Ltd)',
    );
    expect(v.provider).toBe('abuseipdb');
    expect(v.fetchedAt).toBe(NOW.toISOString());
    expect(v.raw).toEqual(JSON.parse(CHECK_JSON));
  });

  it('grades scores against the thresholds', async () => {
    api()
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(200, checkWith({ abuseConfidenceScore: 30 }))
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(200, checkWith({ abuseConfidenceScore: 5 }));
    expect((await abuse().lookup({ kind: 'ip', value: '198.51.100.100' })).verdict).toBe('suspicious');
    // Reported once, low confidence: seen, not judged bad.
    const low = await abuse().lookup({ kind: 'ip', value: '198.51.100.100' });
    expect([low.verdict, low.score]).toEqual(['harmless', 5]);
  });

  it('calls an IP nobody has reported unknown, not harmless', async () => {
    api()
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(200, checkWith({ abuseConfidenceScore: 0, totalReports: 0, numDistinctUsers: 0, reports: [], lastReportedAt: null }));
    const v = await abuse().lookup({ kind: 'ip', value: '198.51.100.100' });
    expect([v.verdict, v.score]).toEqual(['unknown', 0]);
  });

  it('trusts isWhitelisted over a high score', async () => {
    api().get('/api/v2/check').query(CHECK_QUERY).reply(200, checkWith({ isWhitelisted: true }));
    const v = await abuse().lookup({ kind: 'ip', value: '198.51.100.100' });
    expect(v.verdict).toBe('harmless');
    expect(v.summary).toContain('whitelisted');
  });

  it('accepts isWhitelisted: null and extra fields newer API versions send', async () => {
    api()
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(200, checkWith({ isWhitelisted: null, isTor: false, hostnames: [] }));
    const v = await abuse().lookup({ kind: 'ip', value: '198.51.100.100' });
    expect(v.verdict).toBe('malicious');
  });

  it('supports only IP addresses', async () => {
    const a = abuse();
    expect([a.supports('ip'), a.supports('domain'), a.supports('url'), a.supports('hash')]).toEqual([true, false, false, false]);
    const err = await failure(a.lookup({ kind: 'domain', value: 'example.org' }));
    expect(err.code).toBe('input.invalid');
  });
});

describe('AbuseIpdbClient.checkBlock and report', () => {
  it('parses the check-block fixture', async () => {
    api().get('/api/v2/check-block').query({ network: '198.51.100.0/24', maxAgeInDays: '30' }).reply(200, BLOCK_JSON);
    const block = await abuse().checkBlock('198.51.100.0/24');
    expect(block.networkAddress).toBe('198.51.100.100');
    expect(block.netmask).toBe('255.255.255.0');
    expect(block.numPossibleHosts).toBe(254);
    expect(block.reportedAddresses).toEqual([
      {
        ipAddress: '198.51.100.100',
        numReports: 3,
        mostRecentReport: '2019-08-28T21:08:34+01:00',
        abuseConfidenceScore: 11,
        countryCode: 'CN',
      },
    ]);
  });

  it('reports an IP as a form post and returns the new confidence', async () => {
    let body: unknown;
    api()
      .matchHeader('content-type', 'application/x-www-form-urlencoded')
      .post('/api/v2/report', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(200, REPORT_JSON);

    const res = await abuse().report('127.0.0.1', [18, 22, 18], 'sshd brute force from SENTreflex');
    expect(body).toEqual({ ip: '127.0.0.1', categories: '18,22', comment: 'sshd brute force from SENTreflex' });
    expect(res).toEqual({ ipAddress: '127.0.0.1', abuseConfidenceScore: 52 });
  });

  it('truncates comments to the 1024 characters AbuseIPDB accepts', async () => {
    let comment = '';
    api()
      .post('/api/v2/report', (b: { comment?: string }) => {
        comment = b.comment ?? '';
        return true;
      })
      .reply(200, REPORT_JSON);
    await abuse().report('127.0.0.1', [18], 'x'.repeat(5000));
    expect(comment).toHaveLength(1024);
  });

  it('refuses bad categories and non-IPs without calling AbuseIPDB', async () => {
    expect((await failure(abuse().report('127.0.0.1', []))).code).toBe('input.invalid');
    expect((await failure(abuse().report('127.0.0.1', [99]))).code).toBe('input.invalid');
    expect((await failure(abuse().report('localhost', [18]))).code).toBe('input.invalid');
    expect((await failure(abuse().checkBlock('198.51.100.0'))).code).toBe('input.invalid');
  });
});

// No AbuseIPDB error body exists in the fixtures, so these answer with status and headers only.
describe('AbuseIpdbClient errors', () => {
  it('maps 429 with Retry-After and X-RateLimit-* headers to a rate limit', async () => {
    api().get('/api/v2/check').query(CHECK_QUERY).reply(429, undefined, {
      'Retry-After': '29',
      'X-RateLimit-Limit': '1000',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': String(NOW.getTime() / 1000 + 3600),
    });
    const err = await failure(abuse().lookup({ kind: 'ip', value: '198.51.100.100' }));
    expect(err.code).toBe('upstream.rate_limited');
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBe(29_000);
  });

  it('uses X-RateLimit-Reset when Retry-After is missing', async () => {
    api()
      .get('/api/v2/check')
      .query(CHECK_QUERY)
      .reply(429, undefined, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(NOW.getTime() / 1000 + 3600) });
    const err = await failure(abuse().lookup({ kind: 'ip', value: '198.51.100.100' }));
    expect(err.retryAfterMs).toBe(3_600_000);
  });

  it('maps 401 to a non-retryable rejection naming AbuseIPDB', async () => {
    api().get('/api/v2/check').query(CHECK_QUERY).reply(401);
    const err = await failure(abuse().lookup({ kind: 'ip', value: '198.51.100.100' }));
    expect([err.code, err.retryable, err.safeMessage]).toEqual(['upstream.rejected', false, 'AbuseIPDB rejected the API key.']);
  });

  it('maps 503 to retryable upstream.unavailable', async () => {
    api().get('/api/v2/check').query(CHECK_QUERY).reply(503);
    const err = await failure(abuse().lookup({ kind: 'ip', value: '198.51.100.100' }));
    expect([err.code, err.retryable]).toEqual(['upstream.unavailable', true]);
  });
});
