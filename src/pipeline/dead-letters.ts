import type { Kysely } from 'kysely';
import type { QueueSystem } from '../app/queue.ts';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import { incrementCounters } from './counters.ts';
import { PIPELINE_QUEUES } from './jobs.ts';

/**
 * The `dead_letters` table (what `reflex dlq` reads) and the replay of a dead letter.
 *
 * A replay re-adds the dead job's data to its queue under a new, deterministic job id
 * `<jobId>-replay-<n>` (n = 1 for a first replay, and one more than the suffix of a dead letter
 * that was itself a replay), marks the row `replayed_at`, and, for the batch stages whose dead
 * letters counted their events as `dead_lettered` (normalize, dedupe; see recordDeadLetter and
 * the normalize stage's per-item dead letters), takes those events off `dead_lettered` in the
 * same transaction: once the replayed job settles they are counted again as new / deduplicated /
 * suppressed (or as dead_lettered, if it dies again), so the books balance.
 *
 * The job is added before that transaction commits, under the row's lock: a crash between the
 * two leaves the row un-replayed, and replaying it again adds the same job id (a no-op while
 * BullMQ still holds the job) and commits. A replayed batch gets the replay job id as its
 * `batchId`, because the stages' idempotency markers (`pipeline_batches`) and the next stage's
 * job id are keyed on the batch id: under the original id the replay would be skipped as
 * "already processed".
 *
 * @example
 * const out = await replayDeadLetter({ db, queues }, { queue: 'pipeline.dedupe', jobId: 'dedupe-3f0c…' }, 'cli');
 * // out.replayJobId === 'dedupe-3f0c…-replay-1', out.uncounted === events in the batch
 */
export interface DeadLetter {
  id: string;
  queue: string;
  jobId: string;
  tenantId: string | null;
  error: string;
  attempts: number;
  failedAt: Date;
  replayedAt: Date | null;
  data: unknown;
}

export interface DeadLetterFilter {
  queue?: string;
  tenantId?: string;
  /** Only rows not replayed yet. */
  pendingOnly?: boolean;
  limit?: number;
}

type DeadLetterRow = {
  id: string;
  queue: string;
  job_id: string;
  tenant_id: string | null;
  data: unknown;
  error: string;
  attempts: number;
  failed_at: Date;
  replayed_at: Date | null;
};

function fromRow(r: DeadLetterRow): DeadLetter {
  return { id: String(r.id), queue: r.queue, jobId: r.job_id, tenantId: r.tenant_id, error: r.error, attempts: r.attempts, failedAt: r.failed_at, replayedAt: r.replayed_at, data: r.data };
}

/** Newest first. */
export async function listDeadLetters(db: Kysely<Database>, filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
  let q = db.selectFrom('dead_letters').selectAll();
  if (filter.queue) q = q.where('queue', '=', filter.queue);
  if (filter.tenantId) q = q.where('tenant_id', '=', filter.tenantId);
  if (filter.pendingOnly) q = q.where('replayed_at', 'is', null);
  const rows = await q.orderBy('failed_at', 'desc').orderBy('id', 'desc').limit(filter.limit ?? 1000).execute();
  return rows.map(fromRow);
}

export async function findDeadLetter(db: Kysely<Database>, queue: string, jobId: string): Promise<DeadLetter | undefined> {
  const row = await db.selectFrom('dead_letters').selectAll().where('queue', '=', queue).where('job_id', '=', jobId).executeTakeFirst();
  return row ? fromRow(row) : undefined;
}

const REPLAY_SUFFIX = /^(.*)-replay-(\d+)$/;

/** `<jobId>-replay-1`; a dead letter that was itself a replay gets the next number. */
export function replayJobIdOf(jobId: string): string {
  const m = REPLAY_SUFFIX.exec(jobId);
  return m ? `${m[1]}-replay-${Number(m[2]) + 1}` : `${jobId}-replay-1`;
}

/**
 * Events a dead letter of `queue` counted as `dead_lettered` when it was recorded: the normalize
 * job's per-item `counts` (whole-batch and per-item dead letters alike), the dedupe job's events.
 * Per-alert stages count nothing (their alert was already counted as new).
 */
