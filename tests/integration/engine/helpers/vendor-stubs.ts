import nock from 'nock';
import YAML from 'yaml';
import { fixtureJson, fixtureText } from '../../../helpers/fixtures.ts';

/**
 * The vendors of the containment, paging and phone actions at the HTTP edge (nock), answering
 * with the real payloads in ../shared/fixtures. Each `stage…` adds one single-use interceptor and
 * records what the code sent, so a test can check the idempotency key, the credentials and the
 * body, and `scope.isDone()` proves the call was made. An unexpected second call finds no
 * interceptor and fails (the tests disable real network).
 */

// ---- fixtures ------------------------------------------------------------------------------

interface TavernStage {
  name: string;
  response: { json?: unknown };
}
const TAVERN: TavernStage[] = YAML.parseAllDocuments(fixtureText('wazuh/api_test_active_response_endpoints.tavern.yaml'), {
  customTags: [{ tag: '!anything', resolve: () => null }],
}).flatMap((d) => (d.toJS() as { stages: TavernStage[] }).stages);
const tavern = (prefix: string): unknown => {
  const stage = TAVERN.find((s) => s.name.startsWith(prefix));
  if (!stage) throw new Error(`no Tavern stage "${prefix}"`);
  return stage.response.json;
};
/** Wazuh's own answers to PUT /active-response (agent 001 ok; 009 disconnected; 251 unknown). */
export const WAZUH_AR_OK_001 = tavern('Runs an Active Response command on a specified agent');
export const WAZUH_AR_DISCONNECTED_009 = tavern('Try to send a message to an agent (status=disconnected');
export const WAZUH_AR_UNKNOWN_251 = tavern('Try to send a message to an unexisting agent');

export const ABUSEIPDB_CHECK = fixtureText('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json');

const REVOKE_HTTP = fixtureText('identity_containment/msgraph_docs_user_revokeSignInSessions_response.http');
/** Graph's answer to revokeSignInSessions (200 {"value": true}, the documented known issue). */
export const GRAPH_REVOKE_BODY = REVOKE_HTTP.slice(REVOKE_HTTP.indexOf('{'));
/** The PATCH /users fixture answers `HTTP/1.1 204 No Content` with no body. */
export const GRAPH_PATCH_STATUS = Number(/HTTP\/1\.1 (\d{3})/.exec(fixtureText('identity_containment/msgraph_docs_user_update_PATCH_204.http'))?.[1]);

export const MDE_ACTION = fixtureJson<Record<string, unknown> & { id: string; machineId: string; computerDnsName: string }>(
  'identity_containment/mde_docs_machineAction_json_representation.json',
);
export const FALCON_ENVELOPE = fixtureJson<{ meta: unknown; resources: { id: string }[]; errors: unknown[] }>(
  'identity_containment/crowdstrike_envelope__demisto_online_states_response.json',
);

export const PD_SUCCESS = fixtureJson<Record<string, unknown>>('oncall_phone/pagerduty_events_v2_response_202_success_example.json');
export const PD_ERROR = fixtureText('oncall_phone/pagerduty_events_v2_response_error_example.json');
export const TWILIO_CALL = fixtureJson<Record<string, unknown> & { sid: string; to: string; from: string }>('oncall_phone/twilio_calls_create_201_response.json');
export const TWILIO_ERROR = fixtureText('oncall_phone/twilio_rest_error_response.json');

// ---- hosts and tenant settings ------------------------------------------------------------

export const GRID = 'https://sentgrid.example.test';
export const GRAPH = 'https://graph.microsoft.com';
export const LOGIN = 'https://login.microsoftonline.com';
export const MDE = 'https://api.securitycenter.microsoft.com';
export const FALCON = 'https://api.crowdstrike.com';
export const WAZUH = 'https://wazuh.example.test:55000';
export const PAGERDUTY = 'https://events.pagerduty.com';
export const TWILIO = 'https://api.twilio.com';
/** The account sid of the Twilio fixture. */
export const TWILIO_ACCOUNT = String(TWILIO_CALL['account_sid']);
export const ENTRA_TENANT = 'contoso.onmicrosoft.com';
export const MDE_TENANT = 'mde-tenant';

/** Tenant config and vault secrets for every integration, as an operator would set them. */
export const TENANT_CONFIG = {
  firewall: { provider: 'rest', base_url: `${GRID}/api` },
  identity: { provider: 'msgraph' },
  edr: { provider: 'defender' },
  msgraph: { tenant_id: ENTRA_TENANT, client_id: 'sentreflex-app' },
  defender: { tenant_id: MDE_TENANT, client_id: 'sentreflex-mde' },
  crowdstrike: { client_id: 'sentreflex-falcon' },
  wazuh: { base_url: WAZUH, api_user: 'sentreflex', firewall: { agents: ['001'], block_command: 'firewall-drop600', unblock_command: '!sentreflex-unblock' } },
  twilio: { account_sid: TWILIO_ACCOUNT, from: '+15017122661' },
} as const;

export const SECRETS = {
  'firewall.api_token': 'sentgrid-token-0123456789',
  'msgraph.client_secret': 'graph-secret-0123456789',
  'defender.client_secret': 'mde-secret-0123456789',
  'crowdstrike.client_secret': 'falcon-secret-0123456789',
  'wazuh.api_password': 'wazuh-password-0123456789',
  'pagerduty.routing_key': 'pd-default-routing-key-000000001',
  'pagerduty.routing_key.secops-primary': String(fixtureJson<Record<string, unknown>>('oncall_phone/pagerduty_events_v2_enqueue_trigger_example.json')['routing_key']),
  'twilio.auth_token': 'twilio-auth-token-0123456789',
} as const;

