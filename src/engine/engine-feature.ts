import { createHmac } from 'node:crypto';
import path from 'node:path';
import type { Feature } from '../app/features.ts';
import { registerApprovalPage } from '../approvals/approval-page.ts';
import { createIntelLookup, defaultIntelProviders } from '../commands/intel-lookup.ts';
import { createChatNotifyExecutor } from './actions/chat-notify.ts';
import { createHttpRequestExecutor } from './actions/http-request.ts';
import { createIntelEnrichExecutor } from './actions/intel-enrich.ts';
import { ACTION_REGISTRY } from './actions/registry.ts';
import { ENGINE_PORTS } from './engine-ports.ts';
import { registerEngineRoutes } from './engine-routes.ts';
import { PlaybookEngineService } from './playbook-engine-service.ts';
import { PlaybookCatalog } from './run/playbook-catalog.ts';
import { RunEngine } from './run-engine.ts';
import { repoRoot } from './repo-root.ts';
import { STEP_QUEUE } from './systems/steps-system.ts';
import { TIMER_QUEUE } from './systems/timers-system.ts';

/**
 * The playbook engine in the app: loads manifests/playbooks/ (and `REFLEX_PLAYBOOK_DIRS`),
 * registers the built-in actions (`http.request`, `intel.enrich`, `chat.notify`), runs the step
 * and timer workers where workers run, serves the run/approval API and the mobile approval page
 * where the API is served, and takes the pipeline's trigger seam.
 */
export const engineFeature: Feature = {
  name: 'engine',
  async register(ctx) {
    const log = ctx.logger.child({ component: 'engine' });
    const root = repoRoot();
    const scriptsDir = path.join(root, 'manifests', 'scripts');
    const catalog = await PlaybookCatalog.load([path.join(root, 'manifests', 'playbooks'), ...ctx.config.playbookDirs], scriptsDir);
    for (const { file, error } of catalog.errors) log.error({ file }, `playbook not loaded: ${error.message}`);

    if (!ACTION_REGISTRY.has('http.request')) ACTION_REGISTRY.register('http.request', createHttpRequestExecutor({ allowPrivateNetworks: ctx.config.httpAllowPrivate }));
    if (!ACTION_REGISTRY.has('intel.enrich')) {
      const lookup = createIntelLookup(ctx.store.vault, defaultIntelProviders({ virustotal: ctx.config.intel.virustotalUrl, abuseipdb: ctx.config.intel.abuseipdbUrl }));
      ACTION_REGISTRY.register('intel.enrich', createIntelEnrichExecutor(lookup));
    }
    if (!ACTION_REGISTRY.has('chat.notify')) ACTION_REGISTRY.register('chat.notify', createChatNotifyExecutor(() => ENGINE_PORTS.chat));

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
      concurrency: ctx.config.workerConcurrency,
    });
    const service = new PlaybookEngineService(engine);
    ctx.registerQueue(STEP_QUEUE);
    ctx.registerQueue(TIMER_QUEUE);
    ctx.seams.trigger = service;
    ENGINE_PORTS.engine = service;
    if (ctx.config.runWorkers) engine.startWorkers();
    if (ctx.role === 'all') {
      registerEngineRoutes(ctx.http, { service, apiToken: ctx.store.local.apiToken });
      registerApprovalPage(ctx.http, { db: ctx.store.db, gates: engine.gates, linkSecret });
      ctx.hint(`Playbooks    ${catalog.list().length} loaded${catalog.errors.length ? `, ${catalog.errors.length} refused (see the log)` : ''}; POST /api/v1/runs, GET /api/v1/approvals?status=pending`);
    }
    return async () => {
      await engine.close();
      if (ENGINE_PORTS.engine === service) ENGINE_PORTS.engine = undefined;
    };
  },
};
