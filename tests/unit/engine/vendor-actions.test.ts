import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../../src/engine/actions/registry.ts';
import { missingSecret, TenantIntegrations } from '../../../src/engine/actions/tenant-integrations.ts';
import { createVendorExecutors } from '../../../src/engine/actions/vendor-actions.ts';
import { ACTION_CATALOGUE } from '../../../src/engine/action-catalogue.ts';
import { ReflexError } from '../../../src/errors.ts';
import { graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { messageIdFor } from '../../../src/integrations/smtp/mail-message.ts';
import { SmtpMailer } from '../../../src/integrations/smtp/smtp-mailer.ts';
import { InMemoryIdempotencyStore } from '../../../src/integrations/twilio/in-memory-idempotency-store.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';
import {
  ENTRA_TENANT,
  FALCON_ENVELOPE,
  GRAPH_PATCH_STATUS,
  MDE_ACTION,
  MDE_TENANT,
  PD_ERROR,
  SECRETS,
  TENANT_CONFIG,
  TWILIO_CALL,
  TWILIO_ERROR,
  WAZUH_AR_DISCONNECTED_009,
  WAZUH_AR_OK_001,
  WAZUH_AR_UNKNOWN_251,
  stageEntraToken,
  stageFalconAction,
  stageFalconToken,
  stageGraphPatch,
  stageGraphRevoke,
  stageGridBlock,
  stageGridUnblock,
  stageMdeActions,
  stageMdeIsolate,
  stagePagerDuty,
  stageTwilio,
  stageWazuhActiveResponse,
  stageWazuhLogin,
  startTestSmtp,
  type Seen,
  type TestSmtp,
} from '../../integration/engine/helpers/vendor-stubs.ts';

/**
 * The vendor executors (firewall, identity, host, Wazuh, pager, phone, mail) over the real
 * adapters, with vendor HTTP answered by nock from the shared fixtures: the docs/INTEGRATIONS.md
 * mapping (what is sent, with which key and credential), vendor errors, 429 with the retry hint,
 * missing configuration, idempotency and the per-tenant client cache.
 */

useStrictNock();

type Config = Record<string, unknown>;
type Secrets = Record<string, string>;

let smtp: TestSmtp;
let mailer: SmtpMailer | undefined;
let mailStore: InMemoryIdempotencyStore;
beforeAll(async () => {
  smtp = await startTestSmtp({ dataReplies: [] });
  mailStore = new InMemoryIdempotencyStore();
  mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, from: 'sentreflex@example.test', store: mailStore });
});
afterAll(async () => {
  await mailer?.close();
  await smtp?.close();
});

const onCallRoster = new Map<string, string>();
const twilioStore = new InMemoryIdempotencyStore();
let integrations = makeIntegrations();
function makeIntegrations(withMailer = true): TenantIntegrations {
  return new TenantIntegrations({ idempotencyStore: () => twilioStore, mailer: () => (withMailer ? mailer : undefined) });
}

function executors(i = integrations) {
  return new Map(createVendorExecutors({ integrations: i, onCall: async (tenantId, schedule) => onCallRoster.get(`${tenantId}/${schedule}`) }));
}

interface RunOptions {
  config?: Config;
  secrets?: Secrets;
  key?: string;
  event?: unknown;
  via?: TenantIntegrations;
  tenantId?: string;
}

/** Runs one action as the engine would: the tenant's config and secrets, the step's key. */
async function run(action: string, input: Record<string, unknown>, opts: RunOptions = {}): Promise<{ output: unknown; logs: string[] }> {
  const logs: string[] = [];
  const secrets: Secrets = opts.secrets ?? SECRETS;
  const tenantId = opts.tenantId ?? 'acme';
  const ctx: ActionContext = {
    tenantId,
    runId: 'run-1',
    stepId: 'step-1',
    idempotencyKey: opts.key ?? 'reflex-run-1-step-1',
    attempt: 1,
    secrets: {
      get: async (n) => secrets[n],
      require: async (n) => {
        const v = secrets[n];
        if (v === undefined) throw missingSecret(tenantId, n);
        return v;
      },
    },
    config: { id: tenantId, name: 'ACME', ...(opts.config ?? TENANT_CONFIG) },
    signal: new AbortController().signal,
    timeoutMs: 30_000,
    expressionContext: { event: opts.event ?? { severity: 2, host: { name: 'web-01' } } },
    log: (l) => logs.push(l),
  };
  const executor = executors(opts.via ?? integrations).get(action as never);
  if (!executor) throw new Error(`no executor for ${action}`);
  const output = await executor(input, ctx);
  return { output: JSON.parse(JSON.stringify(output)) as unknown, logs };
}