// ---- staging -------------------------------------------------------------------------------

export interface Seen {
  headers: Record<string, string>;
  body: unknown;
  path: string;
}

function capture(seen: Seen[], req: { headers: Record<string, string | string[] | undefined>; path: string }, body: unknown): void {
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(',') : String(v ?? '')]));
  seen.push({ headers, body, path: req.path });
}

function parseBody(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body);
  } catch {
    return Object.fromEntries(new URLSearchParams(body));
  }
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

function stage(base: string, method: 'post' | 'put' | 'patch' | 'delete' | 'get', path: string | RegExp, reply: Reply, seen: Seen[], query?: Record<string, string> | true): nock.Scope {
  const scope = nock(base);
  const interceptor = scope[method](path);
  if (query) interceptor.query(query);
  interceptor.reply(function (_uri, body) {
    capture(seen, { headers: this.req.headers as Record<string, string>, path: this.req.path }, parseBody(body));
    const payload = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
    return [reply.status, payload, { 'Content-Type': 'application/json', ...reply.headers }];
  });
  return scope;
}

export function stageAbuseIpdb(seen: Seen[] = []): nock.Scope {
  return stage('https://api.abuseipdb.com', 'get', '/api/v2/check', { status: 200, body: ABUSEIPDB_CHECK }, seen, true);
}

export function stageGridBlock(address: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(GRID, 'post', `/api/blocklist/${encodeURIComponent(address)}`, reply, seen);
}

export function stageGridUnblock(address: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(GRID, 'delete', `/api/blocklist/${encodeURIComponent(address)}`, reply, seen);
}

let tokens = 0;
/** An RFC 6749 §5.1 token answer (no token response is among the fixtures). */
export function stageEntraToken(tenant: string, seen: Seen[] = []): nock.Scope {
  tokens += 1;
  return stage(LOGIN, 'post', `/${tenant}/oauth2/v2.0/token`, { status: 200, body: { token_type: 'Bearer', expires_in: 3599, access_token: `entra-token-${tokens}` } }, seen);
}

export function stageGraphPatch(user: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(GRAPH, 'patch', `/v1.0/users/${encodeURIComponent(user)}`, reply, seen);
}

export function stageGraphRevoke(user: string, seen: Seen[] = []): nock.Scope {
  return stage(GRAPH, 'post', `/v1.0/users/${encodeURIComponent(user)}/revokeSignInSessions`, { status: 200, body: GRAPH_REVOKE_BODY }, seen);
}

export function stageMdeActions(reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(MDE, 'get', '/api/machineactions', reply, seen, true);
}

export function stageMdeIsolate(machineId: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(MDE, 'post', `/api/machines/${machineId}/isolate`, reply, seen);
}

export function stageFalconToken(seen: Seen[] = []): nock.Scope {
  tokens += 1;
  return stage(FALCON, 'post', '/oauth2/token', { status: 201, body: { access_token: `falcon-token-${tokens}`, token_type: 'bearer', expires_in: 1799 } }, seen);
}

export function stageFalconAction(action: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(FALCON, 'post', '/devices/entities/devices-actions/v2', reply, seen, { action_name: action });
}

let wazuhLogins = 0;
/** The spec's login answer shape with a concrete token. */
export function stageWazuhLogin(seen: Seen[] = []): nock.Scope {
  wazuhLogins += 1;
  return stage(WAZUH, 'post', '/security/user/authenticate', { status: 200, body: { data: { token: `wazuh-token-${wazuhLogins}` }, error: 0 } }, seen);
}

export function stageWazuhActiveResponse(agents: string, reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(WAZUH, 'put', '/active-response', reply, seen, { agents_list: agents });
}

/** PagerDuty's 202 example with dedup_key set to what the event carried (PagerDuty echoes it). */
export function stagePagerDuty(reply: Reply | 'success', seen: Seen[] = []): nock.Scope {
  const scope = nock(PAGERDUTY);
  scope.post('/v2/enqueue').reply(function (_uri, body) {
    const sent = parseBody(body) as { dedup_key?: string };
    capture(seen, { headers: this.req.headers as Record<string, string>, path: this.req.path }, sent);
    if (reply === 'success') return [202, JSON.stringify({ ...PD_SUCCESS, dedup_key: sent.dedup_key }), { 'Content-Type': 'application/json' }];
    return [reply.status, typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? ''), { 'Content-Type': 'application/json', ...reply.headers }];
  });
  return scope;
}

export function stageTwilio(resource: 'Calls.json' | 'Messages.json', reply: Reply, seen: Seen[] = []): nock.Scope {
  return stage(TWILIO, 'post', `/2010-04-01/Accounts/${TWILIO_ACCOUNT}/${resource}`, reply, seen);
}

// ---- SMTP (not HTTP: a real server on 127.0.0.1) ------------------------------------------

export interface TestSmtp {
  port: number;
  received: { envelopeTo: string[]; raw: string }[];
  close(): Promise<void>;
}

/** A real SMTP server on a random local port, no STARTTLS; `dataReplies` answer successive DATA commands (then it accepts). */
export async function startTestSmtp(behaviour: { dataReplies?: number[] } = {}): Promise<TestSmtp> {
  const { SMTPServer } = await import('smtp-server');
  const replies = [...(behaviour.dataReplies ?? [])];
  const received: TestSmtp['received'] = [];
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    closeTimeout: 1000,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const code = replies.shift();
        if (code !== undefined) return cb(Object.assign(new Error(`${code} 4.3.0 try again later`), { responseCode: code }));
        received.push({ envelopeTo: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
