import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ReflexError } from '../../errors.ts';
import type { QueueSystem } from '../../app/queue.ts';
import { PIPELINE_QUEUES } from '../jobs.ts';
import type { NormalizerSource } from '../normalize/index.ts';
import { parseHookBody } from './hook-body.ts';
import type { IngestAuthenticator } from './ingest-credentials.ts';
import type { IngestWriter } from './ingest-writer.ts';

export interface HookRouteDeps {
  auth: IngestAuthenticator;
  writer: IngestWriter;
  queues: QueueSystem;
  maxBytes: number;
  highWater: number;
  now?: () => number;
}

const GENERIC_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * `POST /hooks/wazuh|cowrie|openvas|generic/:name`: authenticate, validate, store durably, 202.
 * Order matters: authentication first (an unauthenticated body is never parsed), then capacity,
 * then validation of the whole body, then the durable write.
 */
export function registerHookRoutes(app: FastifyInstance, deps: HookRouteDeps): void {
  const now = deps.now ?? Date.now;
  let depth = 0;
  let depthAt = 0;
  let depthRefresh: Promise<void> | undefined;
  async function overCapacity(): Promise<boolean> {
    if (Date.now() - depthAt > 500) {
      depthRefresh ??= deps.queues
        .depth(PIPELINE_QUEUES.normalize)
        .then((d) => {
          depth = d;
          depthAt = Date.now();
        })
        .finally(() => (depthRefresh = undefined));
      if (depthAt === 0) await depthRefresh;
    }
    return depth >= deps.highWater;
  }

  void app.register(async (scope) => {
    // Hooks need the raw bytes: HMAC is computed over them, and NDJSON/XML are not JSON.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBytes }, (_req, body, done) => done(null, body));

    async function handle(req: FastifyRequest, source: NormalizerSource, genericName?: string) {
      const body = (req.body as Buffer | undefined) ?? Buffer.alloc(0);
      const header = (name: string) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const tenantHint = (req.query as Record<string, string | undefined>).tenant;
      const tenantId = await deps.auth.authenticate({
        source: genericName ? `generic:${genericName}` : source,
        authorization: header('authorization'),
        signature: header('x-reflex-signature'),
        timestamp: header('x-reflex-timestamp'),
        tenantHint,
        body,
        nowMs: now(),
      });
      if (await overCapacity()) {
        throw new ReflexError('capacity.exceeded', `normalize queue depth ${depth} >= ${deps.highWater}`, {
          retryAfterMs: 5000,
          safeMessage: 'SENTreflex is catching up with a burst of alerts; retry after the time in Retry-After. Nothing from this request was stored.',
        });
      }
      const parsed = parseHookBody(source, header('content-type'), body, { tenantId, ...(genericName ? { genericName } : {}) });
      await deps.writer.submit({ tenantId, source, genericName, items: parsed.items, counts: parsed.counts, urgent: parsed.urgent });
      return { accepted: parsed.eventCount };
    }

    for (const source of ['wazuh', 'cowrie', 'openvas'] as const) {
      scope.post(`/hooks/${source}`, async (req, reply) => reply.status(202).send(await handle(req, source)));
    }
    scope.post('/hooks/generic/:name', async (req, reply) => {
      const name = (req.params as { name: string }).name;
      if (!GENERIC_NAME.test(name)) {
        throw new ReflexError('input.invalid', `bad generic hook name ${name}`, {
          safeMessage: 'Generic hook names are lower-case letters, digits, - and _ (at most 64).',
          details: { field: 'name' },
        });
      }
      return reply.status(202).send(await handle(req, 'generic', name));
    });
  });
}