const withConfig = (patch: Config): Config => ({ ...TENANT_CONFIG, ...patch });
const without = (secret: string): Secrets => Object.fromEntries(Object.entries(SECRETS).filter(([k]) => k !== secret));

function expectConfigInvalid(err: ReflexError, names: string): void {
  expect(err.code).toBe('config.invalid');
  expect(err.retryable).toBe(false);
  expect(err.message).toContain(names);
  expect(err.safeMessage).toContain(names);
}

function expectNoSecrets(value: unknown): void {
  const text = JSON.stringify(value) + (value instanceof Error ? `${value.message} ${(value as ReflexError).safeMessage}` : '');
  for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
}

describe('vendor executors cover the INTEGRATIONS.md mapping', () => {
  it('registers an executor for every mapped catalogue action, and only catalogue actions', () => {
    const names = [...executors().keys()].sort();
    expect(names).toEqual(
      [
        'firewall.block', 'firewall.unblock',
        'identity.disable_user', 'identity.enable_user', 'identity.revoke_sessions', 'identity.reset_password',
        'host.isolate', 'host.release', 'wazuh.active_response',
        'pager.page', 'phone.call', 'mail.send',
        'vault.rotate_credential',
        'mail.get_message', 'mail.delete_message',
      ].sort(),
    );
    for (const name of names) expect(ACTION_CATALOGUE).toHaveProperty([name]);
  });

  it('registers case.comment only when given the database (it writes the incident timeline)', () => {
    expect(executors().has('case.comment')).toBe(false);
    const withDb = new Map(createVendorExecutors({ integrations, onCall: async () => undefined, db: {} as never }));
    expect(withDb.has('case.comment')).toBe(true);
  });
});

