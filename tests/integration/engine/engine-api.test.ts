import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { createPrincipalToken } from '../../../src/approvals/principal-tokens.ts';
import { ENGINE_PORTS } from '../../../src/engine/engine-ports.ts';
import { grantRole } from '../../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

/**
 * The engine through the running app: the run and approval API, the principal-token rule for
 * decisions, and every shipped playbook in manifests/playbooks/ started for real, with vendors
 * stubbed at the HTTP edge (nock) where a client exists and failing clearly where the tenant configured none.
 */
const ABUSE_FIXTURE = readFileSync('../shared/fixtures/intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json', 'utf8');
const TENANT = 'acme';

let server: TestServer;
let responderToken: string;
let viewerToken: string;

function api(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  return fetch(`${server.url}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${server.apiToken}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

async function startRun(playbook: string, inputs: Record<string, unknown>): Promise<string> {
  const res = await api('/api/v1/runs', { method: 'POST', body: { playbook, tenant: TENANT, inputs } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function runView(id: string) {
  const res = await api(`/api/v1/runs/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; error: string | null; steps: { step_id: string; status: string; error: string | null; attempt: number }[] };
}

async function waitFor(id: string, statuses: string[]) {
  let view: Awaited<ReturnType<typeof runView>> | undefined;
  await vi.waitFor(
    async () => {
      view = await runView(id);
      if (!statuses.includes(view.status)) throw new Error(`run is ${view.status}`);
    },
    { timeout: 20_000, interval: 50 },
  );
  return view!;
}

beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  server = await startTestServer({ queue: 'redis' });
  await ensureTenant(server.store.db, TENANT, 'ACME Corp');
  const responder = await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-resp' }, tenantId: TENANT, role: 'responder', actor: 'test', displayName: 'Rita Responder' });
  const viewer = await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-view' }, tenantId: TENANT, role: 'viewer', actor: 'test', displayName: 'Vic Viewer' });
  responderToken = (await createPrincipalToken(server.store.db, { principalId: responder.principalId, label: 'test', actor: 'test' })).token;
  viewerToken = (await createPrincipalToken(server.store.db, { principalId: viewer.principalId, label: 'test', actor: 'test' })).token;
});
afterAll(async () => {
  await server.stop();
  nock.cleanAll();
  nock.enableNetConnect();
});

