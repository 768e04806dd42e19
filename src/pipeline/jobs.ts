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

const normalizerRef = z.object({ source: z.enum(NORMALIZER_SOURCES), genericName: z.string().optional() });
export type NormalizerRef = z.infer<typeof normalizerRef>;

/**
 * Raw payloads as accepted by hooks: one job per tenant and urgency per ingest flush, whatever the
 * sources (a storm from three sources is a third of the jobs it would be with one per source).
 * `source`/`genericName` say which normalizer the items need; a job that mixes sources says it per
 * item in `sources` instead, and `source` is then only its first item's (a label).
 */
export const normalizeJob = z.object({
  batchId: z.string().min(1),
  tenantId: z.string().min(1),
  source: z.enum(NORMALIZER_SOURCES),
  genericName: z.string().optional(),
  /** Per item, when the items come from more than one source (or generic hook). */
  sources: z.array(normalizerRef).optional(),
  receivedAt: z.string(),
  items: z.array(z.unknown()).min(1),
  /** Events each item normalized to at ingest (what `accepted` counted), in item order. */
  counts: z.array(z.number().int().min(0)),
  /** Items with a SEV1/SEV2 event: the job skips the routine backlog (see alertJobPriority). */
  urgent: z.boolean().optional(),
}).refine((j) => !j.sources || j.sources.length === j.items.length, { message: 'must name one normalizer per item', path: ['sources'] });
export type NormalizeJob = z.infer<typeof normalizeJob>;

/** Which normalizer item `index` of a normalize job needs. */
export function normalizerOf(job: NormalizeJob, index: number): NormalizerRef {
  return job.sources?.[index] ?? { source: job.source, ...(job.genericName ? { genericName: job.genericName } : {}) };
}

export const dedupeJob = z.object({
  batchId: z.string().min(1),
  tenantId: z.string().min(1),
  receivedAt: z.string(),
  events: z.array(sentinelEventV1),
  urgent: z.boolean().optional(),
});
export type DedupeJob = z.infer<typeof dedupeJob>;

/**
 * Per-alert stages (enrich, case, notify, trigger) carry alert ids only: the rows are the truth,
 * the job a pointer. One job holds the new alerts of one dedupe batch (up to ALERT_BATCH), so a
 * storm costs a few queue round trips per hundred alerts instead of four per alert; an alert
 * that fails inside a batch goes on alone (see `runAlertBatch`). `alertId` is the shape of
 * single-alert jobs queued before batching, still accepted (dead letters replay).
 */
export const ALERT_BATCH = 100;
export const alertJob = z.preprocess(
  (v) => (v && typeof v === 'object' && 'alertId' in v && !('alertIds' in v) ? { ...v, alertIds: [(v as { alertId: unknown }).alertId] } : v),
  z.object({
    tenantId: z.string().min(1),
    alertIds: z.array(z.uuid()).min(1).max(1000),
    /** What the next stage's job id is derived from: the dedupe batch chunk, or the alert id. */
    batchKey: z.string().min(1).max(200).optional(),
    /** For notify: 'first' message or a 'repeat' update. */
    kind: z.enum(['first', 'repeat']).optional(),
    /**
     * SEV1/SEV2 alerts: their jobs carry no BullMQ priority, so they overtake the prioritized
     * (SEV3/SEV4) backlog of a storm at every per-alert stage.
     */
    urgent: z.boolean().optional(),
  }),
);

/** SEV1 and SEV2 travel ahead of the routine backlog, from the hook's normalize job on. */
export function isUrgent(severity: number): boolean {
  return severity <= 2;
}

/** BullMQ processes jobs without a priority before prioritized ones: routine alerts get this one. */
export const ROUTINE_PRIORITY = 10;

/** Job options for a per-alert job: no priority for urgent alerts, the routine one otherwise. */
export function alertJobPriority(urgent: boolean | undefined): { priority?: number } {
  return urgent ? {} : { priority: ROUTINE_PRIORITY };
}
export type AlertJob = z.infer<typeof alertJob>;

/** The alerts of one batch job, as a stage handles them: one tenant, one kind. */
export interface AlertBatch {
  tenantId: string;
  alertIds: readonly string[];
  kind?: 'first' | 'repeat' | undefined;
  /** SEV1/SEV2 alerts: merged only with each other (see stage-coalescer.ts). */
  urgent?: boolean | undefined;
}

export function jobIdFor(stage: PipelineStage, subject: string, suffix?: string): string {
  return suffix ? `${stage}-${subject}-${suffix}` : `${stage}-${subject}`;
}
