import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { grantRole } from '../../../src/store/principals.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { BOT_ACCESS_TOKEN, BOT_TENANT, captureReplies, cardText, eventually, GRAPH, messageActivity, post, startTeamsApp, stopTeamsApp } from './teams-test-kit.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const TEAM = '7a1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b';
const CHANNEL_ID = '19:a1b2c3d4e5f60718293a4b5c6d7e8f90@thread.tacv2';
/** A responder known by their Entra object id (what Teams sends as from.aadObjectId). */
const RESPONDER = '3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2';
/** The analyst who declares the SEV1, as Teams identifies a user: the Entra object id beside the Bot Framework id. */
const REPORTER = '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';

describe('Teams: SEV1 incident channels in TEAMS_INCIDENT_TEAM_ID', () => {
  let s: TestServer;
  const fixture = messageActivity('');
  const from = { ...fixture.from, aadObjectId: REPORTER };
  beforeAll(async () => {
    s = await startTeamsApp({ TEAMS_INCIDENT_TEAM_ID: TEAM });
    await grantRole(s.store.db, { identity: { platform: 'teams', workspace: fixture.channelData.tenant.id, userId: REPORTER }, tenantId: 'acme', role: 'analyst', actor: 'test' });
    await grantRole(s.store.db, { identity: { platform: 'teams', workspace: fixture.channelData.tenant.id, userId: RESPONDER }, tenantId: 'acme', role: 'responder', actor: 'test' });
  });
  afterEach(() => {
    const pending = nock.pendingMocks().filter((m) => !m.includes('login.teams.test'));
    expect(pending).toEqual([]);
  });
  afterAll(() => stopTeamsApp(s));

  it('makes a channel, adds the responders to the team, sets the topic and posts the summary card', async () => {
    const activity = messageActivity('incident new 1 Ransomware on web-01', { from });
    const answer = captureReplies(activity);
    const graphCalls: { method: string; path: string; body: unknown; authorization: unknown }[] = [];
    const graph = nock(GRAPH)
      .post(`/v1.0/teams/${TEAM}/channels`)
      .reply(function (path, body) {
        graphCalls.push({ method: 'POST', path, body, authorization: this.req.headers.authorization });
        return [201, { id: CHANNEL_ID, displayName: (body as { displayName: string }).displayName, membershipType: 'standard' }];
      })
      .post(`/v1.0/teams/${TEAM}/members/add`)
      .reply(function (path, body) {
        graphCalls.push({ method: 'POST', path, body, authorization: this.req.headers.authorization });
        return [
          200,
          {
            value: [
              { '@odata.type': '#microsoft.graph.aadUserConversationMemberResult', userId: RESPONDER, error: null },
              { '@odata.type': '#microsoft.graph.aadUserConversationMemberResult', userId: REPORTER, error: { code: 'Forbidden', message: 'guest users cannot be added' } },
            ],
          },
        ];
      })
      .patch(`/v1.0/teams/${TEAM}/channels/${encodeURIComponent(CHANNEL_ID)}`)
      .reply(function (path, body) {
        graphCalls.push({ method: 'PATCH', path, body, authorization: this.req.headers.authorization });
        return [204, ''];
      });
    const posted: { path: string; body: Record<string, unknown> }[] = [];
    const connector = nock('https://smba.trafficmanager.net')
      .post('/teams/v3/conversations')
      .reply(200, (path, body) => {
        posted.push({ path, body: body as Record<string, unknown> });
        return { id: `${CHANNEL_ID};messageid=1700000000001`, activityId: '1700000000001', serviceUrl: 'https://smba.trafficmanager.net/teams/' };
      });

    expect((await post(s, activity)).status).toBe(200);
    await eventually(() => expect(answer.calls).toHaveLength(1));
    const [inc] = await s.store.db.selectFrom('incidents').selectAll().where('title', '=', 'Ransomware on web-01').execute();
    expect(inc?.severity).toBe(1);
    await eventually(async () => {
      const kinds = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', inc!.id).execute();
      expect(kinds.map((k) => k.kind)).toContain('incident.channel.ready');
    });
    expect(graph.isDone()).toBe(true);
    expect(connector.isDone()).toBe(true);

    const name = `inc-${inc!.created_at.toISOString().slice(0, 10).replace(/-/g, '')}-${inc!.id.slice(0, 8)}-ransomware-on-web-01`;
    expect(graphCalls[0]!.body).toEqual({ displayName: name, description: 'Incident room opened by SENTreflex', membershipType: 'standard' });
    expect(graphCalls[0]!.authorization).toBe(`Bearer ${BOT_ACCESS_TOKEN}`);
    // The responders and approvers, and the reporter, added to the team (a standard channel is open to its members).
    expect(graphCalls[1]!.body).toEqual({
      values: [RESPONDER, REPORTER].map((id) => ({ '@odata.type': 'microsoft.graph.aadUserConversationMember', roles: [], 'user@odata.bind': `${GRAPH}/v1.0/users('${id}')` })),
    });
    expect((graphCalls[2]!.body as { description: string }).description).toContain('SEV1 (critical) · Ransomware on web-01');
    // The card is a new thread of the channel, in the bot's tenant.
    expect(posted[0]!.body).toMatchObject({ isGroup: true, tenantId: BOT_TENANT, channelData: { channel: { id: CHANNEL_ID } } });
    const card = ((posted[0]!.body.activity as { attachments: { content: unknown }[] }).attachments[0]!).content;
    expect(cardText(card)).toContain('SEV1 (critical): Ransomware on web-01');

    const channels = await s.store.db.selectFrom('incident_channels').select(['platform', 'channel_id', 'name']).where('incident_id', '=', inc!.id).execute();
    expect(channels).toEqual([{ platform: 'teams', channel_id: CHANNEL_ID, name }]);
    const ready = await s.store.db.selectFrom('timeline_entries').select('data').where('incident_id', '=', inc!.id).where('kind', '=', 'incident.channel.ready').executeTakeFirstOrThrow();
    expect(ready.data).toMatchObject({ platform: 'teams', invited: [RESPONDER], skipped: [{ userId: REPORTER, reason: 'Forbidden' }], cardTs: '1700000000001' });
  });
});

