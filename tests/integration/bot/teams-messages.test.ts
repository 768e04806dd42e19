import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TEAMS_COMMANDS_QUEUE } from '../../../src/bot/teams/teams-command-worker.ts';
import { createIncident, getIncident } from '../../../src/store/incidents.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import {
  BOT_ACCESS_TOKEN,
  botClaims,
  captureReplies,
  cardText,
  CLIENT_ID,
  clickActivity,
  eventually,
  FORGER_KEY,
  grantSender,
  jobTotal,
  jwt,
  messageActivity,
  post,
  startTeamsApp,
  stopTeamsApp,
  type Activity,
} from './teams-test-kit.ts';

// The app runs real workers on the machine's PostgreSQL/Redis: allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

async function incidentsTitled(s: TestServer, title: string): Promise<number> {
  const rows = await s.store.db.selectFrom('incidents').select('id').where('tenant_id', '=', 'acme').where('title', '=', title).execute();
  return rows.length;
}

function attachmentCard(body: Record<string, unknown>): Record<string, unknown> {
  const attachments = body.attachments as { contentType: string; content: Record<string, unknown> }[];
  expect(attachments).toHaveLength(1);
  expect(attachments[0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
  return attachments[0]!.content;
}

describe('Teams: POST /api/messages', () => {
  let s: TestServer;
  // The two fixtures' senders: the messageBack one types, the invoke one clicks.
  const typist = messageActivity('');
  const clicker = clickActivity('incident.close', '');
  beforeAll(async () => {
    s = await startTeamsApp();
    await grantSender(s, typist, 'analyst');
    await grantSender(s, clicker, 'responder');
  });
  afterEach(() => {
    // The login interceptors persist for the whole file; everything else must have been called.
    const pending = nock.pendingMocks().filter((m) => !m.includes('login.teams.test'));
    expect(pending).toEqual([]);
  });
  afterAll(() => stopTeamsApp(s));

  it('runs a command typed after an @mention and posts the answer card to the conversation', async () => {
    const activity = messageActivity('<at>MyBot</at> incident new 2 Phishing wave on finance', {
      entities: [{ type: 'mention', text: '<at>MyBot</at>', mentioned: { id: typist.recipient.id, name: 'MyBot' } }],
    });
    const replies = captureReplies(activity);
    const res = await post(s, activity);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    await eventually(() => expect(replies.calls).toHaveLength(1));
    const call = replies.calls[0]!;
    // Into the conversation the message came from, as a reply to it, with the client-credentials token.
    expect(decodeURIComponent(call.path)).toBe(`/amer-client-ss.msg/v3/conversations/${activity.conversation.id}/activities`);
    expect(call.authorization).toBe(`Bearer ${BOT_ACCESS_TOKEN}`);
    expect(call.body).toMatchObject({ type: 'message', replyToId: activity.id });
    const card = attachmentCard(call.body);
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(cardText(card)).toContain('Phishing wave on finance');
    // The card's buttons are Universal Actions carrying only the incident id.
    const [inc] = await s.store.db.selectFrom('incidents').select(['id', 'created_by']).where('title', '=', 'Phishing wave on finance').execute();
    expect(inc?.created_by).toBe(`teams:${typist.channelData.tenant.id}:${typist.from.id}`);
    expect(card.actions).toEqual(expect.arrayContaining([{ type: 'Action.Execute', title: 'Timeline', verb: 'incident.timeline', data: { value: inc!.id } }]));
  });

  it('takes `reflex <command>` as typed, without a mention', async () => {
    const activity = messageActivity('reflex whoami');
    const replies = captureReplies(activity);
    expect((await post(s, activity)).status).toBe(200);
    await eventually(() => expect(replies.calls).toHaveLength(1));
    const text = cardText(attachmentCard(replies.calls[0]!.body));
    expect(text).toContain(`teams:${typist.channelData.tenant.id}:${typist.from.id}`);
    expect(text).toContain('analyst');
  });

  it('answers an Action.Execute click with the updated card, in the invoke response', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Malware beacon on lab-3', severity: 3, createdBy: 'test' });
    const res = await post(s, clickActivity('incident.close', inc.id));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { statusCode: number; type: string; value: Record<string, unknown> };
    expect(body.statusCode).toBe(200);
    expect(body.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(body.value).toMatchObject({ type: 'AdaptiveCard' });
    expect(cardText(body.value)).toContain(`Incident ${inc.id.slice(0, 8)} (Malware beacon on lab-3) closed by`);
    expect((await getIncident(s.store.db, 'acme', inc.id))?.status).toBe('closed');
    // Done as whoever clicked, and audited as a button press.
    const who = `teams:${clicker.channelData.tenant.id}:${clicker.from.id}`;
    const audit = await s.store.db.selectFrom('audit_log').select(['action', 'actor', 'delta']).where('target', 'in', [`incident:${inc.id}`, `chat:${who}`]).orderBy('seq', 'desc').limit(2).execute();
    expect(audit.reverse().map((a) => [a.action, a.actor])).toEqual([
      ['incident.close', who],
      ['command.incident.close', who],
    ]);
    expect(audit[1]!.delta).toMatchObject({ via: 'teams.button' });
  });

  it('answers a click by someone without the role with a message only they see, and changes nothing', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Port scan from 203.0.113.9', severity: 4, createdBy: 'test' });
    // The typist is an analyst: closing needs responder.
    const click = clickActivity('incident.close', inc.id, { from: typist.from, channelData: typist.channelData } as Partial<Activity>);
    const res = await post(s, click);
    const body = (await res.json()) as { statusCode: number; type: string; value: string };
    expect(body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.activity.message' });
    expect(body.value).toContain('incident close needs one of these roles: responder, admin. You have: analyst.');
    expect((await getIncident(s.store.db, 'acme', inc.id))?.status).toBe('open');
  });

  it('posts an answer meant for the clicker alone (a timeline) in the conversation and leaves the card as it was', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Suspicious login from 198.51.100.7', severity: 2, createdBy: 'test' });
    const click = clickActivity('incident.timeline', inc.id);
    const replies = captureReplies(click);
    const body = (await (await post(s, click)).json()) as { statusCode: number; type: string; value: string };
    expect(body).toEqual({ statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: 'Answered in the conversation.' });
    await eventually(() => expect(replies.calls).toHaveLength(1));
    expect(decodeURIComponent(replies.calls[0]!.path)).toBe(`/amer-client-ss.msg/v3/conversations/${click.conversation.id}/activities`);
    expect(replies.calls[0]!.body).toMatchObject({ replyToId: click.replyToId });
    expect(cardText(attachmentCard(replies.calls[0]!.body))).toContain('incident.created');
  });

  it('refuses an unknown user politely, naming the identity an admin must grant', async () => {
    const stranger = { id: '29:stranger-without-any-role', name: 'Eve' };
    const activity = messageActivity('incident new 1 Let me in', { from: stranger } as Partial<Activity>);
    const replies = captureReplies(activity);
    expect((await post(s, activity)).status).toBe(200);
    await eventually(() => expect(replies.calls).toHaveLength(1));
    const text = cardText(attachmentCard(replies.calls[0]!.body));
    expect(text).toContain('Sorry, you are not authorised to use SENTreflex here yet.');
    expect(text).toContain(`teams:${activity.channelData.tenant.id}:${stranger.id}`);
    expect(await incidentsTitled(s, 'Let me in')).toBe(0);
    const refused = await s.store.db.selectFrom('audit_log').select(['action', 'delta']).where('actor', '=', `teams:${activity.channelData.tenant.id}:${stranger.id}`).execute();
    expect(refused).toEqual([expect.objectContaining({ action: 'command.refused', delta: expect.objectContaining({ reason: 'unknown_user', via: 'teams.text' }) })]);
  });

  it('runs a redelivered message once', async () => {
    const activity = messageActivity('incident new 3 Duplicate delivery check');
    const replies = captureReplies(activity);
    const jobs = await jobTotal(s, TEAMS_COMMANDS_QUEUE);
    expect((await post(s, activity)).status).toBe(200);
    // Teams retries the same activity (same id, same conversation) when it missed our answer.
    expect((await post(s, activity)).status).toBe(200);
    expect(await jobTotal(s, TEAMS_COMMANDS_QUEUE)).toBe(jobs + 1);
    await eventually(() => expect(replies.calls).toHaveLength(1));
    expect(await incidentsTitled(s, 'Duplicate delivery check')).toBe(1);
  });

  it('runs a redelivered click once', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Clicked twice', severity: 3, createdBy: 'test' });
    const click = clickActivity('incident.close', inc.id);
    const first = (await (await post(s, click)).json()) as { type: string };
    const again = (await (await post(s, click)).json()) as { type: string; value: string };
    expect(first.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(again).toMatchObject({ type: 'application/vnd.microsoft.activity.message', value: 'That click was already handled.' });
    const ran = await s.store.db.selectFrom('audit_log').select('seq').where('action', '=', 'incident.close').where('target', '=', `incident:${inc.id}`).execute();
    expect(ran).toHaveLength(1);
  });

  it('refuses missing, unsigned, forged, expired, foreign and misdirected tokens with 401 and runs nothing', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: 'Must stay open', severity: 2, createdBy: 'test' });
    const typed = messageActivity('incident new 1 Forged request');
    const click = clickActivity('incident.close', inc.id);
    const now = Math.floor(Date.now() / 1000);
    const jobs = await jobTotal(s, TEAMS_COMMANDS_QUEUE);
    const audit = (await s.store.db.selectFrom('audit_log').select('seq').execute()).length;
    const cases: [string, string | null, Activity][] = [
      ['no Authorization header', null, typed],
      ['alg none', jwt(botClaims(typed), { alg: 'none' }), typed],
      ['signed by a key Microsoft never published', jwt(botClaims(typed), { key: FORGER_KEY }), typed],
      ['expired an hour ago', jwt(botClaims(typed, { nbf: now - 7200, exp: now - 3600 })), typed],
      ['for another bot', jwt(botClaims(typed, { aud: '11111111-2222-4333-8444-555555555555' })), typed],
      ['from another issuer', jwt(botClaims(typed, { iss: 'https://sts.windows.net/evil/' })), typed],
      ['issued for another service URL', jwt(botClaims(typed, { serviceurl: 'https://evil.example/' })), typed],
      ['a forged click', jwt(botClaims(click), { key: FORGER_KEY }), click],
      ['a click with no token', null, click],
    ];
    for (const [what, token, activity] of cases) {
      const res = await post(s, activity, token);
      expect(res.status, what).toBe(401);
      expect(await res.json(), what).toMatchObject({ error: { code: 'auth.unauthenticated' } });
    }
    // A well-signed token does not make a different serviceUrl in the body acceptable.
    const moved = { ...typed, serviceUrl: 'https://evil.example/' };
    expect((await post(s, moved, jwt(botClaims(typed)))).status).toBe(401);

    expect(await jobTotal(s, TEAMS_COMMANDS_QUEUE)).toBe(jobs);
    expect((await s.store.db.selectFrom('audit_log').select('seq').execute()).length).toBe(audit);
    expect(await incidentsTitled(s, 'Forged request')).toBe(0);
    expect((await getIncident(s.store.db, 'acme', inc.id))?.status).toBe('open');
    // The control: the same activity with a good token is accepted.
    const replies = captureReplies(typed);
    expect((await post(s, typed, jwt(botClaims(typed, { appid: CLIENT_ID })))).status).toBe(200);
    await eventually(() => expect(replies.calls).toHaveLength(1));
  });

  it('retries a message the connector throttled, after the Retry-After it asked for', async () => {
    const activity = messageActivity('incident new 4 Throttled answer');
    const throttled = captureReplies(activity, 1, 429, { 'Retry-After': '2' });
    const delivered = captureReplies(activity, 1);
    expect((await post(s, activity)).status).toBe(200);
    await eventually(() => expect(delivered.calls).toHaveLength(1));
    expect(throttled.calls).toHaveLength(1);
    // The same message, once more, no sooner than Teams asked (our own backoff would have waited 1 s).
    expect(delivered.calls[0]!.body).toEqual(throttled.calls[0]!.body);
    expect(delivered.calls[0]!.at - throttled.calls[0]!.at).toBeGreaterThanOrEqual(1900);
  });
});