describe('firewall.block / firewall.unblock', () => {
  const IP = '198.51.100.7';

  it('REST blocklist: sends the TTL in seconds, the reason, the bearer token and the step key', async () => {
    const seen: Seen[] = [];
    const block = stageGridBlock(IP, { status: 201 }, seen);
    const unblock = stageGridUnblock(IP, { status: 204 }, seen);
    const { output, logs } = await run('firewall.block', { ip: IP, ttl: '24h', reason: 'sshd brute force' }, { key: 'reflex-r1-block_ip' });
    await run('firewall.unblock', { ip: IP }, { key: 'reflex-r1-block_ip-revert' });
    expect(block.isDone() && unblock.isDone()).toBe(true);
    expect(seen[0]).toMatchObject({
      headers: { authorization: `Bearer ${SECRETS['firewall.api_token']}`, 'idempotency-key': 'reflex-r1-block_ip' },
      body: { ttl_seconds: 86_400, comment: 'sshd brute force' },
    });
    expect(seen[1]?.headers['idempotency-key']).toBe('reflex-r1-block_ip-revert');
    expect(output).toMatchObject({ vendor: 'firewall', target: IP, address: IP, state: 'done', alreadyInState: false, failures: [] });
    expect(logs).toEqual([expect.stringMatching(/^firewall: blocked 198\.51\.100\.7 until /)]);
    expectNoSecrets(output);
  });

  it('the same step twice carries the same Idempotency-Key; the second answer is "already there"', async () => {
    const seen: Seen[] = [];
    stageGridBlock(IP, { status: 201 }, seen);
    stageGridBlock(IP, { status: 200 }, seen);
    const first = await run('firewall.block', { ip: IP }, { key: 'reflex-r2-block_ip' });
    const again = await run('firewall.block', { ip: IP }, { key: 'reflex-r2-block_ip' });
    expect(seen.map((s) => s.headers['idempotency-key'])).toEqual(['reflex-r2-block_ip', 'reflex-r2-block_ip']);
    expect(first).toMatchObject({ output: { alreadyInState: false } });
    expect(again).toMatchObject({ output: { alreadyInState: true } });
  });

  it('Wazuh firewall-drop: runs the block command on the configured agents with the address as srcip', async () => {
    const seen: Seen[] = [];
    stageWazuhLogin(seen);
    const put = stageWazuhActiveResponse('001', { status: 200, body: WAZUH_AR_OK_001 }, seen);
    const { output } = await run('firewall.block', { ip: IP, reason: 'brute force' }, { config: withConfig({ firewall: { provider: 'wazuh' } }), key: 'reflex-r3-block_ip' });
    expect(put.isDone()).toBe(true);
    expect(seen[0]?.headers.authorization).toBe(`Basic ${Buffer.from(`sentreflex:${SECRETS['wazuh.api_password']}`).toString('base64')}`);
    expect(seen[1]?.body).toEqual({ command: 'firewall-drop600', alert: { data: { srcip: IP, comment: 'brute force', sentreflex: { idempotency_key: 'reflex-r3-block_ip' } } } });
    expect(output).toMatchObject({ vendor: 'wazuh-firewall-drop', address: IP, failures: [] });
  });

  it("Wazuh's error envelope: an unknown agent is not_found, not retried", async () => {
    // The tenant's Wazuh client (and its JWT) from the test above is reused: no second login.
    stageWazuhActiveResponse('251', { status: 200, body: WAZUH_AR_UNKNOWN_251 });
    const config = withConfig({ firewall: { provider: 'wazuh' }, wazuh: { ...TENANT_CONFIG.wazuh, firewall: { agents: ['251'], block_command: 'firewall-drop600' } } });
    const err = await failure(run('firewall.block', { ip: IP }, { config }));
    expect(err.code).toBe('not_found');
    expect(err.retryable).toBe(false);
    expectNoSecrets(err);
  });

  it('429 is retryable and passes Retry-After on', async () => {
    stageGridBlock(IP, { status: 429, body: { error: { message: 'slow down' } }, headers: { 'Retry-After': '30' } });
    const err = await failure(run('firewall.block', { ip: IP }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 30_000 });
    expectNoSecrets(err);
  });

  it('missing or bad configuration is config.invalid naming the key or secret, before any request', async () => {
    expectConfigInvalid(await failure(run('firewall.block', { ip: IP }, { config: withConfig({ firewall: {} }) })), 'firewall.provider');
    expectConfigInvalid(await failure(run('firewall.block', { ip: IP }, { config: withConfig({ firewall: { provider: 'rest' } }) })), 'firewall.base_url');
    expectConfigInvalid(await failure(run('firewall.block', { ip: IP }, { secrets: without('firewall.api_token') })), 'firewall.api_token');
    expectConfigInvalid(await failure(run('firewall.block', { ip: IP }, { config: withConfig({ firewall: { provider: 'iptables' } }) })), 'firewall.provider');
    expectConfigInvalid(await failure(run('firewall.block', { ip: IP }, { config: withConfig({ firewall: { provider: 'wazuh' }, wazuh: { base_url: 'https://wazuh.example.test:55000', api_user: 'x' } }) })), 'wazuh.firewall.agents');
    const badInput = await failure(run('firewall.block', { ip: IP, ttl: 86400 }));
    expect(badInput).toMatchObject({ code: 'input.invalid', retryable: false });
  });
});

