import { createHmac } from 'node:crypto';
import path from 'node:path';
import type { Feature } from '../app/features.ts';
import { registerApprovalPage } from '../approvals/approval-page.ts';
import { VendorApprovalLinkSender, VendorEscalationPager } from '../approvals/vendor-approval-ports.ts';
import { createIntelLookup, defaultIntelProviders } from '../commands/intel-lookup.ts';
import { createChatNotifyExecutor } from './actions/chat-notify.ts';
import { createHttpRequestExecutor } from './actions/http-request.ts';
import { createIntelEnrichExecutor } from './actions/intel-enrich.ts';
import { DatabaseIdempotencyStore } from './actions/database-idempotency-store.ts';
import { ACTION_REGISTRY, type ActionExecutor } from './actions/registry.ts';
import { TenantIntegrations } from './actions/tenant-integrations.ts';
import { registerVendorActions } from './actions/vendor-actions.ts';
import type { SmtpMailer } from '../integrations/smtp/smtp-mailer.ts';
import { ENGINE_PORTS } from './engine-ports.ts';
import { registerEngineRoutes } from './engine-routes.ts';
import { registerPhoneAckRoutes } from './phone-ack/phone-ack-routes.ts';
import { PhoneAcknowledgements } from './phone-ack/phone-acknowledgements.ts';
import { PlaybookEngineService } from './playbook-engine-service.ts';
import { PlaybookCatalog } from './run/playbook-catalog.ts';
import { RunEngine } from './run-engine.ts';
import { repoRoot } from './repo-root.ts';
import { STEP_QUEUE } from './systems/steps-system.ts';
import { TIMER_QUEUE } from './systems/timers-system.ts';

/**
 * The playbook engine in the app: loads manifests/playbooks/ (and `REFLEX_PLAYBOOK_DIRS`),
 * registers the built-in actions (`http.request`, `intel.enrich`, `chat.notify`) and the vendor
 * actions (firewall, identity, host, Wazuh, pager, phone, mail: each picks the tenant's adapter
 * per call), wires the approvals' pager (PagerDuty) and link sender (SMS by Twilio, e-mail by
 * SMTP) unless something set them already, runs the step and timer workers where workers run,
 * serves the run/approval API, the mobile approval page and the phone keypress endpoint
 * (`POST /api/v1/phone/ack/<token>`) where the API is served, and takes
 * the pipeline's trigger seam.
 */
