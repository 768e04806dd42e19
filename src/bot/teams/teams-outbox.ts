import type { Job } from 'bullmq';
import type { DeadLetterInfo, QueueSystem } from '../../app/queue.ts';
import { ReflexError } from '../../errors.ts';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import { OUTBOX_JOB_OPTIONS, outboxBackoff } from '../slack/slack-outbox.ts';
import type { TeamsTransport } from './teams-transport.ts';

/**
 * Outgoing Teams messages (DESIGN.md §3.5): a Teams outage or a 429 delays messages, it loses
 * none. Its own queue, not Slack's `chat.outbox`: each queue has one worker that knows its jobs.
 */
export const TEAMS_OUTBOX_QUEUE = 'chat.teams.outbox';

export type TeamsOutboxJob =
  | { platform: 'teams'; op: 'send'; serviceUrl: string; conversationId: string; replyToId?: string; message: ChatMessage }
  | { platform: 'teams'; op: 'update'; serviceUrl: string; conversationId: string; activityId: string; message: ChatMessage };

/**
 * Puts Teams messages on the outbox, 20 attempts, each retry waiting exactly the `Retry-After`
 * Teams asked for (else exponential, capped at 10 minutes; the same policy as Slack's outbox).
 * `key` makes an enqueue idempotent. The Bot Connector has no idempotency key either: a worker
 * that dies after Teams accepted a message but before the job completed sends it again.
 *
 * @example
 * await outbox.enqueue({ platform: 'teams', op: 'send', serviceUrl, conversationId, message: { text: 'hi' } }, `teams-${deliveryId}-reply`);
 */
export class TeamsOutbox {
  constructor(private readonly queues: QueueSystem) {}

  async enqueue(job: TeamsOutboxJob, key?: string): Promise<void> {
    await this.queues.add(TEAMS_OUTBOX_QUEUE, `teams.${job.op}`, job, { ...OUTBOX_JOB_OPTIONS, ...(key ? { jobId: key } : {}) });
  }

  startWorker(transport: TeamsTransport, opts: { concurrency: number; onDeadLetter?: (info: DeadLetterInfo) => void | Promise<void> }): void {
    this.queues.createWorker<TeamsOutboxJob, MessageRef | null>({
      name: TEAMS_OUTBOX_QUEUE,
      concurrency: opts.concurrency,
      processor: (job) => deliverTeams(transport, job),
      options: { settings: { backoffStrategy: outboxBackoff } },
      ...(opts.onDeadLetter ? { onDeadLetter: opts.onDeadLetter } : {}),
    });
  }
}

/** One outbox job, one connector call. */
export async function deliverTeams(transport: TeamsTransport, job: Job<TeamsOutboxJob>): Promise<MessageRef | null> {
  const d = job.data;
  switch (d.op) {
    case 'send':
      return transport.send(d.serviceUrl, d.conversationId, d.message, d.replyToId);
    case 'update':
      await transport.replace(d.serviceUrl, d.conversationId, d.activityId, d.message);
      return { platform: 'teams', channelId: d.conversationId, messageId: d.activityId };
    default: {
      const unknown: never = d;
      throw new ReflexError('input.invalid', `unknown Teams outbox op ${JSON.stringify(unknown)}`, { retryable: false });
    }
  }
}
