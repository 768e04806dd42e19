import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { InboundInvocation } from '../../commands/dispatch.ts';
import type { ChatMessage, ChatUserRef } from '../chat-types.ts';

const account = z.looseObject({
  id: z.string().min(1).max(512),
  name: z.string().max(512).optional(),
  aadObjectId: z.string().max(128).optional(),
});

/**
 * The parts of a Bot Framework activity the bot reads (learn.microsoft.com/azure/bot-service/rest-api/
 * bot-framework-rest-connector-api-reference#activity-object). Everything else is kept but ignored:
 * Teams adds fields over time and the bot must not break on them.
 */
export const teamsActivity = z.looseObject({
  type: z.string().min(1).max(64),
  id: z.string().min(1).max(512).optional(),
  name: z.string().max(256).optional(),
  channelId: z.string().max(64).optional(),
  serviceUrl: z
    .string()
    .url()
    .refine((u) => new URL(u).protocol === 'https:', 'must be https')
    .optional(),
  from: account.optional(),
  recipient: account.optional(),
  conversation: z
    .looseObject({ id: z.string().min(1).max(1024), conversationType: z.string().max(64).optional(), tenantId: z.string().max(128).optional() })
    .optional(),
  text: z.string().max(28_000).optional(),
  value: z.unknown().optional(),
  replyToId: z.string().max(512).optional(),
  entities: z.array(z.unknown()).optional(),
  channelData: z
    .looseObject({
      tenant: z.looseObject({ id: z.string().max(128) }).optional(),
      channel: z.looseObject({ id: z.string().max(1024), name: z.string().max(512).optional() }).optional(),
      team: z.looseObject({ id: z.string().max(1024) }).optional(),
    })
    .optional(),
});
export type TeamsActivity = z.infer<typeof teamsActivity>;

/** Where the answer to a Teams invocation goes: the conversation it came from, on its connector. */
export interface TeamsReplyTarget {
  serviceUrl: string;
  conversationId: string;
  /** The user's message, so the answer is shown as a reply to it. */
  replyToId?: string;
}

/** A text command as it waits in the `chat.teams.commands` queue (JSON: dates as ISO strings). */
export interface TeamsCommandJob {
  deliveryId: string;
  inbound: Omit<InboundInvocation, 'receivedAt'> & { receivedAt: string };
  reply: TeamsReplyTarget;
  /** Set once dispatched, so a retried job answers without running the command again. */
  answer?: ChatMessage | null;
}

export type TeamsInbound =
  | { kind: 'command'; job: TeamsCommandJob }
  | { kind: 'action'; deliveryId: string; inbound: InboundInvocation; reply: TeamsReplyTarget }
  | { kind: 'ignored'; what: string };

const universalAction = z.object({
  action: z.looseObject({
    type: z.literal('Action.Execute'),
    verb: z.string().min(1).max(128),
    data: z.looseObject({ value: z.string().max(256).optional() }).optional(),
  }),
});

/**
 * Teams reuses an activity id across conversations (a channel message id is a timestamp), so the
 * delivery id is a digest of both; hex, as BullMQ job ids may not contain `:`.
 */
