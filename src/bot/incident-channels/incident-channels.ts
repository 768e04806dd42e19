import type { FeatureContext } from '../../app/features.ts';
import { ReflexError } from '../../errors.ts';
import { ensureIncidentChannel, type IncidentChannelDeps, type IncidentChannelOutcome } from './incident-channel.handler.ts';
import { INCIDENT_CHANNEL_QUEUE, incidentChannelJob, incidentChannelListener, type IncidentChannelJob } from './incident-channel-job.ts';

/**
 * SEV1 incident channels (issue: "When an incident is SEV1 …"): the IncidentEvents listener on
 * every process (it only enqueues), the job worker where workers run. Returns how to unsubscribe.
 *
 * @example
 * const stop = registerIncidentChannels(ctx, { db, platforms: [new SlackIncidentChannels(transport, slack)] });
 */
export function registerIncidentChannels(ctx: FeatureContext, deps: IncidentChannelDeps): () => void {
  const log = ctx.logger.child({ component: 'incident-channel' });
  ctx.registerQueue(INCIDENT_CHANNEL_QUEUE);
  const off = ctx.seams.incidentEvents.on(incidentChannelListener(ctx.queues));
  if (ctx.config.runWorkers) {
    ctx.queues.createWorker<IncidentChannelJob, IncidentChannelOutcome[]>({
      name: INCIDENT_CHANNEL_QUEUE,
      concurrency: 2,
      processor: async (job) => {
        const data = incidentChannelJob.safeParse(job.data);
        if (!data.success) throw new ReflexError('input.invalid', `${INCIDENT_CHANNEL_QUEUE} job data invalid`, { retryable: false });
        return ensureIncidentChannel(data.data, deps);
      },
      onDeadLetter: (info) => log.error({ jobId: info.jobId, error: info.error, attempts: info.attempts }, 'SEV1 incident channel failed; replay from chat.incident-channel.dlq'),
    });
  }
  return off;
}
