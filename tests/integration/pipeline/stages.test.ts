import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import { pipelineFeature } from '../../../src/pipeline/pipeline-feature.ts';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { runCaseStage } from '../../../src/pipeline/stages/case-stage.ts';
import type { EnrichmentRecord } from '../../../src/pipeline/stages/enrich-stage.ts';
import { TenantDirectory } from '../../../src/pipeline/tenant-directory.ts';
import { fixtureJson, fixtureText } from '../../helpers/fixtures.ts';
import { settle, stats } from '../../helpers/pipeline.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';
import { ALERT_MD, PROMOTE_MD, asV5, docEntity, duplicateAnswer } from '../../helpers/thehive-fixtures.ts';
import { CORTEX_REPORT, answerAnalyzerRun } from '../../helpers/cortex-fixtures.ts';

const SSHD = fixtureJson<Record<string, unknown>>('wazuh/docs_alert_5716_sshd_auth_failed.json');
const VULN = fixtureJson<Record<string, unknown>>('wazuh/docs_alert_23505_vulnerability_detector.json');
const DOWNSTREAM = ['pipeline.enrich', 'pipeline.case', 'pipeline.notify', 'pipeline.trigger'];
const HIVE = 'https://thehive.acme.test';
const HOOK = 'https://hooks.acme.test';

/** The sshd fixture with its agent (the host) and source IP changed, as another alert would be. */
function sshdFrom(ip: string, agent = 'Centos'): Record<string, unknown> {
  return { ...SSHD, agent: { ...(SSHD.agent as object), name: agent }, data: { ...(SSHD.data as object), srcip: ip } };
}

