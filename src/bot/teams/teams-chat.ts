import type { TeamsConfig } from '../../app/config.ts';
import type { FeatureContext } from '../../app/features.ts';
import { DEFAULT_TENANT } from '../../app/runtime.ts';
import { ENGINE_PORTS } from '../../engine/engine-ports.ts';
import { ChatNotifier, registerChatNotifier } from '../../pipeline/chat-notifier.ts';
import { assertNever, ReflexError } from '../../errors.ts';
import { isNowSev1 } from '../../store/incidents.ts';
import { chatCommandDeps } from '../command-deps.ts';
import { DeliveryReceipts, startReceiptPruner } from '../delivery-receipts.ts';
import { ensureIncidentChannel, type IncidentChannelDeps, type IncidentChannelOutcome } from '../incident-channels/incident-channel.handler.ts';
import { INCIDENT_CHANNEL_JOB_OPTIONS, incidentChannelJob, incidentChannelJobId, type IncidentChannelJob } from '../incident-channels/incident-channel-job.ts';
import { registerIncidentChannels } from '../incident-channels/incident-channels.ts';
import type { IncidentChannelPlatform } from '../incident-channels/incident-channel-platform.ts';
import { TeamsIncidentChannels } from '../incident-channels/teams-incident-channels.ts';
import { TeamsIncidentGroupChats } from '../incident-channels/teams-incident-group-chats.ts';
import { BotFrameworkAuth } from './bot-framework-auth.ts';
import { startTeamsCommandWorker, TEAMS_COMMANDS_QUEUE } from './teams-command-worker.ts';
import { teamsEndpoints } from './teams-endpoints.ts';
import { TeamsGraph } from './teams-graph.ts';
import { TeamsGroupChats } from './teams-group-chats.ts';
import { registerTeamsMessagesRoute, TEAMS_MESSAGES_PATH } from './teams-messages-route.ts';
import { TEAMS_OUTBOX_QUEUE, TeamsOutbox } from './teams-outbox.ts';
import { TeamsTokens } from './teams-tokens.ts';
import { TeamsTransport } from './teams-transport.ts';

const RECEIPT_TTL_MS = 24 * 3600_000;
/** Teams' SEV1 queue when Slack's registration owns `chat.incident-channel`. */
export const TEAMS_INCIDENT_CHANNEL_QUEUE = 'chat.teams.incident-channel';

/**
 * The Microsoft Teams side of the chat bot: the messaging endpoint (API processes), the command
 * and outbox workers (worker processes), SEV1 rooms (`TEAMS_INCIDENT_MODE`: channels of
 * `TEAMS_INCIDENT_TEAM_ID`, or group chats). Loaded by
 * chatFeature only when the Teams app credentials are set, so the Teams SDK costs nothing
 * otherwise.
 *
 * In embedded mode a Teams tenant nobody mapped belongs to the `default` tenant; otherwise it must
 * be mapped with `reflex role workspace teams:<Entra tenant id> <tenant>`.
 */
