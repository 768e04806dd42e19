import { createPrivateKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import nock from 'nock';
import { vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import type { Role } from '../../../src/store/schema.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

/**
 * Teams as the tests see it: the real app started with Teams on; activities from
 * ../shared/fixtures/teams, sent with a Bot Framework JWT signed here (RS256, a key made per run)
 * whose OpenID metadata and JWKS are served through nock, as login.botframework.com serves
 * Microsoft's; the token endpoint, the Bot Connector (the fixtures' serviceUrl host) and Graph
 * intercepted with nock. Nothing here imports the code under test's JWT or card logic.
 */
export const CLIENT_ID = '5f0b2a77-3c1e-4d2a-9b1f-0d6c1e2f3a4b';
export const CLIENT_SECRET = 'test-teams-client-secret-value';
export const BOT_TENANT = '0e8d1c2b-3a4f-4b5c-8d6e-7f8091a2b3c4';
export const LOGIN = 'https://login.teams.test';
export const METADATA_PATH = '/v1/.well-known/openidconfiguration';
export const JWKS_PATH = '/v1/.well-known/keys';
export const TOKEN_PATH = `/${BOT_TENANT}/oauth2/v2.0/token`;
export const GRAPH = 'https://graph.teams.test';
export const ISSUER = 'https://api.botframework.com';
export const BOT_ACCESS_TOKEN = 'test-bot-access-token-from-client-credentials';
export const KID = 'test-signing-key';

export const MESSAGE_FIXTURE = 'teams/msteams_docs_messageBack_inbound_message.json';
export const INVOKE_FIXTURE = 'teams/msteams_docs_invoke_cardaction_inbound.json';

export type Activity = Record<string, unknown> & {
  id: string;
  serviceUrl: string;
  from: { id: string; name?: string };
  conversation: { id: string };
  channelData: { tenant: { id: string } };
  recipient: { id: string; name?: string };
};

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
/** A key Microsoft never published: what a forger signs with. */
const forger = generateKeyPairSync('rsa', { modulusLength: 2048 });

export function connectorHost(activity: Activity): { origin: string; base: string } {
  const u = new URL(activity.serviceUrl);
  return { origin: u.origin, base: u.pathname.replace(/\/+$/, '') };
}

/** The token endpoint's answer to a client-credentials grant (RFC 6749 §5.1, as Entra ID sends it). */
export function tokenAnswer() {
  return { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: BOT_ACCESS_TOKEN };
}

/** Metadata, keys and tokens: served for as long as the test file runs. */
export function interceptMicrosoftLogin(): void {
  nock(LOGIN)
    .persist()
    .get(METADATA_PATH)
    .reply(200, {
      issuer: ISSUER,
      authorization_endpoint: 'https://invalid.botframework.com',
      jwks_uri: `${LOGIN}${JWKS_PATH}`,
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    })
    .get(JWKS_PATH)
    .reply(200, { keys: [{ ...signing.publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256', endorsements: ['msteams'] }] })
    .post(TOKEN_PATH)
    .reply(200, tokenAnswer());
}

export async function startTeamsApp(env: Record<string, string> = {}): Promise<TestServer> {
  nock.disableNetConnect();
  nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.startsWith('localhost'));
  interceptMicrosoftLogin();
  const s = await startTestServer({
    env: {
      TEAMS_CLIENT_ID: CLIENT_ID,
      TEAMS_CLIENT_SECRET: CLIENT_SECRET,
      TEAMS_TENANT_ID: BOT_TENANT,
      TEAMS_OPENID_METADATA_URL: `${LOGIN}${METADATA_PATH}`,
      TEAMS_TOKEN_URL: `${LOGIN}${TOKEN_PATH}`,
      TEAMS_GRAPH_URL: GRAPH,
      ...env,
    },
  });
  await ensureTenant(s.store.db, 'acme', 'Acme');
  // The Entra ID tenants the two fixtures come from.
  for (const fixture of [MESSAGE_FIXTURE, INVOKE_FIXTURE]) {
    const tenant = fixtureJson<Activity>(fixture).channelData.tenant.id;
    await mapWorkspace(s.store.db, { platform: 'teams', workspace: tenant, tenantId: 'acme', actor: 'test' });
  }
  return s;
}

export async function stopTeamsApp(s: TestServer | undefined): Promise<void> {
  nock.cleanAll();
  nock.enableNetConnect();
  await s?.stop();
}

/** Grants a role to the sender of a fixture activity (identified by from.id: the fixtures carry no aadObjectId). */
export async function grantSender(s: TestServer, activity: Activity, ...roles: Role[]): Promise<void> {
  for (const role of roles) {
    await grantRole(s.store.db, { identity: { platform: 'teams', workspace: activity.channelData.tenant.id, userId: activity.from.id }, tenantId: 'acme', role, actor: 'test' });
  }
}

/** The messageBack fixture as a typed message: a fresh activity id, the text changed. */
export function messageActivity(text: string, change: Partial<Activity> = {}): Activity {
  const a = fixtureJson<Activity>(MESSAGE_FIXTURE);
  return { ...a, id: `f:${randomUUID()}`, text, ...change };
}

/** The invoke fixture as a Universal Action click (adaptiveCard/action, the request format of the Adaptive Cards docs). */
export function clickActivity(verb: string, value: string, change: Partial<Activity> = {}): Activity {
  const a = fixtureJson<Activity>(INVOKE_FIXTURE);
  return {
    ...a,
    id: `f:${randomUUID()}`,
    name: 'adaptiveCard/action',
    value: { action: { type: 'Action.Execute', id: 'abc', verb, data: { value } }, trigger: 'manual' },
    ...change,
  };
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A JWT as the Bot Framework signs it: RS256 over header.payload with a key from the JWKS. */
export function jwt(claims: Record<string, unknown>, opts: { key?: KeyObject; kid?: string; alg?: string } = {}): string {
  const header = { alg: opts.alg ?? 'RS256', typ: 'JWT', kid: opts.kid ?? KID, x5t: KID };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  if ((opts.alg ?? 'RS256') === 'none') return `${input}.`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), opts.key ?? signing.privateKey))}`;
}

/** The claims of a channel's token for this activity, valid for an hour. */
export function botClaims(activity: Activity, change: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { serviceurl: activity.serviceUrl, nbf: now - 60, exp: now + 3600, iss: ISSUER, aud: CLIENT_ID, ...change };
}

export const FORGER_KEY = createPrivateKey(forger.privateKey.export({ format: 'pem', type: 'pkcs8' }));

/** POSTs an activity to /api/messages as the Bot Framework does. */
export async function post(s: TestServer, activity: unknown, token?: string | null): Promise<Response> {
  const t = token === undefined ? jwt(botClaims(activity as Activity)) : token;
  return fetch(`${s.url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', ...(t === null ? {} : { authorization: `Bearer ${t}` }) },
    body: JSON.stringify(activity),
  });
}

export interface Captured {
  path: string;
  body: Record<string, unknown>;
  authorization: string | undefined;
  at: number;
}

/** Captures messages the bot POSTs into the activity's conversation. */
export function captureReplies(activity: Activity, times = 1, status = 200, headers: Record<string, string> = {}): { calls: Captured[]; scope: nock.Scope } {
  const { origin, base } = connectorHost(activity);
  const calls: Captured[] = [];
  const scope = nock(origin)
    .post((p) => p.startsWith(`${base}/v3/conversations/`) && p.endsWith('/activities'))
    .times(times)
    .reply(function (path, body) {
      calls.push({ path, body: body as Record<string, unknown>, authorization: this.req.headers.authorization as string | undefined, at: Date.now() });
      return status === 200 ? [200, { id: `${1_575_667_808_184 + calls.length}` }] : [status, { error: { code: 'Throttled', message: 'Too many requests' } }, headers];
    });
  return { calls, scope };
}

// Generous: on a loaded 2-core machine a worker can take seconds to pick a job up; no assertion is about time.
export const eventually = (fn: () => void | Promise<void>, timeout = 45_000) => vi.waitFor(fn, { timeout, interval: 50 });

/** Jobs of a queue in any state: what an accepted request leaves behind. */
export async function jobTotal(s: TestServer, queue: string): Promise<number> {
  const counts = await s.queues.queue(queue).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'waiting-children');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** Every text of a card, as Teams would show it. */
export function cardText(card: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.type === 'RichTextBlock' && Array.isArray(o.inlines)) {
        out.push(`${o.inlines.map((r) => (r as { text?: string }).text ?? '').join('')}\n`);
        return;
      }
      if (o.type === 'TextBlock' && typeof o.text === 'string') out.push(`${o.text}\n`);
      for (const [k, x] of Object.entries(o)) if (k !== 'fallbackText') walk(x);
    }
  };
  walk(card);
  return out.join('');
}
