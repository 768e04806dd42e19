import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIncident, recordIncidentChannel } from '../../../src/store/incidents.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { BOT_TOKEN, SLACK_API, eventually, fixture, grant, jobTotal, send, shown, startSlackApp, stopSlackApp, webApiExample, webApiParams } from './slack-test-kit.ts';

// The app runs real workers on the machine's PostgreSQL/Redis: allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

type Envelope = { team_id: string; event_id: string; event: Record<string, unknown> & { ts?: string } };

/** The app_mention envelope fixture with a fresh event_id (Slack's delivery id) and its text changed. */
function mention(eventId: string, text: string): string {
  const e = JSON.parse(fixture('slack/bolt_python_event_callback_app_mention.json')) as Envelope;
  e.event_id = eventId;
  e.event.text = text;
  return JSON.stringify(e);
}

/** The reaction_added example of the Events API envelope schema, in our workspace and incident channel. */
function pushpin(eventId: string, channel: string, user: string): string {
  const schema = JSON.parse(fixture('slack/events_api_common_event_wrapper_schema.json')) as { examples: Envelope[] };
  const e = schema.examples.find((x) => x.event.type === 'reaction_added')!;
  e.team_id = 'T111';
  e.event_id = eventId;
  e.event.reaction = 'pushpin';
  e.event.user = user;
  (e.event.item as Record<string, string>).channel = channel;
  return JSON.stringify(e);
}

const slackApi = () => nock(SLACK_API, { reqheaders: { authorization: `Bearer ${BOT_TOKEN}` } });

