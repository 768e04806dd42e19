import type nock from 'nock';
import { fixtureJson } from './fixtures.ts';

/** Cortex answers built from ../shared/fixtures/thehive_cortex, shared by the client and pipeline tests. */
export const CORTEX_JOB = 'thehive_cortex/cortex_job_details_Abuse_Finder_8.8.8.8.json';
export const CORTEX_REPORT = 'thehive_cortex/cortex_job_report_Abuse_Finder_8.8.8.8.json';
const ABUSEIPDB_DEF = 'thehive_cortex/cortex_analyzers_analyzers_AbuseIPDB_AbuseIPDB.json';
const VT_DEF = 'thehive_cortex/cortex_analyzers_analyzers_VirusTotal_VirusTotal_GetReport.json';

export const ABUSE_FINDER_ID = '220483fde9608c580fb6a2508ff3d2d3'; // analyzerId in the job fixtures
export const VT_INSTANCE_ID = 'c6f7b0e3a1d24b6e9f0a7d1c2b3e4f50';
export const CORTEX_JOB_ID = 'AWNei4vH3rJ8unegCPB9';

/**
 * `GET /api/analyzer/type/ip` answers enabled analyzers: the definition plus the instance's `id`,
 * `name` and `analyzerDefinitionId` (API guide, Analyzer Model). The fixtures hold no Abuse_Finder
 * definition, so the AbuseIPDB one stands in, renamed to the analyzer that produced the job fixtures.
 */
export function analyzerList(): unknown[] {
  const abuseFinder = { ...fixtureJson(ABUSEIPDB_DEF), id: ABUSE_FINDER_ID, name: 'Abuse_Finder_2_0', analyzerDefinitionId: 'Abuse_Finder_2_0' };
  const vt = { ...fixtureJson(VT_DEF), id: VT_INSTANCE_ID, name: 'VirusTotal_GetReport_3_1', analyzerDefinitionId: 'VirusTotal_GetReport_3_1' };
  return [vt, abuseFinder];
}

/** The job-details fixture as POST /run answers it: same job, status changed to Waiting. */
export function runAnswer(changes: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...fixtureJson(CORTEX_JOB), status: 'Waiting', startDate: undefined, endDate: undefined, ...changes });
}

/** One analyzer run as Cortex answers it: the analyzer list, the run, then `report` from waitreport. */
export function answerAnalyzerRun(scope: nock.Scope, report: string): nock.Scope {
  return scope
    .get('/api/analyzer/type/ip')
    .reply(200, JSON.stringify(analyzerList()))
    .post(`/api/analyzer/${ABUSE_FINDER_ID}/run`)
    .reply(200, runAnswer())
    .get(`/api/job/${CORTEX_JOB_ID}/waitreport`)
    .query(true)
    .reply(200, report);
}
