import { sql } from 'kysely';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TestServer } from '../../helpers/test-server.ts';
import {
  HOOKS,
  VT_API,
  captureResponses,
  eventually,
  fixture,
  grant,
  jobTotal,
  send,
  shown,
  signature,
  slashBody,
  startSlackApp,
  stopSlackApp,
} from './slack-test-kit.ts';

// The app runs real workers on the machine's PostgreSQL/Redis: allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const RESPONSE_PATH = '/commands/T111/111/xxxxx';

describe('Slack slash commands: POST /slack/events', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startSlackApp();
    await grant(s, 'W111', 'analyst');
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });
  afterAll(() => stopSlackApp(s));

  const auditActions = async (since: string) =>
    (await s.store.db.selectFrom('audit_log').select(['action', 'actor', 'delta']).where('seq', '>', since).orderBy('seq').execute()).map((r) => r.action);
  const auditHead = async () => (await s.store.db.selectFrom('audit_log').select(sql<string>`coalesce(max(seq), 0)`.as('seq')).executeTakeFirstOrThrow()).seq;

  it('answers the fixture body (an unknown command) through its response_url', async () => {
    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, fixture('slack/bolt_python_slash_command_body.txt'), 'form');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ response_type: 'ephemeral', text: ':hourglass_flowing_sand: Working on it…' });
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]).toMatchObject({
      response_type: 'ephemeral',
      replace_original: false,
      text: expect.stringContaining('I don\'t know the command "Hi"'),
    });
    // Answered straight from the command worker (this server's first command): the outbox is empty.
    await eventually(async () => expect((await s.queues.queue('chat.commands').getJobCounts('completed')).completed).toBe(1));
    expect(await jobTotal(s, 'chat.outbox')).toBe(0);
  });

  it('acknowledges at once and does the work afterwards: the ack comes back while the lookup is still held', async () => {
    await s.store.vault.set('acme', 'virustotal.api_key', 'vt-key-for-acme-123456', 'test');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let lookupStarted!: () => void;
    const started = new Promise<void>((r) => (lookupStarted = r));
    const vt = nock(VT_API, { reqheaders: { 'x-apikey': 'vt-key-for-acme-123456' } })
      .get('/api/v3/domains/down.mykings.pw')
      .reply((_uri, _body, cb) => {
        lookupStarted();
        void gate.then(() => cb(null, [200, fixture('intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json'), { 'Content-Type': 'application/json' }]));
      });
    const replies = captureResponses(RESPONSE_PATH);

    try {
      const res = await send(s, slashBody({ command: '/reflex', text: 'enrich down[.]mykings.pw' }), 'form');
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ response_type: 'ephemeral' });
      // The HTTP answer is in; the job is now waiting on VirusTotal, which has not answered.
      await started;
      expect(replies.bodies).toEqual([]);
    } finally {
      // Never leave the job held: a held job would keep the worker (and the server) from closing.
      release();
    }
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(vt.isDone()).toBe(true);
    const reply = replies.bodies[0] as { response_type: string; text: string; blocks: { type: string; text?: { text: string }; fields?: { text: string }[]; elements?: { text: string }[] }[] };
    expect(reply.response_type).toBe('in_channel');
    expect(reply.text).toContain('Enrichment of domain down.mykings.pw');
    const rendered = JSON.stringify(reply.blocks);
    expect(rendered).toContain('malicious (score 8): 8/98 engines flag it malicious, 0 suspicious');
    expect(rendered).toContain('Not configured for this tenant: abuseipdb');
  });

  it('runs incident new, writes the incident, its timeline and audit rows, and answers in the channel', async () => {
    const head = await auditHead();
    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, slashBody({ command: '/reflex', text: 'incident new 2 Phishing wave <https://evil.example|evil.example> hits finance' }), 'form');
    expect(res.status).toBe(200);
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    const inc = await s.store.db.selectFrom('incidents').selectAll().where('title', 'like', 'Phishing wave%').executeTakeFirstOrThrow();
    expect(inc).toMatchObject({ tenant_id: 'acme', severity: 2, status: 'open', created_by: 'slack:T111:W111', title: 'Phishing wave https://evil.example hits finance' });
    const timeline = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', inc.id).execute();
    expect(timeline.map((e) => e.kind)).toEqual(['incident.created']);
    expect(await auditActions(head)).toEqual(['incident.create', 'command.incident.new']);
    const reply = replies.bodies[0] as { response_type: string; blocks: { type: string; elements?: { action_id: string; value: string }[] }[] };
    expect(reply.response_type).toBe('in_channel');
    const buttons = reply.blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []);
    // Buttons carry only the incident id; what a click may do is decided when it comes back.
    expect(buttons.map((b) => [b.action_id, b.value])).toEqual([
      ['incident.timeline', inc.id],
      ['incident.close', inc.id],
    ]);
  });

  it('answers bad input with what was wrong and the usage, and writes nothing', async () => {
    const head = await auditHead();
    const replies = captureResponses(RESPONSE_PATH);
    await send(s, slashBody({ command: '/reflex', text: 'enrich "; rm -rf /' }), 'form');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]!.text).toContain('is not an IP address, domain, URL or file hash');
    expect(shown(replies.bodies[0]!.text)).toContain('Usage: `enrich <ip|domain|url|hash>`');
    expect(await auditActions(head)).toEqual([]);
  });

  it('tells an unknown user they are not authorised; nothing is written but the audit row', async () => {
    const head = await auditHead();
    const count = async (table: 'incidents' | 'principals' | 'chat_identities') =>
      (await s.store.db.selectFrom(table).select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow()).n;
    const before = { incidents: await count('incidents'), principals: await count('principals'), identities: await count('chat_identities') };
    const replies = captureResponses(RESPONSE_PATH);
    const res = await send(s, slashBody({ command: '/reflex', user_id: 'W999', text: 'incident new 1 Data exfiltration' }), 'form');
    expect(res.status).toBe(200);
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(replies.bodies[0]).toMatchObject({ response_type: 'ephemeral', text: expect.stringContaining('you are not authorised') });
    expect(replies.bodies[0]!.text).toContain('slack:T111:W999');
    expect({ incidents: await count('incidents'), principals: await count('principals'), identities: await count('chat_identities') }).toEqual(before);
    const rows = await s.store.db.selectFrom('audit_log').select(['action', 'actor', 'tenant_id']).where('seq', '>', head).execute();
    expect(rows).toEqual([{ action: 'command.refused', actor: 'slack:T111:W999', tenant_id: 'acme' }]);
  });

  it('refuses a bad signature with 401 and queues nothing', async () => {
    const jobs = await jobTotal(s, 'chat.commands');
    const body = slashBody({ command: '/reflex', text: 'incident new 1 forged' });
    const forged = await send(s, body, 'form', { signature: `v0=${'0'.repeat(64)}` });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ error: { code: 'auth.unauthenticated', message: 'The Slack request signature is not valid.' } });
    // Signed with another secret, or over other bytes than were sent.
    expect((await send(s, body, 'form', { signature: signature(body, String(Math.floor(Date.now() / 1000)), 'another-secret-0000000000') })).status).toBe(401);
    const tampered = await fetch(`${s.url}/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(Math.floor(Date.now() / 1000)), 'x-slack-signature': signature(body, String(Math.floor(Date.now() / 1000))) },
      body: body.replace('forged', 'forgeD'),
    });
    expect(tampered.status).toBe(401);
    const unsigned = await fetch(`${s.url}/slack/events`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(unsigned.status).toBe(401);
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
    expect(await s.store.db.selectFrom('incidents').select('id').where('title', 'like', '%forge%').execute()).toEqual([]);
  });

  it('refuses a timestamp outside the 5-minute window with 401 and queues nothing', async () => {
    const jobs = await jobTotal(s, 'chat.commands');
    const body = slashBody({ command: '/reflex', text: 'whoami' });
    const stale = await send(s, body, 'form', { timestamp: Math.floor(Date.now() / 1000) - 301 });
    expect(stale.status).toBe(401);
    expect(await stale.json()).toMatchObject({ error: { message: 'The Slack request timestamp is outside the 5-minute window.' } });
    expect((await send(s, body, 'form', { timestamp: Math.floor(Date.now() / 1000) + 301 })).status).toBe(401);
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
  });

  it('recognises a retried delivery (X-Slack-Retry-Num) and does not run it twice', async () => {
    const replies = captureResponses(RESPONSE_PATH);
    const body = slashBody({ command: '/reflex', text: 'incident new 3 Retried delivery check' });
    expect((await send(s, body, 'form')).status).toBe(200);
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    const jobs = await jobTotal(s, 'chat.commands');

    const retry = await send(s, body, 'form', { headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' } });
    expect(retry.status).toBe(200);
    // Deduplication happens before anything is queued: the retry left no job behind.
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
    const incidents = await s.store.db.selectFrom('incidents').select('id').where('title', '=', 'Retried delivery check').execute();
    expect(incidents).toHaveLength(1);
  });

  it('answers a workspace that is not connected to a tenant with how to connect it', async () => {
    const replies = captureResponses('/commands/T999/111/xxxxx');
    await send(s, slashBody({ command: '/reflex', team_id: 'T999', text: 'whoami', response_url: `${HOOKS}/commands/T999/111/xxxxx` }), 'form');
    await eventually(() => expect(replies.bodies).toHaveLength(1));
    expect(shown(replies.bodies[0]!.text)).toContain('reflex role workspace slack:T999 <tenant>');
  });

  it('refuses a response_url that is not on a Slack host without queueing', async () => {
    const jobs = await jobTotal(s, 'chat.commands');
    const res = await send(s, slashBody({ command: '/reflex', text: 'whoami', response_url: 'https://attacker.example/collect' }), 'form');
    expect(res.status).toBe(400);
    expect(await jobTotal(s, 'chat.commands')).toBe(jobs);
  });
});
