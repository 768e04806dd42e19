import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { createPrincipalToken } from '../../../src/approvals/principal-tokens.ts';
import { ENGINE_PORTS } from '../../../src/engine/engine-ports.ts';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { grantRole } from '../../../src/store/principals.ts';
import { parseMail } from '../../helpers/mail.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';
import {
  ENTRA_TENANT,
  GRAPH_PATCH_STATUS,
  SECRETS,
  TENANT_CONFIG,
  TWILIO_CALL,
  WAZUH_AR_OK_001,
  stageAbuseIpdb,
  stageEntraToken,
  stageGraphPatch,
  stageGraphRevoke,
  stageGridBlock,
  stageGridUnblock,
  stagePagerDuty,
  stageTwilio,
  stageWazuhActiveResponse,
  stageWazuhLogin,
  startTestSmtp,
  type Seen,
  type TestSmtp,
} from './helpers/vendor-stubs.ts';

/**
 * Shipped playbooks (manifests/playbooks/) end to end through the running app: the engine feature
 * registers the vendor executors and wires the approvals' pager and link sender at start; the
 * tenant's configuration and vault secrets pick the adapters; every vendor call is answered by
 * nock from the shared fixtures and made exactly once; approvals are decided by a person, once
 * through the one-time link that arrived by e-mail (a real SMTP server) and once over the API.
 */

const TENANT = 'acme';
const SOURCE_IP = '198.51.100.100'; // the address of the AbuseIPDB fixture (score 100)
const USER = 'alice@contoso.example';

let server: TestServer;
let smtp: TestSmtp;
let ana: { principalId: string };
let anaToken: string;

