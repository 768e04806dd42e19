import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCIDENT_CHANNEL_QUEUE } from '../../../src/bot/incident-channels/incident-channel-job.ts';
import { grantRole } from '../../../src/store/principals.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { BOT_ACCESS_TOKEN, captureReplies, cardText, CLIENT_ID, eventually, GRAPH, messageActivity, post, startTeamsApp, stopTeamsApp, type Activity } from './teams-test-kit.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/** Ids in the shapes Microsoft's docs show (Graph "Create chat" example 2, "Pin a message in a chat"). */
const CHAT_ID = '19:1c5b01696d2e4a179c292bc9cf04e63b@thread.v2';
const CARD_ID = '1616964509832';
/** The app's id in the organisation's catalog (Graph "List teamsApp", example 3), not the manifest id. */
const CATALOG_APP_ID = '22f73bbe-f67a-4dea-bd54-54cac718cb2b';
const RESPONDER = '3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2';
const REPORTER = '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';
/** A responder Teams knew only by a Bot Framework id: no Entra object id, so Graph cannot make them a member. */
const LEGACY = '29:1Jz_wG-tR0TF8cHxi0cZL7d7tfqowjfKdWNA';
const CONNECTOR = 'https://smba.trafficmanager.net';
const chatPath = `/v1.0/chats/${encodeURIComponent(CHAT_ID)}`;
const isCardPost = (p: string) => decodeURIComponent(p) === `/teams/v3/conversations/${CHAT_ID}/activities`;

/** A Graph error body as Graph sends one (learn.microsoft.com/graph/errors: code, message, innerError). */
function graphErrorBody(code: string, message: string) {
  return { error: { code, message, innerError: { date: '2026-11-21T03:12:00', 'request-id': 'b7c6c1a4-6f3e-4c55-9a40-5b1ef1c0a001', 'client-request-id': 'b7c6c1a4-6f3e-4c55-9a40-5b1ef1c0a001' } } };
}

/** Graph "Create chat", example 2's response, with the topic asked for. */
function createdChat(topic: string) {
  return { '@odata.context': `${GRAPH}/v1.0/$metadata#chats/$entity`, id: CHAT_ID, topic, createdDateTime: '2026-11-21T03:12:05.175Z', lastUpdatedDateTime: '2026-11-21T03:12:05.175Z', chatType: 'group' };
}

/** Graph "Pin a message in a chat": 201 with a pinnedChatMessageInfo. */
const PINNED = { '@odata.type': '#microsoft.graph.pinnedChatMessageInfo', id: CARD_ID };

function topicFilter(path: string): string {
  const filter = new URL(path, GRAPH).searchParams.get('$filter') ?? '';
  return /^topic eq '(.*)'$/.exec(filter)?.[1] ?? '';
}

async function grantPeople(s: TestServer, tenant: string): Promise<void> {
  await grantRole(s.store.db, { identity: { platform: 'teams', workspace: tenant, userId: REPORTER }, tenantId: 'acme', role: 'analyst', actor: 'test' });
  await grantRole(s.store.db, { identity: { platform: 'teams', workspace: tenant, userId: RESPONDER }, tenantId: 'acme', role: 'responder', actor: 'test' });
  await grantRole(s.store.db, { identity: { platform: 'teams', workspace: tenant, userId: LEGACY }, tenantId: 'acme', role: 'approver', actor: 'test' });
}

async function declareSev1(s: TestServer, from: Activity['from'], title: string): Promise<{ id: string; name: string }> {
  const activity = messageActivity(`incident new 1 ${title}`, { from });
  const answer = captureReplies(activity);
  expect((await post(s, activity)).status).toBe(200);
  await eventually(() => expect(answer.calls).toHaveLength(1));
  const inc = await s.store.db.selectFrom('incidents').select(['id', 'created_at', 'severity']).where('title', '=', title).executeTakeFirstOrThrow();
  expect(inc.severity).toBe(1);
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return { id: inc.id, name: `inc-${inc.created_at.toISOString().slice(0, 10).replace(/-/g, '')}-${inc.id.slice(0, 8)}-${slug}` };
}

