import type { QueueSystem } from '../../app/queue.ts';
import { toReflexError } from '../../errors.ts';
import { alertJobPriority, PIPELINE_QUEUES, type AlertJob, type AlertRef, type PipelineStage } from '../jobs.ts';

export interface AlertBatchOptions<R> {
  stage: PipelineStage;
  queues: QueueSystem;
  /** Alerts of one batch handled at once (they are I/O bound: database, vendors). */
  concurrency: number;
  perAlert: (ref: AlertRef) => Promise<R>;
  /** Stages that take the alerts this one handled. */
  next: readonly { stage: PipelineStage; kind?: 'first' }[];
  onAlertFailed?: (alertId: string, err: unknown) => void;
}

export interface AlertBatchOutcome<R> {
  results: Map<string, R>;
  /** Alerts that failed here and were re-queued alone, each with its own retries and dead letter. */
  split: string[];
}

function nextJobId(stage: PipelineStage, key: string, kind?: 'first'): string {
  return kind ? `${stage}-${key}-${kind}` : `${stage}-${key}`;
}

/**
 * Runs one per-alert stage over a batch job and hands the alerts on.
 *
 * - A batch of one is an ordinary job: a failure throws, BullMQ retries it with backoff and
 *   finally dead-letters it.
 * - In a larger batch each alert is handled on its own; an alert that fails is re-queued to this
 *   stage as a job of its own (`<stage>-<alertId>`), so one bad alert neither holds back nor
 *   re-runs its neighbours, and it still gets every retry and its own dead letter.
 * - The next stage's job id derives from this batch's key, so a retried batch (a worker died
 *   after queueing) adds nothing twice. Stages are idempotent per alert, so running an alert
 *   again after such a crash changes nothing.
 */
export async function runAlertBatch<R>(job: AlertJob, opts: AlertBatchOptions<R>): Promise<AlertBatchOutcome<R>> {
  const results = new Map<string, R>();
  const split: string[] = [];
  const ids = [...new Set(job.alertIds)];
  const ref = (alertId: string): AlertRef => ({ tenantId: job.tenantId, alertId, kind: job.kind });
  if (ids.length === 1) {
    results.set(ids[0]!, await opts.perAlert(ref(ids[0]!)));
  } else {
    let cursor = 0;
    const lane = async () => {
      while (cursor < ids.length) {
        const id = ids[cursor++]!;
        try {
          results.set(id, await opts.perAlert(ref(id)));
        } catch (err) {
          opts.onAlertFailed?.(id, toReflexError(err));
          split.push(id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, ids.length) }, lane));
    if (split.length > 0) {
      await opts.queues.addBulk(
        PIPELINE_QUEUES[opts.stage],
        split.map((alertId) => ({
          name: 'alert',
          data: { tenantId: job.tenantId, alertIds: [alertId], ...(job.kind ? { kind: job.kind } : {}), ...(job.urgent ? { urgent: true } : {}) } satisfies AlertJob,
          opts: { jobId: nextJobId(opts.stage, alertId), ...alertJobPriority(job.urgent) },
        })),
      );
    }
  }
  const handled = ids.filter((id) => results.has(id));
  if (handled.length > 0) {
    const key = job.batchKey ?? (ids.length === 1 ? ids[0]! : undefined);
    for (const next of opts.next) {
      // Without a key (a batch queued by hand) the next job gets a fresh id; with one, a retry is a no-op.
      const jobKey = key ?? `${ids[0]}-${ids.length}`;
      await opts.queues.add(
        PIPELINE_QUEUES[next.stage],
        next.kind ?? 'alert',
        { tenantId: job.tenantId, alertIds: handled, batchKey: jobKey, ...(next.kind ? { kind: next.kind } : {}), ...(job.urgent ? { urgent: true } : {}) } satisfies AlertJob,
        { jobId: nextJobId(next.stage, jobKey, next.kind), ...alertJobPriority(job.urgent) },
      );
    }
  }
  return { results, split };
}
