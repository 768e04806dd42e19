import { z } from 'zod';
import type { QueueSystem } from '../../app/queue.ts';
import { isNowSev1, type IncidentEvent } from '../../store/incidents.ts';

/**
 * The job that gives a SEV1 incident its own chat channel. Definition only (id, schema, enqueue);
 * the work is in `incident-channel.handler.ts`.
 */
export const INCIDENT_CHANNEL_QUEUE = 'chat.incident-channel';

export const incidentChannelJob = z.object({
  tenantId: z.string().min(1).max(63),
  incidentId: z.uuid(),
});
export type IncidentChannelJob = z.infer<typeof incidentChannelJob>;

/** One job per incident, whoever asks and however often: BullMQ ignores an add whose id it holds. */
export function incidentChannelJobId(incidentId: string): string {
  return `channel-${incidentId}`;
}

export const INCIDENT_CHANNEL_JOB_OPTIONS = {
  attempts: 12,
  backoff: { type: 'reflex' },
  // Kept a week, so a SEV2 -> SEV1 -> SEV2 -> SEV1 flip within it is still one job; after that the
  // handler's own checks (incident_channels, the timeline) keep a re-run from repeating steps.
  removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
  removeOnFail: { count: 10_000 },
} as const;

/**
 * The IncidentEvents listener: a change that made an incident SEV1 enqueues its channel job, and
 * does nothing else (no chat call inline; `emit` is awaited by the command or pipeline stage).
 *
 * @example
 * ctx.seams.incidentEvents.on(incidentChannelListener(ctx.queues));
 */
export function incidentChannelListener(queues: QueueSystem): (event: IncidentEvent) => Promise<void> {
  return async (event) => {
    if (!isNowSev1(event) || event.incident.status === 'closed') return;
    const job: IncidentChannelJob = { tenantId: event.incident.tenant_id, incidentId: event.incident.id };
    await queues.add(INCIDENT_CHANNEL_QUEUE, 'ensure', job, { ...INCIDENT_CHANNEL_JOB_OPTIONS, jobId: incidentChannelJobId(event.incident.id) });
  };
}
