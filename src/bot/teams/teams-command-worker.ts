import type { Job } from 'bullmq';
import type { QueueSystem } from '../../app/queue.ts';
import type { CommandDeps } from '../../commands/command.ts';
import { dispatch } from '../../commands/dispatch.ts';
import type { TeamsCommandJob } from './teams-activity.ts';
import type { TeamsOutbox } from './teams-outbox.ts';

/** Typed Teams commands, run by workers after the HTTP request was acknowledged. */
export const TEAMS_COMMANDS_QUEUE = 'chat.teams.commands';

/**
 * Runs one queued Teams command and queues its answer to the conversation it came from. The
 * answer is stored on the job before it is queued for delivery, so a retried job does not run the
 * command again (an `incident new` must not open two incidents).
 *
 * Teams has no ephemeral messages for bots: an answer meant for the invoker alone (`ephemeral`)
 * is a reply in the same conversation, visible to its members (in a personal chat, that is them).
 */
export async function runTeamsCommand(job: Job<TeamsCommandJob>, deps: { commands: CommandDeps; outbox: TeamsOutbox }): Promise<string> {
  let { answer } = job.data;
  if (answer === undefined) {
    const { receivedAt, ...rest } = job.data.inbound;
    const result = await dispatch({ ...rest, receivedAt: new Date(receivedAt) }, deps.commands);
    answer = result.message;
    await job.updateData({ ...job.data, answer });
  }
  if (!answer) return 'silent';
  const r = job.data.reply;
  await deps.outbox.enqueue(
    { platform: 'teams', op: 'send', serviceUrl: r.serviceUrl, conversationId: r.conversationId, ...(r.replyToId ? { replyToId: r.replyToId } : {}), message: answer },
    `teams-${job.data.deliveryId}-reply`,
  );
  return 'answered';
}

export function startTeamsCommandWorker(queues: QueueSystem, deps: { commands: CommandDeps; outbox: TeamsOutbox }, opts: { concurrency: number }): void {
  queues.createWorker<TeamsCommandJob, string>({
    name: TEAMS_COMMANDS_QUEUE,
    concurrency: opts.concurrency,
    processor: (job) => runTeamsCommand(job, deps),
  });
}
