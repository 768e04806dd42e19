import type { Job } from 'bullmq';
import type { QueueSystem } from '../../app/queue.ts';
import type { CommandDeps } from '../../commands/command.ts';
import { dispatch } from '../../commands/dispatch.ts';
import { toReflexError } from '../../errors.ts';
import { slackReplyJob, type SlackCommandJob } from './slack-inbound.ts';
import type { SlackOutbox } from './slack-outbox.ts';
import type { SlackTransport } from './slack-transport.ts';

/** Queued chat invocations, run by workers off Slack's 3-second ack path. */
export const CHAT_COMMANDS_QUEUE = 'chat.commands';

/**
 * Runs one queued Slack invocation and queues its answer. The answer is stored on the job before
 * it is queued for delivery, so when a later step fails and the job is retried, the command is
 * not run a second time (an `incident new` must not open two incidents).
 */
export async function runSlackCommand(
  job: Job<SlackCommandJob>,
  deps: { commands: CommandDeps; transport: SlackTransport; outbox: SlackOutbox },
): Promise<string> {
  let { answer } = job.data;
  if (answer === undefined) {
    const { receivedAt, ...rest } = job.data.inbound;
    const inbound = { ...rest, receivedAt: new Date(receivedAt) };
    const on = job.data.reactionOn;
    if (on) {
      try {
        const m = await deps.transport.reactedMessage(on.channelId, on.ts);
        inbound.reaction = { name: on.name, message: { id: m.ts, text: m.text, ...(m.userId ? { userId: m.userId } : {}) } };
      } catch (err) {
        // A message deleted before we looked has nothing left to record; transient failures retry.
        if (toReflexError(err).retryable) throw err;
        await job.updateData({ ...job.data, answer: null });
        return 'reaction message unavailable';
      }
    }
    const result = await dispatch(inbound, deps.commands);
    answer = result.message;
    await job.updateData({ ...job.data, answer });
  }
  if (answer) await deps.outbox.enqueue(slackReplyJob(job.data.reply, answer), `slack-${job.data.deliveryId}-reply`);
  return answer ? 'answered' : 'silent';
}

export function startSlackCommandWorker(
  queues: QueueSystem,
  deps: { commands: CommandDeps; transport: SlackTransport; outbox: SlackOutbox },
  opts: { concurrency: number },
): void {
  queues.createWorker<SlackCommandJob, string>({
    name: CHAT_COMMANDS_QUEUE,
    concurrency: opts.concurrency,
    processor: (job) => runSlackCommand(job, deps),
  });
}
