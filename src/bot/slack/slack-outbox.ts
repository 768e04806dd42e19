import type { Job, JobsOptions } from 'bullmq';
import { ReflexError } from '../../errors.ts';
import type { DeadLetterInfo, QueueSystem } from '../../app/queue.ts';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import type { SlackResponseBody, SlackTransport } from './slack-transport.ts';

/** Outgoing chat is a queue (DESIGN.md §3.5): a Slack outage delays messages, it loses none. */
export const CHAT_OUTBOX_QUEUE = 'chat.outbox';

export type SlackOutboxJob =
  | { platform: 'slack'; op: 'respond'; responseUrl: string; body: SlackResponseBody }
  | { platform: 'slack'; op: 'post'; channelId: string; threadTs?: string; message: ChatMessage }
  | { platform: 'slack'; op: 'ephemeral'; channelId: string; userId: string; threadTs?: string; message: ChatMessage }
  | { platform: 'slack'; op: 'update'; channelId: string; ts: string; message: ChatMessage };

const MAX_BACKOFF_MS = 10 * 60_000;

/**
 * BullMQ backoff for the outbox: exactly the wait Slack asked for (`Retry-After`, carried on the
 * ReflexError as `retryAfterMs`), else exponential from 1 s, capped at 10 min. With 20 attempts a
 * message survives roughly two and a half hours of Slack being down before it is dead-lettered.
 */
export function outboxBackoff(attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof ReflexError && err.retryAfterMs !== undefined) return err.retryAfterMs;
  return Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, attemptsMade - 1));
}

export const OUTBOX_JOB_OPTIONS: JobsOptions = {
  attempts: 20,
  backoff: { type: 'retry-after' },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { count: 10_000 },
};

/**
 * Puts Slack messages on the outbox. `key` makes an enqueue idempotent (the same key twice is
 * one message), so a retried job that replies does not reply twice.
 *
 * @example
 * await outbox.enqueue({ platform: 'slack', op: 'post', channelId: 'C1', message: { text: 'hi' } }, `reply-${deliveryId}`);
 */
export class SlackOutbox {
  constructor(private readonly queues: QueueSystem) {}

  async enqueue(job: SlackOutboxJob, key?: string, opts: { delayMs?: number } = {}): Promise<void> {
    await this.queues.add(CHAT_OUTBOX_QUEUE, `slack.${job.op}`, job, {
      ...OUTBOX_JOB_OPTIONS,
      ...(key ? { jobId: key } : {}),
      ...(opts.delayMs ? { delay: opts.delayMs } : {}),
    });
  }

  /** Runs the outbox worker in this process. */
  startWorker(transport: SlackTransport, opts: { concurrency: number; onDeadLetter?: (info: DeadLetterInfo) => void | Promise<void> }): void {
    this.queues.createWorker<SlackOutboxJob, MessageRef | null>({
      name: CHAT_OUTBOX_QUEUE,
      concurrency: opts.concurrency,
      processor: (job) => deliverSlack(transport, job),
      options: { settings: { backoffStrategy: outboxBackoff } },
      ...(opts.onDeadLetter ? { onDeadLetter: opts.onDeadLetter } : {}),
    });
  }
}

/** One outbox job, one Slack call. */
export async function deliverSlack(transport: SlackTransport, job: Pick<Job<SlackOutboxJob>, 'data'>): Promise<MessageRef | null> {
  const d = job.data;
  switch (d.op) {
    case 'respond':
      await transport.respond(d.responseUrl, d.body);
      return null;
    case 'post':
      return d.threadTs
        ? transport.threadReply({ platform: 'slack', channelId: d.channelId, messageId: d.threadTs }, d.message)
        : transport.post({ channelId: d.channelId }, d.message);
    case 'ephemeral':
      await transport.postEphemeral({ channelId: d.channelId, userId: d.userId, ...(d.threadTs ? { threadTs: d.threadTs } : {}) }, d.message);
      return null;
    case 'update':
      await transport.update({ platform: 'slack', channelId: d.channelId, messageId: d.ts }, d.message);
      return { platform: 'slack', channelId: d.channelId, messageId: d.ts };
    default: {
      const unknown: never = d;
      throw new ReflexError('input.invalid', `unknown outbox op ${JSON.stringify(unknown)}`, { retryable: false });
    }
  }
}
