import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { ReflexError, toReflexError } from '../errors.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

export interface HttpServerDeps {
  logger: Logger;
  metrics: Metrics;
  /** Throws when the database or the queue backend is unreachable. */
  readiness: () => Promise<Record<string, 'ok'>>;
  bodyLimitBytes?: number;
}

/**
 * The HTTP edge: liveness, readiness, metrics and the error contract. Feature routes (API,
 * hooks, Slack, Teams, SENTchat) are registered onto the returned instance by the app.
 *
 * Every error leaves as `{ error: { code, message, details? } }` with the status of its code; the
 * internal message goes to the log, never to the client.
 */
export function createHttpServer(deps: HttpServerDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Per-request log lines would dominate at webhook rates; latency goes to /metrics instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes ?? 5 * 1024 * 1024,
    trustProxy: true,
    return503OnClosing: true,
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    deps.metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err, req, reply) => {
    let e: ReflexError;
    const fastifyErr = err as { statusCode?: number; code?: string; message: string };
    if (err instanceof ReflexError) e = err;
    else if (fastifyErr.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new ReflexError('input.too_large', fastifyErr.message, { safeMessage: 'The request body is larger than this endpoint accepts.' });
    } else if (fastifyErr.statusCode && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500) {
      e = new ReflexError('input.invalid', fastifyErr.message, { safeMessage: fastifyErr.message });
    } else e = toReflexError(err);
    if (e.httpStatus >= 500) req.log.error({ err, code: e.code }, e.message);
    else req.log.debug({ code: e.code }, e.message);
    if (e.retryAfterMs !== undefined) reply.header('Retry-After', String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))));
    return reply.status(e.httpStatus).send(e.toResponseBody());
  });

  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(new ReflexError('not_found', req.url, { safeMessage: `No route ${req.method} ${req.url.split('?')[0]}` }).toResponseBody());
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    try {
      return { status: 'ready', checks: await deps.readiness() };
    } catch (err) {
      deps.logger.warn({ err }, 'readiness check failed');
      return reply.status(503).send({ status: 'not ready', error: toReflexError(err).safeMessage });
    }
  });

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await deps.metrics.render();
    return reply.header('content-type', contentType).send(body);
  });

  return app;
}