export const engineFeature: Feature = {
  name: 'engine',
  async register(ctx) {
    const log = ctx.logger.child({ component: 'engine' });
    const root = repoRoot();
    const scriptsDir = path.join(root, 'manifests', 'scripts');
    const catalog = await PlaybookCatalog.load([path.join(root, 'manifests', 'playbooks'), ...ctx.config.playbookDirs], scriptsDir);
    for (const { file, error } of catalog.errors) log.error({ file }, `playbook not loaded: ${error.message}`);

    // What this server registers (a test's fake, registered first, wins) is unregistered when it
    // stops, so a later server in the same process registers executors bound to its own store.
    const registered: [string, ActionExecutor][] = [];
    const registerOnce = (name: string, make: () => ActionExecutor): void => {
      if (ACTION_REGISTRY.has(name)) return;
      const executor = make();
      ACTION_REGISTRY.register(name, executor);
      registered.push([name, executor]);
    };
    registerOnce('http.request', () => createHttpRequestExecutor({ allowPrivateNetworks: ctx.config.httpAllowPrivate }));
    registerOnce('intel.enrich', () =>
      createIntelEnrichExecutor(createIntelLookup(ctx.store.vault, defaultIntelProviders({ virustotal: ctx.config.intel.virustotalUrl, abuseipdb: ctx.config.intel.abuseipdbUrl }))),
    );
    registerOnce('chat.notify', () => createChatNotifyExecutor(() => ENGINE_PORTS.chat));

    // E-mail is one server per deployment (SMTP_URL); its records of what a key already sent
    // are deployment-wide too. Twilio keeps its records per tenant.
    let mailer: SmtpMailer | undefined;
    if (ctx.config.smtp) {
      const { SmtpMailer: Mailer } = await import('../integrations/smtp/smtp-mailer.ts');
      mailer = new Mailer({ ...ctx.config.smtp, store: new DatabaseIdempotencyStore(ctx.store.db, '*'), logger: log });
    }
    const integrations = new TenantIntegrations({
      idempotencyStore: (tenantId) => new DatabaseIdempotencyStore(ctx.store.db, tenantId),
      mailer: () => mailer,
      logger: log,
    });

    // Without REFLEX_LINK_SECRET the link key is derived from the master key, so links survive a
    // restart and every process of a deployment agrees on it.
    const linkSecret = ctx.config.linkSecret
      ? Buffer.from(ctx.config.linkSecret, 'utf8')
      : createHmac('sha256', ctx.store.local.masterKey).update('sentreflex.approval-links.v1').digest();
    const publicUrl = (): string => {
      if (ctx.config.publicUrl) return ctx.config.publicUrl.replace(/\/+$/, '');
      const addr = ctx.http.server.address();
      return `http://${ctx.config.host === '0.0.0.0' ? 'localhost' : ctx.config.host}:${typeof addr === 'object' && addr ? addr.port : ctx.config.port}`;
    };
    const engine = new RunEngine({
      db: ctx.store.db,
      pool: ctx.store.database.pool,
      queues: ctx.queues,
      vault: ctx.store.vault,
      catalog,
      actions: ACTION_REGISTRY,
      chat: () => ENGINE_PORTS.chat,
      pager: () => ENGINE_PORTS.pager,
      linkSender: () => ENGINE_PORTS.linkSender,
      linkSecret,
      publicUrl,
      scriptsDir,
      logger: log,
      concurrency: ctx.config.engineConcurrency,
      scriptConcurrency: ctx.config.scriptConcurrency,
    });
    const service = new PlaybookEngineService(engine);
    // "Press 1 to acknowledge" on phone calls: offered only with an https REFLEX_PUBLIC_URL.
    const phoneAcks = new PhoneAcknowledgements({
      db: ctx.store.db,
      linkSecret,
      publicUrl,
      vault: ctx.store.vault,
      tenantConfig: (tenantId) => engine.tenants.get(tenantId),
      playbook: async (hash) => (await engine.definitions.get(hash)).playbook,
      integrations,
      logger: log,
    });
    registered.push(
      ...registerVendorActions(ACTION_REGISTRY, {
        integrations,
        db: ctx.store.db,
        onCall: (tenantId, schedule) => engine.oncall.onCall(tenantId, schedule, 0),
        acknowledgeUrl: (call) => phoneAcks.urlFor(call),
      }),
    );
    const portDeps = { integrations, vault: ctx.store.vault, tenantConfig: (tenantId: string) => engine.tenants.get(tenantId), logger: log };
    const pager = ENGINE_PORTS.pager ? undefined : new VendorEscalationPager(portDeps);
    const linkSender = ENGINE_PORTS.linkSender ? undefined : new VendorApprovalLinkSender(portDeps);
    if (pager) ENGINE_PORTS.pager = pager;
    if (linkSender) ENGINE_PORTS.linkSender = linkSender;
    ctx.registerQueue(STEP_QUEUE);
    ctx.registerQueue(TIMER_QUEUE);
    ctx.seams.trigger = service;
    ENGINE_PORTS.engine = service;
    if (ctx.config.runWorkers) engine.startWorkers();
    if (ctx.role === 'all') {
      registerEngineRoutes(ctx.http, { service, apiToken: ctx.store.local.apiToken });
      registerApprovalPage(ctx.http, { db: ctx.store.db, gates: engine.gates, linkSecret });
      registerPhoneAckRoutes(ctx.http, { acknowledgements: phoneAcks });
      ctx.hint(`Playbooks    ${catalog.list().length} loaded${catalog.errors.length ? `, ${catalog.errors.length} refused (see the log)` : ''}; POST /api/v1/runs, GET /api/v1/approvals?status=pending`);
    }
    return async () => {
      await engine.close();
      if (ENGINE_PORTS.engine === service) ENGINE_PORTS.engine = undefined;
      if (pager && ENGINE_PORTS.pager === pager) ENGINE_PORTS.pager = undefined;
      if (linkSender && ENGINE_PORTS.linkSender === linkSender) ENGINE_PORTS.linkSender = undefined;
      for (const [name, executor] of registered) ACTION_REGISTRY.unregister(name, executor);
      integrations.clear();
      await mailer?.close();
    };
  },
};
