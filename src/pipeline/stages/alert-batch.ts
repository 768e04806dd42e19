import type { Kysely, Selectable } from 'kysely';
import type { QueueSystem } from '../../app/queue.ts';
import { ReflexError, toReflexError } from '../../errors.ts';
import type { AlertsTable, Database } from '../../store/schema.ts';
import { alertJobPriority, PIPELINE_QUEUES, type AlertBatch, type AlertJob, type PipelineStage } from '../jobs.ts';

/** What a stage made of a batch: a result per handled alert, and the alerts it could not handle, with why. */
export interface BatchOutcome<R> {
  results: Map<string, R>;
  failed: Map<string, unknown>;
}

export interface AlertBatchOptions<R> {
  stage: PipelineStage;
  queues: QueueSystem;
  /**
   * Handles the whole batch: set-based reads and writes (one statement for a hundred alerts, not
   * a hundred), per-alert work (vendor calls) side by side. An alert it reports failed goes on
   * alone; if it throws, every alert of a larger batch does (a poison alert is isolated that way).
   */
  perBatch: (batch: AlertBatch) => Promise<BatchOutcome<R>>;
  /**
   * Stages that take the alerts this one handled. `when` (asked per batch) says whether that
   * stage can do anything for the tenant; when it says no, no job is queued for it.
   */
  next: readonly { stage: PipelineStage; kind?: 'first'; when?: (tenantId: string) => boolean | Promise<boolean> }[];
  onAlertFailed?: (alertId: string, err: unknown) => void;
}

export interface AlertBatchOutcome<R> {
  results: Map<string, R>;
  /** Alerts that failed here and were re-queued alone, each with its own retries and dead letter. */
  split: string[];
}

/** Runs `fn` over `items`, at most `limit` at a time, in order of the items. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let cursor = 0;
  const lane = async () => {
    while (cursor < items.length) await fn(items[cursor++]!);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, lane));
}

/**
 * An alert row as the stages read it: every column but `enrichment`. The enrichment record keeps
 * each vendor's answer as received (VirusTotal's is several kilobytes), about 6 KB an alert in
 * bench/pipeline's storm; only notify reads it (loadBatchAlertsWithEnrichment). Reading it in
 * every stage cost 4.4 ms per 50 alerts against 1.1 ms without it (measured on a storm's rows,
 * most of it PostgreSQL's jsonb output and the JSON parse here).
 */
const ALERT_COLUMNS = [
  'id', 'tenant_id', 'fingerprint', 'source', 'event_type', 'severity', 'title', 'status', 'occurrences',
  'first_seen', 'last_seen', 'event', 'incident_id', 'case_refs', 'created_at', 'last_received_at',
] as const satisfies readonly Exclude<keyof AlertsTable, 'enrichment'>[];
export type AlertRow = Pick<Selectable<AlertsTable>, (typeof ALERT_COLUMNS)[number]>;

/**
 * The batch's alert rows in one query (the rows are the truth, the job a pointer), and a
 * not_found failure for each id that is not there (or not the tenant's), to be reported as failed.
 * The rows are found by id alone and the tenant checked here: given `tenant_id = …` too, the
 * planner ANDs in a tenant-prefixed index whose estimate lags a fast-growing table, and reads
 * every alert of the tenant (measured after a storm: 2.8 ms for 40 alerts, against 0.5 ms by id).
 */
export async function loadBatchAlerts(db: Kysely<Database>, batch: AlertBatch): Promise<{ rows: AlertRow[]; missing: Map<string, unknown> }> {
  return inBatch(batch, await db.selectFrom('alerts').select(ALERT_COLUMNS).where('id', 'in', [...batch.alertIds]).execute());
}

/** loadBatchAlerts with the enrichment record too. */
export async function loadBatchAlertsWithEnrichment(db: Kysely<Database>, batch: AlertBatch): Promise<{ rows: Selectable<AlertsTable>[]; missing: Map<string, unknown> }> {
  return inBatch(batch, await db.selectFrom('alerts').selectAll().where('id', 'in', [...batch.alertIds]).execute());
}

