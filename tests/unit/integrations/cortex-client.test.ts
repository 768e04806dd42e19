import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { CortexClient } from '../../../src/integrations/cortex/cortex-client.ts';
import type { CortexClientOptions } from '../../../src/integrations/cortex/cortex-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';
import { ABUSE_FINDER_ID, CORTEX_JOB, CORTEX_JOB_ID, CORTEX_REPORT, VT_INSTANCE_ID, analyzerList, answerAnalyzerRun, runAnswer } from '../../helpers/cortex-fixtures.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const json = (rel: string): Record<string, unknown> => JSON.parse(fixture(rel)) as Record<string, unknown>;
const JOB = CORTEX_JOB;
const REPORT = CORTEX_REPORT;
const JOB_ID = CORTEX_JOB_ID;

/** The report fixture with its taxonomy level (and optionally job identity) changed. */
function reportWithLevel(level: string, changes: Record<string, unknown> = {}): string {
  const body = json(REPORT) as { report: { summary: { taxonomies: { level: string }[] } } };
  for (const t of body.report.summary.taxonomies) t.level = level;
  return JSON.stringify({ ...body, ...changes });
}

const BASE = 'https://cortex.example.test:9001';
const KEY = 'cortex-api-key-1a2b3c4d';
const NOW = new Date('2025-03-01T12:00:00.000Z');
const cortex = (extra: Partial<CortexClientOptions> = {}) =>
  new CortexClient({ baseUrl: BASE, apiKey: KEY, analyzers: ['Abuse_Finder_2_0'], now: () => NOW, ...extra });
const api = () => nock(BASE, { reqheaders: { authorization: `Bearer ${KEY}` } });


useStrictNock();

