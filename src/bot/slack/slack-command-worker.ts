import type { Job } from 'bullmq';
import type { QueueSystem } from '../../app/queue.ts';
import type { CommandDeps } from '../../commands/command.ts';
import { dispatch } from '../../commands/dispatch.ts';
import { toReflexError } from '../../errors.ts';
import { slackReplyJob, type SlackCommandJob } from './slack-inbound.ts';
import { deliverSlack, type SlackOutbox } from './slack-outbox.ts';
import type { SlackTransport } from './slack-transport.ts';

/** Queued chat invocations, run by workers off Slack's 3-second ack path. */
export const CHAT_COMMANDS_QUEUE = 'chat.commands';

export interface SlackCommandWorkerDeps {
  commands: CommandDeps;
  transport: SlackTransport;
  outbox: SlackOutbox;
  /** Told when a direct answer failed and the answer went to the outbox instead. */
  onDirectFailure?: (err: unknown) => void;
}

/**
 * Runs one queued Slack invocation and delivers its answer. The answer is stored on the job before
 * it is delivered, so when a later step fails and the job is retried, the command is not run a
 * second time (an `incident new` must not open two incidents). The answer is posted directly
 * (one hop fewer on the path a person waits on); a failed post hands it to the outbox.
 */
export async function runSlackCommand(
  job: Job<SlackCommandJob>,
  deps: SlackCommandWorkerDeps,
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
  if (!answer) return 'silent';
  const reply = slackReplyJob(job.data.reply, answer);
  // The answer goes straight to Slack from here; only when that fails does it take the outbox,
  // whose retries (Retry-After, backoff, dead letters) then own it. Delivery is at least once
  // either way: a worker that dies after posting and before completing posts the stored answer again.
  let delayMs: number | undefined;
  try {
    await deliverSlack(deps.transport, { data: reply });
    return 'answered';
  } catch (err) {
    deps.onDirectFailure?.(err);
    // Slack asked us to wait (429 Retry-After): the outbox's first try waits as long.
    delayMs = toReflexError(err).retryAfterMs;
  }
  await deps.outbox.enqueue(reply, `slack-${job.data.deliveryId}-reply`, delayMs ? { delayMs } : {});
  return 'answered via outbox';
}

export function startSlackCommandWorker(
  queues: QueueSystem,
  deps: SlackCommandWorkerDeps,
  opts: { concurrency: number },
): void {
  queues.createWorker<SlackCommandJob, string>({
    name: CHAT_COMMANDS_QUEUE,
    concurrency: opts.concurrency,
    processor: (job) => runSlackCommand(job, deps),
  });
}
