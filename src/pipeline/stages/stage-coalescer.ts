import { GroupCommit } from '../../store/group-commit.ts';
import type { AlertBatch } from '../jobs.ts';
import type { BatchOutcome } from './alert-batch.ts';

type Result<R> = { ok: true; value: R } | { ok: false; error: unknown };

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
  const run = async (batch: AlertBatch): Promise<Map<string, Result<R>>> => {
    const out = new Map<string, Result<R>>();
    try {
      const r = await perBatch(batch);
      for (const [id, value] of r.results) out.set(id, { ok: true, value });
      for (const [id, error] of r.failed) out.set(id, { ok: false, error });
    } catch (error) {
      if (batch.alertIds.length === 1) out.set(batch.alertIds[0]!, { ok: false, error });
      else for (const id of batch.alertIds) for (const [k, v] of await run({ ...batch, alertIds: [id] })) out.set(k, v);
    }
    return out;
  };
  const lane = () =>
    new GroupCommit<AlertBatch, Map<string, Result<R>>>({
      name: options.name,
      maxBatch: options.maxBatch ?? 64,
      maxConcurrent: options.maxConcurrent ?? 2,
      flush: async (jobs) => {
        const merged = new Map<string, AlertBatch & { alertIds: string[] }>();
        for (const job of jobs) {
          const key = `${job.tenantId}\u0000${job.kind ?? ''}`;
          const m = merged.get(key) ?? { tenantId: job.tenantId, alertIds: [], kind: job.kind, urgent: job.urgent };
          for (const id of job.alertIds) if (!m.alertIds.includes(id)) m.alertIds.push(id);
          merged.set(key, m);
        }
        const results = new Map<string, Map<string, Result<R>>>();
        for (const [key, m] of merged) results.set(key, await run(m));
        return jobs.map((job) => {
          const of = results.get(`${job.tenantId}\u0000${job.kind ?? ''}`)!;
          return new Map(job.alertIds.map((id) => [id, of.get(id) ?? { ok: false, error: new Error(`${options.name}: alert ${id} was not handled`) }]));
        });
      },
    });
  const routine = lane();
  const urgent = lane();
  return async (batch) => {
    const results = await (batch.urgent ? urgent : routine).submit(batch);
    const outcome: BatchOutcome<R> = { results: new Map(), failed: new Map() };
    for (const [id, r] of results) {
      if (r.ok) outcome.results.set(id, r.value);
      else outcome.failed.set(id, r.error);
    }
    return outcome;
  };
}
