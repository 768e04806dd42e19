import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ReflexError } from '../../../src/errors.ts';
import { WazuhClient, interpretActiveResponse } from '../../../src/integrations/wazuh/wazuh-client.ts';
import { WazuhFirewall, timeoutFromCommandName } from '../../../src/integrations/wazuh/wazuh-firewall.ts';
import { failure } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');

interface TavernStage {
  name: string;
  request: { json?: Record<string, unknown>; params?: { agents_list?: string } };
  response: { status_code: number; json?: Record<string, unknown> & { data: Record<string, unknown> } };
}
const ANYTHING = '<tavern !anything>';
/** Wazuh's own API tests for PUT /active-response (Tavern YAML; `!anything` matches any value). */
const STAGES: TavernStage[] = YAML.parseAllDocuments(fixture('wazuh/api_test_active_response_endpoints.tavern.yaml'), {
  customTags: [{ tag: '!anything', resolve: () => ANYTHING }],
}).flatMap((d) => (d.toJS() as { stages: TavernStage[] }).stages);
const stage = (prefix: string): TavernStage => {
  const s = STAGES.find((x) => x.name.startsWith(prefix));
  if (!s) throw new Error(`no Tavern stage ${prefix}`);
  return s;
};

const SPEC = YAML.parse(fixture('wazuh/api_spec_v4.9.2_active_response_excerpt.yaml')) as {
  paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { example: unknown }> }> }>>;
  components: { responses: Record<string, { content: Record<string, { example: unknown }> }> };
};
const LOGIN_EXAMPLE = SPEC.paths['/security/user/authenticate']?.post?.responses['200']?.content['application/json']?.example as {
  data: { token: string; error: number };
};
const specError = (name: string): unknown => SPEC.components.responses[name]?.content['application/json']?.example;

/** A JWT-shaped token (unsigned: the client reads `exp`, it does not verify). */
const jwt = (expSeconds: number, id = 'a'): string =>
  [{ alg: 'ES512', typ: 'JWT' }, { iss: 'wazuh', sub: 'sentreflex', exp: expSeconds, jti: id }, 'sig']
    .map((p) => (typeof p === 'string' ? p : Buffer.from(JSON.stringify(p)).toString('base64url')))
    .join('.');

const BASE = 'https://wazuh-manager.example.test:55000';
const USER = 'sentreflex';
const PASSWORD = 'wazuh-api-password-42!';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const NOW = Date.parse('2025-03-01T12:00:00.000Z');
let clock = NOW;
const TOKEN = jwt(NOW / 1000 + 900);
const wazuh = () => new WazuhClient({ baseUrl: BASE, username: USER, password: PASSWORD, now: () => clock });
const KEY = 'run_42:active_response';

/** The spec's login example with `<generated_token>` replaced by a JWT (the example nests `error` inside `data`, as published). */
function stageLogin(token = TOKEN): void {
  expect(LOGIN_EXAMPLE.data.token).toBe('<generated_token>');
  nock(BASE, { reqheaders: { authorization: BASIC } })
    .post('/security/user/authenticate')
    .reply(200, { ...LOGIN_EXAMPLE, data: { ...LOGIN_EXAMPLE.data, token } });
}
const api = (token = TOKEN) => nock(BASE, { reqheaders: { authorization: `Bearer ${token}` } });

/** Stages a Tavern stage's answer for a PUT whose agents_list and body match it. */
function stagePut(s: TavernStage, answer: unknown = s.response.json, seen?: (body: Record<string, unknown>) => void): void {
  api()
    .put('/active-response', (body: Record<string, unknown>) => {
      seen?.(body);
      return true;
    })
    .query(s.request.params?.agents_list === undefined ? true : { agents_list: s.request.params.agents_list })
    .reply(s.response.status_code, answer as Record<string, unknown>);
}


beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
  clock = NOW;
});