function api(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  return fetch(`${server.url}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${server.apiToken}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

type RunView = { status: string; error: string | null; steps: { step_id: string; status: string; error: string | null; attempt: number }[] };

async function runView(id: string): Promise<RunView> {
  const res = await api(`/api/v1/runs/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as RunView;
}

async function waitFor(id: string, statuses: string[]): Promise<RunView> {
  let view: RunView | undefined;
  await vi.waitFor(
    async () => {
      view = await runView(id);
      if (!statuses.includes(view.status)) throw new Error(`run is ${view.status}: ${JSON.stringify(view.steps.map((s) => [s.step_id, s.status, s.error]))}`);
    },
    { timeout: 20_000, interval: 50 },
  );
  return view!;
}

async function startRun(playbook: string, inputs: Record<string, unknown>): Promise<string> {
  const res = await api('/api/v1/runs', { method: 'POST', body: { playbook, tenant: TENANT, inputs } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function runLog(id: string): Promise<string> {
  return JSON.stringify(await (await api(`/api/v1/runs/${id}/log`)).json());
}

beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  smtp = await startTestSmtp();
  server = await startTestServer({ queue: 'redis', env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, SMTP_FROM: 'sentreflex@example.test' } });
  await ensureTenant(server.store.db, TENANT, 'ACME Corp');
  await server.store.db.updateTable('tenants').set({ config: JSON.stringify({ ...TENANT_CONFIG, utc_offset: '+0000' }) }).where('id', '=', TENANT).execute();
  for (const [name, value] of Object.entries(SECRETS)) await server.store.vault.set(TENANT, name, value, 'test');
  await server.store.vault.set(TENANT, 'abuseipdb.api_key', 'abuse-key-0123456789', 'test');
  ana = await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-ana' }, tenantId: TENANT, role: 'approver', actor: 'test', displayName: 'Ana Approver', email: 'ana@acme.example' });
  anaToken = (await createPrincipalToken(server.store.db, { principalId: ana.principalId, label: 'test', actor: 'test' })).token;
});
afterAll(async () => {
  await server?.stop();
  await smtp?.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

describe('shipped playbooks against stubbed vendors', () => {
  it('the engine wired the approvals pager and link sender at start', () => {
    expect(ENGINE_PORTS.pager?.constructor.name).toBe('VendorEscalationPager');
    expect(ENGINE_PORTS.linkSender?.constructor.name).toBe('VendorApprovalLinkSender');
  });

  it('brute-force-containment: intel, firewall block, e-mailed one-time link, Graph disable, then the scheduled unblock', async () => {
    const intel = stageAbuseIpdb();
    const grid: Seen[] = [];
    const block = stageGridBlock(SOURCE_IP, { status: 201 }, grid);
    const mailsBefore = smtp.received.length;

    const id = await startRun('brute-force-containment', { source_ip: SOURCE_IP, target_user: USER, login_succeeded: true });
    const waiting = await waitFor(id, ['waiting', 'failed']);
    expect(waiting.status).toBe('waiting');
    expect(intel.isDone() && block.isDone()).toBe(true);
    expect(grid).toHaveLength(1);
    expect(grid[0]).toMatchObject({
      headers: { authorization: `Bearer ${SECRETS['firewall.api_token']}`, 'idempotency-key': `reflex-${id}-block_ip` },
      body: { ttl_seconds: 86_400, comment: 'SENTreflex brute-force containment (score 100)' },
    });

    // The approver's one-time link arrives by e-mail (Ana has no phone on record).
    await vi.waitFor(() => expect(smtp.received.length).toBeGreaterThan(mailsBefore), { timeout: 10_000, interval: 25 });
    const mail = smtp.received.at(-1)!;
    expect(mail.envelopeTo).toEqual(['ana@acme.example']);
    const url = /(http:\/\/127\.0\.0\.1:\d+\/approve\/\S+)/.exec(parseMail(mail.raw).text ?? '')?.[1];
    expect(url).toBeDefined();

    const graph: Seen[] = [];
    const token = stageEntraToken(ENTRA_TENANT);
    const patch = stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, graph);
    const revoke = stageGraphRevoke(USER, graph);

    // Ana opens the link and approves: CSRF token from the page, cookie from its answer.
    const page = await fetch(url!);
    expect(page.status).toBe(200);
    const html = await page.text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
    const decided = await fetch(url!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: new URLSearchParams({ csrf: csrf!, decision: 'approve' }).toString() });
    expect(decided.status).toBe(200);

    const done = await waitFor(id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(token.isDone() && patch.isDone() && revoke.isDone()).toBe(true);
    expect(graph.map((s) => s.path)).toEqual([`/v1.0/users/${encodeURIComponent(USER)}`, `/v1.0/users/${encodeURIComponent(USER)}/revokeSignInSessions`]);
    expect(graph[0]).toMatchObject({ body: { accountEnabled: false }, headers: { 'client-request-id': graphRequestId(`reflex-${id}-disable_user`) } });
    expect(done.steps.filter((s) => ['block_ip', 'disable_user'].includes(s.step_id)).map((s) => [s.step_id, s.status, s.attempt])).toEqual([
      ['block_ip', 'succeeded', 1],
      ['disable_user', 'succeeded', 1],
    ]);
    const link = await engineDb(server.store.db).selectFrom('approval_links').select('sent_via').where('principal_id', '=', ana.principalId).execute();
    expect(link.map((l) => l.sent_via)).toEqual(['email']);

    // The scheduled unblock (24 h) run now, as the incident's button would: DELETE with the revert's own key.
    const unblockSeen: Seen[] = [];
    const unblock = stageGridUnblock(SOURCE_IP, { status: 204 }, unblockSeen);
    const revert = await engineDb(server.store.db).selectFrom('run_reverts').select(['id', 'action', 'status']).where('run_id', '=', id).executeTakeFirstOrThrow();
    expect(revert).toMatchObject({ action: 'firewall.unblock', status: 'scheduled' });
    const outcome = await ENGINE_PORTS.engine!.engine.reverts.runNow(TENANT, revert.id, 'test');
    expect(outcome.status).toBe('succeeded');
    expect(unblock.isDone()).toBe(true);
    expect(unblockSeen).toHaveLength(1);
    expect(unblockSeen[0]?.headers['idempotency-key']).toBe(`reflex-${id}-unblock_ip_later-revert`);

    const log = await runLog(id);
    for (const secret of Object.values(SECRETS)) expect(log).not.toContain(secret);
  });

  it('sev1-after-hours-page: a 03:00 severity-1 alert pages PagerDuty and phones the on-call at the same time', async () => {
    const pia = await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-pia' }, tenantId: TENANT, role: 'viewer', actor: 'test', displayName: 'Pia Primary' });
    await ENGINE_PORTS.engine!.engine.oncall.setRotation(TENANT, 'secops-primary', [pia.principalId], 'test');
    await server.store.vault.set(TENANT, `contact.phone.${pia.principalId}`, TWILIO_CALL.to, 'test');
    const pages: Seen[] = [];
    const calls: Seen[] = [];
    const pd = stagePagerDuty('success', pages);
    const twilio = stageTwilio('Calls.json', { status: 201, body: TWILIO_CALL }, calls);

    const alertId = '00000000-0000-4000-8000-0000000000c1';
    await ENGINE_PORTS.engine!.onAlert({
      tenantId: TENANT,
      alertId,
      incidentId: null,
      event: { event_type: 'malware.detected', severity: 1, timestamp: '2026-11-21T03:00:00Z', source: 'wazuh', host: { name: 'web-01', ip: null }, observables: { ip: [], domain: [], url: [], hash: [] }, raw: {} } as never,
    });
    const id = (await ENGINE_PORTS.engine!.runForAlert(alertId, 'sev1-after-hours-page'))!;
    const done = await waitFor(id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(pd.isDone() && twilio.isDone()).toBe(true);
    expect(pages).toHaveLength(1);
    expect(calls).toHaveLength(1);
    expect(pages[0]?.body).toMatchObject({
      routing_key: SECRETS['pagerduty.routing_key.secops-primary'],
      event_action: 'trigger',
      dedup_key: `reflex-${id}-page_oncall`,
      payload: { summary: 'SEV1 malware.detected on web-01', severity: 'critical', source: 'web-01', custom_details: { tenant: 'ACME Corp' } },
    });
    const call = calls[0]?.body as { To: string; From: string; Twiml: string };
    expect(call.To).toBe(TWILIO_CALL.to);
    expect(call.From).toBe(TENANT_CONFIG.twilio.from);
    expect(call.Twiml).toContain('needs you now');
    expect(done.steps.filter((s) => ['page_oncall', 'call_oncall'].includes(s.step_id)).map((s) => [s.step_id, s.status, s.attempt]).sort()).toEqual([
      ['call_oncall', 'succeeded', 1],
      ['page_oncall', 'succeeded', 1],
    ]);
    // The on-call's phone number is personal data from the vault: masked in the run's log.
    const log = await runLog(id);
    expect(log).not.toContain(TWILIO_CALL.to);
    expect(log).not.toContain(SECRETS['twilio.auth_token']);
  });

  it('host-isolation: approved over the API, then the Wazuh active response runs once on the agent', async () => {
    const wazuh: Seen[] = [];
    const id = await startRun('host-isolation', { agent_id: '001', host: 'web-01' });
    await waitFor(id, ['waiting']);
    const gate = await engineDb(server.store.db).selectFrom('approvals').select('id').where('run_id', '=', id).executeTakeFirstOrThrow();
    const login = stageWazuhLogin(wazuh);
    const put = stageWazuhActiveResponse('001', { status: 200, body: WAZUH_AR_OK_001 }, wazuh);
    const ok = await api(`/api/v1/approvals/${gate.id}/decision`, { method: 'POST', body: { decision: 'approve' }, headers: { 'x-reflex-principal-token': anaToken } });
    expect(ok.status).toBe(200);
    const done = await waitFor(id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(login.isDone() && put.isDone()).toBe(true);
    expect(wazuh).toHaveLength(2);
    expect(wazuh[1]?.body).toEqual({ command: '!isolate-host', alert: { data: { sentreflex: { idempotency_key: `reflex-${id}-isolate_host` } } } });
    expect(done.steps.find((s) => s.step_id === 'isolate_host')).toMatchObject({ status: 'succeeded', attempt: 1 });
  });
});