describe('engine API', () => {
  it('refuses bad starts with a clear error and writes nothing', async () => {
    const noToken = await fetch(`${server.url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(noToken.status).toBe(401);
    const unknown = await api('/api/v1/runs', { method: 'POST', body: { playbook: 'nope', tenant: TENANT } });
    expect(unknown.status).toBe(404);
    const badInput = await api('/api/v1/runs', { method: 'POST', body: { playbook: 'brute-force-containment', tenant: TENANT, inputs: { source_ip: 'N/A', bogus: 1 } } });
    expect(badInput.status).toBe(400);
    const body = (await badInput.json()) as { error: { message: string; details: { problems: string[] } } };
    expect(body.error.details.problems).toEqual([
      expect.stringContaining('no input "bogus"'),
      'inputs.source_ip: expected an IPv4 or IPv6 address',
    ]);
    const notManual = await api('/api/v1/runs', { method: 'POST', body: { playbook: 'sev1-after-hours-page', tenant: TENANT } });
    expect(notManual.status).toBe(400);
    expect(((await notManual.json()) as { error: { message: string } }).error.message).toMatch(/cannot be started by hand/);
    const runs = await server.store.db.selectFrom('playbook_runs').select('id').execute();
    expect(runs).toHaveLength(0);
  });

  it('runs kiosk-lockdown end to end: vault secret, nock-stubbed kiosk API, event wait, approval decided with a principal token', async () => {
    await server.store.vault.set(TENANT, 'sentkiosk-webhook-token', 'kiosk-token-123456', 'test');
    const kiosk = nock('https://kiosk.sent.example')
      .post('/api/v1/sites/hq%201/lockdown', (b: { mode: string }) => b.mode === 'lockdown')
      .matchHeader('authorization', 'Bearer kiosk-token-123456')
      .reply(202, {})
      .post('/api/v1/sites/hq%201/unlock')
      .matchHeader('authorization', 'Bearer kiosk-token-123456')
      .reply(200, { unlocked: true });
    const id = await startRun('kiosk-lockdown', { site: 'hq 1' });
    await vi.waitFor(async () => expect((await runView(id)).steps.find((s) => s.step_id === 'wait_all_clear')?.status).toBe('waiting'), { timeout: 15_000, interval: 50 });

    // The physical-security system's all-clear arrives as an alert through the pipeline's trigger seam.
    await ENGINE_PORTS.engine!.onAlert({
      tenantId: TENANT,
      alertId: '00000000-0000-4000-8000-0000000000aa',
      incidentId: null,
      event: { event_type: 'generic.alert', severity: 4, source: 'generic:physical-security', raw: { kind: 'all_clear', site: 'hq 1' } } as never,
    });
    await waitFor(id, ['waiting']);
    let pending: { id: string; card: { buttons: { value: string }[]; text: string } }[] = [];
    await vi.waitFor(async () => {
      pending = ((await (await api(`/api/v1/approvals?status=pending&tenant=${TENANT}`)).json()) as { items: typeof pending }).items.filter((a) => a.card.text.includes('hq 1'));
      expect(pending).toHaveLength(1);
    }, { timeout: 10_000, interval: 50 });
    const gate = pending[0]!;
    expect(gate.card.text).toBe('Unlock the kiosks at hq 1? An all-clear was received.');
    expect(gate.card.buttons.map((b) => b.value)).toEqual([gate.id, gate.id]);

    // The admin token alone is nobody; a viewer is not an approver; the responder decides.
    const adminOnly = await api(`/api/v1/approvals/${gate.id}/decision`, { method: 'POST', body: { decision: 'approve' } });
    expect(adminOnly.status).toBe(401);
    const viewer = await api(`/api/v1/approvals/${gate.id}/decision`, { method: 'POST', body: { decision: 'approve' }, headers: { 'x-reflex-principal-token': viewerToken } });
    expect(viewer.status).toBe(403);
    const ok = await api(`/api/v1/approvals/${gate.id}/decision`, { method: 'POST', body: { decision: 'approve' }, headers: { 'x-reflex-principal-token': responderToken } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: 'approved' });

    const done = await waitFor(id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(kiosk.isDone()).toBe(true);
    expect(done.steps.map((s) => [s.step_id, s.status])).toEqual(
      expect.arrayContaining([
        ['lock_kiosks', 'succeeded'],
        ['announce_lockdown', 'succeeded'],
        ['wait_all_clear', 'succeeded'],
        ['approve_unlock', 'succeeded'],
        ['unlock_kiosks', 'succeeded'],
      ]),
    );
    const log = (await (await api(`/api/v1/runs/${id}/log`)).json()) as { steps: { step_id: string; input: unknown; duration_ms: number; idempotency_key: string }[]; approvals: unknown[] };
    const lock = log.steps.find((s) => s.step_id === 'lock_kiosks')!;
    expect(lock.idempotency_key).toBe(`reflex-${id}-lock_kiosks`);
    expect(JSON.stringify(log)).not.toContain('kiosk-token-123456');
    expect(log.approvals).toHaveLength(1);
  });

  it('starts every shipped playbook: stubbed vendors answer, unwired ones fail clearly', async () => {
    await server.store.vault.set(TENANT, 'abuseipdb.api_key', 'abuse-key-0123456789', 'test');
    nock('https://api.abuseipdb.com').get('/api/v2/check').query(true).reply(200, ABUSE_FIXTURE, { 'content-type': 'application/json' });

    // brute-force: AbuseIPDB (nock) says 100, so it blocks, and this tenant has no firewall configured
    // (tests/integration/engine/vendor-playbooks.test.ts runs it against configured vendors).
    const brute = await waitFor(await startRun('brute-force-containment', { source_ip: '198.51.100.100' }), ['failed', 'succeeded']);
    expect(brute.steps.find((s) => s.step_id === 'enrich_ip')?.status).toBe('succeeded');
    expect(brute.steps.find((s) => s.step_id === 'block_ip')).toMatchObject({ status: 'failed', attempt: 1, error: 'tenant acme: config key firewall.provider is not set, so no firewall is configured' });
    expect(brute.status).toBe('failed');

    // phishing-triage: this tenant has no mailbox provider (phishing-playbook.test.ts runs it against Graph).
    const phish = await waitFor(await startRun('phishing-triage', { message_id: '<abc@mail.example>', reporter: 'ana@acme.example' }), ['failed']);
    expect(phish.steps[0]).toMatchObject({ step_id: 'fetch', attempt: 1, error: 'tenant acme: config key mailbox.provider is not set, so no mailbox is configured' });

    // Gated playbooks open their gate and wait.
    for (const [playbook, inputs, gate] of [
      ['host-isolation', { agent_id: '003', host: 'web-01' }, 'approve_isolation'],
      ['credential-rotation', { assets: ['db/prod'], user: 'ana@acme.example' }, 'approve_rotation'],
    ] as const) {
      const view = await waitFor(await startRun(playbook, inputs), ['waiting']);
      expect(view.steps).toEqual([expect.objectContaining({ step_id: gate, status: 'waiting' })]);
    }

    // sev1-after-hours-page starts from a severity-1 alert; this tenant has no PagerDuty routing key.
    await ENGINE_PORTS.engine!.onAlert({
      tenantId: TENANT,
      alertId: '00000000-0000-4000-8000-0000000000bb',
      incidentId: null,
      event: { event_type: 'malware.detected', severity: 1, timestamp: '2026-11-21T03:00:00Z', source: 'wazuh', host: { name: 'web-01', ip: null }, observables: { ip: [], domain: [], url: [], hash: [] }, raw: {} } as never,
    });
    const sev1Id = await ENGINE_PORTS.engine!.runForAlert('00000000-0000-4000-8000-0000000000bb', 'sev1-after-hours-page');
    const sev1 = await waitFor(sev1Id!, ['failed']);
    expect(sev1.steps.find((s) => s.step_id === 'page_oncall')).toMatchObject({ status: 'failed', attempt: 1, error: 'secret pagerduty.routing_key.secops-primary is not set for tenant acme' });
  });
});
