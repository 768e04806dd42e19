import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../app/logger.ts';
import type { QueueSystem } from '../../app/queue.ts';
import { ReflexError } from '../../errors.ts';
import type { DeliveryReceipts } from '../delivery-receipts.ts';
import { CHAT_COMMANDS_QUEUE } from './slack-command-worker.ts';
import { toSlackCommandJob } from './slack-inbound.ts';
import { parseSlackRequest } from './slack-payloads.ts';
import { verifySlackSignature } from './signature.ts';

export const SLACK_EVENTS_PATH = '/slack/events';

// Slack's own payloads are a few KB; a modal submission with many blocks stays well under this.
const BODY_LIMIT = 1024 * 1024;

export interface SlackEventsRouteDeps {
  signingSecret: string;
  queues: QueueSystem;
  receipts: DeliveryReceipts;
  logger: Logger;
  isCommandReaction: (name: string) => boolean;
  now?: () => number;
}

/**
 * `POST /slack/events`: slash commands, interactivity and the Events API on one request URL, as
 * Bolt's HTTP receiver does. The route only translates: verify the signature on the raw bytes,
 * parse, drop a delivery already taken, queue the invocation, acknowledge. Slack hears back well
 * within its 3 seconds because nothing else happens here; the command runs in a
 * `chat.commands` job and answers through `response_url` or the Web API.
 *
 * The acknowledgement is sent only once the job is stored, so an acknowledged command is never
 * lost; if storing fails the delivery's receipt is given back, Slack gets a 5xx and (for events)
 * retries. The receipt is taken first, in one statement, so two copies of a delivery arriving at
 * once (a retry racing the original, a replayed request) queue one job.
 */
export async function registerSlackEventsRoute(http: FastifyInstance, deps: SlackEventsRouteDeps): Promise<void> {
  const now = deps.now ?? Date.now;
  await http.register(async (scope) => {
    // The signature covers the bytes as sent; keep them instead of letting Fastify parse them.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(['application/json', 'application/x-www-form-urlencoded'], { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) =>
      done(null, body),
    );
    scope.post(SLACK_EVENTS_PATH, { bodyLimit: BODY_LIMIT }, (req, reply) => handle(req, reply));
  });

  async function handle(req: FastifyRequest, reply: FastifyReply) {
    const rawBody = req.body;
    if (!Buffer.isBuffer(rawBody)) {
      throw new ReflexError('input.invalid', 'slack: empty body', { safeMessage: 'A Slack request has a body.' });
    }
    const check = verifySlackSignature({
      signingSecret: deps.signingSecret,
      rawBody,
      timestamp: header(req, 'x-slack-request-timestamp'),
      signature: header(req, 'x-slack-signature'),
      nowMs: now(),
    });
    if (!check.ok) {
      deps.logger.warn({ reason: check.reason, ip: req.ip }, 'slack request refused: signature check failed');
      throw new ReflexError('auth.unauthenticated', `slack signature: ${check.reason}`, {
        safeMessage: check.reason === 'stale_timestamp' ? 'The Slack request timestamp is outside the 5-minute window.' : 'The Slack request signature is not valid.',
      });
    }

    const request = parseSlackRequest(rawBody, req.headers['content-type']);
    if (request.kind === 'url_verification') return reply.send({ challenge: request.challenge });
    const job = toSlackCommandJob(request, new Date(now()), deps.isCommandReaction);
    if (!job) {
      deps.logger.debug({ what: request.kind === 'ignored' ? request.what : request.kind }, 'slack request ignored');
      return reply.status(200).send();
    }

    const retry = header(req, 'x-slack-retry-num');
    // jobId = delivery id: a copy that got past the receipt (released after a failure) is still one job.
    const queued = await deps.receipts.queueOnce(
      'slack',
      job.deliveryId,
      () =>
        deps.queues.add(CHAT_COMMANDS_QUEUE, `slack.${request.kind}`, job, {
          jobId: `slack-${job.deliveryId}`,
          attempts: 3,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: { age: 3600, count: 10_000 },
          removeOnFail: { count: 10_000 },
        }),
      (err) => deps.logger.error({ err, deliveryId: job.deliveryId }, 'slack delivery neither queued nor released; a retry of it will be taken for a repeat'),
    );
    if (!queued) {
      deps.logger.info({ deliveryId: job.deliveryId, retry: retry ?? null, reason: header(req, 'x-slack-retry-reason') ?? null }, 'slack delivery seen before; not run again');
      return reply.status(200).send();
    }
    if (retry) deps.logger.info({ deliveryId: job.deliveryId, retry }, 'slack retry of a delivery we never took; queued');

    if (request.kind === 'command') {
      return reply.send({ response_type: 'ephemeral', text: ':hourglass_flowing_sand: Working on it…' });
    }
    return reply.status(200).send();
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
