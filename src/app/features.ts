import type { FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { QueueSystem } from './queue.ts';
import type { StoreRuntime } from './runtime.ts';
import { consoleFeature } from './routes/console-page.ts';
import type { Notifier } from '../pipeline/notifiers.ts';
import type { PlaybookTrigger } from '../pipeline/playbook-trigger.ts';
import type { IncidentEvents } from '../store/incidents.ts';

/**
 * What a feature (pipeline, bot, engine) gets at start. A feature registers its routes and
 * workers and returns how to close what it opened beyond the shared queues.
 */
export interface FeatureContext {
  config: Config;
  logger: Logger;
  http: FastifyInstance;
  store: StoreRuntime;
  queues: QueueSystem;
  metrics: Metrics;
  /** 'worker' processes serve only health/metrics; register no public routes there. */
  role: 'all' | 'worker';
  /** Makes a queue (and its DLQ) visible on /metrics. */
  registerQueue(name: string): void;
  /** Adds a line to the start banner. */
  hint(line: string): void;
  /**
   * Seams between features, per server: the pipeline notifies through `notifiers` (chat
   * transports add theirs) and hands new alerts to `trigger` (the playbook engine replaces it).
   * Read when a job runs, so registration order does not matter. `incidentEvents` is the one
   * IncidentEvents of this server: the pipeline and the chat commands emit on it, listeners (the
   * SEV1 incident channel) subscribe to it.
   */
  seams: { notifiers: Notifier[]; trigger: PlaybookTrigger; incidentEvents: IncidentEvents };
}

export interface Feature {
  name: string;
  register(ctx: FeatureContext): Promise<(() => Promise<void>) | void>;
}

/** A feature whose module is imported only when it starts (a disabled feature costs no memory). */
function lazyFeature(name: string, load: () => Promise<Feature>): Feature {
  return { name, register: async (ctx) => (await load()).register(ctx) };
}

/** Every feature, in start order. */
export const FEATURES: Feature[] = [
  consoleFeature,
  lazyFeature('pipeline', async () => (await import('../pipeline/pipeline-feature.ts')).pipelineFeature),
  lazyFeature('chat', async () => (await import('../bot/chat-feature.ts')).chatFeature),
  lazyFeature('engine', async () => (await import('../engine/engine-feature.ts')).engineFeature),
];
