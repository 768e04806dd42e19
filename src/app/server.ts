import type { FastifyInstance } from 'fastify';
import { ReflexError } from '../errors.ts';
import { AuditSealer } from '../store/audit-log.ts';
import { pingDatabase } from '../store/database.ts';
import type { Config } from './config.ts';
import { FEATURES, type Feature, type FeatureContext } from './features.ts';
import { createHttpServer } from './http-server.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { QueueSystem, type QueueBackendConfig } from './queue.ts';
import { registerApiV1 } from './routes/api-v1.ts';
import { openStore, type StoreRuntime } from './runtime.ts';
import { WebhookNotifier } from '../pipeline/notifiers.ts';
import { NO_PLAYBOOKS } from '../pipeline/playbook-trigger.ts';
import { IncidentEvents } from '../store/incidents.ts';

export interface RunningServer {
  url: string;
  port: number;
  http: FastifyInstance;
  store: StoreRuntime;
  queues: QueueSystem;
  /** Lines for the start banner contributed by features (e.g. the sample-alert curl line). */
  hints: string[];
  close(): Promise<void>;
}

export function queueConfigFor(config: Config, databaseUrl: string): QueueBackendConfig {
  return config.queue.backend === 'redis'
    ? { backend: 'redis', url: config.queue.url, prefix: config.queue.prefix }
    : { backend: 'postgres', url: databaseUrl, schema: `${config.dbSchema}_queue` };
}

/**
 * Starts SENTreflex: store (embedded PostgreSQL when no DATABASE_URL), migrations, queues,
 * workers, HTTP. `role: 'worker'` serves only health and metrics.
 *
 * Close order is the reverse of need: stop accepting HTTP, close workers (they finish their
 * current job), close queues, close the pool, stop embedded PostgreSQL.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  role: 'all' | 'worker' = 'all',
  /** Which features to start; tests of one feature leave out the others' side effects. */
  features: readonly Feature[] = FEATURES,
): Promise<RunningServer> {
  const store = await openStore(config, logger, { migrate: true });
  const queueNames = new Set<string>();
  // The queue system reports job outcomes to the metrics, which read depths back from it.
  let queues: QueueSystem | undefined;
  const metrics = new Metrics({ queueNames: () => [...queueNames], counts: (q) => queues!.counts(q) });
  queues = new QueueSystem(queueConfigFor(config, store.databaseUrl), {
    completed: (q) => metrics.jobsCompleted.inc({ queue: q }),
    failed: (q) => metrics.jobsFailed.inc({ queue: q }),
    deadLettered: (q) => metrics.jobsDeadLettered.inc({ queue: q }),
    // A worker that cannot reach its backend otherwise stalls without a word. One line per queue
    // and message every 30 s at most: an outage must not turn into a log flood.
    error: (() => {
      const last = new Map<string, number>();
      return (q: string, err: Error) => {
        const key = `${q}\u0000${err.message}`;
        if (Date.now() - (last.get(key) ?? 0) < 30_000) return;
        last.set(key, Date.now());
        logger.error({ queue: q, err }, 'queue backend error');
      };
    })(),
  });
  const http = createHttpServer({
    logger,
    metrics,
    readiness: async () => {
      try {
        await pingDatabase(store.db);
      } catch (err) {
        throw new ReflexError('upstream.unavailable', `database: ${String(err)}`, { safeMessage: 'database unreachable' });
      }
      try {
        await queues.ping();
      } catch (err) {
        throw new ReflexError('upstream.unavailable', `queue: ${String(err)}`, { safeMessage: `queue backend (${queues.backend}) unreachable` });
      }
      return { database: 'ok', queue: 'ok' };
    },
  });
  // Links audit rows into the hash chain shortly after their writes commit.
  const sealer = new AuditSealer(store.db, (err) => logger.error({ err }, 'audit sealer failed')).start();
  const hints: string[] = [];
  const ctx: FeatureContext = {
    config,
    logger,
    http,
    store,
    queues,
    metrics,
    role,
    registerQueue: (name) => {
      queueNames.add(name);
      queueNames.add(`${name}.dlq`);
    },
    hint: (line) => hints.push(line),
    seams: {
      notifiers: [new WebhookNotifier()],
      trigger: NO_PLAYBOOKS,
      incidentEvents: new IncidentEvents((err, event) => logger.error({ err, event: event.type, incident: event.incident.id }, 'incident listener failed')),
    },
  };
  const closers: (() => Promise<void>)[] = [];
  try {
    if (role === 'all') registerApiV1(http, { db: store.db, apiToken: store.local.apiToken });
    const unknown = config.disabledFeatures.filter((n) => !FEATURES.some((f) => f.name === n));
    if (unknown.length) {
      throw new ReflexError('config.invalid', `REFLEX_DISABLED_FEATURES: unknown feature ${unknown.join(', ')}`, {
        safeMessage: `Invalid configuration: REFLEX_DISABLED_FEATURES names ${unknown.join(', ')}; features are ${FEATURES.map((f) => f.name).join(', ')}`,
      });
    }
    for (const feature of features.filter((f) => !config.disabledFeatures.includes(f.name))) {
      const close = await feature.register(ctx);
      if (close) closers.push(close);
    }
    await http.listen({ port: config.port, host: config.host });
  } catch (err) {
    await http.close().catch(() => undefined);
    await queues.close().catch(() => undefined);
    await sealer.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  const addr = http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  let closing: Promise<void> | undefined;
  return {
    url: config.publicUrl ?? `http://localhost:${port}`,
    port,
    http,
    store,
    queues,
    hints,
    close: () =>
      (closing ??= (async () => {
        await http.close();
        for (const c of closers.reverse()) await c().catch((err) => logger.error({ err }, 'feature close failed'));
        await queues.close();
        await sealer.close();
        await store.close();
      })()),
  };
}
