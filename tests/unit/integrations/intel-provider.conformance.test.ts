import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { AbuseIpdbClient } from '../../../src/integrations/abuseipdb/abuseipdb-client.ts';
import { CortexClient } from '../../../src/integrations/cortex/cortex-client.ts';
import type { IntelObservable, IntelObservableKind, IntelProvider, IntelVerdictLabel } from '../../../src/integrations/ports.ts';
import { VirusTotalClient } from '../../../src/integrations/virustotal/virustotal-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * The IntelProvider contract, run over every adapter (one conformance suite per port). Each
 * adapter only says how to stage its vendor's answers; the checks are the same for all.
 */

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const json = (rel: string): Record<string, unknown> => JSON.parse(fixture(rel)) as Record<string, unknown>;

const NOW = new Date('2025-03-01T12:00:00.000Z');
const ALL_KINDS: IntelObservableKind[] = ['ip', 'domain', 'url', 'hash'];

interface IntelAdapter {
  name: string;
  key: string;
  make(): IntelProvider;
  supported: IntelObservableKind[];
  sample: IntelObservable;
  /** Stages a vendor answer that judges `sample`; returns the verdict and score it must produce. */
  stageJudged(): { verdict: IntelVerdictLabel; score: number };
  /** Stages the vendor's answer for something it has never seen. */
  stageUnseen(): void;
  /** Stages `status` (with headers) as the answer to the adapter's first request. */
  stageFailure(status: number, headers?: Record<string, string>): void;
  stageNetworkError(): void;
}

const VT_KEY = 'vt-conformance-key-0001';
const VT_BASE = 'https://www.virustotal.com';
const virustotal: IntelAdapter = {
  name: 'virustotal',
  key: VT_KEY,
  make: () => new VirusTotalClient({ apiKey: VT_KEY, now: () => NOW }),
  supported: ['ip', 'domain', 'url', 'hash'],
  sample: { kind: 'domain', value: 'down.mykings.pw' },
  stageJudged() {
    nock(VT_BASE, { reqheaders: { 'x-apikey': VT_KEY } })
      .get('/api/v3/domains/down.mykings.pw')
      .reply(200, fixture('intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json'));
    return { verdict: 'malicious', score: 8 };
  },
  stageUnseen() {
    nock(VT_BASE).get('/api/v3/domains/down.mykings.pw').reply(404, fixture('intel/virustotal_v3_error_envelope__vt-py_tests.json'));
  },
  stageFailure(status, headers) {
    nock(VT_BASE).get('/api/v3/domains/down.mykings.pw').reply(status, undefined, headers);
  },
  stageNetworkError() {
    nock(VT_BASE).get('/api/v3/domains/down.mykings.pw').replyWithError('connect ECONNREFUSED');
  },
};

const ABUSE_KEY = 'abuseipdb-conformance-key-0002';
const ABUSE_BASE = 'https://api.abuseipdb.com';
const ABUSE_CHECK = 'intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json';
const abuseCheck = () => nock(ABUSE_BASE).get('/api/v2/check').query({ ipAddress: '198.51.100.100', maxAgeInDays: '90', verbose: '' });
const abuseipdb: IntelAdapter = {
  name: 'abuseipdb',
  key: ABUSE_KEY,
  make: () => new AbuseIpdbClient({ apiKey: ABUSE_KEY, now: () => NOW }),
  supported: ['ip'],
  sample: { kind: 'ip', value: '198.51.100.100' },
  stageJudged() {
    nock(ABUSE_BASE, { reqheaders: { key: ABUSE_KEY } })
      .get('/api/v2/check')
      .query(true)
      .reply(200, fixture(ABUSE_CHECK));
    return { verdict: 'malicious', score: 100 };
  },
  stageUnseen() {
    // The /check fixture with the report fields changed to what AbuseIPDB says for an unreported IP.
    const body = json(ABUSE_CHECK) as { data: Record<string, unknown> };
    Object.assign(body.data, { abuseConfidenceScore: 0, totalReports: 0, numDistinctUsers: 0, lastReportedAt: null, reports: [] });
    abuseCheck().reply(200, JSON.stringify(body));
  },
  stageFailure(status, headers) {
    abuseCheck().reply(status, undefined, headers);
  },
  stageNetworkError() {
    abuseCheck().replyWithError('connect ECONNREFUSED');
  },
};

const CORTEX_KEY = 'cortex-conformance-key-0003';
const CORTEX_BASE = 'https://cortex.example.test:9001';
const CORTEX_ANALYZER = '220483fde9608c580fb6a2508ff3d2d3';
const CORTEX_REPORT = 'thehive_cortex/cortex_job_report_Abuse_Finder_8.8.8.8.json';
/** Enabled-analyzer listing built from the AbuseIPDB definition, given the job fixture's analyzer identity. */
const cortexAnalyzers = () =>
  JSON.stringify([
    {
      ...json('thehive_cortex/cortex_analyzers_analyzers_AbuseIPDB_AbuseIPDB.json'),
      id: CORTEX_ANALYZER,
      name: 'Abuse_Finder_2_0',
      analyzerDefinitionId: 'Abuse_Finder_2_0',
    },
  ]);
