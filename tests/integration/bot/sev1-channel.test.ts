import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCIDENT_CHANNEL_QUEUE } from '../../../src/bot/incident-channels/incident-channel-job.ts';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { grantRole } from '../../../src/store/principals.ts';
import type { Incident } from '../../../src/store/schema.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';
import type { TestServer } from '../../helpers/test-server.ts';
import { captureResponses, eventually, grant, send, shown, slashBody, SLACK_API, startSlackApp, stopSlackApp, webApiExample, webApiParams } from './slack-test-kit.ts';

// The app runs real workers on the machine's PostgreSQL/Redis: allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const RESPONSE_PATH = '/commands/T111/111/xxxxx';
const CHANNEL = webApiExample('conversations.create') as { channel: { id: string } } & Record<string, unknown>;
const CHANNEL_ID = CHANNEL.channel.id;
const POSTED = webApiExample('chat.postMessage') as { ts: string } & Record<string, unknown>;

type Params = Record<string, unknown>;

/** conversations.create answering the fixture's channel under the name that was asked for. */
function createAnswers(calls: Params[]) {
  return (_uri: string, body: unknown) => {
    const p = webApiParams(body);
    calls.push(p);
    return { ...CHANNEL, channel: { ...CHANNEL.channel, name: p.name } };
  };
}

/** chat.postMessage answering the fixture, in the channel it was sent to. */
function postAnswers(calls: Params[]) {
  return (_uri: string, body: unknown) => {
    const p = webApiParams(body);
    calls.push(p);
    return { ...POSTED, channel: p.channel };
  };
}

function record(calls: Params[], answer: Params | ((p: Params) => Params)) {
  return (_uri: string, body: unknown) => {
    const p = webApiParams(body);
    calls.push(p);
    return typeof answer === 'function' ? answer(p) : answer;
  };
}

function expectedName(inc: Incident, slug: string): string {
  return `inc-${inc.created_at.toISOString().slice(0, 10).replace(/-/g, '')}-${inc.id.slice(0, 8)}-${slug}`;
}

async function timelineKinds(s: TestServer, incidentId: string): Promise<string[]> {
  const rows = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', incidentId).orderBy('id').execute();
  return rows.map((r) => r.kind);
}