async function timeline(s: TestServer, incidentId: string, kind: string) {
  return s.store.db.selectFrom('timeline_entries').select('data').where('incident_id', '=', incidentId).where('kind', '=', kind).execute();
}

describe('Teams: SEV1 group chats (TEAMS_INCIDENT_MODE defaults to groupchat without a team)', () => {
  let s: TestServer;
  const fixture = messageActivity('');
  const from = { ...fixture.from, aadObjectId: REPORTER };
  beforeAll(async () => {
    s = await startTeamsApp();
    await grantPeople(s, fixture.channelData.tenant.id);
  });
  afterEach(() => {
    const pending = nock.pendingMocks().filter((m) => !m.includes('login.teams.test'));
    expect(pending).toEqual([]);
  });
  afterAll(() => stopTeamsApp(s));

  it('creates the chat once across a retry, with the responders and reporter as members, then posts and pins the card', async () => {
    const calls: { method: string; path: string; body: unknown; authorization: unknown }[] = [];
    const record = (method: string) =>
      function (this: nock.ReplyFnContext, path: string, body: unknown) {
        calls.push({ method, path, body, authorization: this.req.headers.authorization });
      };
    let creates = 0;
    const graph = nock(GRAPH)
      // Graph "List teamsApp", example 3: the app found by the id in its manifest.
      .get('/v1.0/appCatalogs/teamsApps')
      .query({ $filter: `externalId eq '${CLIENT_ID}'` })
      .reply(200, { '@odata.context': `${GRAPH}/v1.0/$metadata#appCatalogs/teamsApps`, value: [{ id: CATALOG_APP_ID, externalId: CLIENT_ID, displayName: 'SENTreflex', distributionMethod: 'organization' }] })
      // Graph "List chats": no chat an earlier attempt made.
      .get(`/v1.0/users/${RESPONDER}/chats`)
      .query(true)
      .reply(function (path, body) {
        record('GET').call(this, path, body);
        return [200, { '@odata.context': `${GRAPH}/v1.0/$metadata#chats`, '@odata.count': 0, value: [] }];
      })
      .post('/v1.0/chats')
      .reply(function (path, body) {
        creates++;
        record('POST').call(this, path, body);
        return [201, createdChat((body as { topic: string }).topic)];
      })
      // Graph "Add app to chat": 201 with no body; the retry's second install is a conflict (already there).
      .post(`${chatPath}/installedApps`)
      .reply(function (path, body) {
        record('POST').call(this, path, body);
        return [201, ''];
      })
      .post(`${chatPath}/installedApps`)
      .reply(409, graphErrorBody('Conflict', 'App is already installed in this chat.'))
      .post(`${chatPath}/pinnedMessages`)
      .reply(function (path, body) {
        record('POST').call(this, path, body);
        return [201, PINNED];
      });
    const cards: Record<string, unknown>[] = [];
    const connector = nock(CONNECTOR)
      // Teams' Bot API status codes (learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability,
      // "Status codes from bot conversational APIs"): 403 BotNotInConversationRoster until the installed bot is in the chat.
      .post(isCardPost)
      .reply(403, (_p, body) => {
        cards.push(body as Record<string, unknown>);
        return { error: { code: 'BotNotInConversationRoster', message: 'The bot is not part of the conversation roster.' } };
      })
      .post(isCardPost)
      .reply(200, (_p, body) => {
        cards.push(body as Record<string, unknown>);
        return { id: CARD_ID };
      });

    const inc = await declareSev1(s, from, 'Ransomware on web-01');
    await eventually(async () => expect(await timeline(s, inc.id, 'incident.channel.ready')).toHaveLength(1));
    expect(graph.isDone() && connector.isDone()).toBe(true);

    // One chat, though the job ran twice (the card post was refused once).
    expect(creates).toBe(1);
    const lookup = calls.find((c) => c.method === 'GET')!;
    expect(topicFilter(lookup.path)).toBe(inc.name);
    const create = calls.find((c) => c.path === '/v1.0/chats')!;
    expect(create.authorization).toBe(`Bearer ${BOT_ACCESS_TOKEN}`);
    expect(create.body).toEqual({
      chatType: 'group',
      topic: inc.name,
      members: [RESPONDER, REPORTER].map((id) => ({ '@odata.type': '#microsoft.graph.aadUserConversationMember', roles: ['owner'], 'user@odata.bind': `${GRAPH}/v1.0/users('${id}')` })),
    });
    expect(calls.find((c) => c.path.endsWith('/installedApps'))!.body).toEqual({ 'teamsApp@odata.bind': `${GRAPH}/v1.0/appCatalogs/teamsApps/${CATALOG_APP_ID}` });
    expect(calls.find((c) => c.path.endsWith('/pinnedMessages'))!.body).toEqual({ 'message@odata.bind': `${GRAPH}/v1.0/chats/${CHAT_ID}/messages/${CARD_ID}` });

    // The card, posted by the bot into the chat (a message, not a new conversation).
    expect(cards).toHaveLength(2);
    const card = (cards[1]!.attachments as { content: unknown }[])[0]!.content;
    expect(cardText(card)).toContain('SEV1 (critical): Ransomware on web-01');

    const channels = await s.store.db.selectFrom('incident_channels').select(['platform', 'channel_id', 'name']).where('incident_id', '=', inc.id).execute();
    expect(channels).toEqual([{ platform: 'teams', channel_id: CHAT_ID, name: inc.name }]);
    expect(await timeline(s, inc.id, 'incident.channel.card')).toHaveLength(1);
    const [ready] = await timeline(s, inc.id, 'incident.channel.ready');
    expect(ready!.data).toMatchObject({ platform: 'teams', channelId: CHAT_ID, invited: [RESPONDER, REPORTER], skipped: [{ userId: LEGACY, reason: 'not_an_entra_user' }], cardTs: CARD_ID });
  });
});