function stageCortexJob(report: string): void {
  nock(CORTEX_BASE, { reqheaders: { authorization: `Bearer ${CORTEX_KEY}` } })
    .get('/api/analyzer/type/ip')
    .reply(200, cortexAnalyzers())
    .post(`/api/analyzer/${CORTEX_ANALYZER}/run`)
    // The job-details fixture as /run answers it: status changed to Waiting.
    .reply(200, JSON.stringify({ ...json('thehive_cortex/cortex_job_details_Abuse_Finder_8.8.8.8.json'), status: 'Waiting' }))
    .get('/api/job/AWNei4vH3rJ8unegCPB9/waitreport')
    .query(true)
    .reply(200, report);
}
const cortex: IntelAdapter = {
  name: 'cortex',
  key: CORTEX_KEY,
  make: () => new CortexClient({ baseUrl: CORTEX_BASE, apiKey: CORTEX_KEY, analyzers: ['Abuse_Finder_2_0'], now: () => NOW }),
  supported: ['ip', 'domain', 'url', 'hash'],
  sample: { kind: 'ip', value: '8.8.8.8' },
  stageJudged() {
    // The report fixture with its taxonomy level changed from info to malicious.
    const body = json(CORTEX_REPORT) as { report: { summary: { taxonomies: { level: string }[] } } };
    for (const t of body.report.summary.taxonomies) t.level = 'malicious';
    stageCortexJob(JSON.stringify(body));
    return { verdict: 'malicious', score: 100 };
  },
  stageUnseen() {
    // As published: the only taxonomy is level "info", which judges nothing.
    stageCortexJob(fixture(CORTEX_REPORT));
  },
  stageFailure(status, headers) {
    nock(CORTEX_BASE).get('/api/analyzer/type/ip').reply(status, undefined, headers);
  },
  stageNetworkError() {
    nock(CORTEX_BASE).get('/api/analyzer/type/ip').replyWithError('connect ECONNREFUSED');
  },
};

const ADAPTERS: IntelAdapter[] = [virustotal, abuseipdb, cortex];
const LABELS: IntelVerdictLabel[] = ['malicious', 'suspicious', 'harmless', 'unknown'];


useStrictNock();

for (const adapter of ADAPTERS) {
  describe(`IntelProvider contract: ${adapter.name}`, () => {
    it('has a stable lower-case name and declares the kinds it supports', () => {
      const p = adapter.make();
      expect(p.name).toBe(adapter.name);
      expect(p.name).toMatch(/^[a-z0-9-]+$/);
      expect(ALL_KINDS.filter((k) => p.supports(k))).toEqual(adapter.supported);
    });

    it('answers a well-formed verdict for something the vendor judged', async () => {
      const expected = adapter.stageJudged();
      const v = await adapter.make().lookup(adapter.sample);
      expect(v.provider).toBe(adapter.name);
      expect(v.observable).toEqual(adapter.sample);
      expect(LABELS).toContain(v.verdict);
      expect(Number.isInteger(v.score)).toBe(true);
      expect(v.score).toBeGreaterThanOrEqual(0);
      expect(v.score).toBeLessThanOrEqual(100);
      expect({ verdict: v.verdict, score: v.score }).toEqual(expected);
      expect(v.summary.trim()).not.toBe('');
      expect(v.fetchedAt).toBe(NOW.toISOString());
      expect(v.raw).toBeDefined();
      // A verdict crosses a queue hop as JSON; it must survive one unchanged.
      expect(JSON.parse(JSON.stringify(v))).toEqual(v);
    });

    it('answers "unknown" for something the vendor has never seen, without throwing', async () => {
      adapter.stageUnseen();
      const v = await adapter.make().lookup(adapter.sample);
      expect(v.verdict).toBe('unknown');
      expect(v.score).toBe(0);
    });

    it('throws a retryable rate limit carrying Retry-After on 429', async () => {
      adapter.stageFailure(429, { 'Retry-After': '17' });
      const err = await failure(adapter.make().lookup(adapter.sample));
      expect(err.code).toBe('upstream.rate_limited');
      expect(err.retryable).toBe(true);
      expect(err.retryAfterMs).toBe(17_000);
    });

    it('throws a retryable error on 500 and on a network failure', async () => {
      adapter.stageFailure(500);
      const e500 = await failure(adapter.make().lookup(adapter.sample));
      expect([e500.code, e500.retryable]).toEqual(['upstream.unavailable', true]);

      adapter.stageNetworkError();
      const eNet = await failure(adapter.make().lookup(adapter.sample));
      expect([eNet.code, eNet.retryable]).toEqual(['upstream.unavailable', true]);
    });

    it('throws a non-retryable rejection on 401 that names the key but never shows it', async () => {
      adapter.stageFailure(401);
      const err = await failure(adapter.make().lookup(adapter.sample));
      expect(err.code).toBe('upstream.rejected');
      expect(err.retryable).toBe(false);
      expect(err.safeMessage).toMatch(/rejected the API key/);
      expect(`${err.message} ${err.safeMessage} ${JSON.stringify(err.details)}`).not.toContain(adapter.key);
    });

    const unsupported = ALL_KINDS.filter((k) => !adapter.supported.includes(k));
    if (unsupported.length > 0) {
      it(`refuses ${unsupported.join(', ')} as invalid input without calling the vendor`, async () => {
        for (const kind of unsupported) {
          const err = await failure(adapter.make().lookup({ kind, value: 'example.org' }));
          expect(err.code).toBe('input.invalid');
        }
      });
    }
  });
}