function inBatch<T extends { id: string; tenant_id: string }>(batch: AlertBatch, found: T[]): { rows: T[]; missing: Map<string, unknown> } {
  const rows = found.filter((r) => r.tenant_id === batch.tenantId);
  const present = new Set(rows.map((r) => r.id));
  const missing = new Map<string, unknown>();
  for (const id of batch.alertIds) {
    if (!present.has(id)) missing.set(id, new ReflexError('not_found', `alert ${id} of tenant ${batch.tenantId} vanished`, { retryable: false }));
  }
  return { rows, missing };
}

/**
 * The audit target of a write to a batch of alerts: `alert:<id>` for one, `alerts:<first id>+<n>`
 * for more, the entry's delta naming every alert. An entry per batch, not per alert: the storm of
 * bench/pipeline wrote 14,000 per-alert rows for enrich and correlate, each inserted, then read,
 * hashed and updated again by the sealer.
 */
export function alertsTarget(ids: readonly string[]): string {
  return ids.length === 1 ? `alert:${ids[0]}` : `alerts:${ids[0]}+${ids.length - 1}`;
}

function nextJobId(stage: PipelineStage, key: string, kind?: 'first'): string {
  return kind ? `${stage}-${key}-${kind}` : `${stage}-${key}`;
}

/**
 * Runs one per-alert stage over a batch job and hands the alerts on.
 *
 * - A batch of one is an ordinary job: a failure throws, BullMQ retries it with backoff and
 *   finally dead-letters it.
 * - A larger batch is handled as a whole (see `perBatch`); an alert that fails, or every alert
 *   when the batch's own reads or writes fail, is re-queued to this stage as a job of its own
 *   (`<stage>-<alertId>`), so one bad alert neither holds back nor re-runs its neighbours, and it
 *   still gets every retry and its own dead letter.
 * - The next stage's job id derives from this batch's key, so a retried batch (a worker died
 *   after queueing) adds nothing twice. Stages are idempotent per alert, so running an alert
 *   again after such a crash changes nothing.
 */
export async function runAlertBatch<R>(job: AlertJob, opts: AlertBatchOptions<R>): Promise<AlertBatchOutcome<R>> {
  const ids = [...new Set(job.alertIds)];
  let out: BatchOutcome<R>;
  try {
    out = await opts.perBatch({ tenantId: job.tenantId, alertIds: ids, kind: job.kind, urgent: job.urgent });
  } catch (err) {
    if (ids.length === 1) throw err;
    out = { results: new Map(), failed: new Map(ids.map((id) => [id, err])) };
  }
  const results = out.results;
  // An alert the handler neither handled nor reported is a failure too: nothing is dropped.
  const split = ids.filter((id) => !results.has(id) || out.failed.has(id));
  if (ids.length === 1 && split.length === 1) {
    throw out.failed.get(ids[0]!) ?? new Error(`${opts.stage}: alert ${ids[0]} was not handled`);
  }
  if (split.length > 0) {
    for (const id of split) {
      results.delete(id);
      opts.onAlertFailed?.(id, toReflexError(out.failed.get(id) ?? new Error('not handled')));
    }
    await opts.queues.addBulk(
      PIPELINE_QUEUES[opts.stage],
      split.map((alertId) => ({
        name: 'alert',
        data: { tenantId: job.tenantId, alertIds: [alertId], ...(job.kind ? { kind: job.kind } : {}), ...(job.urgent ? { urgent: true } : {}) } satisfies AlertJob,
        opts: { jobId: nextJobId(opts.stage, alertId), ...alertJobPriority(job.urgent) },
      })),
    );
  }
  const handled = ids.filter((id) => results.has(id));
  if (handled.length > 0) {
    const key = job.batchKey ?? (ids.length === 1 ? ids[0]! : undefined);
    for (const next of opts.next) {
      if (next.when && !(await next.when(job.tenantId))) continue;
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
