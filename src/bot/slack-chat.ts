import type { FeatureContext } from '../app/features.ts';
import { DEFAULT_TENANT } from '../app/runtime.ts';
import { CommandRegistry } from '../commands/registry.ts';
import { ENGINE_PORTS } from '../engine/engine-ports.ts';
import { ChatNotifier, registerChatNotifier } from '../pipeline/chat-notifier.ts';
import { chatCommandDeps } from './command-deps.ts';
import { DeliveryReceipts, startReceiptPruner } from './delivery-receipts.ts';
import { registerIncidentChannels } from './incident-channels/incident-channels.ts';
import { SlackIncidentChannels } from './incident-channels/slack-incident-channels.ts';
import { CHAT_COMMANDS_QUEUE, startSlackCommandWorker } from './slack/slack-command-worker.ts';
import { registerSlackEventsRoute, SLACK_EVENTS_PATH } from './slack/slack-events-route.ts';
import { CHAT_OUTBOX_QUEUE, SlackOutbox } from './slack/slack-outbox.ts';
import { SlackTransport } from './slack/slack-transport.ts';

const RECEIPT_TTL_MS = 24 * 3600_000;

/**
 * The Slack side of the chat bot: Slack's request URL (API processes), the command and outbox
 * workers (worker processes), and the command dependencies they share. Loaded by chatFeature
 * only when SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN are set.
 *
 * In embedded mode a Slack workspace nobody mapped belongs to the `default` tenant (one machine,
 * one team); otherwise it must be mapped with `reflex role workspace`.
 */
export const slackChat = {
  async register(ctx: FeatureContext, slack: NonNullable<FeatureContext['config']['slack']>): Promise<() => Promise<void>> {
    const log = ctx.logger.child({ component: 'chat' });
    const registry = new CommandRegistry();
    const transport = new SlackTransport({ botToken: slack.botToken, apiUrl: slack.apiUrl, ...(slack.responseUrlBase ? { responseUrlBase: slack.responseUrlBase } : {}) });
    const outbox = new SlackOutbox(ctx.queues);
    const receipts = new DeliveryReceipts(ctx.store.db);
    ctx.registerQueue(CHAT_COMMANDS_QUEUE);
    ctx.registerQueue(CHAT_OUTBOX_QUEUE);

    const commands = chatCommandDeps(ctx, (err, c) => log.error({ err, command: c.command, tenant: c.tenantId }, 'chat command failed'));

    if (ctx.role === 'all') {
      await registerSlackEventsRoute(ctx.http, {
        signingSecret: slack.signingSecret,
        queues: ctx.queues,
        receipts,
        logger: log,
        isCommandReaction: (name) => registry.reaction(name) !== undefined,
      });
      ctx.hint(`Slack        request URL ${SLACK_EVENTS_PATH} (manifests/slack-app.yaml)`);
    }

    // Pipeline alerts go to the tenant's `notify.chat.slack` channel, repeats into the thread.
    const stopNotifier = registerChatNotifier(ctx.seams.notifiers, new ChatNotifier(transport));

    // Playbook steps (chat.notify, approval cards) post through the same Slack app.
    ENGINE_PORTS.chat = transport;

    // A SEV1 gets its own channel (src/bot/incident-channels/): the listener enqueues, a worker builds it.
    const stopIncidentChannels = registerIncidentChannels(ctx, {
      db: ctx.store.db,
      platforms: [new SlackIncidentChannels(transport, { botToken: slack.botToken, apiUrl: slack.apiUrl })],
      ...(ctx.config.mode === 'embedded' ? { fallbackTenant: DEFAULT_TENANT } : {}),
    });

    let stopPruner = () => {};
    if (ctx.config.runWorkers) {
      const concurrency = ctx.config.workerConcurrency;
      startSlackCommandWorker(
        ctx.queues,
        { commands, transport, outbox, onDirectFailure: (err) => log.warn({ err }, 'answering a Slack command directly failed; the outbox retries it') },
        { concurrency },
      );
      outbox.startWorker(transport, {
        concurrency,
        onDeadLetter: (info) => log.error({ jobId: info.jobId, op: info.name, error: info.error, attempts: info.attempts }, 'chat message dead-lettered; replay from chat.outbox.dlq'),
      });
      stopPruner = startReceiptPruner(receipts, RECEIPT_TTL_MS, (err) => log.warn({ err }, 'pruning chat delivery receipts failed'));
    }
    return async () => {
      stopPruner();
      stopIncidentChannels();
      stopNotifier();
      if (ENGINE_PORTS.chat === transport) ENGINE_PORTS.chat = undefined;
    };
  },
};
