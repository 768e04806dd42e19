import { z } from 'zod';
import { sentinelEventV1 } from './event.ts';
import { NORMALIZER_SOURCES } from './normalize/index.ts';

/**
 * The pipeline's queues and the data each job carries (STYLE.md: job definitions apart from their
 * handlers). Every job id is derived from what it is about, so a retried enqueue is a no-op.
 */
export const PIPELINE_QUEUES = {
  normalize: 'pipeline.normalize',
  dedupe: 'pipeline.dedupe',
  enrich: 'pipeline.enrich',
  case: 'pipeline.case',
  notify: 'pipeline.notify',
  trigger: 'pipeline.trigger',
} as const;
export type PipelineStage = keyof typeof PIPELINE_QUEUES;

/** Raw payloads as accepted by a hook: one job per (tenant, source) per ingest flush. */
export const normalizeJob = z.object({
  batchId: z.string().min(1),
  tenantId: z.string().min(1),
  source: z.enum(NORMALIZER_SOURCES),
  genericName: z.string().optional(),
  receivedAt: z.string(),
  items: z.array(z.unknown()).min(1),
  /** Events each item normalized to at ingest (what `accepted` counted), in item order. */
  counts: z.array(z.number().int().min(0)),
});
export type NormalizeJob = z.infer<typeof normalizeJob>;

export const dedupeJob = z.object({
  batchId: z.string().min(1),
  tenantId: z.string().min(1),
  receivedAt: z.string(),
  events: z.array(sentinelEventV1),
});
export type DedupeJob = z.infer<typeof dedupeJob>;

/** Per-alert stages carry only the alert id: the row is the truth, the job a pointer. */
export const alertJob = z.object({
  tenantId: z.string().min(1),
  alertId: z.uuid(),
  /** For notify: 'first' message or a 'repeat' update. */
  kind: z.enum(['first', 'repeat']).optional(),
});
export type AlertJob = z.infer<typeof alertJob>;

export function jobIdFor(stage: PipelineStage, subject: string, suffix?: string): string {
  return suffix ? `${stage}-${subject}-${suffix}` : `${stage}-${subject}`;
}