describe('Teams: SEV1 group chats with TEAMS_INCIDENT_MODE=groupchat and TEAMS_APP_CATALOG_ID', () => {
  let s: TestServer;
  const fixture = messageActivity('');
  const from = { ...fixture.from, aadObjectId: REPORTER };
  beforeAll(async () => {
    s = await startTeamsApp({ TEAMS_INCIDENT_MODE: 'groupchat', TEAMS_APP_CATALOG_ID: CATALOG_APP_ID });
    await grantPeople(s, fixture.channelData.tenant.id);
  });
  afterEach(() => {
    const pending = nock.pendingMocks().filter((m) => !m.includes('login.teams.test'));
    expect(pending).toEqual([]);
  });
  afterAll(() => stopTeamsApp(s));

  it('waits out a Graph 429 with Retry-After, then creates the chat once', async () => {
    let creates = 0;
    const graph = nock(GRAPH)
      .get(`/v1.0/users/${RESPONDER}/chats`)
      .query(true)
      .times(2)
      .reply(200, { value: [] })
      // Graph throttling guidance (learn.microsoft.com/graph/throttling): 429 TooManyRequests with Retry-After in seconds.
      .post('/v1.0/chats')
      .reply(() => {
        creates++;
        return [429, graphErrorBody('TooManyRequests', 'Too many requests.'), { 'Retry-After': '1' }];
      })
      .post('/v1.0/chats')
      .reply((_p, body) => {
        creates++;
        return [201, createdChat((body as { topic: string }).topic)];
      })
      .post(`${chatPath}/installedApps`)
      .reply(201, '')
      .post(`${chatPath}/pinnedMessages`)
      .reply(201, PINNED);
    const connector = nock(CONNECTOR).post(isCardPost).reply(200, { id: CARD_ID });

    const inc = await declareSev1(s, from, 'Throttled room');
    await eventually(async () => expect(await timeline(s, inc.id, 'incident.channel.ready')).toHaveLength(1));
    expect(graph.isDone() && connector.isDone()).toBe(true);
    // The refused attempt made nothing; the second made the one chat.
    expect(creates).toBe(2);
    const channels = await s.store.db.selectFrom('incident_channels').select('channel_id').where('incident_id', '=', inc.id).execute();
    expect(channels).toEqual([{ channel_id: CHAT_ID }]);
    const dead = await s.queues.queue(`${INCIDENT_CHANNEL_QUEUE}.dlq`).getJob(`dlq-channel-${inc.id}`);
    expect(dead).toBeUndefined();
  });

  it('stops on a Graph 403 with an error naming the missing permission, and makes nothing', async () => {
    let creates = 0;
    const graph = nock(GRAPH)
      .get(`/v1.0/users/${RESPONDER}/chats`)
      .query(true)
      .reply(200, { value: [] })
      .post('/v1.0/chats')
      .reply(() => {
        creates++;
        return [403, graphErrorBody('Forbidden', "Missing role permissions on the request. API requires one of 'Chat.Create'. Roles on the request ''.")];
      });

    const inc = await declareSev1(s, from, 'Forbidden room');
    const dlq = s.queues.queue(`${INCIDENT_CHANNEL_QUEUE}.dlq`);
    await eventually(async () => expect(await dlq.getJob(`dlq-channel-${inc.id}`)).toBeDefined());
    expect(graph.isDone()).toBe(true);
    const dead = (await dlq.getJob(`dlq-channel-${inc.id}`))!;
    const error = (dead.data as { error: string; attempts: number }).error;
    expect(error).toContain('Creating the SEV1 group chat failed: Microsoft Graph answered 403 Forbidden');
    expect(error).toContain('Grant the app registration the Microsoft Graph application permission Chat.Create with admin consent');
    // Not retried: another attempt cannot grant a permission.
    expect((dead.data as { attempts: number }).attempts).toBe(1);
    expect(creates).toBe(1);
    expect(await s.store.db.selectFrom('incident_channels').select('channel_id').where('incident_id', '=', inc.id).execute()).toEqual([]);
    expect(await timeline(s, inc.id, 'incident.channel.card')).toEqual([]);
  });

  it('adopts the chat an attempt made before dying unrecorded, and leaves the card unpinned without Chat.ReadWrite.All', async () => {
    // Another chat than the other tests' (a chat is one incident's room: incident_channels holds each once).
    const ORPHAN = '19:561082c0f3f847a58069deb8eb300807@thread.v2';
    const orphanPath = `/v1.0/chats/${encodeURIComponent(ORPHAN)}`;
    const graph = nock(GRAPH)
      // Graph "List chats": the chat an earlier attempt made (same topic, which holds the incident id).
      .get(`/v1.0/users/${RESPONDER}/chats`)
      .query(true)
      .reply((path) => [200, { value: [{ id: ORPHAN, topic: topicFilter(path), createdDateTime: '2026-11-21T03:12:05.175Z', lastUpdatedDateTime: '2026-11-21T03:12:05.175Z', chatType: 'group' }] }])
      .post(`${orphanPath}/installedApps`)
      .reply(201, '')
      .post(`${orphanPath}/pinnedMessages`)
      .reply(403, graphErrorBody('Forbidden', "Missing role permissions on the request. API requires one of 'Chat.ReadWrite.All'. Roles on the request 'Chat.Create'."));
    const creates = nock(GRAPH).post('/v1.0/chats').reply(201, createdChat('must not be called'));
    const connector = nock(CONNECTOR)
      .post((p) => decodeURIComponent(p) === `/teams/v3/conversations/${ORPHAN}/activities`)
      .reply(200, { id: CARD_ID });

    const inc = await declareSev1(s, from, 'Adopted room');
    await eventually(async () => expect(await timeline(s, inc.id, 'incident.channel.ready')).toHaveLength(1));
    expect(graph.isDone() && connector.isDone()).toBe(true);
    expect(creates.isDone()).toBe(false);
    nock.removeInterceptor({ hostname: new URL(GRAPH).hostname, proto: 'https', method: 'POST', path: '/v1.0/chats' });
    const channels = await s.store.db.selectFrom('incident_channels').select(['channel_id', 'name']).where('incident_id', '=', inc.id).execute();
    expect(channels).toEqual([{ channel_id: ORPHAN, name: inc.name }]);
    const [ready] = await timeline(s, inc.id, 'incident.channel.ready');
    expect(ready!.data).toMatchObject({ channelId: ORPHAN, cardTs: CARD_ID });
    expect(await s.queues.queue(`${INCIDENT_CHANNEL_QUEUE}.dlq`).getJob(`dlq-channel-${inc.id}`)).toBeUndefined();
  });
});