describe('identity.* over Microsoft Graph', () => {
  const USER = 'alice@contoso.example';

  it('disable_user: one login, PATCH accountEnabled=false with the key as client-request-id, then revokes sessions', async () => {
    const seen: Seen[] = [];
    const token = stageEntraToken(ENTRA_TENANT, seen);
    stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, seen);
    stageGraphRevoke(USER, seen);
    const { output, logs } = await run('identity.disable_user', { user: USER, reason: 'INC-7' }, { key: 'reflex-r4-disable_user' });
    expect(token.isDone()).toBe(true);
    expect(seen[0]?.body).toMatchObject({ grant_type: 'client_credentials', client_id: 'sentreflex-app', scope: 'https://graph.microsoft.com/.default' });
    expect(seen[1]).toMatchObject({ body: { accountEnabled: false }, headers: { 'client-request-id': graphRequestId('reflex-r4-disable_user') } });
    expect(seen[2]?.headers['client-request-id']).toBe(graphRequestId('reflex-r4-disable_user'));
    expect(output).toMatchObject({ vendor: 'msgraph', target: USER, state: 'done', sessionsRevoked: true, raw: { value: true } });
    expect(logs).toEqual([`msgraph: disabled ${USER} and revoked its sessions`]);
    expectNoSecrets(output);

    // The next step of the same tenant reuses the client and its token: no second login.
    stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, seen);
    await run('identity.enable_user', { user: USER }, { key: 'reflex-r4-enable_user' });
    expect(seen[3]?.body).toEqual({ accountEnabled: true });
    expect(seen[3]?.headers.authorization).toBe(seen[1]?.headers.authorization);
  });

  it('a rotated client secret takes effect on the next step (new client, new login with the new secret)', async () => {
    const tenantId = 'rotating';
    const seen: Seen[] = [];
    stageEntraToken(ENTRA_TENANT, seen);
    stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, seen);
    await run('identity.enable_user', { user: USER }, { tenantId });
    stageEntraToken(ENTRA_TENANT, seen);
    stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, seen);
    await run('identity.enable_user', { user: USER }, { tenantId, secrets: { ...SECRETS, 'msgraph.client_secret': 'graph-secret-rotated-987654' } });
    const logins = seen.filter((s) => s.path.endsWith('/token'));
    expect(logins.map((s) => (s.body as { client_secret: string }).client_secret)).toEqual([SECRETS['msgraph.client_secret'], 'graph-secret-rotated-987654']);
  });

  it('revoke_sessions and reset_password map onto revokeSignInSessions and passwordProfile', async () => {
    const seen: Seen[] = [];
    stageGraphRevoke(USER, seen);
    stageGraphPatch(USER, { status: GRAPH_PATCH_STATUS }, seen);
    await run('identity.revoke_sessions', { user: USER });
    await run('identity.reset_password', { user: USER, force_change_at_login: true });
    const profile = (seen[1]?.body as { passwordProfile: { forceChangePasswordNextSignIn: boolean; password: string } }).passwordProfile;
    expect(profile.forceChangePasswordNextSignIn).toBe(true);
    expect(profile.password).toHaveLength(32);
  });

  it("Graph's error envelope: an unknown user is not_found, not retried", async () => {
    stageGraphPatch('ghost@contoso.example', { status: 404, body: { error: { code: 'Request_ResourceNotFound', message: "Resource 'ghost@contoso.example' does not exist." } } });
    const err = await failure(run('identity.disable_user', { user: 'ghost@contoso.example' }));
    expect(err).toMatchObject({ code: 'not_found', retryable: false });
    expect(err.message).toContain('Request_ResourceNotFound');
  });

  it('429 is retryable and passes Retry-After on', async () => {
    stageGraphPatch(USER, { status: 429, body: { error: { code: 'TooManyRequests', message: 'Too many requests' } }, headers: { 'Retry-After': '7' } });
    const err = await failure(run('identity.disable_user', { user: USER }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 7000 });
  });

  it('missing configuration is config.invalid naming the key or secret; ldap is refused clearly', async () => {
    expectConfigInvalid(await failure(run('identity.disable_user', { user: USER }, { config: withConfig({ identity: {} }) })), 'identity.provider');
    expectConfigInvalid(await failure(run('identity.disable_user', { user: USER }, { config: withConfig({ msgraph: { client_id: 'x' } }) })), 'msgraph.tenant_id');
    expectConfigInvalid(await failure(run('identity.disable_user', { user: USER }, { secrets: without('msgraph.client_secret') })), 'msgraph.client_secret');
    const ldap = await failure(run('identity.disable_user', { user: USER }, { config: withConfig({ identity: { provider: 'ldap' } }) }));
    expect(ldap).toMatchObject({ code: 'config.invalid', retryable: false });
    expect(ldap.safeMessage).toMatch(/LDAP/);
  });
});

