import type { Job } from 'bullmq';
import { z } from 'zod';
import type { QueueSystem } from '../../app/queue.ts';
import type { CommandDeps } from '../../commands/command.ts';
import { dispatch, type DispatchOutcome, type InboundInvocation } from '../../commands/dispatch.ts';
import { ReflexError } from '../../errors.ts';
import type { ChatMessage } from '../chat-types.ts';
import type { SentchatStore } from './sentchat-store.ts';

/**
 * SENTchat commands and button clicks, run by workers: the HTTP request stores the user's message
 * (or checks the click) and queues one of these, so the browser hears back at once and the answer
 * arrives over the WebSocket. Same shape as Slack's `chat.commands`: the answer is stored on the
 * job before it is delivered, so a retry delivers, it does not run the command twice.
 *
 * Where the answer goes:
 * - a typed command: into the channel, or only to its author when the command answers ephemerally;
 * - a click answered for everyone (`incident close`): the clicked card is replaced in place,
 *   unless someone changed it since the click (an approval card the decision already re-rendered),
 *   then the answer goes into the card's thread;
 * - a click answered for the clicker only (a refusal, `timeline`): in the card's thread, to them.
 */
export const SENTCHAT_COMMANDS_QUEUE = 'sentchat.commands';

export const sentchatCommandJob = z.object({
  kind: z.enum(['text', 'click']),
  deliveryId: z.string().min(1).max(100),
  user: z.object({ workspace: z.string().min(1).max(128), userId: z.string().min(1).max(128), displayName: z.string().max(200) }),
  principalId: z.uuid(),
  tenantId: z.string().min(1).max(63),
  channel: z.object({ id: z.uuid(), name: z.string().max(80) }),
  /** The user's message (text) or the clicked card (click). */
  messageId: z.uuid(),
  text: z.string().max(4000).optional(),
  action: z.object({ actionId: z.string().min(1).max(100), value: z.string().max(2000) }).optional(),
  /** The card's version when clicked. */
  cardVersion: z.number().int().min(1).optional(),
  receivedAt: z.iso.datetime(),
  answer: z.custom<ChatMessage | null>().optional(),
  outcome: z.enum(['ok', 'refused', 'invalid', 'failed', 'ignored']).optional(),
  delivered: z.boolean().optional(),
});
export type SentchatCommandJob = z.infer<typeof sentchatCommandJob>;

export function inboundOf(job: SentchatCommandJob): InboundInvocation {
  const messageRef = { platform: 'sentchat' as const, channelId: job.channel.id, messageId: job.messageId };
  return {
    platform: 'sentchat',
    user: { platform: 'sentchat', workspace: job.user.workspace, userId: job.user.userId, displayName: job.user.displayName },
    channel: { id: job.channel.id, name: job.channel.name },
    ...(job.kind === 'text' ? { text: job.text ?? '' } : {}),
    ...(job.kind === 'click' && job.action ? { action: { ...job.action, messageRef } } : {}),
    replyTo: messageRef,
    deliveryId: job.deliveryId,
    receivedAt: new Date(job.receivedAt),
  };
}

export async function runSentchatCommand(job: Job<SentchatCommandJob>, deps: { commands: CommandDeps; store: SentchatStore }): Promise<string> {
  const parsed = sentchatCommandJob.safeParse(job.data);
  if (!parsed.success) throw new ReflexError('input.invalid', `${SENTCHAT_COMMANDS_QUEUE} job data invalid`, { retryable: false });
  let data = parsed.data;
  if (data.answer === undefined) {
    const result = await dispatch(inboundOf(data), deps.commands);
    data = { ...data, answer: result.message, outcome: result.outcome };
    await job.updateData(data);
  }
  if (data.delivered) return 'delivered';
  const answer = data.answer ?? null;
  if (!answer) return 'silent';
  const outcome: DispatchOutcome = data.outcome ?? 'ok';
  const store = deps.store;
  const dedupeKey = `answer:${data.deliveryId}`;
  const forClicker = answer.ephemeral === true || outcome !== 'ok';
  let where: string;
  if (data.kind === 'click' && !forClicker) {
    const clicked = await store.getMessage(data.messageId);
    const replaced = clicked ? await store.updateMessage(clicked.id, withClickNote(answer, clicked.card, data), { expectVersion: data.cardVersion ?? clicked.version }) : undefined;
    if (replaced) where = 'card updated';
    else {
      await store.postMessage({ tenantId: data.tenantId, channelId: data.channel.id, threadParentId: data.messageId, author: { kind: 'bot' }, text: answer.text, card: answer, dedupeKey, ...(clicked?.visible_to ? { visibleTo: clicked.visible_to } : {}) });
      where = 'thread';
    }
  } else {
    await store.postMessage({
      tenantId: data.tenantId,
      channelId: data.channel.id,
      ...(data.kind === 'click' ? { threadParentId: data.messageId } : {}),
      author: { kind: 'bot' },
      text: answer.text,
      card: answer,
      dedupeKey,
      ...(forClicker ? { visibleTo: data.principalId } : {}),
    });
    where = forClicker ? 'ephemeral' : 'channel';
  }
  await job.updateData({ ...data, delivered: true });
  return where;
}

/** The replaced card keeps a line saying who clicked what on it, so the channel still reads as a record. */
function withClickNote(answer: ChatMessage, card: unknown, data: SentchatCommandJob): ChatMessage {
  const c = (card ?? {}) as Partial<ChatMessage>;
  const label = c.buttons?.find((b) => b.actionId === data.action?.actionId && b.value === data.action?.value)?.label ?? data.action?.actionId ?? 'a button';
  const on = c.title ?? c.text?.split('\n')[0] ?? '';
  return { ...answer, context: [...(answer.context ?? []), `${data.user.displayName} clicked ${label}${on ? ` on: ${on.slice(0, 120)}` : ''}`] };
}

export function startSentchatCommandWorker(queues: QueueSystem, deps: { commands: CommandDeps; store: SentchatStore }, opts: { concurrency: number }): void {
  queues.createWorker<SentchatCommandJob, string>({
    name: SENTCHAT_COMMANDS_QUEUE,
    concurrency: opts.concurrency,
    processor: (job) => runSentchatCommand(job, deps),
  });
}
