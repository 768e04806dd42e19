import { randomUUID } from 'node:crypto';
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Config } from '../../app/config.ts';
import type { Logger } from '../../app/logger.ts';
import type { QueueSystem } from '../../app/queue.ts';
import { ReflexError, toReflexError } from '../../errors.ts';
import { resolveWorkspaceTenant } from '../../store/principals.ts';
import type { Database } from '../../store/schema.ts';
import { checkViewer, grantBuiltInAdmin, identityForToken, type Viewer } from './sentchat-identity.ts';
import type { LiveSocket, SentchatLive } from './sentchat-live.ts';
import { oidcRealmOf, oidcUserIdOf, openPending, PENDING_TTL_MS, sealPending, type OidcClient } from './sentchat-oidc.ts';
import { clearedSessionCookie, readCookie, SESSION_COOKIE, sessionCookie, type Session, type SentchatSessions, type SessionIdentity } from './sentchat-sessions.ts';
import { SENTCHAT_COMMANDS_QUEUE, type SentchatCommandJob } from './sentchat-commands.ts';
import { toWireChannel, toWireMessage, type SentchatStore } from './sentchat-store.ts';

/**
 * SENTchat's HTTP and WebSocket edge. It only translates: every body and query is checked with
 * zod and refused with a specific message; who may do what is decided by `dispatch` (commands,
 * buttons) and by tenant and channel visibility (reads).
 *
 * CSRF: the session cookie is `SameSite=Strict`, and every state-changing request must also be
 * `application/json` and carry `X-SENTchat: 1`, which a cross-site form or image cannot send and
 * a cross-site script cannot send without a CORS preflight this server never grants. The
 * WebSocket requires the session cookie and a same-origin `Origin`.
 *
 * | route | what |
 * |---|---|
 * | `GET /sentchat/api/config` | which sign-ins are on (no session needed) |
 * | `POST /sentchat/api/session` `{token}` | sign in with the API token or a personal token |
 * | `DELETE /sentchat/api/session` | sign out (open sockets of the session close) |
 * | `GET /sentchat/api/me` | who is signed in, tenant, roles (or why they may not read) |
 * | `GET /sentchat/api/channels` | channels the viewer may see |
 * | `GET /sentchat/api/channels/:id/messages?before=<seq>&limit=<n>` | a page, oldest first |
 * | `POST /sentchat/api/channels/:id/messages` `{text}` | post; `/reflex …` is queued as a command (202) |
 * | `POST /sentchat/api/actions` `{messageId, actionId, value}` | a button click, queued (202) |
 * | `GET /sentchat/auth/oidc/start`, `/callback` | OpenID Connect sign-in (when configured) |
 * | `GET /sentchat/ws` | live updates |
 */
export const SENTCHAT_WS_PATH = '/sentchat/ws';
const OIDC_COOKIE = 'sentchat_oidc';
const OIDC_PATH = '/sentchat/auth/oidc';
export const DEFAULT_CHANNEL = 'general';

export interface SentchatRoutesDeps {
  db: Kysely<Database>;
  store: SentchatStore;
  sessions: SentchatSessions;
  live: SentchatLive;
  queues: QueueSystem;
  logger: Logger;
  apiToken: string;
  config: Config['sentchat'];
  fallbackTenant: string | undefined;
  publicUrl: string | undefined;
  oidc: { client: OidcClient; stateKey: Buffer } | undefined;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || what;
    throw new ReflexError('input.invalid', `sentchat: bad ${what}: ${field}: ${issue.message}`, { safeMessage: `Invalid ${what}: "${field}" ${issue.message}.`, details: { field } });
  }
  return r.data;
}

