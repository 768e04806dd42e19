import type { FeatureContext } from '../../app/features.ts';
import { ReflexError } from '../../errors.ts';
import { isNowSev1 } from '../../store/incidents.ts';
import type { ChatWorkspacesTable } from '../../store/principals.ts';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import { ensureIncidentChannel, type IncidentChannelOutcome } from '../incident-channels/incident-channel.handler.ts';
import { INCIDENT_CHANNEL_JOB_OPTIONS, incidentChannelJob, incidentChannelJobId, type IncidentChannelJob } from '../incident-channels/incident-channel-job.ts';
import type { IncidentChannelPlatform } from '../incident-channels/incident-channel-platform.ts';
import type { SentchatStore } from './sentchat-store.ts';
import { SENTCHAT_ACTOR, type SentchatTransport } from './sentchat-transport.ts';

/**
 * The SEV1 channel steps in SENTchat, for one tenant. SENTchat holds every tenant's channels, and
 * `IncidentChannelPlatform.createChannel(name)` carries no tenant (a Slack bot token is one
 * workspace), so an instance is made per job, bound to the incident's tenant.
 *
 * Idempotent like Slack's: a channel of that name in the tenant is `name_taken`, and
 * `findChannelByName` hands it back for the handler to adopt.
 */
export class SentchatIncidentChannels implements IncidentChannelPlatform {
  readonly platform = 'sentchat' as const;

  constructor(
    private readonly transport: SentchatTransport,
    private readonly tenantId: string,
    private readonly fallbackTenant: string | undefined,
  ) {}

  private get store(): SentchatStore {
    return this.transport.store;
  }

  async createChannel(name: string): Promise<{ channelId: string; name: string } | 'name_taken'> {
    const { channel, created } = await this.store.ensureChannel({ tenantId: this.tenantId, name, kind: 'incident', actor: SENTCHAT_ACTOR });
    return created ? { channelId: channel.id, name: channel.name } : 'name_taken';
  }

  async findChannelByName(name: string): Promise<{ channelId: string; name: string } | undefined> {
    const c = await this.store.findChannel(this.tenantId, name);
    return c ? { channelId: c.id, name: c.name } : undefined;
  }

  /**
   * `userIds` are SENTchat user ids of realms that belong to the tenant (the handler chose them);
   * the same id in a realm of another tenant is someone else and is not added.
   */
  async invite(channelId: string, userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }> {
    const channel = await this.store.getChannel(channelId);
    if (!channel) throw new ReflexError('not_found', `no SENTchat channel ${channelId}`, { retryable: false });
    if (userIds.length === 0) return { skipped: [] };
    const db = this.store.db;
    const mapped = await db.withTables<{ chat_workspaces: ChatWorkspacesTable }>().selectFrom('chat_workspaces').select(['workspace', 'tenant_id']).where('platform', '=', 'sentchat').execute();
    const owner = new Map(mapped.map((m) => [m.workspace, m.tenant_id]));
    const inTenant = (workspace: string) => (owner.has(workspace) ? owner.get(workspace) === this.tenantId : this.fallbackTenant === this.tenantId);
    const rows = await db.selectFrom('chat_identities').select(['principal_id', 'workspace', 'user_id']).where('platform', '=', 'sentchat').where('user_id', 'in', [...userIds]).execute();
    const found = rows.filter((r) => inTenant(r.workspace));
    await this.store.addMembers(channel, found.map((r) => r.principal_id), SENTCHAT_ACTOR);
    return { skipped: userIds.filter((u) => !found.some((r) => r.user_id === u)).map((userId) => ({ userId, reason: 'unknown_user' })) };
  }

  async setTopic(channelId: string, topic: string): Promise<void> {
    await this.transport.setTopic(channelId, topic);
  }

  async post(channelId: string, message: ChatMessage): Promise<MessageRef> {
    return this.transport.post({ channelId }, message);
  }

  async pin(ref: MessageRef): Promise<void> {
    await this.transport.pin(ref);
  }

  async threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    return this.transport.threadReply(ref, message);
  }
}

/** SENTchat's own SEV1 queue: its platform is bound per job to the incident's tenant. */
export const SENTCHAT_INCIDENT_CHANNEL_QUEUE = 'sentchat.incident-channel';

/**
 * A SEV1 incident gets a SENTchat channel: the IncidentEvents listener enqueues (one job per
 * incident: BullMQ ignores an add whose id it holds), the worker runs the shared SEV1 handler
 * (`ensureIncidentChannel`: create or adopt, record, invite, topic, card, pin, ready) with a
 * `SentchatIncidentChannels` for the incident's tenant. The same steps as
 * `registerIncidentChannels`, on a queue of its own because that one's platforms are fixed at
 * registration and take no tenant. Returns how to unsubscribe.
 */
export function registerSentchatIncidentChannels(ctx: FeatureContext, deps: { transport: SentchatTransport; fallbackTenant: string | undefined }): () => void {
  const log = ctx.logger.child({ component: 'sentchat-incident-channel' });
  ctx.registerQueue(SENTCHAT_INCIDENT_CHANNEL_QUEUE);
  const off = ctx.seams.incidentEvents.on(async (event) => {
    if (!isNowSev1(event) || event.incident.status === 'closed') return;
    const job: IncidentChannelJob = { tenantId: event.incident.tenant_id, incidentId: event.incident.id };
    await ctx.queues.add(SENTCHAT_INCIDENT_CHANNEL_QUEUE, 'ensure', job, { ...INCIDENT_CHANNEL_JOB_OPTIONS, jobId: incidentChannelJobId(event.incident.id) });
  });
  if (ctx.config.runWorkers) {
    ctx.queues.createWorker<IncidentChannelJob, IncidentChannelOutcome[]>({
      name: SENTCHAT_INCIDENT_CHANNEL_QUEUE,
      concurrency: 2,
      processor: async (job) => {
        const data = incidentChannelJob.safeParse(job.data);
        if (!data.success) throw new ReflexError('input.invalid', `${SENTCHAT_INCIDENT_CHANNEL_QUEUE} job data invalid`, { retryable: false });
        const platform = new SentchatIncidentChannels(deps.transport, data.data.tenantId, deps.fallbackTenant);
        return ensureIncidentChannel(data.data, { db: ctx.store.db, platforms: [platform], ...(deps.fallbackTenant ? { fallbackTenant: deps.fallbackTenant } : {}) });
      },
      onDeadLetter: (info) => log.error({ jobId: info.jobId, error: info.error, attempts: info.attempts }, `SEV1 SENTchat channel failed; replay from ${SENTCHAT_INCIDENT_CHANNEL_QUEUE}.dlq`),
    });
  }
  return off;
}
