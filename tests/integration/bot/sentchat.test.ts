import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { createPrincipalToken } from '../../../src/approvals/principal-tokens.ts';
import { ensureIncidentChannel } from '../../../src/bot/incident-channels/incident-channel.handler.ts';
import { SentchatIncidentChannels } from '../../../src/bot/sentchat/sentchat-incident-channels.ts';
import { liveChannelFor, SentchatStore } from '../../../src/bot/sentchat/sentchat-store.ts';
import { SentchatTransport } from '../../../src/bot/sentchat/sentchat-transport.ts';
import { ENGINE_PORTS } from '../../../src/engine/engine-ports.ts';
import { sealAuditLog } from '../../../src/store/audit-log.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

/**
 * SENTchat over its real edges: HTTP requests and a WebSocket client against the running app
 * (PostgreSQL, the BullMQ workers), as the browser page uses them.
 */
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

// `ws` is @fastify/websocket's own dependency; the test speaks WebSocket through it.
interface WsClient {
  readyState: number;
  on(event: 'message', fn: (data: Buffer) => void): void;
  on(event: 'open', fn: () => void): void;
  on(event: 'close', fn: (code: number) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  on(event: 'unexpected-response', fn: (req: unknown, res: { statusCode: number }) => void): void;
  send(data: string): void;
  close(): void;
}
type WsCtor = new (url: string, opts?: { headers?: Record<string, string> }) => WsClient;
const requireHere = createRequire(import.meta.url);
const WebSocketClient = createRequire(requireHere.resolve('@fastify/websocket'))('ws') as WsCtor;

interface WireMessage {
  id: string;
  channelId: string;
  threadParentId: string | null;
  author: { kind: string; name: string };
  text: string;
  card: { title?: string; text: string; buttons?: { actionId: string; value: string; label: string }[]; fields?: { label: string; value: string }[] } | null;
  ephemeral: boolean;
  pinned: boolean;
  version: number;
}
type LiveEvent = { type: string; message?: WireMessage; channel?: { id: string; name: string; kind: string; topic: string } };

interface Live {
  events: LiveEvent[];
  closed: Promise<number>;
  close(): void;
}

async function openLive(s: TestServer, cookie: string | undefined, origin = s.url): Promise<Live> {
  const ws = new WebSocketClient(`${s.url.replace('http', 'ws')}/sentchat/ws`, { headers: { origin, ...(cookie ? { cookie } : {}) } });
  const events: LiveEvent[] = [];
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('message', (data) => events.push(JSON.parse(data.toString()) as LiveEvent));
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve());
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
  // The server says it is ready once the socket is registered for updates.
  await vi.waitFor(() => expect(events.some((e) => e.type === 'ready')).toBe(true), { timeout: 5_000, interval: 20 });
  return { events, closed, close: () => ws.close() };
}

const JSON_HEADERS = { 'content-type': 'application/json', 'x-sentchat': '1' };

async function signIn(s: TestServer, token: string): Promise<{ status: number; cookie: string | undefined; setCookie: string[]; body: Record<string, unknown> }> {
  const res = await fetch(`${s.url}/sentchat/api/session`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ token }) });
  const setCookie = res.headers.getSetCookie();
  const session = setCookie.find((c) => c.startsWith('sentchat_session='));
  return { status: res.status, cookie: session?.split(';')[0], setCookie, body: (await res.json()) as Record<string, unknown> };
}