const signInBody = z.strictObject({ token: z.string().trim().min(1, 'is empty').max(500, 'is too long') });
const postBody = z.strictObject({ text: z.string().trim().min(1, 'is empty').max(4000, 'is longer than 4,000 characters') });
const actionBody = z.strictObject({ messageId: z.uuid('is not a message id'), actionId: z.string().min(1).max(100), value: z.string().max(2000) });
const channelParams = z.object({ id: z.uuid('is not a channel id') });
const pageQuery = z.object({ before: z.string().regex(/^\d{1,18}$/, 'is not a message position').optional(), limit: z.coerce.number().int().min(1).max(200).default(50) });
const callbackQuery = z.object({ code: z.string().min(1).max(2000).optional(), state: z.string().min(1).max(200).optional(), error: z.string().max(200).optional() });

/** `/reflex`, `/reflex help`, `/REFLEX incident list`: the command's text; undefined for plain text. */
export function commandTextOf(text: string): string | undefined {
  const m = /^\/reflex(?:\s+([\s\S]*))?$/i.exec(text.trim());
  return m ? (m[1] ?? '').trim() : undefined;
}

export async function registerSentchatRoutes(http: FastifyInstance, deps: SentchatRoutesDeps): Promise<void> {
  const { db, store, sessions } = deps;
  const viewers = new WeakMap<FastifyRequest, Viewer>();
  const secure = (req: FastifyRequest) => req.protocol === 'https' || (deps.publicUrl?.startsWith('https:') ?? false);

  await http.register(fastifyWebsocket, { options: { maxPayload: 16 * 1024 } });

  // CSRF (see the module comment): checked before the body is even read.
  http.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/sentchat/api/') || req.method === 'GET' || req.method === 'HEAD') return;
    if (req.headers['x-sentchat'] !== '1') {
      throw new ReflexError('auth.forbidden', 'sentchat: missing X-SENTchat header', { safeMessage: 'SENTchat API requests must carry the header X-SENTchat: 1 (cross-site requests are refused).' });
    }
    if (req.method === 'POST' && !/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      return reply.status(415).send({ error: { code: 'input.invalid', message: 'SENTchat API requests must be JSON (Content-Type: application/json).' } });
    }
    return undefined;
  });

  async function sessionOf(req: FastifyRequest): Promise<Session> {
    const session = await sessions.resolve(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new ReflexError('auth.unauthenticated', 'sentchat: no session', { safeMessage: 'Sign in to SENTchat first (your session ended or expired).' });
    return session;
  }

  async function viewerOf(req: FastifyRequest): Promise<Viewer> {
    const session = await sessionOf(req);
    const check = await checkViewer(db, session, deps.fallbackTenant);
    if (!check.ok) {
      throw new ReflexError('auth.forbidden', `sentchat: ${check.reason} ${check.identity}`, {
        safeMessage: `You are signed in as ${check.identity} but may not use SENTchat${check.tenantId ? ` in tenant ${check.tenantId}` : ''} yet. ${check.hint}`,
        details: { identity: check.identity, reason: check.reason, hint: check.hint, ...(check.tenantId ? { tenant: check.tenantId } : {}) },
      });
    }
    return check.viewer;
  }

  async function visibleChannel(viewer: Viewer, id: string) {
    const channel = await store.getChannel(id);
    // Another tenant's channel, or a private one the viewer is not in, does not exist for them.
    if (!channel || !(await store.canSee(channel, { tenantId: viewer.tenantId, principalId: viewer.principal.principalId }))) {
      throw new ReflexError('not_found', `sentchat: channel ${id} not visible`, { safeMessage: 'There is no such channel (or you are not a member).' });
    }
    return channel;
  }

  function meOf(session: Session, check: Awaited<ReturnType<typeof checkViewer>>) {
    return {
      identity: check.ok ? check.viewer.identity : check.identity,
      displayName: session.displayName,
      method: session.method,
      expiresAt: session.expiresAt.toISOString(),
      tenant: check.ok ? check.viewer.tenantId : (check.tenantId ?? null),
      roles: check.ok ? check.viewer.roles : [],
      authorised: check.ok,
      ...(check.ok ? {} : { reason: check.reason, hint: check.hint }),
    };
  }

  http.get('/sentchat/api/config', async () => ({ signIn: { token: true, apiToken: deps.config.apiTokenSignIn, oidc: deps.oidc !== undefined } }));

  http.post('/sentchat/api/session', async (req, reply) => {
    const { token } = parse(signInBody, req.body, 'sign-in');
    let identity;
    try {
      identity = await identityForToken(db, token, { apiToken: deps.apiToken, apiTokenSignIn: deps.config.apiTokenSignIn, realm: deps.config.realm, fallbackTenant: deps.fallbackTenant });
    } catch (err) {
      // Never the token itself: only that a sign-in failed, and from where.
      deps.logger.warn({ ip: req.ip, reason: toReflexError(err).message }, 'SENTchat sign-in refused');
      throw err;
    }
    // Embedded mode: the first person at a fresh install signs in with the printed token and is
    // admin. Granted here rather than at start, so an install nobody signs in to records nothing.
    if (identity.method === 'api-token' && deps.fallbackTenant) {
      const tenantId = (await resolveWorkspaceTenant(db, 'sentchat', identity.workspace)) ?? deps.fallbackTenant;
      if (await grantBuiltInAdmin(db, identity.workspace, tenantId)) deps.logger.info({ identity: `sentchat:${identity.workspace}:${identity.userId}`, tenant: tenantId }, 'granted admin to the SENTchat built-in admin');
    }
    return startSession(req, reply, identity, { redirect: false });
  });

  async function startSession(req: FastifyRequest, reply: FastifyReply, identity: SessionIdentity, opts: { redirect: boolean; extraCookies?: string[] }) {
    const check = await checkViewer(db, { ...identity, hash: '', expiresAt: new Date() }, deps.fallbackTenant);
    const created = await sessions.create(identity, check.ok ? check.viewer.tenantId : (check.tenantId ?? null));
    reply.header('set-cookie', [...(opts.extraCookies ?? []), sessionCookie(created.token, { expiresAt: created.expiresAt, secure: secure(req) })]);
    if (opts.redirect) return reply.redirect('/', 302);
    return reply.status(201).send({ me: meOf({ ...identity, hash: created.hash, expiresAt: created.expiresAt }, check) });
  }

  http.delete('/sentchat/api/session', async (req, reply) => {
    const session = await sessions.resolve(readCookie(req.headers.cookie, SESSION_COOKIE));
    reply.header('set-cookie', clearedSessionCookie(secure(req)));
    if (session) {
      const check = await checkViewer(db, session, deps.fallbackTenant);
      await sessions.end(session, check.ok ? check.viewer.tenantId : (check.tenantId ?? null));
      await store.announceSessionEnded(session.hash);
    }
    return reply.status(204).send();
  });

  http.get('/sentchat/api/me', async (req) => {
    const session = await sessionOf(req);
    return meOf(session, await checkViewer(db, session, deps.fallbackTenant));
  });

  http.get('/sentchat/api/channels', async (req) => {
    const viewer = await viewerOf(req);
    // Every tenant has a #general to start in.
    if (!(await store.findChannel(viewer.tenantId, DEFAULT_CHANNEL))) {
      await store.ensureChannel({ tenantId: viewer.tenantId, name: DEFAULT_CHANNEL, kind: 'public', topic: 'Talk, and drive SENTreflex with /reflex commands', actor: 'sentchat' });
    }
    const channels = await store.visibleChannels(viewer.tenantId, viewer.principal.principalId);
    return { channels: channels.map(toWireChannel) };
  });

  http.get('/sentchat/api/channels/:id/messages', async (req) => {
    const viewer = await viewerOf(req);
    const { id } = parse(channelParams, req.params, 'channel');
    const q = parse(pageQuery, req.query, 'query');
    const channel = await visibleChannel(viewer, id);
    const page = await store.listMessages(channel.id, viewer.principal.principalId, { beforeSeq: q.before, limit: q.limit });
    return { channel: toWireChannel(channel), messages: page.messages.map(toWireMessage), hasMore: page.hasMore };
  });

  http.post('/sentchat/api/channels/:id/messages', async (req, reply) => {
    const viewer = await viewerOf(req);
    const { id } = parse(channelParams, req.params, 'channel');
    const { text } = parse(postBody, req.body, 'message');
    const channel = await visibleChannel(viewer, id);
    const command = commandTextOf(text);
    if (command === undefined && /^\/[A-Za-z]/.test(text)) {
      throw new ReflexError('input.invalid', 'sentchat: unknown slash command', { safeMessage: 'SENTchat knows one slash command, /reflex (try /reflex help). To post text starting with "/", put a space before it.' });
    }
    const message = await store.postMessage({
      tenantId: channel.tenant_id,
      channelId: channel.id,
      author: { kind: 'user', principalId: viewer.principal.principalId, name: viewer.principal.displayName, actor: viewer.identity },
      text,
    });
    if (command === undefined) return reply.status(201).send({ message: toWireMessage(message), command: false });
    const job: SentchatCommandJob = {
      kind: 'text',
      deliveryId: `sentchat-${message.id}`,
      user: { workspace: viewer.session.workspace, userId: viewer.session.userId, displayName: viewer.principal.displayName },
      principalId: viewer.principal.principalId,
      tenantId: channel.tenant_id,
      channel: { id: channel.id, name: channel.name },
      messageId: message.id,
      text: command,
      receivedAt: new Date().toISOString(),
    };
    await deps.queues.add(SENTCHAT_COMMANDS_QUEUE, 'text', job, { jobId: job.deliveryId, attempts: 5 });
    return reply.status(202).send({ message: toWireMessage(message), command: true });
  });

  http.post('/sentchat/api/actions', async (req, reply) => {
    const viewer = await viewerOf(req);
    const click = parse(actionBody, req.body, 'click');
    const message = await store.getMessage(click.messageId);
    const channel = message ? await store.getChannel(message.channel_id) : undefined;
    const visible =
      message && channel && (message.visible_to === null || message.visible_to === viewer.principal.principalId) && (await store.canSee(channel, { tenantId: viewer.tenantId, principalId: viewer.principal.principalId }));
    if (!message || !channel || !visible) throw new ReflexError('not_found', `sentchat: message ${click.messageId} not visible`, { safeMessage: 'That message does not exist (or you cannot see it).' });
    const buttons = ((message.card ?? null) as { buttons?: { actionId: string; value: string }[] } | null)?.buttons ?? [];
    if (!buttons.some((b) => b.actionId === click.actionId && b.value === click.value)) {
      throw new ReflexError('input.invalid', 'sentchat: click on a button the message does not have', { safeMessage: 'That button is not on this message (any more): the card may have changed.' });
    }
    const job: SentchatCommandJob = {
      kind: 'click',
      deliveryId: `sentchat-click-${randomUUID()}`,
      user: { workspace: viewer.session.workspace, userId: viewer.session.userId, displayName: viewer.principal.displayName },
      principalId: viewer.principal.principalId,
      tenantId: channel.tenant_id,
      channel: { id: channel.id, name: channel.name },
      messageId: message.id,
      action: { actionId: click.actionId, value: click.value },
      cardVersion: message.version,
      receivedAt: new Date().toISOString(),
    };
    await deps.queues.add(SENTCHAT_COMMANDS_QUEUE, 'click', job, { jobId: job.deliveryId, attempts: 5 });
    return reply.status(202).send({ queued: true });
  });

  // OpenID Connect: /start sends the browser to the issuer; /callback finishes and signs in.
  const redirectUri = (req: FastifyRequest) => `${(deps.publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/+$/, '')}${OIDC_PATH}/callback`;
  const pendingCookie = (value: string, req: FastifyRequest, maxAge: number) =>
    // Lax, not Strict: it must come back on the issuer's cross-site redirect to /callback.
    `${OIDC_COOKIE}=${value}; Path=${OIDC_PATH}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure(req) ? '; Secure' : ''}`;
  const signInError = (reply: FastifyReply, req: FastifyRequest, message: string) => {
    reply.header('set-cookie', pendingCookie('', req, 0));
    // In the fragment: it never reaches a server log or a Referer.
    return reply.redirect(`/#signin-error=${encodeURIComponent(message)}`, 302);
  };

  http.get(`${OIDC_PATH}/start`, async (req, reply) => {
    if (!deps.oidc) throw new ReflexError('not_found', 'sentchat: oidc off', { safeMessage: 'Single sign-on is not configured on this server (SENTCHAT_OIDC_ISSUER, SENTCHAT_OIDC_CLIENT_ID).' });
    const { url, pending } = await deps.oidc.client.begin(redirectUri(req));
    reply.header('set-cookie', pendingCookie(sealPending(pending, deps.oidc.stateKey), req, Math.floor(PENDING_TTL_MS / 1000)));
    return reply.redirect(url, 302);
  });

  http.get(`${OIDC_PATH}/callback`, async (req, reply) => {
    if (!deps.oidc) throw new ReflexError('not_found', 'sentchat: oidc off', { safeMessage: 'Single sign-on is not configured on this server.' });
    const q = parse(callbackQuery, req.query, 'query');
    if (q.error) return signInError(reply, req, `The sign-in provider refused: ${q.error}`);
    if (!q.code || !q.state) return signInError(reply, req, 'The sign-in provider sent no code; start again.');
    const pending = openPending(readCookie(req.headers.cookie, OIDC_COOKIE), deps.oidc.stateKey);
    if (!pending) return signInError(reply, req, 'The sign-in did not start in this browser or took too long; start again.');
    let claims;
    try {
      claims = await deps.oidc.client.finish({ code: q.code, state: q.state, pending, redirectUri: redirectUri(req) });
    } catch (err) {
      const e = toReflexError(err);
      deps.logger.warn({ ip: req.ip, reason: e.message }, 'SENTchat OIDC sign-in refused');
      return signInError(reply, req, e.safeMessage);
    }
    const identity: SessionIdentity = {
      workspace: oidcRealmOf(deps.oidc.client.issuer),
      userId: oidcUserIdOf(claims.sub),
      displayName: claims.name ?? claims.preferred_username ?? claims.email ?? claims.sub,
      method: 'oidc',
    };
    return startSession(req, reply, identity, { redirect: true, extraCookies: [pendingCookie('', req, 0)] });
  });

  http.get(SENTCHAT_WS_PATH, {
    websocket: true,
    preValidation: async (req) => {
      const origin = req.headers.origin;
      const allowed = [`http://${req.host}`, `https://${req.host}`, ...(deps.publicUrl ? [new URL(deps.publicUrl).origin] : [])];
      if (origin !== undefined && !allowed.includes(origin)) {
        throw new ReflexError('auth.forbidden', `sentchat ws: origin ${origin.slice(0, 100)}`, { safeMessage: 'SENTchat live updates are for the SENTchat page of this server only.' });
      }
      viewers.set(req, await viewerOf(req));
    },
  }, (socket, req) => {
    const viewer = viewers.get(req);
    const live = socket as unknown as LiveSocket;
    if (!viewer) {
      live.close(1011, 'no viewer');
      return;
    }
    // The browser only listens; anything it sends is answered with what it may do instead.
    live.on('message', () => live.send(JSON.stringify({ type: 'error', message: 'SENTchat live updates are one-way; post with the HTTP API.' })));
    deps.live.add({ socket: live, sessionHash: viewer.session.hash, workspace: viewer.session.workspace, userId: viewer.session.userId, tenantId: viewer.tenantId, principalId: viewer.principal.principalId });
  });
}