describe('CortexClient.lookup', () => {
  it('runs the configured analyzer, waits for the report and grades its taxonomies', async () => {
    let runBody: unknown;
    api()
      .get('/api/analyzer/type/ip')
      .reply(200, JSON.stringify(analyzerList()))
      .post(`/api/analyzer/${ABUSE_FINDER_ID}/run`, (b: unknown) => {
        runBody = b;
        return true;
      })
      .reply(200, runAnswer())
      .get(`/api/job/${JOB_ID}/waitreport`)
      .query({ atMost: '60second' })
      .reply(200, fixture(REPORT));

    const v = await cortex().lookup({ kind: 'ip', value: '8.8.8.8' });

    // Only VirusTotal_GetReport was listed besides it; not configured, so it must not run.
    expect(runBody).toEqual({ data: '8.8.8.8', dataType: 'ip', tlp: 2, message: 'SENTreflex enrichment' });
    // The fixture's only taxonomy is level "info" (an abuse contact): a fact, not a judgement.
    expect(v.verdict).toBe('unknown');
    expect(v.score).toBe(0);
    expect(v.summary).toBe('Abuse_Finder_2_0 Abuse_Finder:Address=network-abuse@google.com (info)');
    expect(v.provider).toBe('cortex');
    expect(v.fetchedAt).toBe(NOW.toISOString());
    expect(v.raw).toEqual({ jobs: [json(REPORT)] });
  });

  it.each([
    ['malicious', 'malicious', 100],
    ['suspicious', 'suspicious', 50],
    ['safe', 'harmless', 0],
  ] as const)('maps taxonomy level %s to %s (%i)', async (level, verdict, score) => {
    answerAnalyzerRun(api(), reportWithLevel(level));
    const v = await cortex().lookup({ kind: 'ip', value: '8.8.8.8' });
    expect([v.verdict, v.score]).toEqual([verdict, score]);
  });

  it('takes the worst level across several analyzers', async () => {
    const vtJob = 'AWNei4vH3rJ8unegCPC0';
    const vtIdentity = { id: vtJob, analyzerId: VT_INSTANCE_ID, analyzerName: 'VirusTotal_GetReport_3_1', analyzerDefinitionId: 'VirusTotal_GetReport_3_1' };
    api()
      .get('/api/analyzer/type/ip')
      .reply(200, JSON.stringify(analyzerList()))
      .post(`/api/analyzer/${VT_INSTANCE_ID}/run`)
      .reply(200, runAnswer(vtIdentity))
      .post(`/api/analyzer/${ABUSE_FINDER_ID}/run`)
      .reply(200, runAnswer())
      .get(`/api/job/${vtJob}/waitreport`)
      .query(true)
      .reply(200, reportWithLevel('malicious', vtIdentity))
      .get(`/api/job/${JOB_ID}/waitreport`)
      .query(true)
      .reply(200, fixture(REPORT));

    const v = await cortex({ analyzers: ['abuse_finder_2_0', VT_INSTANCE_ID] }).lookup({ kind: 'ip', value: '8.8.8.8' });
    expect([v.verdict, v.score]).toEqual(['malicious', 100]);
    expect(v.summary).toContain('VirusTotal_GetReport_3_1 Abuse_Finder:Address=network-abuse@google.com (malicious)');
    expect(v.summary).toContain('(info)');
  });

  it('uses a finished job from the Cortex cache without waiting', async () => {
    api()
      .get('/api/analyzer/type/ip')
      .reply(200, JSON.stringify(analyzerList()))
      .post(`/api/analyzer/${ABUSE_FINDER_ID}/run`)
      .query({ force: '1' })
      .reply(200, reportWithLevel('suspicious'));
    const v = await cortex({ force: true }).lookup({ kind: 'ip', value: '8.8.8.8' });
    expect(v.verdict).toBe('suspicious');
  });

  it('answers unknown when no configured analyzer accepts the data type', async () => {
    api().get('/api/analyzer/type/hash').reply(200, JSON.stringify(analyzerList().slice(0, 1)));
    const v = await cortex().lookup({ kind: 'hash', value: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
    expect([v.verdict, v.score]).toEqual(['unknown', 0]);
    expect(v.summary).toBe('no configured Cortex analyzer accepts hash');
  });

  it('fails retryably when the only analyzer job fails', async () => {
    // The report fixture turned into a failed job: Cortex puts errorMessage in the report.
    const failed = { ...json(REPORT), status: 'Failure', report: { success: false, errorMessage: 'Invalid API key' } };
    answerAnalyzerRun(api(), JSON.stringify(failed));
    const err = await failure(cortex().lookup({ kind: 'ip', value: '8.8.8.8' }));
    expect(err.code).toBe('upstream.unavailable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('Abuse_Finder_2_0: Invalid API key');
  });
});

describe('CortexClient jobs', () => {
  it('throws a retryable timeout with the job id when waitreport returns an unfinished job', async () => {
    // Unfinished jobs carry the status string in `report` (API guide, Get Details and Report).
    const running = { ...json(JOB), status: 'InProgress', report: 'InProgress' };
    api().get(`/api/job/${JOB_ID}/waitreport`).query({ atMost: '5second' }).reply(200, JSON.stringify(running));
    const err = await failure(cortex().waitForReport(JOB_ID, 4_200));
    expect(err.code).toBe('timeout');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ jobId: JOB_ID, status: 'InProgress' });
  });

  it('reads job details; `parameters` arrives as a JSON string and is left alone', async () => {
    api().get(`/api/job/${JOB_ID}`).reply(200, fixture(JOB));
    const job = await cortex().getJob(JOB_ID);
    expect(job).toMatchObject({ id: JOB_ID, status: 'Success', analyzerName: 'Abuse_Finder_2_0', dataType: 'ip', report: undefined });
    expect((job.raw as { parameters: unknown }).parameters).toBe('{}');
  });

  it('sends the configured TLP; amber+strict goes out as red', async () => {
    let tlp: unknown;
    api()
      .post(`/api/analyzer/${ABUSE_FINDER_ID}/run`, (b: { tlp?: unknown }) => {
        tlp = b.tlp;
        return true;
      })
      .reply(200, runAnswer());
    const job = await cortex({ tlp: 'amber+strict' }).runAnalyzer(ABUSE_FINDER_ID, { data: '8.8.8.8', dataType: 'ip' });
    expect(tlp).toBe(3);
    expect(job.status).toBe('Waiting');
  });

  it('maps a 401 on the analyzer list to a non-retryable rejection', async () => {
    api().get('/api/analyzer/type/ip').reply(401);
    const err = await failure(cortex().lookup({ kind: 'ip', value: '8.8.8.8' }));
    expect([err.code, err.retryable, err.safeMessage]).toEqual(['upstream.rejected', false, 'Cortex rejected the API key.']);
    expect(err.message).not.toContain(KEY);
  });
});
