import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ReflexError } from '../../../src/errors.ts';
import type {
  ContainmentReceipt,
  Firewall,
  HostContainment,
  IdentityProvider,
  Pager,
  PhoneCaller,
} from '../../../src/integrations/containment-ports.ts';
import { CrowdStrikeClient } from '../../../src/integrations/crowdstrike/crowdstrike-client.ts';
import { DefenderClient } from '../../../src/integrations/defender/defender-client.ts';
import { RestBlocklistFirewall } from '../../../src/integrations/firewall/rest-blocklist-firewall.ts';
import { MicrosoftGraphClient, graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { PagerDutyClient } from '../../../src/integrations/pagerduty/pagerduty-client.ts';
import { InMemoryIdempotencyStore } from '../../../src/integrations/twilio/in-memory-idempotency-store.ts';
import { TwilioClient } from '../../../src/integrations/twilio/twilio-client.ts';
import { WazuhClient } from '../../../src/integrations/wazuh/wazuh-client.ts';
import { WazuhFirewall } from '../../../src/integrations/wazuh/wazuh-firewall.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * The paired containment ports (DESIGN.md §4), each run over every adapter: contain then revert,
 * repeat safely, carry the idempotency key where the vendor has a field for it, and fail with
 * ReflexErrors whose `retryable` the queue can trust. Each adapter only says how its vendor
 * answers; the checks are the same for all.
 */

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const json = <T = Record<string, unknown>>(rel: string): T => JSON.parse(fixture(rel)) as T;

interface ContainmentAdapter<P> {
  name: string;
  /** A credential the adapter holds; no error may show it. */
  secret: string;
  make(): P;
  contain(p: P, key: string): Promise<ContainmentReceipt>;
  revert(p: P, key: string): Promise<ContainmentReceipt>;
  /** Stages the vendor's login, if it has one (once per client). */
  stageLogin(): void;
  stageContain(): void;
  /** What the vendor answers when the same containment is asked for again. */
  stageContainAgain(): void;
  stageRevert(): void;
  /** Whether the vendor tells us a repeat found the target already contained. */
  repeatSaysAlreadyInState: boolean;
  /** How the key shows in a captured request value, or null when the vendor has no field to carry it. */
  keyEvidence: ((key: string) => string) | null;
  /** Request values captured by the staging functions (headers, comments, bodies). */
  seen: string[];
  /** Stages `status` as the answer to the containment's first vendor call (re-login included for 401). */
  stageFailure(status: number, headers?: Record<string, string>, body?: unknown): void;
  /** Stages the vendor saying the user or host does not exist, where it can. */
  stageNotFound?(): void;
}

// ------------------------------------------------------------------------------------------------
// Microsoft Graph (IdentityProvider)
// ------------------------------------------------------------------------------------------------

const GRAPH = 'https://graph.microsoft.com';
const LOGIN = 'https://login.microsoftonline.com';
const TENANT = 'contoso.onmicrosoft.com';
const GRAPH_SECRET = 'graph-conformance-secret-0001';
const USER_PATH = '/v1.0/users/alice%40contoso.example';
const REVOKE_HTTP = fixture('identity_containment/msgraph_docs_user_revokeSignInSessions_response.http');
const REVOKE_BODY = REVOKE_HTTP.slice(REVOKE_HTTP.indexOf('{'));
let entraTokens = 0;
/** RFC 6749 §5.1 token answer (no Entra token response is among the fixtures). */
function stageEntraToken(tenant: string): void {
  entraTokens += 1;
  nock(LOGIN).post(`/${tenant}/oauth2/v2.0/token`).reply(200, { token_type: 'Bearer', expires_in: 3599, access_token: `entra-token-${entraTokens}` });
}
const graphSeen: string[] = [];
function stageGraphPatch(status: number, headers: Record<string, string> = {}, body?: unknown): void {
  nock(GRAPH)
    .patch(USER_PATH)
    .reply(function () {
      graphSeen.push(String(this.req.headers['client-request-id']));
      return [status, body === undefined ? '' : JSON.stringify(body), headers];
    });
}
const msgraph: ContainmentAdapter<IdentityProvider> = {
  name: 'msgraph',
  secret: GRAPH_SECRET,
  make: () => new MicrosoftGraphClient({ tenantId: TENANT, clientId: 'app', clientSecret: GRAPH_SECRET }),
  contain: (p, key) => p.disableUser('alice@contoso.example', { idempotencyKey: key }),
  revert: (p, key) => p.enableUser('alice@contoso.example', { idempotencyKey: key }),
  stageLogin: () => stageEntraToken(TENANT),
  stageContain() {
    stageGraphPatch(204);
    nock(GRAPH).post(`${USER_PATH}/revokeSignInSessions`).reply(200, REVOKE_BODY, { 'Content-Type': 'application/json' });
  },
  stageContainAgain() {
    this.stageContain();
  },
  stageRevert: () => stageGraphPatch(204),
  repeatSaysAlreadyInState: false,
  keyEvidence: graphRequestId,
  seen: graphSeen,
  stageFailure(status, headers, body) {
    stageGraphPatch(status, headers, body);
    if (status === 401) {
      stageEntraToken(TENANT);
      stageGraphPatch(401);
    }
  },
  stageNotFound: () => stageGraphPatch(404, {}, { error: { code: 'Request_ResourceNotFound', message: 'Resource does not exist.' } }),
};

// ------------------------------------------------------------------------------------------------
// Defender for Endpoint and CrowdStrike (HostContainment)
// ------------------------------------------------------------------------------------------------

const MDE = 'https://api.securitycenter.microsoft.com';
const MDE_TENANT = 'mde-tenant';
const MDE_SECRET = 'mde-conformance-secret-0002';
type MachineAction = Record<string, unknown> & { id: string; machineId: string };
const MDE_ACTION = json<MachineAction>('identity_containment/mde_docs_machineAction_json_representation.json');
const MACHINE = MDE_ACTION.machineId;
/** The machineAction fixture with type/status/id changed to the action under test. */
const mdeAction = (type: 'Isolate' | 'Unisolate', status: string, id: string): MachineAction => ({ ...MDE_ACTION, type, status, id });
const mdeSeen: string[] = [];
function stageMdeActions(status: number, actions: MachineAction[] = [], headers: Record<string, string> = {}): void {
  nock(MDE)
    .get('/api/machineactions')
    .query(true)
    .reply(status, status === 200 ? { value: actions } : '', headers);
}
function stageMdePost(verb: 'isolate' | 'unisolate', status: number, answer: unknown): void {
  nock(MDE)
    .post(`/api/machines/${MACHINE}/${verb}`, (b: { Comment?: string }) => {
      mdeSeen.push(String(b.Comment));
      return true;
    })
    .reply(status, answer as Record<string, unknown>);
}
const defender: ContainmentAdapter<HostContainment> = {
  name: 'defender',
  secret: MDE_SECRET,
  make: () => new DefenderClient({ tenantId: MDE_TENANT, clientId: 'app', clientSecret: MDE_SECRET }),
  contain: (p, key) => p.isolate(MACHINE, { idempotencyKey: key, comment: 'conformance' }),
  revert: (p, key) => p.release(MACHINE, { idempotencyKey: key }),
  stageLogin: () => stageEntraToken(MDE_TENANT),
  stageContain() {
    stageMdeActions(200, []);
    stageMdePost('isolate', 201, mdeAction('Isolate', 'Pending', 'iso-1'));
  },
  stageContainAgain: () => stageMdeActions(200, [mdeAction('Isolate', 'Pending', 'iso-1')]),
  stageRevert() {
    stageMdeActions(200, [mdeAction('Isolate', 'Succeeded', 'iso-1')]);
    stageMdePost('unisolate', 201, mdeAction('Unisolate', 'Pending', 'rel-1'));
  },
  repeatSaysAlreadyInState: true,
  keyEvidence: (key) => `[SENTreflex ${key}]`,
  seen: mdeSeen,
  stageFailure(status, headers = {}) {
    stageMdeActions(status, [], headers);
    if (status === 401) {
      stageEntraToken(MDE_TENANT);
      stageMdeActions(401);
    }
  },
  stageNotFound() {
    stageMdeActions(200, []);
    stageMdePost('isolate', 404, { error: { code: 'ResourceNotFound', message: `Machine ${MACHINE} was not found` } });
  },
};

const FALCON = 'https://api.crowdstrike.com';
const FALCON_SECRET = 'falcon-conformance-secret-0003';
const FALCON_ENVELOPE = json<{ meta: unknown; resources: { id: string }[] }>('identity_containment/crowdstrike_envelope__demisto_online_states_response.json');
const AID = FALCON_ENVELOPE.resources[0]?.id ?? '';
/** The envelope fixture with resources/errors replaced by what devices-actions/v2 answers. */
const falconEnvelope = (resources: unknown[], errors: unknown[] = []) => ({ meta: FALCON_ENVELOPE.meta, resources, errors });
let falconTokens = 0;
function stageFalconToken(): void {
  falconTokens += 1;
  nock(FALCON).post('/oauth2/token').reply(201, { access_token: `falcon-token-${falconTokens}`, token_type: 'bearer', expires_in: 1799 });
}
function stageFalconAction(action: string, status: number, body: unknown, headers: Record<string, string> = {}): void {
  nock(FALCON)
    .post('/devices/entities/devices-actions/v2', { ids: [AID] })
    .query({ action_name: action })
    .reply(status, body as Record<string, unknown>, headers);
}
const crowdstrike: ContainmentAdapter<HostContainment> = {
  name: 'crowdstrike',
  secret: FALCON_SECRET,
  make: () => new CrowdStrikeClient({ clientId: 'falcon-app', clientSecret: FALCON_SECRET }),
  contain: (p, key) => p.isolate(AID, { idempotencyKey: key }),
  revert: (p, key) => p.release(AID, { idempotencyKey: key }),
  stageLogin: stageFalconToken,
  stageContain: () => stageFalconAction('contain', 202, falconEnvelope([{ id: AID, path: '' }])),
  // Error code 409 = already in that state (CrowdStrike's Ansible host_contain module).
  stageContainAgain: () => stageFalconAction('contain', 409, falconEnvelope([], [{ code: 409, message: `Device ${AID} is already contained` }])),
  stageRevert: () => stageFalconAction('lift_containment', 202, falconEnvelope([{ id: AID, path: '' }])),
  repeatSaysAlreadyInState: true,
  // devices-actions/v2 has no comment or key field.
  keyEvidence: null,
  seen: [],
  stageFailure(status, headers = {}) {
    stageFalconAction('contain', status, falconEnvelope([], [{ code: status, message: `HTTP ${status}` }]), headers);
    if (status === 401) {
      stageFalconToken();
      stageFalconAction('contain', 401, falconEnvelope([], [{ code: 401, message: 'access denied, authorization failed' }]));
    }
  },
  stageNotFound: () => stageFalconAction('contain', 404, falconEnvelope([], [{ code: 404, message: `Device ${AID} not found` }])),
};

// ------------------------------------------------------------------------------------------------
// Wazuh firewall-drop and the REST blocklist (Firewall)
// ------------------------------------------------------------------------------------------------

const WAZUH = 'https://wazuh.example.test:55000';
const WAZUH_PASSWORD = 'wazuh-conformance-password-0004';
interface TavernStage {
  name: string;
  response: { json?: unknown };
}
const TAVERN: TavernStage[] = YAML.parseAllDocuments(fixture('wazuh/api_test_active_response_endpoints.tavern.yaml'), {
  customTags: [{ tag: '!anything', resolve: () => null }],
}).flatMap((d) => (d.toJS() as { stages: TavernStage[] }).stages);
const tavern = (prefix: string): unknown => TAVERN.find((s) => s.name.startsWith(prefix))?.response.json;
const WAZUH_OK = tavern('Runs an Active Response command on a specified agent');
const WAZUH_UNKNOWN_AGENT = tavern('Try to send a message to an unexisting agent');
const SRCIP = json<{ parameters: { alert: { data: { srcip: string } } } }>('wazuh/docs_ar_stdin_message_v4_firewall-drop_31168_shellshock.json').parameters
  .alert.data.srcip;
let wazuhLogins = 0;
function stageWazuhLogin(): void {
  wazuhLogins += 1;
  // The spec's login example shape with a concrete token.
  nock(WAZUH).post('/security/user/authenticate').reply(200, { data: { token: `wazuh-token-${wazuhLogins}`, error: 0 } });
}
const wazuhSeen: string[] = [];
function stageWazuhPut(status: number, answer: unknown, headers: Record<string, string> = {}): void {
  nock(WAZUH)
    .put('/active-response', (b: { alert?: { data?: { sentreflex?: { idempotency_key?: string } } } }) => {
      wazuhSeen.push(String(b.alert?.data?.sentreflex?.idempotency_key));
      return true;
    })
    .query({ agents_list: '001' })
    .reply(status, answer as Record<string, unknown>, headers);
}
const wazuhFirewall: ContainmentAdapter<Firewall> = {
  name: 'wazuh-firewall-drop',
  secret: WAZUH_PASSWORD,
  make: () =>
    new WazuhFirewall({
      client: new WazuhClient({ baseUrl: WAZUH, username: 'sentreflex', password: WAZUH_PASSWORD }),
      agents: ['001'],
      blockCommand: 'firewall-drop600',
      unblockCommand: '!sentreflex-unblock',
    }),
  contain: (p, key) => p.block(SRCIP, { idempotencyKey: key, ttlSeconds: 600 }),
  revert: (p, key) => p.unblock(SRCIP, { idempotencyKey: key }),
  stageLogin: stageWazuhLogin,
  stageContain: () => stageWazuhPut(200, WAZUH_OK),
  // execd dedupes a repeat for the same srcip itself; the API just accepts it again.
  stageContainAgain: () => stageWazuhPut(200, WAZUH_OK),
  stageRevert: () => stageWazuhPut(200, WAZUH_OK),
  repeatSaysAlreadyInState: false,
  keyEvidence: (key) => key,
  seen: wazuhSeen,
  stageFailure(status, headers = {}) {
    stageWazuhPut(status, { title: `HTTP ${status}`, detail: 'staged failure' }, headers);
    if (status === 401) {
      stageWazuhLogin();
      stageWazuhPut(401, { title: 'Unauthorized', detail: 'No authorization token provided' });
    }
  },
  // Wazuh's own test answer for an agent that does not exist (1701).
  stageNotFound: () => stageWazuhPut(200, { ...(WAZUH_UNKNOWN_AGENT as object), data: { ...(WAZUH_UNKNOWN_AGENT as { data: object }).data, failed_items: [{ error: { code: 1701 }, id: ['001'] }] } }),
};

const GRID = 'https://sentgrid.example.test';
const GRID_TOKEN = 'sentgrid-conformance-token-0005';
const gridSeen: string[] = [];
function stageGrid(method: 'post' | 'delete', status: number, headers: Record<string, string> = {}): void {
  nock(GRID)
    [method](`/api/blocklist/${SRCIP}`)
    .reply(function () {
      gridSeen.push(String(this.req.headers['idempotency-key']));
      return [status, '', headers];
    });
}
const restBlocklist: ContainmentAdapter<Firewall> = {
  name: 'firewall',
  secret: GRID_TOKEN,
  make: () => new RestBlocklistFirewall({ baseUrl: `${GRID}/api`, apiToken: GRID_TOKEN }),
  contain: (p, key) => p.block(SRCIP, { idempotencyKey: key, ttlSeconds: 600 }),
  revert: (p, key) => p.unblock(SRCIP, { idempotencyKey: key }),
  stageLogin: () => undefined,
  stageContain: () => stageGrid('post', 201),
  stageContainAgain: () => stageGrid('post', 200),
  stageRevert: () => stageGrid('delete', 204),
  repeatSaysAlreadyInState: true,
  keyEvidence: (key) => key,
  seen: gridSeen,
  stageFailure: (status, headers) => stageGrid('post', status, headers),
};

// ------------------------------------------------------------------------------------------------


useStrictNock();

function containmentContract<P extends { readonly name: string }>(port: string, adapter: ContainmentAdapter<P>): void {
  describe(`${port} contract: ${adapter.name}`, () => {
    it('contains and then reverts, with well-formed receipts that survive a queue hop', async () => {
      adapter.stageLogin();
      adapter.stageContain();
      adapter.stageRevert();
      const p = adapter.make();
      expect(p.name).toBe(adapter.name);
      const contained = await adapter.contain(p, 'run_1:contain');
      const reverted = await adapter.revert(p, 'run_1:revert');
      for (const r of [contained, reverted]) {
        expect(r.vendor).toBe(adapter.name);
        expect(['done', 'pending']).toContain(r.state);
        expect(r.alreadyInState).toBe(false);
        expect(r.failures).toEqual([]);
        expect(r.target).not.toBe('');
        expect(JSON.parse(JSON.stringify(r))).toEqual(r);
        expect(JSON.stringify(r)).not.toContain(adapter.secret);
      }
    });

    it('is safe to call twice with the same key: the repeat succeeds and sends nothing unexpected', async () => {
      adapter.stageLogin();
      adapter.stageContain();
      adapter.stageContainAgain();
      const p = adapter.make();
      await adapter.contain(p, 'run_1:contain');
      const again = await adapter.contain(p, 'run_1:contain');
      expect(again.alreadyInState).toBe(adapter.repeatSaysAlreadyInState);
      expect(again.failures).toEqual([]);
    });

    const evidence = adapter.keyEvidence;
    if (evidence) {
      it('carries the idempotency key in the vendor request', async () => {
        adapter.seen.length = 0;
        adapter.stageLogin();
        adapter.stageContain();
        await adapter.contain(adapter.make(), 'run_7:step_3');
        expect(adapter.seen.some((v) => v.includes(evidence('run_7:step_3')))).toBe(true);
      });
    }

    it('refuses a call without an idempotency key before calling the vendor', async () => {
      const err = await failure(adapter.contain(adapter.make(), ''));
      expect([err.code, err.retryable]).toEqual(['input.invalid', false]);
    });

    it('throws a retryable rate limit carrying Retry-After on 429', async () => {
      adapter.stageLogin();
      adapter.stageFailure(429, { 'Retry-After': '17' });
      const err = await failure(adapter.contain(adapter.make(), 'k'));
      expect([err.code, err.retryable, err.retryAfterMs]).toEqual(['upstream.rate_limited', true, 17_000]);
    });

    it('throws retryable errors on 500 and 503', async () => {
      for (const status of [500, 503]) {
        adapter.stageLogin();
        adapter.stageFailure(status);
        const err = await failure(adapter.contain(adapter.make(), 'k'));
        expect([err.code, err.retryable], String(status)).toEqual(['upstream.unavailable', true]);
      }
    });

    it('throws non-retryable rejections on 401 (after one fresh login) and 403, never showing the credential', async () => {
      for (const status of [401, 403]) {
        adapter.stageLogin();
        adapter.stageFailure(status);
        const err = await failure(adapter.contain(adapter.make(), 'k'));
        expect([err.code, err.retryable], String(status)).toEqual(['upstream.rejected', false]);
        expect(`${err.message} ${err.safeMessage} ${JSON.stringify(err.details)}`).not.toContain(adapter.secret);
      }
    });

    const stageNotFound = adapter.stageNotFound?.bind(adapter);
    if (stageNotFound) {
      it('throws a non-retryable not_found for a user or host the vendor does not know', async () => {
        adapter.stageLogin();
        stageNotFound();
        const err = await failure(adapter.contain(adapter.make(), 'k'));
        expect([err.code, err.retryable]).toEqual(['not_found', false]);
      });
    }
  });
}

containmentContract('IdentityProvider', msgraph);
containmentContract('HostContainment', defender);
containmentContract('HostContainment', crowdstrike);
containmentContract('Firewall', wazuhFirewall);
containmentContract('Firewall', restBlocklist);

// ------------------------------------------------------------------------------------------------
// Pager and PhoneCaller: not paired, but held to the same idempotency and error rules.
// ------------------------------------------------------------------------------------------------

describe('Pager contract: pagerduty', () => {
  const success = fixture('oncall_phone/pagerduty_events_v2_response_202_success_example.json');
  const make = (): Pager => new PagerDutyClient({ routingKeys: { default: 'pd-conformance-routing-key-0006' } });
  const sentKeys: string[] = [];
  const stage = (status: number, body: string | undefined = success, headers: Record<string, string> = {}) =>
    nock('https://events.pagerduty.com')
      .post('/v2/enqueue', (b: { dedup_key: string }) => {
        sentKeys.push(b.dedup_key);
        return true;
      })
      .reply(status, body, { 'Content-Type': 'application/json', ...headers });

  it('pages, repeats under the same dedup key (the idempotency key), then resolves by it', async () => {
    sentKeys.length = 0;
    stage(202);
    stage(202);
    stage(202);
    const pd = make();
    await pd.page({ summary: 'SEV1', severity: 'critical' }, { idempotencyKey: 'run_1:page' });
    await pd.page({ summary: 'SEV1', severity: 'critical' }, { idempotencyKey: 'run_1:page' });
    await pd.resolve?.('run_1:page', { idempotencyKey: 'run_1:resolve' });
    expect(sentKeys).toEqual(['run_1:page', 'run_1:page', 'run_1:page']);
  });

  it('maps 429, 5xx and 400 (the error fixture) to the right retry behaviour', async () => {
    stage(429, undefined, { 'Retry-After': '17' });
    stage(500);
    stage(400, fixture('oncall_phone/pagerduty_events_v2_response_error_example.json'));
    const pd = make();
    const page = () => pd.page({ summary: 'SEV1', severity: 'critical' }, { idempotencyKey: 'k' });
    expect(await failure(page())).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 17_000 });
    expect(await failure(page())).toMatchObject({ code: 'upstream.unavailable', retryable: true });
    expect(await failure(page())).toMatchObject({ code: 'upstream.rejected', retryable: false });
  });
});

