import type { Kysely } from 'kysely';
import { formatTime, severityLabel } from '../../commands/format.ts';
import { ReflexError } from '../../errors.ts';
import type { EnrichmentRecord } from '../../pipeline/stages/enrich-stage.ts';
import type { SentinelEvent } from '../../pipeline/event.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline, getIncident, getIncidentChannel, recordIncidentChannel, shortIncidentId } from '../../store/incidents.ts';
import { chatIdentitySchema, type ChatWorkspacesTable } from '../../store/principals.ts';
import type { Database, Incident } from '../../store/schema.ts';
import type { ChatPlatform, MessageRef } from '../chat-types.ts';
import { incidentChannelName } from './channel-name.ts';
import type { IncidentChannelJob } from './incident-channel-job.ts';
import type { IncidentChannelPlatform } from './incident-channel-platform.ts';
import { incidentSummaryCard } from './summary-card.ts';

/** Who the channel's timeline entries and audit rows name. */
export const INCIDENT_CHANNEL_ACTOR = 'incident-channel';
/** Roles the channel invites: those who act on a SEV1 (responders) and decide on it (approvers). */
const INVITED_ROLES = ['responder', 'approver'] as const;
/** `name_taken` by a channel we cannot see or that is archived: try `-2` … `-9`, then give up. */
const MAX_NAME_SUFFIX = 9;

export interface IncidentChannelDeps {
  db: Kysely<Database>;
  /** The configured chat platforms, Slack first. */
  platforms: readonly IncidentChannelPlatform[];
  /** Embedded mode: the tenant of chat workspaces nobody mapped (`DEFAULT_TENANT`). */
  fallbackTenant?: string;
}

export type IncidentChannelOutcome =
  | { platform: ChatPlatform; status: 'skipped'; reason: 'no_longer_sev1' | 'closed' }
  | { platform: ChatPlatform; status: 'ready'; channelId: string; name: string; created: boolean; cardTs: string | undefined; invited: number; skipped: { userId: string; reason: string }[]; linkedThreads: number }
  | { platform: ChatPlatform; status: 'already_ready'; channelId: string };

/**
 * Gives a SEV1 incident its channel on every configured platform: create (or, on `name_taken`,
 * adopt the live channel of that name, else add a suffix), record it in incident_channels, invite
 * the tenant's responders and approvers and the reporter, set the topic, post and pin the summary
 * card, link the channel from the alert threads, then mark it ready on the timeline and audit it.
 *
 * Each step is safe to repeat: the channel is recorded before anything else happens in it, so a
 * retry continues in it instead of creating a second; the card's ts is recorded on the timeline
 * before it is pinned, so a retry pins that card instead of posting another; invites and pins
 * treat "already" as done. A crash between Slack accepting the card and the timeline write posts
 * it again on retry (Slack has no idempotency key), as in the outbox.
 */
export async function ensureIncidentChannel(job: IncidentChannelJob, deps: IncidentChannelDeps): Promise<IncidentChannelOutcome[]> {
  const incident = await getIncident(deps.db, job.tenantId, job.incidentId);
  if (!incident) throw new ReflexError('not_found', `no incident ${job.incidentId} in ${job.tenantId}`, { retryable: false });
  const outcomes: IncidentChannelOutcome[] = [];
  for (const platform of deps.platforms) outcomes.push(await ensureOn(platform, incident, deps));
  return outcomes;
}

