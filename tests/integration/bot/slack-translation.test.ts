import { createHmac } from 'node:crypto';
import { isValidSlackRequest, webApi } from '@slack/bolt';
import { readFileSync } from 'node:fs';
import nock from 'nock';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderBlockKit } from '../../../src/bot/slack/block-kit.ts';
import { verifySlackSignature } from '../../../src/bot/slack/signature.ts';
import { SLACK_EVENTS_PATH } from '../../../src/bot/slack/slack-events-route.ts';
import { toSlackCommandJob } from '../../../src/bot/slack/slack-inbound.ts';
import { outboxBackoff } from '../../../src/bot/slack/slack-outbox.ts';
import { parseSlackRequest } from '../../../src/bot/slack/slack-payloads.ts';
import { slackToPlain, stripLeadingMention } from '../../../src/bot/slack/slack-text.ts';
import { SlackTransport, slackError } from '../../../src/bot/slack/slack-transport.ts';
import { ReflexError } from '../../../src/errors.ts';
import { BOT_TOKEN, SLACK_API, fixture, webApiExample } from './slack-test-kit.ts';

/** Slack's translation layer with no server: signing, parsing, rendering, Web API errors. */
const vector = JSON.parse(fixture('slack/slack_request_signing_v0_test_vector.json')) as {
  signing_secret: string;
  x_slack_request_timestamp: string;
  raw_body: string;
  expected_x_slack_signature: string;
};
const at = Number(vector.x_slack_request_timestamp) * 1000;