async function call(s: TestServer, cookie: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers = { cookie, ...(method === 'GET' ? {} : { 'x-sentchat': '1' }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, body: res.status === 204 ? {} : ((await res.json()) as Record<string, unknown>) };
}

function botMessages(live: Live, pred: (m: WireMessage) => boolean = () => true): WireMessage[] {
  return live.events.filter((e) => e.type === 'message.new' && e.message?.author.kind === 'bot').map((e) => e.message!).filter(pred);
}

let s: TestServer;
let adminCookie: string;
let viewerCookie: string;
let viewerToken: string;
let general: string;

beforeAll(async () => {
  s = await startTestServer();
  await ensureTenant(s.store.db, 'acme', 'Acme');
  // What embedded mode does for `default` at start, done here for a mapped realm of an external database.
  await mapWorkspace(s.store.db, { platform: 'sentchat', workspace: 'local', tenantId: 'acme', actor: 'test' });
  await grantRole(s.store.db, { identity: { platform: 'sentchat', workspace: 'local', userId: 'admin' }, tenantId: 'acme', role: 'admin', actor: 'test', displayName: 'SENTchat admin' });
  const vic = await grantRole(s.store.db, { identity: { platform: 'sentchat', workspace: 'local', userId: 'vic' }, tenantId: 'acme', role: 'viewer', actor: 'test', displayName: 'Vic Viewer' });
  viewerToken = (await createPrincipalToken(s.store.db, { principalId: vic.principalId, label: 'vic laptop', actor: 'test' })).token;
});

afterAll(async () => {
  await s?.stop();
});

describe('SENTchat sign-in', () => {
  it('serves the page at / with a strict CSP, and the API wants a session', async () => {
    const page = await fetch(`${s.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(await page.text()).toContain('id="signin-form"');
    const me = await fetch(`${s.url}/sentchat/api/me`);
    expect(me.status).toBe(401);
    expect(((await me.json()) as { error: { code: string } }).error.code).toBe('auth.unauthenticated');
  });

  it('refuses a wrong token with a specific message and makes no session', async () => {
    const r = await signIn(s, 'not-the-token-at-all-000000000');
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ error: { code: 'auth.unauthenticated', message: expect.stringContaining('That token is not valid') } });
    expect(r.setCookie).toEqual([]);
    expect(await s.store.db.selectFrom('sentchat_sessions').select('token_sha256').execute()).toEqual([]);
  });

  it('refuses cross-site style requests: no X-SENTchat header, not JSON, unknown fields', async () => {
    const noHeader = await fetch(`${s.url}/sentchat/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: s.apiToken }) });
    expect(noHeader.status).toBe(403);
    expect(noHeader.headers.getSetCookie()).toEqual([]);
    const form = await fetch(`${s.url}/sentchat/api/session`, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-sentchat': '1' }, body: JSON.stringify({ token: s.apiToken }) });
    expect(form.status).toBe(415);
    const extra = await fetch(`${s.url}/sentchat/api/session`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ token: s.apiToken, admin: true }) });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: { message: string } }).error.message).toContain('Invalid sign-in');
  });

  it('signs in with the API token as the built-in admin: an opaque HttpOnly SameSite=Strict cookie', async () => {
    const r = await signIn(s, s.apiToken);
    expect(r.status).toBe(201);
    const cookie = r.setCookie.find((c) => c.startsWith('sentchat_session='))!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).not.toContain(s.apiToken);
    adminCookie = r.cookie!;
    expect(r.body.me).toMatchObject({ identity: 'sentchat:local:admin', tenant: 'acme', roles: ['admin'], authorised: true, method: 'api-token' });
    // Only a hash of the cookie is stored; the audit row names the method, never a secret.
    const rows = await s.store.db.selectFrom('sentchat_sessions').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_sha256).not.toBe(adminCookie.split('=')[1]);
    await sealAuditLog(s.store.db);
    const audit = await s.store.db.selectFrom('audit_log').select(['action', 'actor', 'delta']).where('action', '=', 'sentchat.session.create').execute();
    expect(audit).toEqual([{ action: 'sentchat.session.create', actor: 'sentchat:local:admin', delta: expect.objectContaining({ method: 'api-token' }) }]);
    expect(JSON.stringify(audit)).not.toContain(s.apiToken);
  });

  it('signs in with a personal token as that principal', async () => {
    const r = await signIn(s, viewerToken);
    expect(r.status).toBe(201);
    viewerCookie = r.cookie!;
    expect(r.body.me).toMatchObject({ identity: 'sentchat:local:vic', displayName: 'Vic Viewer', roles: ['viewer'], method: 'principal-token' });
  });

  it('refuses the WebSocket without a session and from another origin', async () => {
    await expect(openLive(s, undefined)).rejects.toThrow('HTTP 401');
    await expect(openLive(s, adminCookie, 'https://evil.example')).rejects.toThrow('HTTP 403');
  });
});

