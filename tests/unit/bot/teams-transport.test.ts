import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/app/logger.ts';
import { TeamsTokens } from '../../../src/bot/teams/teams-tokens.ts';
import { TeamsTransport } from '../../../src/bot/teams/teams-transport.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const SERVICE = 'https://smba.trafficmanager.net';
const LOGIN = 'https://login.teams.test';
const SCOPE = 'https://api.botframework.com/.default';
const CHANNEL = '19:a1b2c3d4e5f60718293a4b5c6d7e8f90@thread.tacv2';
const CHAT = '19:meeting_abc@thread.v2';

function transport(): TeamsTransport {
  const tokens = new TeamsTokens({ tokenUrl: `${LOGIN}/t/oauth2/v2.0/token`, clientId: 'app', clientSecret: 'secret' });
  return new TeamsTransport({ tokens, botScope: SCOPE, serviceUrl: `${SERVICE}/teams/`, clientId: 'app', tenantId: 'tenant-1', logger: createLogger('silent') });
}

/** A client-credentials answer per token asked for; `times` tokens are expected. */
function tokens(times: number, prefix = 'tok') {
  let n = 0;
  return nock(LOGIN)
    .post('/t/oauth2/v2.0/token', (body: Record<string, string>) => body.grant_type === 'client_credentials' && body.scope === SCOPE && body.client_secret === 'secret')
    .times(times)
    .reply(200, () => ({ token_type: 'Bearer', expires_in: 3599, access_token: `${prefix}-${++n}` }));
}

describe('TeamsTransport', () => {
  useStrictNock();

  it('replies in a channel thread in the thread’s conversation, and in a chat with replyToId', async () => {
    tokens(1);
    const seen: { path: string; body: Record<string, unknown> }[] = [];
    nock(SERVICE)
      .post(() => true)
      .times(2)
      .reply(200, function (path, body) {
        seen.push({ path: decodeURIComponent(path), body: body as Record<string, unknown> });
        return { id: String(seen.length) };
      });
    const t = transport();
    const inThread = await t.threadReply({ platform: 'teams', channelId: CHANNEL, messageId: '1700000000001' }, { text: 'Containment started' });
    const inChat = await t.threadReply({ platform: 'teams', channelId: CHAT, messageId: '1700000000009' }, { text: 'Noted' });
    expect(seen[0]!.path).toBe(`/teams/v3/conversations/${CHANNEL};messageid=1700000000001/activities`);
    expect(seen[0]!.body.replyToId).toBeUndefined();
    expect(seen[1]!.path).toBe(`/teams/v3/conversations/${CHAT}/activities`);
    expect(seen[1]!.body.replyToId).toBe('1700000000009');
    expect(inThread).toEqual({ platform: 'teams', channelId: CHANNEL, messageId: '1' });
    expect(inChat).toEqual({ platform: 'teams', channelId: CHAT, messageId: '2' });
  });

  it('updates a message in place with PUT and opens a 1:1 chat for a direct message', async () => {
    tokens(1);
    const put = nock(SERVICE)
      .put(`/teams/v3/conversations/${CHAT}/activities/1700000000009`, (b: { attachments: { contentType: string }[] }) => b.attachments[0]!.contentType === 'application/vnd.microsoft.card.adaptive')
      .reply(200, { id: '1700000000009' });
    const create = nock(SERVICE)
      .post('/teams/v3/conversations', (b: { members: { id: string }[]; tenantId: string }) => b.members[0]!.id === '7f8e9d0c-1b2a-4354-6758-9a0b1c2d3e4f' && b.tenantId === 'tenant-1')
      .reply(200, { id: 'a:1on1', serviceUrl: `${SERVICE}/emea/` });
    const dm = nock(SERVICE).post('/emea/v3/conversations/a:1on1/activities').reply(200, { id: '5' });
    const t = transport();
    await t.update({ platform: 'teams', channelId: CHAT, messageId: '1700000000009' }, { text: 'Approved by Ann' });
    const ref = await t.directMessage({ platform: 'teams', workspace: 'tenant-1', userId: '7f8e9d0c-1b2a-4354-6758-9a0b1c2d3e4f' }, { text: 'Your approval is needed' });
    expect(ref).toEqual({ platform: 'teams', channelId: 'a:1on1', messageId: '5' });
    expect(put.isDone() && create.isDone() && dm.isDone()).toBe(true);
  });

  it('maps connector failures to what the outbox should do, and renews a token Teams refused', async () => {
    tokens(2);
    const t = transport();
    nock(SERVICE).post(`/teams/v3/conversations/${CHAT}/activities`).reply(429, { error: { code: 'Throttled' } }, { 'Retry-After': '7' });
    const throttled = await failure(t.post({ channelId: CHAT }, { text: 'x' }));
    expect(throttled).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 7000 });

    nock(SERVICE).post(`/teams/v3/conversations/${CHAT}/activities`).reply(403, { error: { code: 'BotNotInConversationRoster', message: 'The bot is not part of the conversation roster.' } });
    const refused = await failure(t.post({ channelId: CHAT }, { text: 'x' }));
    expect(refused).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(refused.message).toContain('BotNotInConversationRoster');

    let auth: string | undefined;
    nock(SERVICE).post(`/teams/v3/conversations/${CHAT}/activities`).reply(401, {});
    nock(SERVICE)
      .post(`/teams/v3/conversations/${CHAT}/activities`)
      .reply(200, function () {
        auth = this.req.headers.authorization as string;
        return { id: '9' };
      });
    expect(await failure(t.post({ channelId: CHAT }, { text: 'x' }))).toMatchObject({ code: 'upstream.unavailable', retryable: true });
    await t.post({ channelId: CHAT }, { text: 'x' });
    // The refused token was dropped: the retry asked Entra ID for a new one.
    expect(auth).toBe('Bearer tok-2');
    // Nothing in what leaves the transport holds a token or the secret.
    for (const e of [throttled, refused]) expect(JSON.stringify({ m: e.message, d: e.details, c: e.cause })).not.toMatch(/tok-|secret/);
  });
});
