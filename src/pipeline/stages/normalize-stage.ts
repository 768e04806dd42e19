import type { Kysely } from 'kysely';
import type { QueueSystem } from '../../app/queue.ts';
import { toReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import { incrementCounters } from '../counters.ts';
import type { SentinelEvent } from '../event.ts';
import { PIPELINE_QUEUES, alertJobPriority, normalizerOf, type DedupeJob, type NormalizeJob } from '../jobs.ts';
import { normalize } from '../normalize/index.ts';

/**
 * normalize: source payloads -> SentinelNet Event v1, handed to dedupe as one batch.
 * A payload that does not normalize (possible when a DLQ replay meets a changed normalizer) is
 * dead-lettered on its own with the reason and counted; the rest of the batch goes on.
 */
export async function runNormalizeStage(job: NormalizeJob, deps: { db: Kysely<Database>; queues: QueueSystem }): Promise<{ events: number; deadLettered: number }> {
  const events: SentinelEvent[] = [];
  const failures: { index: number; error: string; item: unknown }[] = [];
  job.items.forEach((item, index) => {
    const { source, genericName } = normalizerOf(job, index);
    try {
      events.push(...normalize(source, item, { tenantId: job.tenantId, ...(genericName ? { genericName } : {}) }));
    } catch (err) {
      failures.push({ index, error: toReflexError(err).message, item });
    }
  });
  if (failures.length > 0) {
    await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
      const already = await trx.selectFrom('pipeline_batches').select('batch_id').where('batch_id', '=', job.batchId).where('stage', '=', 'normalize').executeTakeFirst();
      if (already) {
        audit({ tenantId: job.tenantId, action: 'pipeline.normalize.replayed', target: `batch:${job.batchId}`, delta: {} });
        return;
      }
      await trx
        .insertInto('dead_letters')
        .values(
          failures.map((f) => ({
            queue: PIPELINE_QUEUES.normalize,
            job_id: `normalize-${job.batchId}#${f.index}`,
            tenant_id: job.tenantId,
            // A job of its own, with its own normalizer, replayable alone.
            data: JSON.stringify(singleItemJob(job, f.index)),
            error: f.error,
            attempts: 1,
          })),
        )
        .onConflict((oc) => oc.columns(['queue', 'job_id']).doNothing())
        .execute();
      // Count what ingest accepted for these items, so the books balance.
      const lost = failures.reduce((n, f) => n + (job.counts[f.index] ?? 1), 0);
      await incrementCounters(trx, [{ tenantId: job.tenantId, delta: { dead_lettered: lost } }]);
      await trx.insertInto('pipeline_batches').values({ batch_id: job.batchId, stage: 'normalize', tenant_id: job.tenantId, result: JSON.stringify({ failures: failures.length, lost }) }).execute();
      audit({ tenantId: job.tenantId, action: 'pipeline.dead_letter', target: `batch:${job.batchId}`, delta: { queue: PIPELINE_QUEUES.normalize, count: failures.length, reasons: failures.slice(0, 5).map((f) => f.error) } });
    });
  }
  if (events.length > 0) {
    const next: DedupeJob = { batchId: job.batchId, tenantId: job.tenantId, receivedAt: job.receivedAt, events, ...(job.urgent ? { urgent: true } : {}) };
    await deps.queues.add(PIPELINE_QUEUES.dedupe, job.source, next, { jobId: `dedupe-${job.batchId}`, ...alertJobPriority(job.urgent) });
  }
  return { events: events.length, deadLettered: failures.length };
}

/** Item `index` of a job as a job of its own (its normalizer named at the top, no `sources`). */
function singleItemJob(job: NormalizeJob, index: number): NormalizeJob {
  const { sources: _perItem, genericName: _jobs, ...rest } = job;
  return { ...rest, ...normalizerOf(job, index), items: [job.items[index]], counts: [job.counts[index] ?? 1] };
}
