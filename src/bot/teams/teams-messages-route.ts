import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Logger } from '../../app/logger.ts';
import type { QueueSystem } from '../../app/queue.ts';
import type { CommandDeps } from '../../commands/command.ts';
import { dispatch, type DispatchResult } from '../../commands/dispatch.ts';
import { ReflexError } from '../../errors.ts';
import type { Database } from '../../store/schema.ts';
import type { DeliveryReceipts } from '../delivery-receipts.ts';
import { ADAPTIVE_CARD_CONTENT_TYPE, renderAdaptiveCard, teamsPlainText } from './adaptive-card.ts';
import type { BotFrameworkAuth } from './bot-framework-auth.ts';
import { teamsActivity, toTeamsInbound, type TeamsReplyTarget } from './teams-activity.ts';
import { TEAMS_COMMANDS_QUEUE } from './teams-command-worker.ts';
import type { TeamsOutbox } from './teams-outbox.ts';

/** The Bot Framework messaging endpoint (the Azure Bot's "Messaging endpoint"). */
export const TEAMS_MESSAGES_PATH = '/api/messages';

// Activities are a few KB; a message with pasted content or attachments stays well under this.
const BODY_LIMIT = 512 * 1024;

/** An `adaptiveCard/action` invoke response (fixtures/teams: HTTP 200, `{statusCode, type, value}`). */
export type UniversalActionResponse =
  | { statusCode: 200; type: typeof ADAPTIVE_CARD_CONTENT_TYPE; value: unknown }
  | { statusCode: 200; type: 'application/vnd.microsoft.activity.message'; value: string };

export interface TeamsMessagesRouteDeps {
  auth: BotFrameworkAuth;
  queues: QueueSystem;
  receipts: DeliveryReceipts;
  db: Kysely<Database>;
  commands: CommandDeps;
  outbox: TeamsOutbox;
  logger: Logger;
}

/**
 * `POST /api/messages`: what Teams sends the bot. The route translates: authenticate the Bot
 * Framework JWT (401 and nothing else otherwise), parse, drop a delivery already taken, then
 * - a message (`reflex enrich 1.2.3.4`, `@SENTreflex incident list`) is stored as a
 *   `chat.teams.commands` job and acknowledged at once; the answer goes out through the outbox;
 * - a card click (`invoke` `adaptiveCard/action`) is dispatched at once, because Teams shows what
 *   the invoke response says: the card replaced in place by the answer, or, for an answer meant
 *   for the clicker alone (a refusal, an error), a message only they see, leaving the card as it
 *   was. An answer for the clicker that is a whole card (a timeline) is posted in the conversation.
 * Roles are checked by `dispatch`, for whoever clicked or typed, as for every transport.
 */
export async function registerTeamsMessagesRoute(http: FastifyInstance, deps: TeamsMessagesRouteDeps): Promise<void> {
  await http.register(async (scope) => {
    scope.post(TEAMS_MESSAGES_PATH, { bodyLimit: BODY_LIMIT }, (req, reply) => handle(req, reply));
  });

  async function handle(req: FastifyRequest, reply: FastifyReply) {
    const body = req.body as { serviceUrl?: unknown } | undefined;
    const serviceUrl = typeof body?.serviceUrl === 'string' ? body.serviceUrl : undefined;
    const check = await deps.auth.verify(header(req, 'authorization'), serviceUrl);
    if (!check.ok) {
      deps.logger.warn({ reason: check.reason, ip: req.ip }, 'teams request refused: Bot Framework token check failed');
      throw new ReflexError('auth.unauthenticated', `teams token: ${check.reason}`, { safeMessage: 'The Bot Framework token is missing or not valid.' });
    }
    const parsed = teamsActivity.safeParse(req.body);
    if (!parsed.success) {
      throw new ReflexError('input.invalid', `teams activity: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { safeMessage: 'That is not a Bot Framework activity SENTreflex understands.' });
    }
    const inbound = toTeamsInbound(parsed.data, new Date());
    switch (inbound.kind) {
      case 'ignored':
        deps.logger.debug({ what: inbound.what }, 'teams activity ignored');
        return reply.status(200).send();
      case 'command': {
        const { job } = inbound;
        // jobId = delivery id: a redelivery that got past a released receipt is still one job.
        const queued = await deps.receipts.queueOnce('teams', job.deliveryId, () =>
          deps.queues.add(TEAMS_COMMANDS_QUEUE, 'teams.message', job, {
            jobId: `teams-${job.deliveryId}`,
            attempts: 3,
            backoff: { type: 'exponential', delay: 1000 },
            removeOnComplete: { age: 3600, count: 10_000 },
            removeOnFail: { count: 10_000 },
          }),
        );
        if (!queued) deps.logger.info({ deliveryId: job.deliveryId }, 'teams delivery seen before; not run again');
        return reply.status(200).send();
      }
      case 'action': {
        if (!(await deps.receipts.claim('teams', inbound.deliveryId))) {
          deps.logger.info({ deliveryId: inbound.deliveryId }, 'teams card click seen before; not run again');
          return reply.send(messageResponse('That click was already handled.'));
        }
        let result: DispatchResult;
        try {
          result = await dispatch(inbound.inbound, deps.commands);
        } catch (err) {
          await deps.receipts.release('teams', inbound.deliveryId).catch(() => undefined);
          throw err;
        }
        return reply.send(await invokeAnswer(result, inbound.reply, inbound.deliveryId, deps.outbox));
      }
    }
  }
}

/** What Teams shows after a click: see registerTeamsMessagesRoute. */
export async function invokeAnswer(result: DispatchResult, replyTo: TeamsReplyTarget, deliveryId: string, outbox: TeamsOutbox): Promise<UniversalActionResponse> {
  const message = result.message;
  if (!message) return messageResponse('Done.');
  if (result.outcome !== 'ok') return messageResponse(teamsPlainText(message.text));
  if (!message.ephemeral) return { statusCode: 200, type: ADAPTIVE_CARD_CONTENT_TYPE, value: renderAdaptiveCard(message) };
  await outbox.enqueue(
    { platform: 'teams', op: 'send', serviceUrl: replyTo.serviceUrl, conversationId: replyTo.conversationId, ...(replyTo.replyToId ? { replyToId: replyTo.replyToId } : {}), message },
    `teams-${deliveryId}-reply`,
  );
  return messageResponse('Answered in the conversation.');
}

function messageResponse(text: string): UniversalActionResponse {
  return { statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: text.slice(0, 1000) };
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
