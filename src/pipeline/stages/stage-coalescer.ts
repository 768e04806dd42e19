import { GroupCommit } from '../../store/group-commit.ts';
import type { AlertBatch } from '../jobs.ts';
import type { BatchOutcome } from './alert-batch.ts';

export interface CoalescerOptions {
  /** For errors and diagnostics, e.g. `pipeline.enrich`. */
  name: string;
  /** Most jobs per merged batch (default 64; a job holds up to ALERT_BATCH alerts). */
  maxBatch?: number;
  /** Merged batches in flight at once (default 2). */
  maxConcurrent?: number;
}

/**
 * Merges the alerts of a stage's concurrent batch jobs into larger batches for its handler.
 *
 * A storm reaches the alert stages as many small jobs (one per dedupe batch, often a handful of
 * new alerts each), and a handler's cost is mostly per call (its reads and its audited write),
 * not per alert. Each job submits its alerts and waits for their results; the alerts of every job
 * that arrives while `maxConcurrent` merged batches are in flight leave together in the next one
 * (group commit, see store/group-commit.ts). An idle pipeline therefore handles a job at once, a
 * busy one a few hundred alerts per call. Jobs stay what BullMQ retries and dead-letters: a job
 * completes only when its own alerts are handled, so a crash loses nothing.
 *
 * Alerts are merged per tenant and kind. Urgent jobs (SEV1/SEV2) have a lane of their own, so
 * they never wait behind a merged batch of routine alerts. If the handler throws for a merged
 * batch, its alerts are handled again one call each, so one bad alert fails only itself (and its
 * job splits it off).
 */
export function coalesce<R>(perBatch: (batch: AlertBatch) => Promise<BatchOutcome<R>>, options: CoalescerOptions): (batch: AlertBatch) => Promise<BatchOutcome<R>> {
  const run = async (batch: AlertBatch): Promise<BatchOutcome<R>> => {
    try {
      return await perBatch(batch);
    } catch (error) {
      if (batch.alertIds.length === 1) return { results: new Map(), failed: new Map([[batch.alertIds[0]!, error]]) };
      const out: BatchOutcome<R> = { results: new Map(), failed: new Map() };
      for (const id of batch.alertIds) {
        const one = await run({ ...batch, alertIds: [id] });
        for (const [k, v] of one.results) out.results.set(k, v);
        for (const [k, e] of one.failed) out.failed.set(k, e);
      }
      return out;
    }
  };
  const lane = () =>
    new GroupCommit<AlertBatch, BatchOutcome<R>>({
      name: options.name,
      maxBatch: options.maxBatch ?? 64,
      maxConcurrent: options.maxConcurrent ?? 2,
      flush: async (jobs) => {
        const merged = new Map<string, { batch: AlertBatch; ids: Set<string> }>();
        for (const job of jobs) {
          const key = `${job.tenantId}\u0000${job.kind ?? ''}`;
          const m = merged.get(key) ?? { batch: job, ids: new Set<string>() };
          for (const id of job.alertIds) m.ids.add(id);
          merged.set(key, m);
        }
        const outcomes = new Map<string, BatchOutcome<R>>();
        for (const [key, m] of merged) outcomes.set(key, await run({ ...m.batch, alertIds: [...m.ids] }));
        // Each job gets back exactly its own alerts.
        return jobs.map((job) => {
          const of = outcomes.get(`${job.tenantId}\u0000${job.kind ?? ''}`)!;
          const mine: BatchOutcome<R> = { results: new Map(), failed: new Map() };
          for (const id of job.alertIds) {
            if (!of.failed.has(id) && of.results.has(id)) mine.results.set(id, of.results.get(id)!);
            else mine.failed.set(id, of.failed.get(id) ?? new Error(`${options.name}: alert ${id} was not handled`));
          }
          return mine;
        });
      },
    });
  const routine = lane();
  const urgent = lane();
  return (batch) => (batch.urgent ? urgent : routine).submit(batch);
}
