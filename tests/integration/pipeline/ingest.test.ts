import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NormalizeJob } from '../../../src/pipeline/jobs.ts';
import { createIngestHmacSecret } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { signHookBody } from '../../../src/pipeline/ingest/hook-signature.ts';
import { fixtureJson, fixtureLines, fixtureText } from '../../helpers/fixtures.ts';
import { postHook, settle, stats } from '../../helpers/pipeline.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

const sshd = fixtureText('wazuh/docs_alert_5716_sshd_auth_failed.json');

describe('hooks: ingest', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(() => s.stop());

  it('accepts one Wazuh alert with the default tenant token and answers 202 {"accepted":1}', async () => {
    const before = await stats(s);
    const res = await postHook(s, '/hooks/wazuh', sshd);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 1 });
    const after = await settle(s);
    expect(after.accepted - before.accepted).toBe(1);
    expect(after.new + after.deduplicated - before.new - before.deduplicated).toBe(1);
  });

  it('accepts an NDJSON batch of every Cowrie event as one request', async () => {
    const lines = fixtureLines('cowrie/cowrie_events_from_test_ocsf.jsonl');
    const res = await postHook(s, '/hooks/cowrie', lines.map((l) => JSON.stringify(l)).join('\n'), { 'content-type': 'application/x-ndjson' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: lines.length });
  });

  it('accepts a GVM XML report as one event per result, and an empty report as none', async () => {
    const one = await postHook(s, '/hooks/openvas', fixtureText('openvas_gvm/defectdojo_openvas_one_vuln.xml'), { 'content-type': 'application/xml' });
    expect(one.status).toBe(202);
    expect(await one.json()).toEqual({ accepted: 1 });
    const none = await postHook(s, '/hooks/openvas', fixtureText('openvas_gvm/defectdojo_openvas_no_vuln.xml'), { 'content-type': 'application/xml' });
    expect(none.status).toBe(202);
    expect(await none.json()).toEqual({ accepted: 0 });
  });

  it('refuses a batch with one bad line whole, naming the line and the field, and queues nothing', async () => {
    await settle(s);
    const before = await stats(s);
    const good = JSON.parse(sshd) as Record<string, unknown>;
    const bad = { ...good, rule: { ...(good.rule as object), level: undefined } };
    delete (bad.rule as Record<string, unknown>).level;
    const body = [good, good, bad, good].map((l) => JSON.stringify(l)).join('\n');
    const res = await postHook(s, '/hooks/wazuh', body);
    expect(res.status).toBe(400);
    const err = (await res.json()) as { error: { code: string; message: string; details: { line: number; field: string } } };
    expect(err.error.code).toBe('input.invalid');
    expect(err.error.details).toMatchObject({ line: 3, field: 'rule.level' });
    expect(err.error.message).toContain('Line 3');
    const syntax = await postHook(s, '/hooks/wazuh', `${sshd.replaceAll('\n', '')}\n{"rule": `);
    expect(syntax.status).toBe(400);
    expect(((await syntax.json()) as { error: { details: { line: number } } }).error.details.line).toBe(2);
    expect((await stats(s)).accepted).toBe(before.accepted);
  });

  it('refuses a missing, wrong or wrong-tenant token with 401 and stores nothing', async () => {
    const before = await stats(s);
    const none = await fetch(`${s.url}/hooks/wazuh`, { method: 'POST', body: sshd, headers: { 'content-type': 'application/json' } });
    expect(none.status).toBe(401);
    const wrong = await postHook(s, '/hooks/wazuh', sshd, { authorization: 'Bearer rfi_not-a-real-token-at-all-0000' });
    expect(wrong.status).toBe(401);
    // The admin API token is not an ingest credential.
    const api = await postHook(s, '/hooks/wazuh', sshd, { authorization: `Bearer ${s.apiToken}` });
    expect(api.status).toBe(401);
    expect((await stats(s)).accepted).toBe(before.accepted);
  });

  it('accepts an HMAC-signed request for a tenant, and refuses a stale or tampered one', async () => {
    await s.store.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: '{}' }).execute();
    const secret = await createIngestHmacSecret(s.store.db, s.store.vault, { tenantId: 'acme', source: 'wazuh', actor: 'test' });
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = (timestamp: string, body: string) => ({
      authorization: '',
      'x-reflex-timestamp': timestamp,
      'x-reflex-signature': `sha256=${signHookBody(secret, timestamp, body)}`,
    });
    const ok = await fetch(`${s.url}/hooks/wazuh?tenant=acme`, { method: 'POST', body: sshd, headers: { 'content-type': 'application/json', ...withoutEmpty(headers(ts, sshd)) } });
    expect(ok.status).toBe(202);
    await settle(s, { tenant: 'acme' });
    expect((await stats(s, 'acme')).accepted).toBe(1);
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const stale = await fetch(`${s.url}/hooks/wazuh?tenant=acme`, { method: 'POST', body: sshd, headers: { 'content-type': 'application/json', ...withoutEmpty(headers(old, sshd)) } });
    expect(stale.status).toBe(401);
    const tampered = await fetch(`${s.url}/hooks/wazuh?tenant=acme`, { method: 'POST', body: sshd.replace('root', 'toor'), headers: { 'content-type': 'application/json', ...withoutEmpty(headers(ts, sshd)) } });
    expect(tampered.status).toBe(401);
    // The acme secret does not sign for the cowrie hook, nor for another tenant.
    const otherSource = await fetch(`${s.url}/hooks/cowrie?tenant=acme`, { method: 'POST', body: sshd, headers: { 'content-type': 'application/json', ...withoutEmpty(headers(ts, sshd)) } });
    expect(otherSource.status).toBe(401);
    expect((await stats(s, 'acme')).accepted).toBe(1);
  });

  it('accepts a generic hook by name, refuses a missing field by name, and refuses a bad hook name', async () => {
    const event = { event_type: 'generic.alert', severity: 2, timestamp: '2026-11-21T03:00:00+01:00', host: { name: 'kiosk-7' }, observables: { ip: '198.51.100.23' } };
    const res = await postHook(s, '/hooks/generic/kiosk', JSON.stringify(event));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 1 });
    await settle(s);
    const alerts = await s.store.db.selectFrom('alerts').select(['source', 'severity']).where('source', '=', 'generic:kiosk').execute();
    expect(alerts).toEqual([{ source: 'generic:kiosk', severity: 2 }]);
    const { severity: _omit, ...noSeverity } = event;
    const missing = await postHook(s, '/hooks/generic/kiosk', JSON.stringify(noSeverity));
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { details: { field: string } } }).error.details.field).toBe('severity');
    const badName = await postHook(s, '/hooks/generic/Bad%20Name', JSON.stringify(event));
    expect(badName.status).toBe(400);
  });
});