describe('WazuhClient.runActiveResponse against Wazuh\'s own API tests', () => {
  it('sends {command, arguments, alert} with agents_list and reads error 0 as done', async () => {
    const s = stage('Runs an Active Response command on a specified agent');
    let body: Record<string, unknown> = {};
    stageLogin();
    stagePut(s, s.response.json, (b) => (body = b));
    const r = await wazuh().runActiveResponse({ agents: ['1'], command: String(s.request.json?.command) }, { idempotencyKey: KEY });
    expect(body).toEqual({ command: '!custom', alert: { data: { sentreflex: { idempotency_key: KEY } } } });
    expect(r).toMatchObject({ vendor: 'wazuh', target: '001', state: 'done', affectedAgents: ['001'], failures: [] });
  });

  it('turns error 2 (partial) into a receipt naming each failed agent and why', async () => {
    const s = stage('Send a message to a list of agents');
    // Tavern matches affected_items with !anything; the four agents that are not in failed_items fill it.
    const answer = { ...s.response.json, data: { ...s.response.json?.data, affected_items: ['002', '004', '005', '007'] } };
    stageLogin();
    stagePut(s, answer);
    const r = await wazuh().runActiveResponse({ agents: ['002', '004', '005', '007', '010', '012'], command: '!custom' }, { idempotencyKey: KEY });
    expect(r.affectedAgents).toEqual(['002', '004', '005', '007']);
    expect(r.failures).toEqual([
      { target: '010', code: '1707', reason: 'agent is not active (disconnected or never connected)', retryable: true },
      { target: '012', code: '1707', reason: 'agent is not active (disconnected or never connected)', retryable: true },
    ]);
  });

  it('lists mixed failures of the all-agents answer per agent', () => {
    const s = stage('Runs an Active Response command on all agents');
    const r = interpretActiveResponse(s.response.json, ['001'], 'restart-wazuh0');
    expect(r.affectedAgents).toHaveLength(7);
    expect(r.failures.map((f) => `${f.target}:${f.code}:${f.retryable}`)).toEqual([
      '009:1707:true',
      '010:1707:true',
      '011:1707:true',
      '012:1707:true',
      '003:1750:false',
    ]);
  });

  it('throws a retryable error when every agent is offline (1707), with the agent id spelled "009"', async () => {
    const s = stage('Try to send a message to an agent (status=disconnected');
    stageLogin();
    stagePut(s);
    const err = await failure(wazuh().runActiveResponse({ agents: ['009'], command: 'restart-wazuh0' }, { idempotencyKey: KEY }));
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual(['upstream.unavailable', true, 60_000]);
    expect(err.details?.failures).toEqual([{ target: '009', code: '1707', reason: 'agent is not active (disconnected or never connected)', retryable: true }]);
    expect(err.safeMessage).toContain('009');
  });

  it('throws not_found for an unknown agent (1701) and a non-retryable rejection when AR is disabled (1750)', async () => {
    const unknown = stage('Try to send a message to an unexisting agent');
    const disabled = stage('Send a message to one agent (Active response disabled)');
    const args = unknown.request.json?.arguments as string[];
    const bodies: Record<string, unknown>[] = [];
    stageLogin();
    stagePut(unknown, unknown.response.json, (b) => bodies.push(b));
    stagePut(disabled, disabled.response.json, (b) => bodies.push(b));
    const c = wazuh();
    const e1701 = await failure(c.runActiveResponse({ agents: ['251'], command: 'restart-wazuh0', arguments: args }, { idempotencyKey: KEY }));
    expect([e1701.code, e1701.retryable]).toEqual(['not_found', false]);
    const e1750 = await failure(c.runActiveResponse({ agents: ['3'], command: 'restart-wazuh0' }, { idempotencyKey: KEY }));
    expect([e1750.code, e1750.retryable]).toEqual(['upstream.rejected', false]);
    expect(e1750.safeMessage).toContain('active response is disabled');
    // The body the Tavern test sends, plus the idempotency key for the script.
    expect(bodies[0]).toEqual({ ...unknown.request.json, alert: { data: { sentreflex: { idempotency_key: KEY } } } });
  });

  it('is not retryable when offline and unknown agents are mixed (a retry cannot complete the step)', () => {
    const body = { error: 1, data: { affected_items: [], failed_items: [{ error: { code: 1707 }, id: ['009'] }, { error: { code: 1701 }, id: ['251'] }] } };
    let err: unknown;
    try {
      interpretActiveResponse(body, ['009', '251'], 'x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ReflexError);
    expect([(err as ReflexError).code, (err as ReflexError).retryable]).toEqual(['upstream.rejected', false]);
  });

  it('maps a 400 to a non-retryable rejection with Wazuh\'s title and detail', async () => {
    const s = stage('Try to send a message to an agent, malformed body');
    expect(s.response.status_code).toBe(400);
    stageLogin();
    stagePut(s, specError('ResponseError'));
    const err = await failure(wazuh().runActiveResponse({ agents: ['005'], command: 'restart-wazuh0' }, { idempotencyKey: KEY }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(err.message).toContain('Bad Request');
  });

  it('never sends a request without agents (Wazuh would run it on every agent) or with a bad command', async () => {
    const c = wazuh();
    expect((await failure(c.runActiveResponse({ agents: [], command: '!custom' }, { idempotencyKey: KEY }))).code).toBe('input.invalid');
    expect((await failure(c.runActiveResponse({ agents: ['001; rm'], command: '!custom' }, { idempotencyKey: KEY }))).code).toBe('input.invalid');
    expect((await failure(c.runActiveResponse({ agents: ['001'], command: '!x y' }, { idempotencyKey: KEY }))).code).toBe('input.invalid');
  });
});

describe('WazuhClient authentication', () => {
  it('reuses the JWT until its exp claim, then logs in again', async () => {
    const ok = stage('Runs an Active Response command on a specified agent');
    stageLogin();
    stagePut(ok);
    stagePut(ok);
    const c = wazuh();
    await c.runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: 'a' });
    clock += 600_000;
    await c.runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: 'b' });

    clock += 250_000; // within a minute of exp
    const next = jwt(clock / 1000 + 900, 'b');
    stageLogin(next);
    api(next).put('/active-response').query(true).reply(200, ok.response.json);
    await c.runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: 'c' });
  });

  it('logs in again once when a token is revoked early (security config change → 401)', async () => {
    const ok = stage('Runs an Active Response command on a specified agent');
    stageLogin();
    api().put('/active-response').query(true).reply(401, specError('UnauthorizedResponse') as Record<string, unknown>);
    const fresh = jwt(NOW / 1000 + 900, 'fresh');
    stageLogin(fresh);
    api(fresh).put('/active-response').query(true).reply(200, ok.response.json);
    expect((await wazuh().runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: KEY })).state).toBe('done');
  });

  it('maps refused credentials to a non-retryable rejection that hides the password', async () => {
    nock(BASE).post('/security/user/authenticate').reply(401, { title: 'Unauthorized', detail: 'Invalid credentials' });
    const err = await failure(wazuh().runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: KEY }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(`${err.message}${err.safeMessage}`).not.toContain(PASSWORD);
    expect(`${err.message}${err.safeMessage}`).not.toContain(BASIC.slice(6));
  });

  it('maps 403 (RBAC) to a rejection and 429 without Retry-After to a one-minute wait', async () => {
    stageLogin();
    api()
      .put('/active-response')
      .query(true)
      .reply(403, specError('PermissionDeniedResponse') as Record<string, unknown>)
      .put('/active-response')
      .query(true)
      .reply(429, { title: 'Too Many Requests', detail: 'Maximum number of requests per minute reached', error: 6001 });
    const c = wazuh();
    const e403 = await failure(c.runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: KEY }));
    expect([e403.code, e403.retryable]).toEqual(['upstream.rejected', false]);
    expect(e403.message).toContain('Permission denied');
    const e429 = await failure(c.runActiveResponse({ agents: ['001'], command: '!custom' }, { idempotencyKey: KEY }));
    expect([e429.code, e429.retryable, e429.retryAfterMs]).toEqual(['upstream.rate_limited', true, 60_000]);
  });
});