describe('PhoneCaller contract: twilio', () => {
  const call = fixture('oncall_phone/twilio_calls_create_201_response.json');
  const account = String(json('oncall_phone/twilio_calls_create_201_response.json').account_sid);
  const token = 'twilio-conformance-token-0007';
  const make = (store = new InMemoryIdempotencyStore()): PhoneCaller =>
    new TwilioClient({ accountSid: account, authToken: token, from: '+14158675308', store });
  const stage = (status: number, body: unknown = call, headers: Record<string, string> = {}) =>
    nock('https://api.twilio.com').post(`/2010-04-01/Accounts/${account}/Calls.json`).reply(status, body as string, headers);

  it('rings once per idempotency key however often the step runs', async () => {
    stage(201);
    const store = new InMemoryIdempotencyStore();
    const first = await make(store).call('+14158675309', 'SEV1', { idempotencyKey: 'run_1:call' });
    const second = await make(store).call('+14158675309', 'SEV1', { idempotencyKey: 'run_1:call' });
    expect([first.reused, second.reused, second.sid]).toEqual([false, true, first.sid]);
  });

  it('maps 429, 5xx, 401 and 400 (the error fixture) to the right retry behaviour', async () => {
    stage(429, '', { 'Retry-After': '17' });
    stage(500, '');
    stage(401, '');
    stage(400, fixture('oncall_phone/twilio_rest_error_response.json'));
    const phone = make();
    const ring = (k: string) => phone.call('+14158675309', 'SEV1', { idempotencyKey: k });
    expect(await failure(ring('a'))).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 17_000 });
    expect(await failure(ring('b'))).toMatchObject({ code: 'upstream.unavailable', retryable: true });
    const e401 = await failure(ring('c'));
    expect(e401).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(`${e401.message}${e401.safeMessage}`).not.toContain(token);
    expect(await failure(ring('d'))).toMatchObject({ code: 'upstream.rejected', retryable: false });
  });
});