describe('host.isolate / host.release', () => {
  const MACHINE = MDE_ACTION.machineId;

  it('Defender: reads the latest action, isolates with the key in the Comment, returns the machine id as target', async () => {
    const seen: Seen[] = [];
    stageEntraToken(MDE_TENANT);
    stageMdeActions({ status: 200, body: { value: [] } });
    stageMdeIsolate(MACHINE, { status: 201, body: MDE_ACTION }, seen);
    const { output } = await run('host.isolate', { host: MACHINE, reason: 'ransomware' }, { key: 'reflex-r5-isolate' });
    expect(seen[0]?.body).toEqual({ Comment: 'ransomware [SENTreflex reflex-r5-isolate]', IsolationType: 'Full' });
    expect(output).toMatchObject({ vendor: 'defender', target: MACHINE, reference: MDE_ACTION.id, alreadyInState: false });
  });

  it('Defender: 429 is retryable with Retry-After', async () => {
    stageMdeActions({ status: 429, headers: { 'Retry-After': '12' } });
    const err = await failure(run('host.isolate', { host: MACHINE }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 12_000 });
  });

  it("CrowdStrike's error envelope: an unknown device is not_found, not retried", async () => {
    const aid = FALCON_ENVELOPE.resources[0]!.id;
    stageFalconToken();
    stageFalconAction('contain', { status: 404, body: { meta: FALCON_ENVELOPE.meta, resources: [], errors: [{ code: 404, message: `Device ${aid} not found` }] } });
    const err = await failure(run('host.isolate', { host: aid }, { config: withConfig({ edr: { provider: 'crowdstrike' } }) }));
    expect(err).toMatchObject({ code: 'not_found', retryable: false });
    expectNoSecrets(err);
  });

  it('CrowdStrike: release lifts containment and says so', async () => {
    const aid = FALCON_ENVELOPE.resources[0]!.id;
    stageFalconAction('lift_containment', { status: 202, body: { meta: FALCON_ENVELOPE.meta, resources: [{ id: aid, path: '' }], errors: [] } });
    const { output } = await run('host.release', { host: aid }, { config: withConfig({ edr: { provider: 'crowdstrike' } }) });
    expect(output).toMatchObject({ vendor: 'crowdstrike', target: aid, alreadyInState: false });
  });

  it('missing configuration is config.invalid naming the key or secret', async () => {
    expectConfigInvalid(await failure(run('host.isolate', { host: MACHINE }, { config: withConfig({ edr: {} }) })), 'edr.provider');
    expectConfigInvalid(await failure(run('host.isolate', { host: MACHINE }, { config: withConfig({ edr: { provider: 'crowdstrike' }, crowdstrike: {} }) })), 'crowdstrike.client_id');
    expectConfigInvalid(await failure(run('host.release', { host: MACHINE }, { secrets: without('defender.client_secret'), tenantId: 'fresh' })), 'defender.client_secret');
  });
});

describe('wazuh.active_response', () => {
  it('runs the command with its arguments on the agent and carries the key to the script', async () => {
    const seen: Seen[] = [];
    stageWazuhActiveResponse('001', { status: 200, body: WAZUH_AR_OK_001 }, seen);
    const { output } = await run('wazuh.active_response', { agent_id: '001', command: '!isolate-host', arguments: ['-', 'null'], release_command: '!release-host' }, { key: 'reflex-r6-isolate_host' });
    expect(seen[0]?.body).toEqual({ command: '!isolate-host', arguments: ['-', 'null'], alert: { data: { sentreflex: { idempotency_key: 'reflex-r6-isolate_host' } } } });
    expect(output).toMatchObject({ vendor: 'wazuh', affectedAgents: ['001'], failures: [] });
  });

  it("Wazuh's error envelope for a disconnected agent is retryable (it may come back), with a hint", async () => {
    stageWazuhActiveResponse('009', { status: 200, body: WAZUH_AR_DISCONNECTED_009 });
    const err = await failure(run('wazuh.active_response', { agent_id: '009', command: 'restart-wazuh0' }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true, retryAfterMs: 60_000 });
  });

  it('429 without Retry-After is retryable after Wazuh\'s per-minute window', async () => {
    stageWazuhActiveResponse('001', { status: 429, body: { title: 'Too Many Requests', detail: 'Maximum number of requests per minute reached' } });
    const err = await failure(run('wazuh.active_response', { agent_id: '001', command: '!isolate-host' }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 60_000 });
  });

  it('missing configuration is config.invalid naming the key or secret', async () => {
    expectConfigInvalid(await failure(run('wazuh.active_response', { agent_id: '001', command: '!x' }, { config: withConfig({ wazuh: { api_user: 'u' } }) })), 'wazuh.base_url');
    expectConfigInvalid(await failure(run('wazuh.active_response', { agent_id: '001', command: '!x' }, { secrets: without('wazuh.api_password'), tenantId: 'fresh' })), 'wazuh.api_password');
  });
});

