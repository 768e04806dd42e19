import { createHmac } from 'node:crypto';
import type { FeatureContext } from '../../app/features.ts';
import { DEFAULT_TENANT } from '../../app/runtime.ts';
import { ENGINE_PORTS } from '../../engine/engine-ports.ts';
import { ChatNotifier, registerChatNotifier } from '../../pipeline/chat-notifier.ts';
import { resolvePrincipal, resolveWorkspaceTenant } from '../../store/principals.ts';
import { chatCommandDeps } from '../command-deps.ts';
import { registerSentchatIncidentChannels } from './sentchat-incident-channels.ts';
import { SentchatLive } from './sentchat-live.ts';
import { oidcRealmOf, OidcClient } from './sentchat-oidc.ts';
import { registerSentchatRoutes } from './sentchat-routes.ts';
import { SENTCHAT_COMMANDS_QUEUE, startSentchatCommandWorker } from './sentchat-commands.ts';
import { SentchatSessions } from './sentchat-sessions.ts';
import { liveChannelFor, SentchatStore } from './sentchat-store.ts';
import { SentchatTransport } from './sentchat-transport.ts';

/**
 * SENTchat, the built-in web chat: the front door of an embedded install and the chat platform
 * wherever no other is configured. Registered by the chat feature on every process: API
 * processes serve `/sentchat/*` (the page at `/` is the console feature's) and push live updates;
 * worker processes run its command worker; both post through its transport.
 *
 * `primary` (no Slack or Teams configured): SENTchat is the engine's chat port (approval cards,
 * `chat.notify`) and SEV1 incidents get a SENTchat channel. Otherwise the other platform keeps
 * those and SENTchat is the web chat beside it.
 */
export const sentchatChat = {
  async register(ctx: FeatureContext, opts: { primary: boolean }): Promise<() => Promise<void>> {
    const log = ctx.logger.child({ component: 'sentchat' });
    const db = ctx.store.db;
    const cfg = ctx.config.sentchat;
    const fallbackTenant = ctx.config.mode === 'embedded' ? DEFAULT_TENANT : undefined;
    const store = new SentchatStore(db, liveChannelFor(ctx.store.database.schema));
    const transport = new SentchatTransport(store, { fallbackTenant });
    const sessions = new SentchatSessions(db, cfg.sessionHours * 3600_000);
    const commands = chatCommandDeps(ctx, (err, c) => log.error({ err, command: c.command, tenant: c.tenantId }, 'SENTchat command failed'));
    ctx.registerQueue(SENTCHAT_COMMANDS_QUEUE);

    const closers: (() => Promise<void> | void)[] = [];
    if (ctx.role === 'all') {
      const live = new SentchatLive({
        databaseUrl: ctx.store.databaseUrl,
        channel: liveChannelFor(ctx.store.database.schema),
        store,
        sessions,
        logger: log,
        stillAllowed: async (c) => {
          const who = await resolvePrincipal(db, { platform: 'sentchat', workspace: c.workspace, userId: c.userId }, c.tenantId);
          const tenant = (await resolveWorkspaceTenant(db, 'sentchat', c.workspace)) ?? fallbackTenant;
          return tenant === c.tenantId && who !== undefined && who.principalId === c.principalId && who.roles.length > 0;
        },
      });
      await live.start();
      closers.push(() => live.close());
      const oidc = cfg.oidc
        ? {
            client: new OidcClient({ issuer: cfg.oidc.issuer, clientId: cfg.oidc.clientId, clientSecret: cfg.oidc.clientSecret }),
            stateKey: createHmac('sha256', ctx.store.local.masterKey).update('sentreflex.sentchat.oidc-state.v1').digest(),
          }
        : undefined;
      await registerSentchatRoutes(ctx.http, {
        db,
        store,
        sessions,
        live,
        queues: ctx.queues,
        logger: log,
        apiToken: ctx.store.local.apiToken,
        config: cfg,
        fallbackTenant,
        publicUrl: ctx.config.publicUrl,
        oidc,
      });
      const signIns = [cfg.apiTokenSignIn ? 'the API token' : undefined, 'a personal token', cfg.oidc ? `single sign-on (realm ${oidcRealmOf(cfg.oidc.issuer)})` : undefined].filter(Boolean);
      ctx.hint(`SENTchat     the web chat at / ; sign in with ${signIns.join(', ')}`);
      const pruner = setInterval(() => void sessions.prune().catch((err: unknown) => log.warn({ err }, 'pruning SENTchat sessions failed')), 3600_000);
      pruner.unref();
      closers.push(() => clearInterval(pruner));
    }

    // Pipeline alerts go to the tenant's `notify.chat.sentchat` channel, repeats into the thread.
    closers.push(registerChatNotifier(ctx.seams.notifiers, new ChatNotifier(transport, async (tenantId, name) => {
      // A configured channel nobody has made yet is made on the first alert, not refused.
      await store.ensureChannel({ tenantId, name, kind: 'public', actor: 'pipeline' });
      return `${tenantId}/${name}`;
    })));

    if (opts.primary) {
      ENGINE_PORTS.chat = transport;
      closers.push(() => {
        if (ENGINE_PORTS.chat === transport) ENGINE_PORTS.chat = undefined;
      });
      closers.push(registerSentchatIncidentChannels(ctx, { transport, fallbackTenant }));
    }

    if (ctx.config.runWorkers) startSentchatCommandWorker(ctx.queues, { commands, store }, { concurrency: Math.min(ctx.config.workerConcurrency, 8) });

    return async () => {
      for (const close of closers.reverse()) await close();
    };
  },
};