function withoutEmpty(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== ''));
}

describe('hooks: limits', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Workers off: jobs stay queued, so the high-water mark is reached and stays reached.
    s = await startTestServer({ env: { REFLEX_INGEST_MAX_BYTES: '4096', REFLEX_INGEST_HIGH_WATER: '2', REFLEX_RUN_WORKERS: 'false' } });
  });
  afterAll(() => s.stop());

  it('answers 413 over the configured size', async () => {
    const big = JSON.stringify({ ...fixtureJson('wazuh/docs_alert_5716_sshd_auth_failed.json'), full_log: 'x'.repeat(5000) });
    const res = await postHook(s, '/hooks/wazuh', big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('input.too_large');
  });

  it('answers 429 with Retry-After above the high-water mark, and never drops silently', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await postHook(s, '/hooks/wazuh', sshd);
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('capacity.exceeded');
      } else await res.body?.cancel();
      await new Promise((r) => setTimeout(r, 600)); // the depth is sampled at most every 500 ms
    }
    expect(statuses).toContain(429);
    const accepted = statuses.filter((x) => x === 202).length;
    expect((await stats(s)).accepted).toBe(accepted);
    expect(await s.queues.depth('pipeline.normalize')).toBe(accepted);
  });
});

describe('hooks: SEV1/SEV2 ahead of the backlog', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Workers off: the jobs stay queued where the test can look at them.
    s = await startTestServer({ env: { REFLEX_RUN_WORKERS: 'false' } });
  });
  afterAll(() => s.stop());

  it('queues urgent payloads in normalize jobs of their own without priority, routine ones at priority 10', async () => {
    const alert = (severity: number, host: string) =>
      JSON.stringify({ event_type: 'malware.detected', severity, timestamp: '2026-11-21T10:00:00Z', host: { name: host }, observables: { ip: '203.0.113.9' } });
    const body = [alert(4, 'kiosk-routine-1'), alert(1, 'kiosk-sev1'), alert(3, 'kiosk-routine-2'), alert(2, 'kiosk-sev2')].join('\n');
    const res = await postHook(s, '/hooks/generic/kiosk', body, { 'content-type': 'application/x-ndjson' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 4 });
    const jobs = (await s.queues.queue('pipeline.normalize').getJobs(['waiting', 'prioritized'])) as Job<NormalizeJob>[];
    const hosts = (j: (typeof jobs)[number]) => (j.data.items as { host: { name: string } }[]).map((i) => i.host.name);
    const urgent = jobs.filter((j) => j.data.urgent === true);
    const routine = jobs.filter((j) => j.data.urgent !== true);
    expect(urgent.map(hosts)).toEqual([['kiosk-sev1', 'kiosk-sev2']]);
    expect(routine.map(hosts)).toEqual([['kiosk-routine-1', 'kiosk-routine-2']]);
    expect(urgent[0]!.opts.priority ?? 0).toBe(0);
    expect(routine[0]!.opts.priority).toBe(10);
    expect([...urgent[0]!.data.counts, ...routine[0]!.data.counts]).toEqual([1, 1, 1, 1]);
  });
});