export function teamsDeliveryId(activity: Pick<TeamsActivity, 'id' | 'conversation'>): string | undefined {
  if (!activity.id || !activity.conversation) return undefined;
  return createHash('sha256').update(`${activity.conversation.id}\n${activity.id}`).digest('hex').slice(0, 40);
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&nbsp;': ' ' };

/**
 * The command a message carries: the bot's `<at>…</at>` mention removed, other mentions turned
 * into `@<id>` (what `role grant` takes), leftover HTML dropped, entities decoded, and a leading
 * `reflex` or `/reflex` removed, so `@SENTreflex enrich 1.2.3.4`, `reflex enrich 1.2.3.4` and, in
 * a personal chat, `enrich 1.2.3.4` are the same command.
 *
 * @example
 * commandText({ text: '<at>SENTreflex</at> enrich 198.51.100.7', entities: [...], recipient: { id: '28:bot' } }) // 'enrich 198.51.100.7'
 */
export function commandText(activity: Pick<TeamsActivity, 'text' | 'entities' | 'recipient'>): string {
  let text = activity.text ?? '';
  for (const e of activity.entities ?? []) {
    const m = mention(e);
    if (!m) continue;
    const isBot = activity.recipient !== undefined && m.id === activity.recipient.id;
    text = text.split(m.text).join(isBot ? ' ' : ` @${m.aadObjectId ?? m.id} `);
  }
  text = text
    .replace(/<at>[^<]*<\/at>/g, ' ')
    .replace(/<br\s*\/?>|<\/p>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&(amp|lt|gt|quot|#39|nbsp);/g, (m) => ENTITIES[m] ?? m);
  return text.trim().replace(/^\/?reflex\b[\s:,]*/i, '').trim();
}

function mention(e: unknown): { text: string; id: string; aadObjectId?: string } | undefined {
  const m = e as { type?: unknown; text?: unknown; mentioned?: { id?: unknown; aadObjectId?: unknown } };
  if (m?.type !== 'mention' || typeof m.text !== 'string' || !m.text || typeof m.mentioned?.id !== 'string') return undefined;
  return { text: m.text, id: m.mentioned.id, ...(typeof m.mentioned.aadObjectId === 'string' ? { aadObjectId: m.mentioned.aadObjectId } : {}) };
}

/**
 * A verified activity as something to run, or why not. Pure translation: no database, no calls.
 * The workspace is the user's Entra ID tenant (`channelData.tenant.id`); the user is their Entra
 * object id (`from.aadObjectId`), or the Bot Framework id when Teams sends none.
 */
export function toTeamsInbound(activity: TeamsActivity, now: Date): TeamsInbound {
  if (activity.channelId !== 'msteams') return { kind: 'ignored', what: `channel ${activity.channelId ?? 'none'}` };
  const workspace = activity.channelData?.tenant?.id ?? activity.conversation?.tenantId;
  const deliveryId = teamsDeliveryId(activity);
  const from = activity.from;
  const conversation = activity.conversation;
  if (!workspace || !deliveryId || !from || !conversation || !activity.serviceUrl) return { kind: 'ignored', what: `${activity.type} without tenant, id, sender or conversation` };
  const user: ChatUserRef = { platform: 'teams', workspace, userId: from.aadObjectId ?? from.id, ...(from.name ? { displayName: from.name } : {}) };
  const channel = { id: activity.channelData?.channel?.id ?? conversation.id, ...(activity.channelData?.channel?.name ? { name: activity.channelData.channel.name } : {}) };
  const receivedAt = now.toISOString();

  if (activity.type === 'message') {
    const text = commandText(activity);
    if (!text) return { kind: 'ignored', what: 'message without text' };
    const reply: TeamsReplyTarget = { serviceUrl: activity.serviceUrl, conversationId: conversation.id, ...(activity.id ? { replyToId: activity.id } : {}) };
    return {
      kind: 'command',
      job: {
        deliveryId,
        inbound: {
          platform: 'teams',
          user,
          channel,
          text,
          replyTo: { platform: 'teams', channelId: conversation.id, ...(activity.id ? { messageId: activity.id } : {}) },
          deliveryId,
          receivedAt,
        },
        reply,
      },
    };
  }

  if (activity.type === 'invoke' && activity.name === 'adaptiveCard/action') {
    const value = universalAction.safeParse(activity.value);
    if (!value.success) return { kind: 'ignored', what: 'adaptiveCard/action that is not an Action.Execute' };
    const messageRef = { platform: 'teams' as const, channelId: conversation.id, ...(activity.replyToId ? { messageId: activity.replyToId } : {}) };
    return {
      kind: 'action',
      deliveryId,
      inbound: {
        platform: 'teams',
        user,
        channel,
        action: { actionId: value.data.action.verb, value: value.data.action.data?.value ?? '', messageRef },
        replyTo: messageRef,
        deliveryId,
        receivedAt: now,
      },
      reply: { serviceUrl: activity.serviceUrl, conversationId: conversation.id, ...(activity.replyToId ? { replyToId: activity.replyToId } : {}) },
    };
  }

  return { kind: 'ignored', what: activity.type === 'invoke' ? `invoke ${activity.name ?? '(unnamed)'}` : activity.type };
}