describe('SENTchat commands', () => {
  let adminLive: Live;
  let viewerLive: Live;

  beforeAll(async () => {
    const channels = await call(s, adminCookie, 'GET', '/sentchat/api/channels');
    expect(channels.status).toBe(200);
    general = (channels.body.channels as { id: string; name: string }[]).find((c) => c.name === 'general')!.id;
    adminLive = await openLive(s, adminCookie);
    viewerLive = await openLive(s, viewerCookie);
  });
  afterAll(() => {
    adminLive?.close();
    viewerLive?.close();
  });

  it('shows the user message at once and answers /reflex help over the WebSocket, to the asker only', async () => {
    const posted = await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '/reflex help' });
    expect(posted.status).toBe(202);
    const mine = posted.body.message as WireMessage;
    expect(mine).toMatchObject({ text: '/reflex help', author: { kind: 'user', name: 'SENTchat admin' } });
    await vi.waitFor(() => expect(botMessages(adminLive)).toHaveLength(1), { timeout: 20_000, interval: 50 });
    const answer = botMessages(adminLive)[0]!;
    expect(answer).toMatchObject({ channelId: general, ephemeral: true });
    expect(answer.text).toContain('incident new');
    // Everyone in the channel sees the question; only the asker sees the ephemeral answer.
    expect(viewerLive.events.some((e) => e.type === 'message.new' && e.message?.id === mine.id)).toBe(true);
    const viewerPage = await call(s, viewerCookie, 'GET', `/sentchat/api/channels/${general}/messages`);
    const ids = (viewerPage.body.messages as WireMessage[]).map((m) => m.id);
    expect(ids).toContain(mine.id);
    expect(ids).not.toContain(answer.id);
    expect(botMessages(viewerLive)).toEqual([]);
  });

  it('refuses a command the role does not allow, and writes nothing', async () => {
    const posted = await call(s, viewerCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '/reflex incident new 2 Viewer tries' });
    expect(posted.status).toBe(202);
    await vi.waitFor(() => expect(botMessages(viewerLive)).toHaveLength(1), { timeout: 20_000, interval: 50 });
    expect(botMessages(viewerLive)[0]).toMatchObject({ ephemeral: true, text: expect.stringContaining('`incident new` needs one of these roles') });
    expect(await s.store.db.selectFrom('incidents').select('id').where('title', '=', 'Viewer tries').execute()).toEqual([]);
    await sealAuditLog(s.store.db);
    const refused = await s.store.db.selectFrom('audit_log').select('delta').where('action', '=', 'command.refused').where('actor', '=', 'sentchat:local:vic').execute();
    expect(refused.map((r) => (r.delta as { reason: string }).reason)).toEqual(['role']);
  });

  it('rejects a bad post with a specific error', async () => {
    const empty = await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '   ' });
    expect(empty.status).toBe(400);
    expect((empty.body.error as { message: string }).message).toContain('"text" is empty');
    const other = await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '/shrug' });
    expect(other.status).toBe(400);
    expect((other.body.error as { message: string }).message).toContain('/reflex');
    const nowhere = await call(s, adminCookie, 'POST', '/sentchat/api/channels/00000000-0000-4000-8000-000000000000/messages', { text: 'hi' });
    expect(nowhere.status).toBe(404);
  });

  it('a button click updates the card in place for everyone; a refused click changes nothing', async () => {
    const before = botMessages(adminLive).length;
    await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '/reflex incident new 2 Printer on fire' });
    await vi.waitFor(() => expect(botMessages(adminLive).length).toBe(before + 1), { timeout: 20_000, interval: 50 });
    const card = botMessages(adminLive).at(-1)!;
    expect(card.ephemeral).toBe(false);
    expect(card.card?.title).toContain('Printer on fire');
    const close = card.card!.buttons!.find((b) => b.actionId === 'incident.close')!;
    // The viewer sees the same card live.
    await vi.waitFor(() => expect(botMessages(viewerLive, (m) => m.id === card.id)).toHaveLength(1), { timeout: 5_000, interval: 20 });

    // A button the card does not have is refused at the edge.
    const forged = await call(s, viewerCookie, 'POST', '/sentchat/api/actions', { messageId: card.id, actionId: 'role.grant', value: close.value });
    expect(forged.status).toBe(400);

    // The viewer may not close: the refusal goes to the viewer alone, in the card's thread.
    const refused = await call(s, viewerCookie, 'POST', '/sentchat/api/actions', { messageId: card.id, actionId: close.actionId, value: close.value });
    expect(refused.status).toBe(202);
    await vi.waitFor(() => expect(botMessages(viewerLive, (m) => m.threadParentId === card.id)).toHaveLength(1), { timeout: 20_000, interval: 50 });
    expect(botMessages(viewerLive, (m) => m.threadParentId === card.id)[0]).toMatchObject({ ephemeral: true, text: expect.stringContaining('needs one of these roles') });
    expect((await s.store.db.selectFrom('sentchat_messages').select('version').where('id', '=', card.id).executeTakeFirstOrThrow()).version).toBe(1);

    const clicked = await call(s, adminCookie, 'POST', '/sentchat/api/actions', { messageId: card.id, actionId: close.actionId, value: close.value });
    expect(clicked.status).toBe(202);
    for (const live of [adminLive, viewerLive]) {
      await vi.waitFor(() => expect(live.events.some((e) => e.type === 'message.updated' && e.message?.id === card.id)).toBe(true), { timeout: 20_000, interval: 50 });
      const updated = live.events.find((e) => e.type === 'message.updated' && e.message?.id === card.id)!.message!;
      expect(updated.version).toBe(2);
      expect(updated.text).toContain('closed by SENTchat admin');
    }
    const inc = await s.store.db.selectFrom('incidents').select('status').where('id', '=', close.value).executeTakeFirstOrThrow();
    expect(inc.status).toBe('closed');
    // Replaced, not added: the channel holds one copy of the card, now the answer.
    const rows = await s.store.db.selectFrom('sentchat_messages').select(['id', 'text']).where('id', '=', card.id).execute();
    expect(rows).toEqual([{ id: card.id, text: expect.stringContaining('closed by SENTchat admin') }]);
  });

  it('a SEV1 gets one SENTchat incident channel: created, topic, pinned card, reporter invited', async () => {
    await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: '/reflex incident new 1 Ransomware on web-01' });
    let incidentId = '';
    await vi.waitFor(async () => {
      const inc = await s.store.db.selectFrom('incidents').select('id').where('title', '=', 'Ransomware on web-01').executeTakeFirstOrThrow();
      incidentId = inc.id;
      const kinds = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', inc.id).execute();
      expect(kinds.map((k) => k.kind)).toContain('incident.channel.ready');
    }, { timeout: 30_000, interval: 100 });
    const channels = await s.store.db.selectFrom('sentchat_channels').selectAll().where('kind', '=', 'incident').execute();
    expect(channels).toHaveLength(1);
    const room = channels[0]!;
    expect(room).toMatchObject({ tenant_id: 'acme', name: expect.stringMatching(new RegExp(`^inc-\\d{8}-${incidentId.slice(0, 8)}-ransomware-on-web-01$`)) });
    expect(room.topic).toContain('SEV1 (critical) · Ransomware on web-01');
    const cards = await s.store.db.selectFrom('sentchat_messages').selectAll().where('channel_id', '=', room.id).execute();
    expect(cards).toHaveLength(1);
    expect(cards[0]).toMatchObject({ pinned: true, author_kind: 'bot' });
    expect((cards[0]!.card as { buttons: { actionId: string }[] }).buttons.map((b) => b.actionId)).toEqual(['incident.run_playbook', 'incident.escalate', 'incident.close']);
    // The reporter (the admin who typed it) is a member; the live page heard of the new room.
    const admin = await s.store.db.selectFrom('chat_identities').select('principal_id').where('platform', '=', 'sentchat').where('user_id', '=', 'admin').executeTakeFirstOrThrow();
    expect(await s.store.db.selectFrom('sentchat_channel_members').select('principal_id').where('channel_id', '=', room.id).execute()).toEqual([{ principal_id: admin.principal_id }]);
    await vi.waitFor(() => expect(adminLive.events.some((e) => e.type === 'channel.new' && e.channel?.id === room.id)).toBe(true), { timeout: 5_000, interval: 20 });
    expect(await s.store.db.selectFrom('incident_channels').select(['platform', 'channel_id']).where('incident_id', '=', incidentId).execute()).toEqual([{ platform: 'sentchat', channel_id: room.id }]);

    // Once: lowered and raised again, and the SEV1 steps run again by hand, it is still one room.
    await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: `/reflex incident sev ${incidentId.slice(0, 8)} 2` });
    await call(s, adminCookie, 'POST', `/sentchat/api/channels/${general}/messages`, { text: `/reflex incident sev ${incidentId.slice(0, 8)} 1` });
    await vi.waitFor(async () => {
      const sev = await s.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', incidentId).where('kind', '=', 'incident.severity_changed').execute();
      expect(sev).toHaveLength(2);
    }, { timeout: 20_000, interval: 100 });
    const transport = new SentchatTransport(new SentchatStore(s.store.db, liveChannelFor(s.config.dbSchema)), {});
    const platform = new SentchatIncidentChannels(transport, 'acme', undefined);
    expect(await platform.createChannel(room.name)).toBe('name_taken');
    expect(await platform.findChannelByName(room.name)).toEqual({ channelId: room.id, name: room.name });
    expect(await ensureIncidentChannel({ tenantId: 'acme', incidentId }, { db: s.store.db, platforms: [platform] })).toEqual([{ platform: 'sentchat', status: 'already_ready', channelId: room.id }]);
    expect(await s.store.db.selectFrom('sentchat_channels').select('id').where('kind', '=', 'incident').execute()).toHaveLength(1);
    expect(await s.store.db.selectFrom('sentchat_messages').select('id').where('channel_id', '=', room.id).execute()).toHaveLength(1);
  });

  it('is the engine chat port when no other platform is configured, and keeps tenants apart', async () => {
    expect(ENGINE_PORTS.chat?.platform).toBe('sentchat');
    const ref = await ENGINE_PORTS.chat!.post({ channelId: 'acme/soc' }, { text: 'Blocked 203.0.113.9 for 24 h' });
    await vi.waitFor(() => expect(botMessages(adminLive, (m) => m.id === ref.messageId)).toHaveLength(1), { timeout: 5_000, interval: 20 });
    // A bare name carries no tenant: refused outside embedded mode instead of guessed.
    await expect(ENGINE_PORTS.chat!.post({ channelId: 'soc' }, { text: 'x' })).rejects.toMatchObject({ code: 'input.invalid' });
    // Another tenant's channel does not exist for acme's users.
    await ensureTenant(s.store.db, 'globex', 'Globex');
    const other = await ENGINE_PORTS.chat!.post({ channelId: 'globex/soc' }, { text: 'Globex only' });
    const read = await call(s, adminCookie, 'GET', `/sentchat/api/channels/${other.channelId}/messages`);
    expect(read.status).toBe(404);
    const list = await call(s, adminCookie, 'GET', '/sentchat/api/channels');
    expect((list.body.channels as { id: string }[]).map((c) => c.id)).not.toContain(other.channelId);
    expect(botMessages(adminLive, (m) => m.id === other.messageId)).toEqual([]);
  });

  it('signing out ends the session and closes its WebSocket', async () => {
    const out = await call(s, viewerCookie, 'DELETE', '/sentchat/api/session');
    expect(out.status).toBe(204);
    expect(await viewerLive.closed).toBe(4401);
    const me = await fetch(`${s.url}/sentchat/api/me`, { headers: { cookie: viewerCookie } });
    expect(me.status).toBe(401);
  });
});