describe('request signing v0 (Slack\'s published test vector)', () => {
  const check = (over: Partial<Parameters<typeof verifySlackSignature>[0]>) =>
    verifySlackSignature({
      signingSecret: vector.signing_secret,
      rawBody: Buffer.from(vector.raw_body),
      timestamp: vector.x_slack_request_timestamp,
      signature: vector.expected_x_slack_signature,
      nowMs: at,
      ...over,
    });

  it('accepts the vector, and so does bolt-js', () => {
    expect(check({})).toEqual({ ok: true });
    expect(
      isValidSlackRequest({
        signingSecret: vector.signing_secret,
        body: vector.raw_body,
        headers: { 'x-slack-signature': vector.expected_x_slack_signature, 'x-slack-request-timestamp': Number(vector.x_slack_request_timestamp) },
        nowMilliseconds: at,
      }),
    ).toBe(true);
  });

  it('holds to the 300-second window either way', () => {
    expect(check({ nowMs: at + 300_000 })).toEqual({ ok: true });
    expect(check({ nowMs: at + 301_000 })).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(check({ nowMs: at - 301_000 })).toEqual({ ok: false, reason: 'stale_timestamp' });
  });

  it('refuses another secret, another body byte, another timestamp, or missing headers', () => {
    expect(check({ signingSecret: `${vector.signing_secret}x` })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(check({ rawBody: Buffer.from(vector.raw_body.replace('roadrunner', 'roadrunnel')) })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(check({ timestamp: String(Number(vector.x_slack_request_timestamp) + 1) })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: 'missing_headers' });
    expect(check({ timestamp: '' })).toEqual({ ok: false, reason: 'missing_headers' });
    expect(check({ signature: vector.expected_x_slack_signature.toUpperCase() })).toEqual({ ok: false, reason: 'missing_headers' });
  });

  it('checks the bytes as sent: a body that is not valid UTF-8 is compared byte for byte', () => {
    const raw = Buffer.concat([Buffer.from('text='), Buffer.from([0xff, 0xfe])]);
    const sig = `v0=${createHmac('sha256', 's3cr3t-s3cr3t-s3cr3t').update(Buffer.concat([Buffer.from(`v0:${vector.x_slack_request_timestamp}:`), raw])).digest('hex')}`;
    expect(verifySlackSignature({ signingSecret: 's3cr3t-s3cr3t-s3cr3t', rawBody: raw, timestamp: vector.x_slack_request_timestamp, signature: sig, nowMs: at })).toEqual({ ok: true });
  });
});

describe('parsing what Slack sends', () => {
  const form = (s: string) => parseSlackRequest(Buffer.from(s), 'application/x-www-form-urlencoded');
  const json = (s: string) => parseSlackRequest(Buffer.from(s), 'application/json; charset=utf-8');
  const now = new Date('2026-11-21T10:00:00Z');

  it('turns the slash-command fixture into an invocation answered through its response_url', () => {
    const req = form(fixture('slack/bolt_python_slash_command_body.txt'));
    expect(req.kind).toBe('command');
    const job = toSlackCommandJob(req, now, () => false)!;
    expect(job.inbound).toMatchObject({
      platform: 'slack',
      user: { platform: 'slack', workspace: 'T111', userId: 'W111', displayName: 'primary-owner' },
      channel: { id: 'C111', name: 'random' },
      text: 'Hi',
      receivedAt: '2026-11-21T10:00:00.000Z',
    });
    expect(job.reply).toEqual({ via: 'response_url', responseUrl: 'https://hooks.slack.com/commands/T111/111/xxxxx', channelId: 'C111', userId: 'W111' });
    expect(job.deliveryId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('turns the block_actions fixture (payload=<json>) into a button invocation', () => {
    const body = `payload=${encodeURIComponent(fixture('slack/bolt_python_block_actions_payload.json'))}`;
    const job = toSlackCommandJob(form(body), now, () => false)!;
    expect(job.inbound.action).toEqual({
      actionId: 'a',
      value: 'click_me_123',
      messageRef: { platform: 'slack', channelId: 'C111', messageId: '111.222', responseUrl: 'https://hooks.slack.com/actions/T111/111/random-value' },
    });
    expect(job.inbound.user).toMatchObject({ workspace: 'T111', userId: 'W111' });
  });

  it('turns the app_mention fixture into text without the mention, answered in its thread', () => {
    const job = toSlackCommandJob(json(fixture('slack/bolt_python_event_callback_app_mention.json')), now, () => false)!;
    expect(job.deliveryId).toBe('Ev111');
    expect(job.inbound).toMatchObject({ text: 'Hi there!', user: { workspace: 'T111', userId: 'W222' }, channel: { id: 'C111' } });
    expect(job.reply).toEqual({ via: 'thread', channelId: 'C111', threadTs: '1595926230.009600', userId: 'W222' });
  });

  it('answers url_verification and ignores what is not for us (view_submission, other events)', () => {
    expect(form('ssl_check=1&token=verification_token')).toEqual({ kind: 'ignored', what: 'ssl_check' });
    expect(json(fixture('slack/bolt_python_url_verification.json'))).toEqual({ kind: 'url_verification', challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
    expect(form(`payload=${encodeURIComponent(fixture('slack/bolt_python_view_submission_payload.json'))}`)).toEqual({ kind: 'ignored', what: 'interaction view_submission' });
    const schema = JSON.parse(fixture('slack/events_api_common_event_wrapper_schema.json')) as { examples: unknown[] };
    expect(json(JSON.stringify(schema.examples[0]))).toEqual({ kind: 'ignored', what: 'event resources_added' });
    const thumbs = json(JSON.stringify(schema.examples[1]));
    expect(thumbs.kind).toBe('reaction_added');
    expect(toSlackCommandJob(thumbs, now, (n) => n === 'pushpin')).toBeUndefined();
  });

  it('refuses malformed bodies with a message naming the problem', () => {
    expect(() => json('{not json')).toThrow(/not JSON/);
    expect(() => form('payload=%7Bnope')).toThrow(/not JSON/);
    expect(() => form('command=%2Freflex&text=hi')).toThrow(/team_id/);
    expect(() => form(new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(fixture('slack/bolt_python_slash_command_body.txt'))), response_url: 'http://hooks.slack.com/x' }).toString())).toThrow(/response_url/);
    expect(() => parseSlackRequest(Buffer.from('x'), 'text/plain')).toThrow(ReflexError);
  });

  it('turns Slack markup back into what was typed', () => {
    expect(slackToPlain('enrich <http://evil.example/x|evil.example/x> &amp; <mailto:a@b.example|a@b.example> <@U123|ann> <#C1|general> <!here> &lt;3')).toBe(
      'enrich http://evil.example/x & a@b.example @U123 #general @here <3',
    );
    expect(stripLeadingMention('<@W111> incident list')).toBe('incident list');
    expect(stripLeadingMention('<@W111|bot>: help')).toBe('help');
  });
});

describe('Block Kit rendering', () => {
  it('renders title, text, fields, buttons carrying only ids, and context', () => {
    const { text, blocks } = renderBlockKit({
      title: 'Incident 1a2b3c4d: <!channel> Ransomware',
      text: 'SEV1 & rising <@U1>',
      fields: [{ label: 'Severity', value: 'SEV1' }],
      buttons: [
        { actionId: 'approval.approve', label: 'Approve', value: 'a1b2c3d4-0000-4000-8000-000000000001', style: 'primary' },
        { actionId: 'approval.deny', label: 'Deny', value: 'a1b2c3d4-0000-4000-8000-000000000001', style: 'danger' },
      ],
      context: ['by slack:T1:U1'],
    });
    expect(blocks).toEqual([
      { type: 'header', text: { type: 'plain_text', text: 'Incident 1a2b3c4d: <!channel> Ransomware', emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: 'SEV1 &amp; rising &lt;@U1&gt;' } },
      { type: 'section', fields: [{ type: 'mrkdwn', text: '*Severity*\nSEV1' }] },
      {
        type: 'actions',
        elements: [
          { type: 'button', action_id: 'approval.approve', text: { type: 'plain_text', text: 'Approve', emoji: true }, value: 'a1b2c3d4-0000-4000-8000-000000000001', style: 'primary' },
          { type: 'button', action_id: 'approval.deny', text: { type: 'plain_text', text: 'Deny', emoji: true }, value: 'a1b2c3d4-0000-4000-8000-000000000001', style: 'danger' },
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: 'by slack:T1:U1' }] },
    ]);
    // The notification text is escaped too: no <!channel> ping from an incident title.
    expect(text).toBe('Incident 1a2b3c4d: &lt;!channel&gt; Ransomware: SEV1 &amp; rising &lt;@U1&gt;');
  });

  it('keeps within Block Kit limits: long text split, ten fields a section, unique action ids per block', () => {
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'x'.repeat(30)}`).join('\n');
    const { blocks } = renderBlockKit({
      text: lines,
      fields: Array.from({ length: 12 }, (_, i) => ({ label: `f${i}`, value: 'v' })),
      buttons: [1, 2, 3].map((i) => ({ actionId: 'incident.show', label: `Show ${i}`, value: `id${i}` })),
    });
    const sections = blocks.filter((b) => b.type === 'section') as { text?: { text: string }; fields?: unknown[] }[];
    expect(sections.filter((b) => b.text).every((b) => b.text!.text.length <= 3000)).toBe(true);
    expect(sections.filter((b) => b.text).map((b) => b.text!.text).join('\n')).toBe(lines);
    expect(sections.filter((b) => b.fields).map((b) => b.fields!.length)).toEqual([10, 2]);
    expect(blocks.filter((b) => b.type === 'actions')).toHaveLength(3);
  });
});

describe('Slack Web API failures as retryable errors', () => {
  beforeAll(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());
  const slack = () => new SlackTransport({ botToken: BOT_TOKEN, apiUrl: `${SLACK_API}/api/` });

  it('a 429 becomes rate_limited with the Retry-After, which the outbox backoff waits exactly', async () => {
    nock(SLACK_API).post('/api/chat.postMessage').reply(429, { ok: false, error: 'ratelimited' }, { 'Retry-After': '7' });
    const err = await slack().post({ channelId: 'C1' }, { text: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReflexError);
    expect(err).toMatchObject({ code: 'upstream.rate_limited', retryable: true, retryAfterMs: 7000 });
    expect(outboxBackoff(1, 'retry-after', err as Error)).toBe(7000);
    expect(outboxBackoff(1, 'retry-after', new Error('other'))).toBe(1000);
    expect(outboxBackoff(4, 'retry-after', new Error('other'))).toBe(8000);
    expect(outboxBackoff(30, 'retry-after', new Error('other'))).toBe(600_000);
  });

  it('a platform error that will not change (channel_not_found) is not retried; a transient one is', async () => {
    nock(SLACK_API).post('/api/conversations.archive').reply(200, webApiExample('conversations.archive', 'default'));
    nock(SLACK_API).post('/api/chat.update').reply(200, { ok: false, error: 'service_unavailable' });
    const client = new webApi.WebClient(BOT_TOKEN, { slackApiUrl: `${SLACK_API}/api/`, retryConfig: { retries: 0 } });
    const archive = await client.conversations.archive({ channel: 'C1' }).catch((e: unknown) => e);
    expect(slackError('conversations.archive', archive)).toMatchObject({ code: 'upstream.rejected', retryable: false, safeMessage: 'Slack refused conversations.archive (channel_not_found).' });
    const update = await slack().update({ platform: 'slack', channelId: 'C1', messageId: '1.2' }, { text: 'x' }).catch((e: unknown) => e);
    expect(update).toMatchObject({ code: 'upstream.unavailable', retryable: true });
  });

  it('creates a channel, invites, sets the topic and posts as the Web API examples answer', async () => {
    const created = nock(SLACK_API).post('/api/conversations.create').reply(200, webApiExample('conversations.create'));
    const invited = nock(SLACK_API).post('/api/conversations.invite').reply(200, webApiExample('conversations.invite'));
    const topic = nock(SLACK_API).post('/api/conversations.setTopic').reply(200, webApiExample('conversations.setTopic'));
    const posted = nock(SLACK_API).post('/api/chat.postMessage').reply(200, webApiExample('chat.postMessage'));
    const t = slack();
    expect(await t.createChannel('inc-1a2b3c4d-ransomware')).toEqual({ channelId: 'C0EAQDV4Z', name: 'endeavor' });
    await t.invite('C0EAQDV4Z', [{ platform: 'slack', workspace: 'T1', userId: 'W012A3CDE' }]);
    await t.setTopic('C0EAQDV4Z', 'SEV1 ransomware on web-01');
    expect(await t.post({ channelId: 'C0EAQDV4Z' }, { text: 'War room open' })).toEqual({ platform: 'slack', channelId: 'C1H9RESGL', messageId: '1503435956.000247' });
    expect([created, invited, topic, posted].every((s) => s.isDone())).toBe(true);
  });
});

describe('manifests/slack-app.yaml', () => {
  const manifest = parseYaml(readFileSync('manifests/slack-app.yaml', 'utf8')) as {
    features: { slash_commands: { command: string; url: string; should_escape: boolean }[] };
    oauth_config: { scopes: { bot: string[] } };
    settings: { event_subscriptions: { request_url: string; bot_events: string[] }; interactivity: { is_enabled: boolean; request_url: string } };
  };

  it('points the command, interactivity and events at the one route the app serves', () => {
    const urls = [manifest.features.slash_commands[0]!.url, manifest.settings.event_subscriptions.request_url, manifest.settings.interactivity.request_url];
    expect(urls.map((u) => new URL(u).pathname)).toEqual([SLACK_EVENTS_PATH, SLACK_EVENTS_PATH, SLACK_EVENTS_PATH]);
    expect(manifest.features.slash_commands[0]).toMatchObject({ command: '/reflex', should_escape: false });
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
  });

  it('subscribes to the events the bot handles, with the scopes they need', () => {
    expect(manifest.settings.event_subscriptions.bot_events.sort()).toEqual(['app_mention', 'reaction_added']);
    expect(manifest.oauth_config.scopes.bot).toEqual(
      expect.arrayContaining(['app_mentions:read', 'reactions:read', 'commands', 'chat:write', 'channels:manage', 'groups:write', 'users:read', 'users:read.email', 'pins:write', 'channels:history', 'im:write']),
    );
  });
});
