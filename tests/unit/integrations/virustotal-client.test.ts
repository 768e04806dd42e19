import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { VirusTotalClient } from '../../../src/integrations/virustotal/virustotal-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const DOMAIN_JSON = fixture('intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json');
const ERROR_JSON = fixture('intel/virustotal_v3_error_envelope__vt-py_tests.json');

type DomainBody = { data: { attributes: { last_analysis_stats: Record<string, number> } } };

/** The domain fixture with `last_analysis_stats` changed where a test needs other numbers. */
function domainWithStats(stats: Record<string, number>): string {
  const body = JSON.parse(DOMAIN_JSON) as DomainBody;
  body.data.attributes.last_analysis_stats = stats;
  return JSON.stringify(body);
}

/** The vt-py error envelope fixture with its code/message changed to another documented VT error. */
function vtError(code: string, message: string): string {
  const body = JSON.parse(ERROR_JSON) as { error: { code: string; message: string } };
  body.error = { code, message };
  return JSON.stringify(body);
}

const BASE = 'https://www.virustotal.com';
const KEY = 'vt-test-key-7f3a9c';
const NOW = new Date('2025-03-01T12:00:00.000Z');
const vt = () => new VirusTotalClient({ apiKey: KEY, now: () => NOW });
const api = () => nock(BASE, { reqheaders: { 'x-apikey': KEY } });


useStrictNock();

describe('VirusTotalClient.lookup', () => {
  it('scores the domain fixture from last_analysis_stats (8 malicious of 98 engines)', async () => {
    api().get('/api/v3/domains/down.mykings.pw').reply(200, DOMAIN_JSON, { 'Content-Type': 'application/json' });

    const v = await vt().lookup({ kind: 'domain', value: 'Down.MyKings.pw.' });

    // harmless 83 + malicious 8 + suspicious 0 + undetected 7 = 98; timeout is not an opinion.
    expect(v.verdict).toBe('malicious');
    expect(v.score).toBe(Math.round((100 * 8) / 98));
    expect(v.score).toBe(8);
    expect(v.summary).toBe('8/98 engines flag it malicious, 0 suspicious');
    expect(v.provider).toBe('virustotal');
    expect(v.observable).toEqual({ kind: 'domain', value: 'Down.MyKings.pw.' });
    expect(v.fetchedAt).toBe('2025-03-01T12:00:00.000Z');
    // Fields we do not model (whois, jarm, relationships) survive untouched in raw.
    expect(v.raw).toEqual(JSON.parse(DOMAIN_JSON));
  });

  it('uses the unpadded base64url URL identifier', async () => {
    const url = 'http://down.mykings.pw:8888/ver.txt?a=1';
    const id = Buffer.from(url).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(id).not.toMatch(/[=+/]/);
    api().get(`/api/v3/urls/${id}`).reply(200, DOMAIN_JSON);
    const v = await vt().lookup({ kind: 'url', value: url });
    expect(v.verdict).toBe('malicious');
  });

  it('looks up IPs and hashes on their own endpoints', async () => {
    const sha256 = 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855';
    api()
      .get('/api/v3/ip_addresses/198.51.100.100')
      .reply(200, domainWithStats({ harmless: 90, malicious: 0, suspicious: 0, undetected: 5, timeout: 0 }))
      .get(`/api/v3/files/${sha256.toLowerCase()}`)
      .reply(200, domainWithStats({ harmless: 0, malicious: 1, suspicious: 2, undetected: 67, 'type-unsupported': 4 }));

    const ip = await vt().lookup({ kind: 'ip', value: '198.51.100.100' });
    expect([ip.verdict, ip.score]).toEqual(['harmless', 0]);

    const file = await vt().lookup({ kind: 'hash', value: sha256 });
    // (1 + 2/2) / 70 = 2.86% -> 3; one flagging engine is below the malicious threshold of 5.
    expect([file.verdict, file.score]).toEqual(['suspicious', 3]);
  });

  it('honours configured engine thresholds', async () => {
    api().get('/api/v3/domains/down.mykings.pw').reply(200, DOMAIN_JSON);
    const strict = new VirusTotalClient({ apiKey: KEY, thresholds: { malicious: 10, suspicious: 3 } });
    const v = await strict.lookup({ kind: 'domain', value: 'down.mykings.pw' });
    expect(v.verdict).toBe('suspicious');
  });

  it('answers unknown when nothing has analysed the object yet', async () => {
    api().get('/api/v3/domains/fresh.example').reply(200, domainWithStats({ harmless: 0, malicious: 0, suspicious: 0, undetected: 0, timeout: 3 }));
    const v = await vt().lookup({ kind: 'domain', value: 'fresh.example' });
    expect([v.verdict, v.score]).toEqual(['unknown', 0]);
  });

  it('turns the NotFoundError envelope (404) into an unknown verdict, not an error', async () => {
    api().get('/api/v3/domains/never-seen.example').reply(404, ERROR_JSON, { 'Content-Type': 'application/json' });
    const v = await vt().lookup({ kind: 'domain', value: 'never-seen.example' });
    expect(v.verdict).toBe('unknown');
    expect(v.score).toBe(0);
    expect(v.raw).toEqual({ error: { code: 'NotFoundError', message: 'Resource not found.' } });
  });

  it('does not take a bare 404 (wrong base URL, proxy) for "never seen"', async () => {
    api().get('/api/v3/domains/example.org').reply(404);
    const err = await failure(vt().lookup({ kind: 'domain', value: 'example.org' }));
    expect(err.code).toBe('upstream.rejected');
    expect(err.retryable).toBe(false);
  });
});