export function eventsCountedDeadLettered(queue: string, data: unknown): number {
  const d = (data ?? {}) as { counts?: unknown; events?: unknown };
  if (queue === PIPELINE_QUEUES.normalize) {
    return Array.isArray(d.counts) ? d.counts.reduce((a: number, b: unknown) => a + (typeof b === 'number' ? b : 0), 0) : 0;
  }
  if (queue === PIPELINE_QUEUES.dedupe) return Array.isArray(d.events) ? d.events.length : 0;
  return 0;
}

/** The data a replay enqueues: the original, with a fresh `batchId` for the batch stages. */
export function replayDataFor(queue: string, data: unknown, replayJobId: string): unknown {
  const isBatch = queue === PIPELINE_QUEUES.normalize || queue === PIPELINE_QUEUES.dedupe;
  if (!isBatch || typeof data !== 'object' || data === null || Array.isArray(data)) return data;
  return { ...(data as Record<string, unknown>), batchId: replayJobId };
}

export interface ReplayOutcome {
  queue: string;
  jobId: string;
  replayJobId: string;
  tenantId: string | null;
  /** Events taken off the tenant's dead_lettered counter. */
  uncounted: number;
}

export interface ReplayDeps {
  db: Kysely<Database>;
  queues: Pick<QueueSystem, 'add' | 'deadLetterQueue'>;
}

/** Replays one dead letter; `not_found` when there is none, `conflict` when it was replayed already. */
export async function replayDeadLetter(deps: ReplayDeps, ref: { queue: string; jobId: string }, actor: string): Promise<ReplayOutcome> {
  const dlqCopyId = `dlq-${ref.jobId}`;
  // The job name lives only on the BullMQ copy (the table does not keep it); the pipeline's
  // processors do not look at names, other queues' may.
  const copy = await deps.queues
    .deadLetterQueue(ref.queue)
    .getJob(dlqCopyId)
    .catch(() => undefined);
  const outcome = await auditedWrite(deps.db, actor, async (trx, audit) => {
    const row = await trx.selectFrom('dead_letters').selectAll().where('queue', '=', ref.queue).where('job_id', '=', ref.jobId).forUpdate().executeTakeFirst();
    if (!row) {
      throw new ReflexError('not_found', `no dead letter ${ref.queue}/${ref.jobId}`, {
        safeMessage: `No dead letter with job id "${ref.jobId}" in queue "${ref.queue}" (see \`reflex dlq list\`).`,
      });
    }
    const replayJobId = replayJobIdOf(row.job_id);
    if (row.replayed_at) {
      throw new ReflexError('conflict', `dead letter ${ref.queue}/${ref.jobId} already replayed`, {
        safeMessage: `Dead letter ${ref.queue}/${ref.jobId} was replayed at ${row.replayed_at.toISOString()} as job ${replayJobId}; nothing done.`,
      });
    }
    const data = replayDataFor(row.queue, row.data, replayJobId);
    const d = (row.data ?? {}) as { source?: unknown };
    const name = copy?.name ?? (typeof d.source === 'string' ? d.source : 'replay');
    await deps.queues.add(row.queue, name, data, { jobId: replayJobId });
    await trx.updateTable('dead_letters').set({ replayed_at: new Date() }).where('id', '=', row.id).execute();
    const uncounted = row.tenant_id ? eventsCountedDeadLettered(row.queue, row.data) : 0;
    if (uncounted > 0 && row.tenant_id) await incrementCounters(trx, [{ tenantId: row.tenant_id, delta: { dead_lettered: -uncounted } }]);
    audit({
      tenantId: row.tenant_id,
      action: 'queue.dead_letter.replay',
      target: `job:${row.queue}/${row.job_id}`,
      delta: { replayJobId, uncounted, deadLetter: String(row.id) },
    });
    return { queue: row.queue, jobId: row.job_id, replayJobId, tenantId: row.tenant_id, uncounted };
  });
  // The BullMQ copy is what reflex_dlq_size counts; a replayed job is no longer waiting there.
  await copy?.remove().catch(() => undefined);
  return outcome;
}