export const teamsChat = {
  async register(ctx: FeatureContext, teams: TeamsConfig): Promise<() => Promise<void>> {
    const log = ctx.logger.child({ component: 'teams' });
    const endpoints = teamsEndpoints(teams);
    const tokens = new TeamsTokens({ tokenUrl: endpoints.tokenUrl, clientId: teams.clientId, clientSecret: teams.clientSecret });
    const graph = new TeamsGraph({ baseUrl: endpoints.graphUrl, tokens, scope: endpoints.graphScope });
    const transport = new TeamsTransport({
      tokens,
      botScope: endpoints.botScope,
      serviceUrl: endpoints.serviceUrl,
      clientId: teams.clientId,
      tenantId: teams.tenantId,
      graph,
      ...(teams.incidentTeamId ? { incidentTeamId: teams.incidentTeamId } : {}),
      logger: log,
    });
    const outbox = new TeamsOutbox(ctx.queues);
    const receipts = new DeliveryReceipts(ctx.store.db);
    ctx.registerQueue(TEAMS_COMMANDS_QUEUE);
    ctx.registerQueue(TEAMS_OUTBOX_QUEUE);
    const commands = chatCommandDeps(ctx, (err, c) => log.error({ err, command: c.command, tenant: c.tenantId }, 'teams command failed'));

    if (ctx.role === 'all') {
      const auth = new BotFrameworkAuth({ clientId: teams.clientId, openIdMetadataUrl: endpoints.openIdMetadataUrl, defaultIssuer: endpoints.tokenIssuer, logger: log });
      await registerTeamsMessagesRoute(ctx.http, { auth, queues: ctx.queues, receipts, db: ctx.store.db, commands, outbox, logger: log });
      ctx.hint(`Teams        messaging endpoint ${TEAMS_MESSAGES_PATH} (manifests/teams/manifest.json)`);
    }

    // Playbook steps post through Teams when it is the only chat platform besides SENTchat (Slack sets it first otherwise).
    ENGINE_PORTS.chat ??= transport;

    // Pipeline alerts go to the tenant's `notify.chat.teams` conversation, repeats into the thread.
    const stopNotifier = registerChatNotifier(ctx.seams.notifiers, new ChatNotifier(transport));

    let stopIncidentChannels = () => {};
    let rooms: IncidentChannelPlatform | undefined;
    switch (teams.incidentMode) {
      case 'channel':
        rooms = new TeamsIncidentChannels(transport);
        break;
      case 'groupchat':
        rooms = new TeamsIncidentGroupChats(transport, new TeamsGroupChats({ graph, manifestId: teams.clientId, ...(teams.appCatalogId ? { catalogId: teams.appCatalogId } : {}) }), log);
        break;
      case 'off':
        break;
      default:
        assertNever(teams.incidentMode);
    }
    if (rooms) {
      stopIncidentChannels = registerTeamsIncidentChannels(ctx, {
        db: ctx.store.db,
        platforms: [rooms],
        ...(ctx.config.mode === 'embedded' ? { fallbackTenant: DEFAULT_TENANT } : {}),
      });
    }
    if (ctx.role === 'all') {
      ctx.hint(`Teams        SEV1 rooms: ${teams.incidentMode === 'channel' ? 'channels of TEAMS_INCIDENT_TEAM_ID' : teams.incidentMode === 'groupchat' ? 'group chats (Graph)' : 'off'} (TEAMS_INCIDENT_MODE; docs/CHAT.md)`);
    }

    let stopPruner = () => {};
    if (ctx.config.runWorkers) {
      const concurrency = Math.min(ctx.config.workerConcurrency, 8);
      startTeamsCommandWorker(ctx.queues, { commands, outbox }, { concurrency });
      outbox.startWorker(transport, {
        concurrency,
        onDeadLetter: (info) => log.error({ jobId: info.jobId, op: info.name, error: info.error, attempts: info.attempts }, `teams message dead-lettered; replay from ${TEAMS_OUTBOX_QUEUE}.dlq`),
      });
      // Slack's pruner clears the same receipts table when Slack runs; this one covers Teams alone.
      if (!ctx.config.slack) {
        stopPruner = startReceiptPruner(receipts, RECEIPT_TTL_MS, (err) => log.warn({ err }, 'pruning chat delivery receipts failed'));
      }
    }
    return async () => {
      stopPruner();
      stopIncidentChannels();
      stopNotifier();
      if (ENGINE_PORTS.chat === transport) ENGINE_PORTS.chat = undefined;
    };
  },
};

/**
 * SEV1 channels on Teams. Alone, through `registerIncidentChannels`. With Slack, whose
 * registration owns `chat.incident-channel` with Slack's platform list (one job per incident,
 * taken by one worker), on a queue of its own running the same handler for Teams.
 */
function registerTeamsIncidentChannels(ctx: FeatureContext, deps: IncidentChannelDeps): () => void {
  if (!ctx.config.slack) return registerIncidentChannels(ctx, deps);
  const log = ctx.logger.child({ component: 'teams-incident-channel' });
  ctx.registerQueue(TEAMS_INCIDENT_CHANNEL_QUEUE);
  const off = ctx.seams.incidentEvents.on(async (event) => {
    if (!isNowSev1(event) || event.incident.status === 'closed') return;
    const job: IncidentChannelJob = { tenantId: event.incident.tenant_id, incidentId: event.incident.id };
    await ctx.queues.add(TEAMS_INCIDENT_CHANNEL_QUEUE, 'ensure', job, { ...INCIDENT_CHANNEL_JOB_OPTIONS, jobId: incidentChannelJobId(event.incident.id) });
  });
  if (ctx.config.runWorkers) {
    ctx.queues.createWorker<IncidentChannelJob, IncidentChannelOutcome[]>({
      name: TEAMS_INCIDENT_CHANNEL_QUEUE,
      concurrency: 2,
      processor: async (job) => {
        const data = incidentChannelJob.safeParse(job.data);
        if (!data.success) throw new ReflexError('input.invalid', `${TEAMS_INCIDENT_CHANNEL_QUEUE} job data invalid`, { retryable: false });
        return ensureIncidentChannel(data.data, deps);
      },
      onDeadLetter: (info) => log.error({ jobId: info.jobId, error: info.error, attempts: info.attempts }, `SEV1 Teams channel failed; replay from ${TEAMS_INCIDENT_CHANNEL_QUEUE}.dlq`),
    });
  }
  return off;
}