async function ensureOn(p: IncidentChannelPlatform, incident: Incident, deps: IncidentChannelDeps): Promise<IncidentChannelOutcome> {
  const { db } = deps;
  let channel = await getIncidentChannel(db, incident.id, p.platform);
  let created = false;
  // Known before the room is made: a platform whose rooms take their members at creation (Teams group chats) needs them.
  const users = await invitees(db, incident, p.platform, deps.fallbackTenant);
  if (!channel) {
    // The job may run after the incident was lowered or closed: then nobody needs the room any more.
    if (incident.status === 'closed') return { platform: p.platform, status: 'skipped', reason: 'closed' };
    if (incident.severity !== 1) return { platform: p.platform, status: 'skipped', reason: 'no_longer_sev1' };
    const made = await createOrAdopt(p, incident, users);
    const rec = await recordIncidentChannel(db, {
      tenantId: incident.tenant_id,
      incidentId: incident.id,
      platform: p.platform,
      channelId: made.channelId,
      name: made.name,
      actor: INCIDENT_CHANNEL_ACTOR,
    });
    channel = rec.channel;
    created = rec.created;
  }
  const channelId = channel.channel_id;
  const progress = await readProgress(db, incident, p.platform);
  if (progress.ready) return { platform: p.platform, status: 'already_ready', channelId };

  const { skipped } = await p.invite(channelId, users);
  await p.setTopic(channelId, topicOf(incident));

  let card: MessageRef | undefined = progress.cardTs ? { platform: p.platform, channelId, messageId: progress.cardTs } : undefined;
  if (!card) {
    card = await p.post(channelId, incidentSummaryCard(incident, await cardAlerts(db, incident)));
    await auditedWrite(db, INCIDENT_CHANNEL_ACTOR, async (trx, audit) => {
      await appendTimeline(trx, {
        tenantId: incident.tenant_id,
        incidentId: incident.id,
        kind: 'incident.channel.card',
        actor: INCIDENT_CHANNEL_ACTOR,
        text: `Summary card posted in #${channel.name}`,
        data: { platform: p.platform, channelId, messageId: card!.messageId ?? null },
      });
      audit({ tenantId: incident.tenant_id, action: 'incident.channel.card', target: `incident:${incident.id}`, delta: { platform: p.platform, channelId, messageId: card!.messageId ?? null } });
    });
  }
  if (card.messageId) await p.pin(card);

  const threads = await alertThreads(db, incident, p.platform);
  for (const thread of threads) {
    await p.threadReply(thread, { text: `:rotating_light: ${severityLabel(incident.severity)} incident ${shortIncidentId(incident.id)} has its own channel: #${channel.name}` });
  }

  await auditedWrite(db, INCIDENT_CHANNEL_ACTOR, async (trx, audit) => {
    await appendTimeline(trx, {
      tenantId: incident.tenant_id,
      incidentId: incident.id,
      kind: 'incident.channel.ready',
      actor: INCIDENT_CHANNEL_ACTOR,
      text: `#${channel.name} is ready: ${users.length - skipped.length} responder(s) invited, summary card pinned`,
      data: { platform: p.platform, channelId, invited: users.filter((u) => !skipped.some((s) => s.userId === u)), skipped, cardTs: card.messageId ?? null, linkedThreads: threads.length },
    });
    audit({
      tenantId: incident.tenant_id,
      action: 'incident.channel.ready',
      target: `incident:${incident.id}`,
      delta: { platform: p.platform, channelId, name: channel.name, invited: users.length - skipped.length, skipped, cardTs: card.messageId ?? null, linkedThreads: threads.length },
    });
  });
  return { platform: p.platform, status: 'ready', channelId, name: channel.name, created, cardTs: card.messageId, invited: users.length - skipped.length, skipped, linkedThreads: threads.length };
}

/**
 * `name_taken` with our name (it holds the incident's short id) almost always means an earlier
 * attempt created the channel and died before recording it: adopt the live channel of that name.
 * A name we cannot see (archived, or private without us) gets a suffix instead.
 */
async function createOrAdopt(p: IncidentChannelPlatform, incident: Incident, members: readonly string[]): Promise<{ channelId: string; name: string }> {
  for (let suffix = 1; suffix <= MAX_NAME_SUFFIX; suffix++) {
    const name = incidentChannelName(incident, suffix);
    const made = await p.createChannel(name, { members });
    if (made !== 'name_taken') return made;
    // A lookup Slack refuses for good (e.g. missing_scope without channels:read) falls back to the suffix.
    const existing = await p.findChannelByName(name).catch((err: unknown) => {
      if (err instanceof ReflexError && !err.retryable) return undefined;
      throw err;
    });
    if (existing) return existing;
  }
  throw new ReflexError('conflict', `every channel name for incident ${incident.id} is taken`, {
    retryable: false,
    safeMessage: `No free channel name for incident ${shortIncidentId(incident.id)}.`,
  });
}