describe.each(QUEUE_BACKENDS.map((b) => b.name))('Slack Events API on the %s queue backend', (queue) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startSlackApp({ queue });
    // The mention fixture is written by W222; the pushpin comes from W111.
    await grant(s, 'W222', 'viewer');
    await grant(s, 'W111', 'analyst');
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
  afterAll(() => stopSlackApp(s));

  it('answers the url_verification challenge (signed like every request)', async () => {
    const body = fixture('slack/bolt_python_url_verification.json');
    const res = await send(s, body, 'json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
    expect((await send(s, body, 'json', { signature: `v0=${'a'.repeat(64)}` })).status).toBe(401);
  });

  it('delivers a rate-limited thread reply exactly once: 429 with Retry-After, then ok', async () => {
    const calls: Record<string, unknown>[] = [];
    const api = slackApi()
      .post('/api/chat.postMessage', (b: unknown) => (calls.push(webApiParams(b)), true))
      .reply(429, { ok: false, error: 'ratelimited' }, { 'Retry-After': '1' })
      .post('/api/chat.postMessage', (b: unknown) => (calls.push(webApiParams(b)), true))
      .reply(200, webApiExample('chat.postMessage'));

    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: `Beaconing from build-07 (${queue})`, severity: 2, createdBy: 'test' });
    const res = await send(s, mention(`EvRATE${queue}`, `<@W111> summary ${inc.id.slice(0, 8)}`), 'json');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');

    const replyJob = `slack-EvRATE${queue}-reply`;
    await eventually(async () => expect(await (await s.queues.queue('chat.outbox').getJob(replyJob))?.getState()).toBe('completed'));
    expect(api.isDone()).toBe(true);
    expect(calls).toHaveLength(2);
    // The same message both times, in the mention's thread.
    expect(calls[1]).toEqual(calls[0]);
    expect(calls[0]).toMatchObject({ channel: 'C111', thread_ts: '1595926230.009600', unfurl_links: 'false' });
    expect(shown(calls[0]!.text)).toContain(`Summary of incident ${inc.id.slice(0, 8)} (open)`);
    // The 429 answered the command worker's direct post; the outbox took the reply over and its
    // first (and only) try waited the Retry-After Slack asked for.
    const job = await s.queues.queue('chat.outbox').getJob(replyJob);
    expect(job!.attemptsMade).toBe(1);
    expect(job!.opts.delay).toBe(1000);
    expect(job!.returnvalue).toEqual({ platform: 'slack', channelId: 'C1H9RESGL', messageId: '1503435956.000247' });
  });

  it('does not run a retried event (X-Slack-Retry-Num) twice', async () => {
    const posted = slackApi().post('/api/chat.postEphemeral').reply(200, webApiExample('chat.postEphemeral'));
    const body = mention(`EvRETRY${queue}`, '<@W111> whoami');
    expect((await send(s, body, 'json')).status).toBe(200);
    await eventually(() => expect(posted.isDone()).toBe(true));
    const jobs = await jobTotal(s, 'chat.commands');
    for (const n of ['1', '2']) {
      const retry = await send(s, body, 'json', { headers: { 'x-slack-retry-num': n, 'x-slack-retry-reason': 'http_timeout' } });
      expect(retry.status).toBe(200);
    }
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
    const audited = await s.store.db.selectFrom('audit_log').select('action').where('action', '=', 'command.whoami').execute();
    expect(audited).toHaveLength(1);
  });

  it('gives the delivery back when it cannot be queued, so Slack\'s retry of it runs once', async () => {
    const posted = slackApi().post('/api/chat.postEphemeral').reply(200, webApiExample('chat.postEphemeral'));
    const body = mention(`EvDOWN${queue}`, '<@W111> whoami');
    const before = (await s.store.db.selectFrom('audit_log').select('action').where('action', '=', 'command.whoami').execute()).length;
    const add = vi.spyOn(s.queues, 'add').mockRejectedValueOnce(new Error('queue backend unreachable'));
    try {
      expect((await send(s, body, 'json')).status).toBeGreaterThanOrEqual(500);
    } finally {
      add.mockRestore();
    }
    const receipts = () => s.store.db.selectFrom('chat_deliveries' as never).select('delivery_id' as never).where('delivery_id' as never, '=', `EvDOWN${queue}` as never).execute();
    expect(await receipts()).toEqual([]);
    expect((await send(s, body, 'json', { headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_error' } })).status).toBe(200);
    expect(await receipts()).toHaveLength(1);
    await eventually(() => expect(posted.isDone()).toBe(true));
    expect((await send(s, body, 'json', { headers: { 'x-slack-retry-num': '2', 'x-slack-retry-reason': 'http_timeout' } })).status).toBe(200);
    await eventually(async () =>
      expect((await s.store.db.selectFrom('audit_log').select('action').where('action', '=', 'command.whoami').execute()).length).toBe(before + 1),
    );
  });

  it('copies a message marked with a pushpin in an incident channel to the timeline, and says so in its thread', async () => {
    const inc = await createIncident(s.store.db, { tenantId: 'acme', title: `Credential stuffing (${queue})`, severity: 1, createdBy: 'test' });
    const channel = queue === 'redis' ? 'C0G9QF9GR' : 'C0G9QF9GZ';
    await recordIncidentChannel(s.store.db, { tenantId: 'acme', incidentId: inc.id, platform: 'slack', channelId: channel, name: 'inc-credential-stuffing', actor: 'test' });
    // reactions.get as documented (api.slack.com/methods/reactions.get): the item with its message.
    const api = slackApi()
      .post('/api/reactions.get', (b: unknown) => {
        expect(webApiParams(b)).toMatchObject({ channel, timestamp: '1360782400.498405' });
        return true;
      })
      .reply(200, {
        ok: true,
        type: 'message',
        channel,
        message: { type: 'message', text: 'Attacker is cycling through 198.51.100.0/24', user: 'U0G9QF9C6', ts: '1360782400.498405', reactions: [{ name: 'pushpin', count: 1, users: ['W111'] }] },
      })
      .post('/api/chat.postMessage', (b: unknown) => {
        expect(webApiParams(b)).toMatchObject({ channel, thread_ts: '1360782400.498405' });
        return true;
      })
      .reply(200, webApiExample('chat.postMessage'));

    expect((await send(s, pushpin(`EvPIN${queue}`, channel, 'W111'), 'json')).status).toBe(200);
    await eventually(() => expect(api.isDone()).toBe(true));
    const entries = await s.store.db.selectFrom('timeline_entries').select(['kind', 'actor', 'text', 'data']).where('incident_id', '=', inc.id).orderBy('id').execute();
    expect(entries.map((e) => e.kind)).toEqual(['incident.created', 'incident.channel', 'chat.pinned']);
    expect(entries[2]).toMatchObject({ actor: 'slack:T111:W111', text: 'Attacker is cycling through 198.51.100.0/24', data: { author: 'U0G9QF9C6', messageId: '1360782400.498405', channelId: channel } });
  });

  it('ignores reactions other than the pushpin without queueing anything', async () => {
    const jobs = await jobTotal(s, 'chat.commands');
    const body = pushpin(`EvTHUMB${queue}`, 'C0G9QF9GZ', 'W111').replace('"pushpin"', '"thumbsup"');
    expect((await send(s, body, 'json')).status).toBe(200);
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
  });
});