describe('pager.page over PagerDuty', () => {
  it("pages the schedule's routing key, severity from the event, source the event's host, dedup key = the step key", async () => {
    const seen: Seen[] = [];
    const scope = stagePagerDuty('success', seen);
    const { output } = await run('pager.page', { summary: 'SEV1 on web-01', schedule: 'secops-primary', details: { incident: 7 } }, { key: 'reflex-r7-page' });
    expect(scope.isDone()).toBe(true);
    expect(seen[0]?.body).toMatchObject({
      routing_key: SECRETS['pagerduty.routing_key.secops-primary'],
      event_action: 'trigger',
      dedup_key: 'reflex-r7-page',
      payload: { summary: 'SEV1 on web-01', severity: 'error', source: 'web-01', custom_details: { incident: 7 } },
    });
    expect(output).toEqual({ vendor: 'pagerduty', dedupKey: 'reflex-r7-page', schedule: 'secops-primary', severity: 'error', raw: { status: 'success', message: 'Event processed', dedup_key: 'reflex-r7-page' } });
    expectNoSecrets(output);
  });

  it("PagerDuty's error envelope (400) is a rejection, not retried", async () => {
    stagePagerDuty({ status: 400, body: PD_ERROR });
    const err = await failure(run('pager.page', { summary: 'x', severity: 'critical' }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(err.message).toContain('Event object format is unrecognized');
    expectNoSecrets(err);
  });

  it('429 is retryable and passes Retry-After on', async () => {
    stagePagerDuty({ status: 429, body: { status: 'throttle event', message: 'Requests for this service are arriving too quickly.' }, headers: { 'Retry-After': '5' } });
    const err = await failure(run('pager.page', { summary: 'x' }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 5000 });
  });

  it("a schedule without its own routing key is config.invalid naming the secret (never the default service)", async () => {
    expectConfigInvalid(await failure(run('pager.page', { summary: 'x', schedule: 'dba' })), 'pagerduty.routing_key.dba');
    expectConfigInvalid(await failure(run('pager.page', { summary: 'x' }, { secrets: without('pagerduty.routing_key') })), 'pagerduty.routing_key');
    expect(await failure(run('pager.page', { summary: 'x', severity: 'urgent' }))).toMatchObject({ code: 'input.invalid' });
  });
});

describe('phone.call over Twilio', () => {
  it('calls the given number once per step: a retry answers from the record without ringing again', async () => {
    const seen: Seen[] = [];
    const scope = stageTwilio('Calls.json', { status: 201, body: TWILIO_CALL }, seen);
    const first = await run('phone.call', { message: 'SEV1 on web-01', to: TWILIO_CALL.to }, { key: 'reflex-r8-call' });
    const retry = await run('phone.call', { message: 'SEV1 on web-01', to: TWILIO_CALL.to }, { key: 'reflex-r8-call' });
    expect(scope.isDone()).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers.authorization).toBe(`Basic ${Buffer.from(`${TENANT_CONFIG.twilio.account_sid}:${SECRETS['twilio.auth_token']}`).toString('base64')}`);
    expect(seen[0]?.body).toMatchObject({ To: TWILIO_CALL.to, From: '+15017122661' });
    expect((seen[0]?.body as { Twiml: string }).Twiml).toContain('SEV1 on web-01');
    expect(first.output).toMatchObject({ sid: TWILIO_CALL.sid, reused: false });
    expect(retry.output).toMatchObject({ sid: TWILIO_CALL.sid, reused: true });
  });

  it("calls the schedule's primary on-call at the number on record for that person", async () => {
    onCallRoster.set('acme/secops-primary', 'principal-ana');
    const seen: Seen[] = [];
    stageTwilio('Calls.json', { status: 201, body: TWILIO_CALL }, seen);
    const { output } = await run('phone.call', { message: 'wake up', schedule: 'secops-primary' }, { key: 'reflex-r9-call', secrets: { ...SECRETS, 'contact.phone.principal-ana': TWILIO_CALL.to } });
    expect(seen[0]?.body).toMatchObject({ To: TWILIO_CALL.to });
    expect(output).toMatchObject({ principalId: 'principal-ana', schedule: 'secops-primary', sid: TWILIO_CALL.sid });
    const nobody = await failure(run('phone.call', { message: 'x', schedule: 'night-shift' }));
    expect(nobody).toMatchObject({ code: 'config.invalid', retryable: false });
    const noNumber = await failure(run('phone.call', { message: 'x', schedule: 'secops-primary' }, { key: 'reflex-r9b-call' }));
    expectConfigInvalid(noNumber, 'contact.phone.principal-ana');
  });

  it("Twilio's error envelope (400, code 20001) is a rejection, not retried", async () => {
    stageTwilio('Calls.json', { status: 400, body: TWILIO_ERROR });
    const err = await failure(run('phone.call', { message: 'x', to: '+14155550100' }, { key: 'reflex-r10-call' }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(err.message).toContain('20001');
    expectNoSecrets(err);
  });

  it('429 is retryable and passes Retry-After on', async () => {
    stageTwilio('Calls.json', { status: 429, body: { code: 20429, message: 'Too Many Requests', status: 429 }, headers: { 'Retry-After': '3' } });
    const err = await failure(run('phone.call', { message: 'x', to: '+14155550100' }, { key: 'reflex-r11-call' }));
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 3000 });
  });

  it('missing configuration is config.invalid naming the key or secret', async () => {
    expectConfigInvalid(await failure(run('phone.call', { message: 'x', to: '+14155550100' }, { config: withConfig({ twilio: { from: '+15017122661' } }) })), 'twilio.account_sid');
    expectConfigInvalid(await failure(run('phone.call', { message: 'x', to: '+14155550100' }, { secrets: without('twilio.auth_token'), tenantId: 'fresh' })), 'twilio.auth_token');
  });
});

describe('mail.send over SMTP', () => {
  it('sends once per step with a Message-ID from the key; a retry sends nothing new', async () => {
    const before = smtp.received.length;
    const first = await run('mail.send', { to: ['soc@acme.example'], subject: 'Blocked 198.51.100.7', body: 'Details in the incident.' }, { key: 'reflex-r12-mail' });
    const retry = await run('mail.send', { to: 'soc@acme.example', subject: 'Blocked 198.51.100.7', body: 'Details in the incident.' }, { key: 'reflex-r12-mail' });
    expect(smtp.received.length - before).toBe(1);
    const raw = smtp.received.at(-1)!.raw;
    expect(raw).toContain(`Message-ID: ${messageIdFor('reflex-r12-mail')}`);
    expect(raw).toContain('Subject: Blocked 198.51.100.7');
    expect(first.output).toMatchObject({ vendor: 'smtp', messageId: messageIdFor('reflex-r12-mail'), reused: false, to: ['soc@acme.example'] });
    expect(retry.output).toMatchObject({ reused: true });
  });

  it('a temporary SMTP failure (451) is retryable', async () => {
    const flaky = await startTestSmtp({ dataReplies: [451] });
    const m = new SmtpMailer({ host: '127.0.0.1', port: flaky.port, secure: false, from: 'sentreflex@example.test' });
    try {
      const via = new TenantIntegrations({ idempotencyStore: () => twilioStore, mailer: () => m });
      const err = await failure(run('mail.send', { to: 'soc@acme.example', subject: 's', body: 'b' }, { via, key: 'reflex-r13-mail' }));
      expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true });
    } finally {
      await m.close();
      await flaky.close();
    }
  });

  it('without SMTP on the server it is config.invalid naming SMTP_URL; header injection is refused', async () => {
    expectConfigInvalid(await failure(run('mail.send', { to: 'soc@acme.example', subject: 's', body: 'b' }, { via: makeIntegrations(false) })), 'SMTP_URL');
    const injected = await failure(run('mail.send', { to: 'soc@acme.example', subject: 'hi\r\nBcc: evil@example.org', body: 'b' }, { key: 'reflex-r14-mail' }));
    expect(injected).toMatchObject({ code: 'input.invalid', retryable: false });
  });
});