describe('SEV1 incident channels', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startSlackApp();
    await grant(s, 'W111', 'responder');
    await grant(s, 'W222', 'approver');
    await grant(s, 'W333', 'viewer');
    // A responder of acme known only in a workspace acme does not own: its id means nothing to acme's bot.
    await grantRole(s.store.db, { identity: { platform: 'slack', workspace: 'T999', userId: 'W444' }, tenantId: 'acme', role: 'responder', actor: 'test' });
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
  afterAll(() => stopSlackApp(s));

  it('a SEV1 Wazuh alert gets a channel exactly once: created, responders invited, topic set, card posted and pinned', async () => {
    const create: Params[] = [];
    const invite: Params[] = [];
    const topic: Params[] = [];
    const post: Params[] = [];
    const pin: Params[] = [];
    nock(SLACK_API).post('/api/conversations.create').once().reply(200, createAnswers(create));
    nock(SLACK_API).post('/api/conversations.invite').once().reply(200, record(invite, webApiExample('conversations.invite')));
    nock(SLACK_API).post('/api/conversations.setTopic').once().reply(200, record(topic, webApiExample('conversations.setTopic')));
    nock(SLACK_API).post('/api/chat.postMessage').once().reply(200, postAnswers(post));
    // pins.add has no example in the fixtures; its success answer is `{"ok": true}` (api.slack.com/methods/pins.add).
    nock(SLACK_API).post('/api/pins.add').once().reply(200, record(pin, { ok: true }));

    const token = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId: 'acme', source: '*', token, actor: 'test' });
    const alert = fixtureJson<{ rule: { level: number } }>('wazuh/docs_alert_5716_sshd_auth_failed.json');
    alert.rule.level = 13; // Wazuh 12-15 is critical: SEV1
    const res = await fetch(`${s.url}/hooks/wazuh`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(alert) });
    expect(res.status).toBe(202);

    let inc!: Incident;
    await eventually(async () => {
      inc = await s.store.db.selectFrom('incidents').selectAll().where('tenant_id', '=', 'acme').where('created_by', '=', 'pipeline').executeTakeFirstOrThrow();
      expect(await timelineKinds(s, inc.id)).toContain('incident.channel.ready');
    });
    expect(inc.severity).toBe(1);

    const name = expectedName(inc, 'sshd-authentication-failed');
    expect(create).toHaveLength(1);
    expect(create[0]).toMatchObject({ is_private: 'false' });
    expect(String(create[0]!.name).startsWith(name)).toBe(true);
    expect(String(create[0]!.name)).toMatch(/^[a-z0-9-]{1,80}$/);
    // Responder and approver of acme in acme's workspace; not the viewer, not the other workspace's user.
    expect(invite).toEqual([{ channel: CHANNEL_ID, users: 'W111,W222' }]);
    expect(topic[0]).toMatchObject({ channel: CHANNEL_ID });
    expect(String(topic[0]!.topic)).toContain(`SEV1 (critical) · ${inc.title} · incident ${inc.id.slice(0, 8)}`);

    expect(post).toHaveLength(1);
    expect(post[0]!.channel).toBe(CHANNEL_ID);
    const blocks = post[0]!.blocks as { type: string; text?: { text: string }; fields?: { text: string }[]; elements?: { action_id: string; value: string }[] }[];
    const fields = blocks.flatMap((b) => b.fields ?? []).map((f) => shown(f.text));
    expect(fields).toEqual(
      expect.arrayContaining([
        `*What*\n${inc.title}`,
        expect.stringMatching(/^\*Where\*\nCentos/),
        '*Severity*\nSEV1 (critical)',
        expect.stringMatching(/^\*Observables\*\nip 61\.177\.172\.13: /),
      ]),
    );
    const buttons = blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []);
    expect(buttons.map((b) => [b.action_id, b.value])).toEqual([
      ['incident.run_playbook', inc.id],
      ['incident.escalate', inc.id],
      ['incident.close', inc.id],
    ]);
    expect(pin).toEqual([{ channel: CHANNEL_ID, timestamp: POSTED.ts }]);

    const channel = await s.store.db.selectFrom('incident_channels').selectAll().where('incident_id', '=', inc.id).execute();
    expect(channel).toHaveLength(1);
    expect(channel[0]).toMatchObject({ platform: 'slack', channel_id: CHANNEL_ID, name: create[0]!.name, tenant_id: 'acme' });
    // Other stages (enrich, trigger) may write to the timeline meanwhile; the incident's own entries are these, once each.
    expect((await timelineKinds(s, inc.id)).filter((k) => k.startsWith('incident.'))).toEqual(['incident.created', 'incident.channel', 'incident.channel.card', 'incident.channel.ready']);
    const audit = await s.store.db.selectFrom('audit_log').select('action').where('target', '=', `incident:${inc.id}`).orderBy('seq').execute();
    expect(audit.map((a) => a.action).filter((a) => a.startsWith('incident.'))).toEqual(['incident.create', 'incident.channel', 'incident.channel.card', 'incident.channel.ready']);

    const api = await fetch(`${s.url}/api/v1/incidents/${inc.id}`, { headers: { authorization: `Bearer ${s.apiToken}` } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { channels: { platform: string; channel_id: string; name: string }[] };
    expect(body.channels).toEqual([expect.objectContaining({ platform: 'slack', channel_id: CHANNEL_ID, name: create[0]!.name })]);

    // A retry of the job (here: run once more under another id) finds the channel ready and calls Slack for nothing
    // (no interceptor is left: any Web API call would fail the job).
    const again = await s.queues.add(INCIDENT_CHANNEL_QUEUE, 'ensure', { tenantId: 'acme', incidentId: inc.id }, { jobId: `channel-${inc.id}-again`, attempts: 1 });
    await eventually(async () => expect(await again.getState()).toBe('completed'));
    const done = await s.queues.queue(INCIDENT_CHANNEL_QUEUE).getJob(again.id!);
    expect(done?.returnvalue).toEqual([{ platform: 'slack', status: 'already_ready', channelId: CHANNEL_ID }]);
    // And the enqueue itself is idempotent: the same incident's job id is one job.
    expect(await s.queues.queue(INCIDENT_CHANNEL_QUEUE).getJob(`channel-${inc.id}`)).toBeTruthy();
    expect(await s.store.db.selectFrom('incident_channels').selectAll().where('incident_id', '=', inc.id).execute()).toHaveLength(1);
  });

  it('`incident new 1` from Slack: adopts the channel of a name_taken, and a failed step retries without a second channel or card', async () => {
    const create: Params[] = [];
    const list: Params[] = [];
    const invite: Params[] = [];
    const topic: Params[] = [];
    const post: Params[] = [];
    const pin: Params[] = [];
    // An earlier attempt created the channel and died before recording it: Slack says name_taken.
    nock(SLACK_API).post('/api/conversations.create').once().reply(200, record(create, webApiExample('conversations.create', 'default')));
    // conversations.list has no fixture; this is its documented shape (api.slack.com/methods/conversations.list).
    nock(SLACK_API)
      .post('/api/conversations.list')
      .once()
      .reply(200, record(list, () => ({ ok: true, channels: [{ id: 'C0OTHER01', name: 'general', is_archived: false }, { id: 'C0TAKEN01', name: create[0]!.name, is_archived: false }], response_metadata: { next_cursor: '' } })));
    // The reporter (W111) is in already: a list with one member in fails whole, so the rest are invited one by one.
    let w222In = false;
    nock(SLACK_API)
      .post('/api/conversations.invite')
      .times(6)
      .reply(
        200,
        record(invite, (p) => {
          if (p.users === 'W222' && !w222In) {
            w222In = true;
            return webApiExample('conversations.invite');
          }
          return { ok: false, error: 'already_in_channel' };
        }),
      );
    let topicCalls = 0;
    nock(SLACK_API)
      .post('/api/conversations.setTopic')
      .twice()
      .reply(200, record(topic, () => (++topicCalls === 1 ? { ok: false, error: 'service_unavailable' } : webApiExample('conversations.setTopic'))));
    nock(SLACK_API).post('/api/chat.postMessage').once().reply(200, postAnswers(post));
    nock(SLACK_API).post('/api/pins.add').once().reply(200, record(pin, { ok: false, error: 'already_pinned' }));

    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, slashBody({ command: '/reflex', text: 'incident new 1 Ransomware on web-01 (Ünïcode!)' }), 'form');
    expect(res.status).toBe(200);
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    const inc = await s.store.db.selectFrom('incidents').selectAll().where('title', '=', 'Ransomware on web-01 (Ünïcode!)').executeTakeFirstOrThrow();
    await eventually(async () => expect(await timelineKinds(s, inc.id)).toContain('incident.channel.ready'));

    expect(create).toEqual([{ name: expectedName(inc, 'ransomware-on-web-01-unicode'), is_private: 'false' }]);
    expect(list).toHaveLength(1);
    expect(invite.map((p) => p.users)).toEqual(['W111,W222', 'W111', 'W222', 'W111,W222', 'W111', 'W222']);
    expect(topic).toHaveLength(2);
    expect(post).toHaveLength(1);
    expect(post[0]!.channel).toBe('C0TAKEN01');
    expect(pin).toEqual([{ channel: 'C0TAKEN01', timestamp: POSTED.ts }]);
    const channels = await s.store.db.selectFrom('incident_channels').selectAll().where('incident_id', '=', inc.id).execute();
    expect(channels.map((c) => [c.channel_id, c.name])).toEqual([['C0TAKEN01', create[0]!.name]]);
    expect(await timelineKinds(s, inc.id)).toEqual(['incident.created', 'incident.channel', 'incident.channel.card', 'incident.channel.ready']);
  });

  it('does nothing for an incident below SEV1', async () => {
    const replies = captureResponses(RESPONSE_PATH);
    await send(s, slashBody({ command: '/reflex', text: 'incident new 2 Suspicious login on vpn-02' }), 'form');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    const inc = await s.store.db.selectFrom('incidents').selectAll().where('title', '=', 'Suspicious login on vpn-02').executeTakeFirstOrThrow();
    // The listener ran before the command answered: no job was enqueued, so no Slack call can follow.
    expect(await s.queues.queue(INCIDENT_CHANNEL_QUEUE).getJob(`channel-${inc.id}`)).toBeFalsy();
    expect(await timelineKinds(s, inc.id)).toEqual(['incident.created']);
  });
});