describe('VirusTotalClient errors', () => {
  it('maps 429 QuotaExceededError to a retryable rate limit, honouring Retry-After', async () => {
    api().get('/api/v3/domains/a.example').reply(429, vtError('QuotaExceededError', 'Quota exceeded'), { 'Retry-After': '30' });
    const err = await failure(vt().lookup({ kind: 'domain', value: 'a.example' }));
    expect(err.code).toBe('upstream.rate_limited');
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBe(30_000);
    expect(err.details).toMatchObject({ vendorCode: 'QuotaExceededError', status: 429 });
  });

  it('waits a minute on QuotaExceededError without Retry-After (VT sends none)', async () => {
    api().get('/api/v3/domains/a.example').reply(429, vtError('QuotaExceededError', 'Quota exceeded'));
    const err = await failure(vt().lookup({ kind: 'domain', value: 'a.example' }));
    expect(err.retryAfterMs).toBe(60_000);
  });

  it('maps 401 WrongCredentialsError to a non-retryable rejection without leaking the key', async () => {
    api().get('/api/v3/domains/a.example').reply(401, vtError('WrongCredentialsError', 'Wrong API key'));
    const err = await failure(vt().lookup({ kind: 'domain', value: 'a.example' }));
    expect(err.code).toBe('upstream.rejected');
    expect(err.retryable).toBe(false);
    expect(err.safeMessage).toBe('VirusTotal rejected the API key.');
    expect(err.message).not.toContain(KEY);
  });

  it('maps a 500 to retryable upstream.unavailable', async () => {
    api().get('/api/v3/domains/a.example').reply(500);
    const err = await failure(vt().lookup({ kind: 'domain', value: 'a.example' }));
    expect(err.code).toBe('upstream.unavailable');
    expect(err.retryable).toBe(true);
  });

  it('maps TransientError by code even when the status says otherwise', async () => {
    api().get('/api/v3/domains/a.example').reply(503, vtError('TransientError', 'Transient error, try again'));
    const err = await failure(vt().lookup({ kind: 'domain', value: 'a.example' }));
    expect(err.code).toBe('upstream.unavailable');
    expect(err.details).toMatchObject({ vendorCode: 'TransientError' });
  });

  it('rejects malformed observables before any request', async () => {
    const err = await failure(vt().lookup({ kind: 'hash', value: 'not-a-hash' }));
    expect(err.code).toBe('input.invalid');
    const ip = await failure(vt().lookup({ kind: 'ip', value: '999.1.1.1' }));
    expect(ip.code).toBe('input.invalid');
  });
});