describe('WazuhFirewall (firewall-drop)', () => {
  /** What firewall-drop reads on the agent: parameters.alert.data.srcip of the 4.x stdin message. */
  const STDIN = JSON.parse(fixture('wazuh/docs_ar_stdin_message_v4_firewall-drop_31168_shellshock.json')) as {
    parameters: { alert: { data: { srcip: string } } };
  };
  const SRCIP = STDIN.parameters.alert.data.srcip;
  const ok = stage('Runs an Active Response command on a specified agent');

  it('blocks by sending the address where firewall-drop reads it, with the command\'s own timeout as expiry', async () => {
    let body: { command?: string; alert?: { data: Record<string, unknown> } } = {};
    stageLogin();
    stagePut(ok, ok.response.json, (b) => (body = b));
    const fw = new WazuhFirewall({ client: wazuh(), agents: ['001'], blockCommand: 'firewall-drop600', now: () => clock });
    const r = await fw.block(SRCIP, { idempotencyKey: 'run_42:block_ip', ttlSeconds: 86_400, comment: 'shellshock' });

    expect(body.command).toBe('firewall-drop600');
    expect(body.alert?.data.srcip).toBe(SRCIP);
    expect(body.alert?.data).toMatchObject({ comment: 'shellshock', sentreflex: { idempotency_key: 'run_42:block_ip' } });
    expect(r).toMatchObject({ vendor: 'wazuh-firewall-drop', target: SRCIP, address: SRCIP, state: 'done', failures: [] });
    // ar.conf's 600 s wins over the requested day: Wazuh cannot take a TTL per call.
    expect(r.expiresAt).toBe(new Date(NOW + 600_000).toISOString());
  });

  it('reports partial blocks with the agents that missed it', async () => {
    const s = stage('Send a message to a list of agents');
    stageLogin();
    stagePut(s, { ...s.response.json, data: { ...s.response.json?.data, affected_items: ['002', '004', '005', '007'] } });
    const fw = new WazuhFirewall({ client: wazuh(), agents: ['002', '004', '005', '007', '010', '012'], blockCommand: '!firewall-drop' });
    const r = await fw.block(SRCIP, { idempotencyKey: 'k' });
    expect(r.failures.map((f) => f.target)).toEqual(['010', '012']);
    expect(r.expiresAt).toBeUndefined();
  });

  it('refuses to unblock without a configured release command, and uses it when there is one', async () => {
    const noRelease = new WazuhFirewall({ client: wazuh(), agents: ['001'], blockCommand: 'firewall-drop600' });
    const err = await failure(noRelease.unblock(SRCIP, { idempotencyKey: 'k' }));
    expect([err.code, err.retryable]).toEqual(['config.invalid', false]);
    expect(err.safeMessage).toContain('600 s');

    let body: { command?: string; alert?: { data: Record<string, unknown> } } = {};
    stageLogin();
    stagePut(ok, ok.response.json, (b) => (body = b));
    const fw = new WazuhFirewall({ client: wazuh(), agents: ['001'], blockCommand: 'firewall-drop600', unblockCommand: '!sentreflex-unblock' });
    await fw.unblock(SRCIP, { idempotencyKey: 'k' });
    expect([body.command, body.alert?.data.srcip]).toEqual(['!sentreflex-unblock', SRCIP]);
  });

  it('refuses networks and garbage before calling Wazuh', async () => {
    const fw = new WazuhFirewall({ client: wazuh(), agents: ['001'], blockCommand: 'firewall-drop600' });
    expect((await failure(fw.block('192.168.0.0/24', { idempotencyKey: 'k' }))).code).toBe('input.invalid');
    expect((await failure(fw.block('192.168.0.223; reboot', { idempotencyKey: 'k' }))).code).toBe('input.invalid');
  });

  it('reads the timeout from the ar.conf command name', () => {
    expect(timeoutFromCommandName('firewall-drop600')).toBe(600);
    expect(timeoutFromCommandName('firewall-drop0')).toBeUndefined();
    expect(timeoutFromCommandName('!firewall-drop')).toBeUndefined();
  });
});