/** What earlier attempts got done, from the timeline (the one record that survives a crash). */
async function readProgress(db: Kysely<Database>, incident: Incident, platform: ChatPlatform): Promise<{ cardTs?: string; ready: boolean }> {
  const rows = await db
    .selectFrom('timeline_entries')
    .select(['kind', 'data'])
    .where('tenant_id', '=', incident.tenant_id)
    .where('incident_id', '=', incident.id)
    .where('kind', 'in', ['incident.channel.card', 'incident.channel.ready'])
    .orderBy('id')
    .execute();
  let cardTs: string | undefined;
  let ready = false;
  for (const r of rows) {
    const data = (r.data ?? {}) as { platform?: string; messageId?: string | null };
    if (data.platform !== platform) continue;
    if (r.kind === 'incident.channel.card' && data.messageId) cardTs = data.messageId;
    if (r.kind === 'incident.channel.ready') ready = true;
  }
  return { ...(cardTs ? { cardTs } : {}), ready };
}

/**
 * Platform user ids to invite: the tenant's responders and approvers, and the reporter when a
 * chat user of this platform opened the incident. Only identities in a workspace that belongs to
 * the tenant count (the bot's token is for the tenant's workspace; another workspace's user id
 * would mean nothing there).
 */
async function invitees(db: Kysely<Database>, incident: Incident, platform: ChatPlatform, fallbackTenant: string | undefined): Promise<string[]> {
  const tenantId = incident.tenant_id;
  const mapped = await db
    .withTables<{ chat_workspaces: ChatWorkspacesTable }>()
    .selectFrom('chat_workspaces')
    .select(['workspace', 'tenant_id'])
    .where('platform', '=', platform)
    .execute();
  const owner = new Map(mapped.map((m) => [m.workspace, m.tenant_id]));
  const inTenant = (workspace: string) => (owner.has(workspace) ? owner.get(workspace) === tenantId : fallbackTenant === tenantId);
  const rows = await db
    .selectFrom('principal_roles as pr')
    .innerJoin('chat_identities as ci', 'ci.principal_id', 'pr.principal_id')
    .select(['ci.workspace', 'ci.user_id'])
    .distinct()
    .where('pr.tenant_id', '=', tenantId)
    .where('pr.role', 'in', [...INVITED_ROLES])
    .where('ci.platform', '=', platform)
    .orderBy('ci.user_id')
    .execute();
  const users = rows.filter((r) => inTenant(r.workspace)).map((r) => r.user_id);
  const reporter = chatIdentitySchema.safeParse(incident.created_by);
  if (reporter.success && reporter.data.platform === platform && inTenant(reporter.data.workspace)) users.push(reporter.data.userId);
  return [...new Set(users)];
}

function topicOf(incident: Incident): string {
  return `${severityLabel(incident.severity)} · ${incident.title} · incident ${shortIncidentId(incident.id)} · opened ${formatTime(incident.created_at)}`;
}

async function cardAlerts(db: Kysely<Database>, incident: Incident): Promise<{ event: SentinelEvent; enrichment: EnrichmentRecord | null }[]> {
  const rows = await db
    .selectFrom('alerts')
    .select(['event', 'enrichment'])
    .where('tenant_id', '=', incident.tenant_id)
    .where('incident_id', '=', incident.id)
    .orderBy('first_seen')
    .limit(50)
    .execute();
  return rows.map((r) => ({ event: r.event as SentinelEvent, enrichment: (r.enrichment ?? null) as EnrichmentRecord | null }));
}

/**
 * The first messages the notify stage posted on this platform about the incident's alerts (their
 * thread refs are kept in notification_throttle), so those threads can point at the new channel.
 */
async function alertThreads(db: Kysely<Database>, incident: Incident, platform: ChatPlatform): Promise<MessageRef[]> {
  const rows = await db
    .selectFrom('notification_throttle as nt')
    .innerJoin('alerts as a', (j) => j.onRef('a.tenant_id', '=', 'nt.tenant_id').onRef('a.fingerprint', '=', 'nt.fingerprint'))
    .select('nt.thread_ref')
    .where('a.tenant_id', '=', incident.tenant_id)
    .where('a.incident_id', '=', incident.id)
    .execute();
  const refs = new Map<string, MessageRef>();
  for (const r of rows) {
    const ref = r.thread_ref as Partial<MessageRef> | null;
    if (ref && ref.platform === platform && typeof ref.channelId === 'string' && typeof ref.messageId === 'string') {
      refs.set(`${ref.channelId}:${ref.messageId}`, { platform, channelId: ref.channelId, messageId: ref.messageId });
    }
  }
  return [...refs.values()];
}