describe('Teams and Slack both on: each platform’s SEV1 room on its own queue', () => {
  let s: TestServer;
  const fixture = messageActivity('');
  const from = { ...fixture.from, aadObjectId: REPORTER };
  beforeAll(async () => {
    s = await startTeamsApp({
      TEAMS_INCIDENT_TEAM_ID: TEAM,
      SLACK_SIGNING_SECRET: 'test-signing-secret-8f742231b10e8888',
      SLACK_BOT_TOKEN: 'xoxb-0000000000-test-bot-token',
      SLACK_API_URL: 'https://slack.test/api/',
    });
    await grantRole(s.store.db, { identity: { platform: 'teams', workspace: fixture.channelData.tenant.id, userId: REPORTER }, tenantId: 'acme', role: 'analyst', actor: 'test' });
  });
  afterEach(() => {
    const pending = nock.pendingMocks().filter((m) => !m.includes('login.teams.test'));
    expect(pending).toEqual([]);
  });
  afterAll(() => stopTeamsApp(s));

  it('makes the Teams channel even when Slack refuses its own', async () => {
    const activity = messageActivity('incident new 1 Domain admin added at 03:12', { from });
    const answer = captureReplies(activity);
    // Slack says no, for good: its job is dead-lettered; Teams' job is another job on another queue.
    const slack = nock('https://slack.test').post('/api/conversations.create').reply(200, { ok: false, error: 'restricted_action' });
    const graph = nock(GRAPH)
      .post(`/v1.0/teams/${TEAM}/channels`)
      .reply(201, (_p, body) => ({ id: CHANNEL_ID, displayName: (body as { displayName: string }).displayName }))
      .post(`/v1.0/teams/${TEAM}/members/add`)
      .reply(200, { value: [{ userId: REPORTER, error: null }] })
      .patch(`/v1.0/teams/${TEAM}/channels/${encodeURIComponent(CHANNEL_ID)}`)
      .reply(204);
    const connector = nock('https://smba.trafficmanager.net').post('/teams/v3/conversations').reply(200, { id: `${CHANNEL_ID};messageid=1700000000002`, activityId: '1700000000002' });

    expect((await post(s, activity)).status).toBe(200);
    await eventually(() => expect(answer.calls).toHaveLength(1));
    const inc = await s.store.db.selectFrom('incidents').select('id').where('title', '=', 'Domain admin added at 03:12').executeTakeFirstOrThrow();
    await eventually(async () => {
      const ready = await s.store.db.selectFrom('timeline_entries').select('data').where('incident_id', '=', inc.id).where('kind', '=', 'incident.channel.ready').execute();
      expect(ready.map((r) => (r.data as { platform: string }).platform)).toEqual(['teams']);
    });
    expect(graph.isDone() && connector.isDone()).toBe(true);
    // Slack was asked too (and refused) on its own queue.
    await eventually(() => expect(slack.isDone()).toBe(true));
    const channels = await s.store.db.selectFrom('incident_channels').select('platform').where('incident_id', '=', inc.id).execute();
    expect(channels.map((c) => c.platform)).toEqual(['teams']);
  });
});