describe('pipeline stages', () => {
  let s: TestServer;
  let n = 0;
  beforeAll(async () => {
    // The pipeline alone: triggered playbooks would call the same (nock'd) vendors.
    s = await startTestServer({ features: [pipelineFeature] });
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  });
  afterEach(() => nock.cleanAll());
  afterAll(async () => {
    nock.enableNetConnect();
    await s.stop();
  });

  /** A tenant of its own per test, with config and a hook token. */
  async function tenant(config: Record<string, unknown> = {}, secrets: Record<string, string> = {}) {
    const id = `t${++n}-${Date.now().toString(36)}`;
    await auditedWrite(s.store.db, 'test', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id, name: id, config: JSON.stringify(config) }).execute();
      audit({ tenantId: id, action: 'tenant.create', target: id, delta: {} });
    });
    for (const [k, v] of Object.entries(secrets)) await s.store.vault.set(id, k, v, 'test');
    const token = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId: id, source: '*', token, actor: 'test' });
    const post = async (source: string, body: unknown[]) => {
      const res = await fetch(`${s.url}/hooks/${source}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
        body: body.map((b) => JSON.stringify(b)).join('\n'),
      });
      expect(res.status).toBe(202);
    };
    const alerts = () => s.store.db.selectFrom('alerts').selectAll().where('tenant_id', '=', id).orderBy('created_at').execute();
    const done = () => settle(s, { tenant: id, queues: DOWNSTREAM });
    return { id, post, alerts, done };
  }

  it('dedupes repeats into one alert with an occurrence count, counted exactly', async () => {
    const t = await tenant();
    await t.post('wazuh', [SSHD, SSHD, SSHD]);
    await t.done();
    await t.post('wazuh', [SSHD, sshdFrom('203.0.113.50')]);
    const st = await t.done();
    const alerts = await t.alerts();
    expect(alerts.map((a) => [(a.event as { observables: { ip: string[] } }).observables.ip[0], a.occurrences])).toEqual([
      ['61.177.172.13', 4],
      ['203.0.113.50', 1],
    ]);
    expect(st).toEqual({ accepted: 5, new: 2, deduplicated: 3, suppressed: 0, dead_lettered: 0, in_flight: 0 });
    const events = await s.store.db.selectFrom('events').select(['outcome', 'alert_id']).where('tenant_id', '=', t.id).execute();
    expect(events.filter((e) => e.outcome === 'deduplicated')).toHaveLength(3);
    expect(new Set(events.map((e) => e.alert_id))).toEqual(new Set(alerts.map((a) => a.id)));
  });

  it('suppresses matching events into a counted state, with the rule\'s hits, and ignores an expired rule', async () => {
    const t = await tenant();
    await s.store.db
      .insertInto('suppression_rules')
      .values([
        { tenant_id: t.id, name: 'scanner', match: `event.observables.ip[0] = '203.0.113.50'`, owner: 'soc-lead', reason: 'our own vulnerability scanner', expires_at: new Date(Date.now() + 86_400_000) },
        { tenant_id: t.id, name: 'old', match: `event.event_type = 'auth.failed'`, owner: 'soc-lead', reason: 'expired long ago', expires_at: new Date(Date.now() - 1000) },
      ])
      .execute();
    await t.post('wazuh', [sshdFrom('203.0.113.50'), sshdFrom('203.0.113.50'), SSHD]);
    const st = await t.done();
    expect(st).toMatchObject({ accepted: 3, new: 1, suppressed: 2, deduplicated: 0 });
    const rules = await s.store.db.selectFrom('suppression_rules').select(['name', 'hits']).where('tenant_id', '=', t.id).orderBy('name').execute();
    expect(rules).toEqual([
      { name: 'old', hits: '0' },
      { name: 'scanner', hits: '2' },
    ]);
    const kept = await s.store.db.selectFrom('events').select(['outcome']).where('tenant_id', '=', t.id).where('outcome', '=', 'suppressed').execute();
    expect(kept).toHaveLength(2);
  });

  it('enriches with VirusTotal and AbuseIPDB, caches the answers, and degrades when a provider is down', async () => {
    const t = await tenant({}, { 'virustotal.api_key': 'vt-key', 'abuseipdb.api_key': 'abuse-key' });
    // The fixtures' own numbers: VT stats 8 malicious of 98, AbuseIPDB confidence 100.
    const vtBody = fixtureJson<{ data: Record<string, unknown> }>('intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json');
    const abuse = fixtureJson<{ data: Record<string, unknown> }>('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json');
    const vt = nock('https://www.virustotal.com', { reqheaders: { 'x-apikey': 'vt-key' } })
      .get('/api/v3/ip_addresses/61.177.172.13')
      .reply(200, { data: { ...vtBody.data, type: 'ip_address', id: '61.177.172.13' } });
    const ab = nock('https://api.abuseipdb.com', { reqheaders: { key: 'abuse-key' } })
      .get('/api/v2/check')
      .query(true)
      .reply(200, { data: { ...abuse.data, ipAddress: '61.177.172.13' } });
    await t.post('wazuh', [SSHD]);
    await t.done();
    expect(vt.isDone() && ab.isDone()).toBe(true);
    const [alert] = await t.alerts();
    const e = alert!.enrichment as EnrichmentRecord;
    expect(e.status).toBe('enriched');
    expect(e.verdicts.map((v) => [v.provider, v.verdict]).sort()).toEqual([
      ['abuseipdb', 'malicious'],
      ['virustotal', 'malicious'],
    ]);

    // Each vendor's answer is stored once and named by the verdict; the alert API shows it whole.
    expect(e.verdicts.every((v) => v.report && v.raw === undefined)).toBe(true);
    const reports = await s.store.db.selectFrom('intel_reports').select(['id', 'provider', 'raw']).where('id', 'in', e.verdicts.map((v) => v.report!)).execute();
    expect(reports).toHaveLength(2);
    const shown = (await (await fetch(`${s.url}/api/v1/alerts/${alert!.id}`, { headers: { authorization: `Bearer ${s.apiToken}` } })).json()) as { enrichment: EnrichmentRecord };
    const vtShown = shown.enrichment.verdicts.find((v) => v.provider === 'virustotal')!;
    expect((vtShown.raw as { data: { id: string; attributes: { last_analysis_stats: { malicious: number } } } }).data.id).toBe('61.177.172.13');
    expect((vtShown.raw as { data: { attributes: { last_analysis_stats: { malicious: number } } } }).data.attributes.last_analysis_stats.malicious).toBe(8);

    // Same IP on another host: answered from the cache, no vendor call (nock would refuse it),
    // naming the same stored answers.
    await t.post('wazuh', [sshdFrom('61.177.172.13', 'web-02')]);
    await t.done();
    const second = (await t.alerts())[1]!;
    expect((second.enrichment as EnrichmentRecord).verdicts).toHaveLength(2);
    expect((second.enrichment as EnrichmentRecord).verdicts.map((v) => v.report).sort()).toEqual(e.verdicts.map((v) => v.report).sort());

    // A new IP while VirusTotal is down: AbuseIPDB still answers; the alert moves on, partial.
    nock('https://www.virustotal.com').get('/api/v3/ip_addresses/198.51.100.100').times(1).reply(503, fixtureText('intel/virustotal_v3_error_envelope__vt-py_tests.json'));
    nock('https://api.abuseipdb.com').get('/api/v2/check').query(true).reply(200, abuse);
    await t.post('wazuh', [sshdFrom('198.51.100.100', 'web-03')]);
    await t.done();
    const third = (await t.alerts())[2]!;
    const rec = third.enrichment as EnrichmentRecord;
    expect(rec.status).toBe('partial');
    expect(rec.gaps).toEqual([expect.objectContaining({ provider: 'virustotal', status: 'unavailable' })]);
    expect(rec.verdicts.map((v) => v.provider)).toEqual(['abuseipdb']);
  });

  it('enriches a SEV1 deeply through a Cortex analyzer, its report stored once and shown by the alert API', async () => {
    const cortexUrl = 'https://cortex.acme.test:9001';
    const t = await tenant({ cortex: { url: cortexUrl, analyzers: ['Abuse_Finder_2_0'] } }, { 'cortex.api_key': 'cortex-key' });
    const api = answerAnalyzerRun(nock(cortexUrl, { reqheaders: { authorization: 'Bearer cortex-key' } }), fixtureText(CORTEX_REPORT));
    await t.post('generic/kiosk', [{ event_type: 'malware.detected', severity: 1, timestamp: '2026-11-21T10:00:00Z', host: { name: 'kiosk-9' }, observables: { ip: '8.8.8.8' } }]);
    await t.done();
    expect(api.isDone()).toBe(true);
    const [alert] = await t.alerts();
    const record = alert!.enrichment as EnrichmentRecord;
    expect(record.deep).toBe(true);
    const cortex = record.verdicts.find((v) => v.provider === 'cortex')!;
    expect(cortex.raw).toBeUndefined();
    const report = await s.store.db.selectFrom('intel_reports').selectAll().where('id', '=', cortex.report!).executeTakeFirstOrThrow();
    expect(report).toMatchObject({ provider: 'cortex', kind: 'ip', value: '8.8.8.8', raw: { jobs: [fixtureJson(CORTEX_REPORT)] } });
    const shown = (await (await fetch(`${s.url}/api/v1/alerts/${alert!.id}`, { headers: { authorization: `Bearer ${s.apiToken}` } })).json()) as { enrichment: EnrichmentRecord };
    expect(shown.enrichment.verdicts.find((v) => v.provider === 'cortex')!.raw).toEqual({ jobs: [fixtureJson(CORTEX_REPORT)] });
  });

  it('opens an incident for SEV1, syncs TheHive alert and case by fingerprint, and stores the ids', async () => {
    const t = await tenant({ thehive: { url: HIVE } }, { 'thehive.api_key': 'hive-key' });
    const created = asV5(docEntity(ALERT_MD, 'alert'));
    const promoted = docEntity(PROMOTE_MD, 'case');
    let sentRef = '';
    const hive = nock(HIVE, { reqheaders: { authorization: 'Bearer hive-key' } })
      .post('/api/v1/alert', (b: { sourceRef: string; severity: number }) => {
        sentRef = b.sourceRef;
        return b.severity === 4; // our SEV1 is TheHive's critical (4)
      })
      .reply(201, created)
      .post(`/api/v1/alert/${String(created._id)}/case`)
      .reply(201, promoted);
    await t.post('wazuh', [VULN]);
    await t.done();
    expect(hive.isDone()).toBe(true);
    const [alert] = await t.alerts();
    expect(sentRef).toBe(alert!.fingerprint);
    expect(alert!.case_refs).toEqual({ thehive: { alertId: String(created._id), caseId: String(promoted._id) } });
    const incidents = await s.store.db.selectFrom('incidents').selectAll().where('tenant_id', '=', t.id).execute();
    expect(incidents).toHaveLength(1);
    expect(incidents[0]!.severity).toBe(1);
    expect(alert!.incident_id).toBe(incidents[0]!.id);
    const timeline = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', incidents[0]!.id).execute();
    expect(timeline.map((e) => e.kind)).toContain('incident.created');
  });

  it('retry safety: the case stage failing after TheHive accepted the alert leaves one TheHive alert and one incident', async () => {
    const t = await tenant({ thehive: { url: HIVE } }, { 'thehive.api_key': 'hive-key' });
    const created = asV5(docEntity(ALERT_MD, 'alert'));
    const promoted = docEntity(PROMOTE_MD, 'case');
    let creates = 0;
    let stored: Record<string, unknown> = {};
    const hive = nock(HIVE)
      // First attempt: TheHive stores the alert, then promotion fails (TheHive restarting).
      .post('/api/v1/alert', (b: Record<string, unknown>) => {
        creates += 1;
        stored = { ...created, type: b.type, source: b.source, sourceRef: b.sourceRef };
        return true;
      })
      .reply(201, created)
      .post(`/api/v1/alert/${String(created._id)}/case`)
      .reply(503, 'Service Unavailable')
      // The retry creates again: TheHive answers its duplicate error, we find the existing one.
      .post('/api/v1/alert', () => ++creates > 0)
      .reply(400, duplicateAnswer(), { 'content-type': 'application/json' })
      .post('/api/v1/query')
      .reply(200, () => [stored])
      .post(`/api/v1/alert/${String(created._id)}/case`)
      .reply(201, promoted);
    await t.post('wazuh', [VULN]);
    await t.done();
    await vi.waitFor(async () => expect(((await t.alerts())[0]!.case_refs as { thehive?: unknown }).thehive).toBeTruthy(), { timeout: 15_000 });
    expect(hive.isDone()).toBe(true);
    expect(creates).toBe(2); // two requests, one TheHive alert: the second was TheHive's duplicate answer
    const incidents = await s.store.db.selectFrom('incidents').select('id').where('tenant_id', '=', t.id).execute();
    expect(incidents).toHaveLength(1);
    const [alert] = await t.alerts();
    expect(alert!.case_refs).toEqual({ thehive: { alertId: String(created._id), caseId: String(promoted._id) } });
  });

  it('opens one incident for SEV1s of one host arriving together, and one each for unrelated hosts', async () => {
    const t = await tenant();
    const sev1 = (host: string, ip: string) => ({ event_type: 'malware.detected', severity: 1, timestamp: '2026-11-21T10:00:00Z', host: { name: host }, observables: { ip } });
    // One request: one dedupe batch, so the case stage handles these alerts side by side.
    const related = Array.from({ length: 8 }, (_, i) => sev1('kiosk-7', `198.51.100.${10 + i}`));
    const unrelated = Array.from({ length: 8 }, (_, i) => sev1(`kiosk-${100 + i}`, `203.0.113.${10 + i}`));
    await t.post('generic/kiosk', [...related, ...unrelated]);
    await t.done();
    const alerts = await t.alerts();
    expect(alerts).toHaveLength(16);
    const incidentOf = (host: string) => alerts.filter((a) => (a.event as { host: { name: string } }).host.name === host).map((a) => a.incident_id);
    const shared = new Set(incidentOf('kiosk-7'));
    expect(shared.size).toBe(1);
    expect([...shared][0]).toBeTruthy();
    const own = unrelated.map((u) => incidentOf(u.host.name)[0]);
    expect(new Set(own).size).toBe(8);
    expect(own.every(Boolean)).toBe(true);
    expect(own).not.toContain([...shared][0]);
    expect(await s.store.db.selectFrom('incidents').select('id').where('tenant_id', '=', t.id).execute()).toHaveLength(9);

    // The audit trail names every alert, in an entry per batch (enrich) and per incident joined.
    const entries = async (action: string) =>
      (await s.store.db.selectFrom('audit_log').select(['target', 'delta']).where('tenant_id', '=', t.id).where('action', '=', action).execute()) as { target: string; delta: { alerts: Record<string, unknown> | string[] } }[];
    const enriched = await entries('alert.enrich');
    expect(enriched.length).toBeLessThan(alerts.length);
    expect(enriched.flatMap((e) => Object.keys(e.delta.alerts)).sort()).toEqual(alerts.map((a) => a.id).sort());
    const joined = await entries('alert.correlate');
    expect(joined.map((e) => e.target)).toEqual([`incident:${[...shared][0]}`]);
    const kiosk7 = alerts.filter((a) => (a.event as { host: { name: string } }).host.name === 'kiosk-7').map((a) => a.id);
    // The lead opened the incident; the other seven joined it.
    expect((joined[0]!.delta.alerts as string[]).length).toBe(7);
    expect(kiosk7).toEqual(expect.arrayContaining(joined[0]!.delta.alerts as string[]));
  });

  it('attaches a related alert (same host) to the open incident instead of opening another', async () => {
    const t = await tenant();
    await t.post('wazuh', [VULN]);
    await t.done();
    await t.post('wazuh', [sshdFrom('203.0.113.77', 'Windows')]);
    await t.done();
    const alerts = await t.alerts();
    expect(alerts).toHaveLength(2);
    expect(alerts[1]!.severity).toBe(3); // below the threshold: attached only because it is related
    expect(alerts[1]!.incident_id).toBe(alerts[0]!.incident_id);
    expect(await s.store.db.selectFrom('incidents').select('id').where('tenant_id', '=', t.id).execute()).toHaveLength(1);
    const timeline = await s.store.db.selectFrom('timeline_entries').select(['kind', 'text']).where('incident_id', '=', alerts[0]!.incident_id!).orderBy('id').execute();
    // Playbooks triggered by the alerts may add their own entries; the pipeline's are these.
    const pipelineKinds = timeline.map((e) => e.kind).filter((k) => k.startsWith('incident.') || k.startsWith('alert.'));
    expect(pipelineKinds).toEqual(['incident.created', 'alert.correlated']);
  });

  it('attaches an alert below the threshold that arrives with a SEV1 of its host to the incident the SEV1 opens', async () => {
    // Only SEV1 opens incidents here; a SEV2 travels in the same (urgent) batch as the SEV1.
    const t = await tenant({ incident_threshold: 1 });
    const at = '2026-11-21T10:00:00Z';
    // One request: one batch, so the case stage sees both at once and must look again after opening.
    await t.post('generic/kiosk', [
      { event_type: 'generic.alert', severity: 2, timestamp: at, host: { name: 'kiosk-42' }, observables: { ip: '198.51.100.42' } },
      { event_type: 'malware.detected', severity: 1, timestamp: at, host: { name: 'kiosk-42' }, observables: { ip: '203.0.113.42' } },
    ]);
    await t.done();
    const alerts = await t.alerts();
    expect(alerts).toHaveLength(2);
    expect(new Set(alerts.map((a) => a.incident_id)).size).toBe(1);
    expect(alerts[0]!.incident_id).toBeTruthy();
    const timeline = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', alerts[0]!.incident_id!).execute();
    expect(timeline.map((e) => e.kind).filter((k) => k.startsWith('incident.') || k.startsWith('alert.')).sort()).toEqual(['alert.correlated', 'incident.created']);
  });

  it('takes in a related routine alert that went through the case stage just before the SEV1 opened its incident', async () => {
    // The race of the two lanes: the routine alert's case stage finds no incident (the SEV1's,
    // in the urgent lane, is not open yet); the SEV1 opens one a moment later.
    const t = await tenant();
    const at = '2026-11-21T10:00:00Z';
    const event = (severity: number, ip: string) => ({
      version: 1, client_id: t.id, source: 'generic:kiosk', event_type: severity === 1 ? 'malware.detected' : 'auth.failed', severity, timestamp: at,
      host: { name: 'kiosk-race', ip: null }, principal: { user: null }, observables: { ip: [ip], domain: [], url: [], hash: [] }, rule: null, raw: {},
    });
    const insert = async (severity: number, ip: string) =>
      (await s.store.db.insertInto('alerts').values({
        tenant_id: t.id, fingerprint: `race-${severity}`, source: 'generic:kiosk', event_type: 'x', severity, title: `race SEV${severity}`,
        first_seen: at, last_seen: at, event: JSON.stringify(event(severity, ip)),
      }).returning('id').executeTakeFirstOrThrow()).id;
    const routine = await insert(4, '198.51.100.61');
    const sev1 = await insert(1, '203.0.113.61');
    const deps = { db: s.store.db, tenants: new TenantDirectory(s.store.db), vault: s.store.vault };

    const first = await runCaseStage({ tenantId: t.id, alertIds: [routine] }, deps);
    expect(first.results.get(routine)).toEqual({ incidentId: null, correlated: false, createdIncident: false });
    expect(await s.store.db.selectFrom('correlation_pending').select('key').where('alert_id', '=', routine).orderBy('key').execute()).toEqual([{ key: 'host:kiosk-race' }, { key: 'obs:198.51.100.61' }]);

    const second = await runCaseStage({ tenantId: t.id, alertIds: [sev1], urgent: true }, deps);
    const incidentId = second.results.get(sev1)!.incidentId!;
    expect(second.results.get(sev1)!.createdIncident).toBe(true);
    const rows = await s.store.db.selectFrom('alerts').select(['id', 'incident_id']).where('tenant_id', '=', t.id).execute();
    expect(Object.fromEntries(rows.map((r) => [r.id, r.incident_id]))).toEqual({ [routine]: incidentId, [sev1]: incidentId });
    const timeline = await s.store.db.selectFrom('timeline_entries').select(['kind', 'data']).where('incident_id', '=', incidentId).orderBy('id').execute();
    expect(timeline.map((e) => e.kind)).toEqual(['incident.created', 'alert.correlated']);
    expect(timeline[1]!.data).toMatchObject({ alertId: routine });
    expect(await s.store.db.selectFrom('correlation_pending').selectAll().where('alert_id', '=', routine).execute()).toEqual([]);
    // Its keys now lead to the incident too.
    expect(await s.store.db.selectFrom('correlation_keys').select('key').where('incident_id', '=', incidentId).orderBy('key').execute()).toEqual([
      { key: 'host:kiosk-race' }, { key: 'obs:198.51.100.61' }, { key: 'obs:203.0.113.61' },
    ]);
  });

  it('notifies once through the webhook despite a 429, honouring Retry-After, then posts "2nd occurrence" into the thread', async () => {
    const t = await tenant({ notify: { webhook_url: `${HOOK}/reflex`, repeat_interval_seconds: 1, min_severity: 3 } });
    const bodies: { text: string; thread: unknown; idempotency_key: string }[] = [];
    const at: number[] = [];
    const hook = nock(HOOK)
      .post('/reflex')
      .reply(429, { error: 'slow down' }, { 'retry-after': '1' })
      .post('/reflex', (b: (typeof bodies)[number]) => {
        bodies.push(b);
        at.push(Date.now());
        return true;
      })
      .times(2)
      .reply(200, { ok: true });
    const t0 = Date.now();
    await t.post('wazuh', [SSHD]);
    await t.done();
    await vi.waitFor(() => expect(bodies).toHaveLength(1), { timeout: 10_000 });
    expect(at[0]! - t0).toBeGreaterThanOrEqual(1000); // waited out Retry-After
    await t.post('wazuh', [SSHD]);
    await vi.waitFor(() => expect(bodies).toHaveLength(2), { timeout: 10_000 });
    expect(hook.isDone()).toBe(true);
    expect(bodies[1]!.text).toMatch(/^2nd occurrence of /);
    expect(bodies[1]!.thread).toBe(bodies[0]!.idempotency_key);
    await vi.waitFor(async () => {
      const throttle = await s.store.db.selectFrom('notification_throttle').selectAll().where('tenant_id', '=', t.id).execute();
      expect(throttle.map((r) => r.sent)).toEqual([2]);
    });
    expect(await stats(s, t.id)).toMatchObject({ accepted: 2, new: 1, deduplicated: 1 });
  });
});
