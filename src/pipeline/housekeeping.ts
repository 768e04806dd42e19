import { sql, type Kysely, type Transaction } from 'kysely';
import { toReflexError } from '../errors.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import { attachPendingAlerts } from './stages/case-stage.ts';
import { parseTenantConfig, type TenantPipelineConfig } from './tenant-config.ts';

/**
 * Pipeline housekeeping: deletes the rows the stages can no longer read, so the tables the hot
 * path probes stay the size of the live windows instead of growing with every alert ever seen.
 * - `correlation_keys` rows not refreshed for the tenant's longer window (correlation or dedupe)
 *   plus a grace period. The correlation lookup reads only rows within the correlation window,
 *   but a repeat, which comes within the dedupe window, refreshes its alert's rows, so they are
 *   kept for that long too. Without this, each lookup of a long-lived key (a honeypot host, a
 *   scanner's address) reads one row per incident that key has ever joined.
 * - `correlation_pending` rows older than the correlation window (an incident that opens takes in
 *   only pending alerts within the window; nothing else deletes them but an attach).
 * - `intel_cache` rows expired longer ago than the grace period (reads take unexpired rows only).
 * - `pipeline_batches` rows that can no longer be read:
 *   - the normalize and dedupe stages' retry markers older than MARKER_RETENTION_SECONDS. A marker
 *     stops a batch from being counted twice when its job runs again, which happens within the
 *     job's retry schedule (5 attempts, backoff capped at 5 minutes) or when a stalled job is
 *     picked up again; a dead letter replayed later runs under a new batch id (dead-letters.ts);
 *   - vendor idempotency records (`vendor-idempotency:*`) expired longer ago than the grace
 *     period (an expired record reads as absent).
 *   Phone acknowledgement markers (`phone-ack`) are the record that a call was answered, and stay.
 * Then it attaches the pending alerts still within the window to any open incident that shares a
 * key with them (attachPendingAlerts). The case stage does that when it opens an incident; should
 * that step fail after the incident's commit, the job's retry does not open the incident again,
 * and the sweep is what attaches them.
 *
 * Rows are deleted in chunks, each chunk in its own audited transaction, with `for update skip
 * locked`: a row a stage holds is left for the next sweep and nothing waits on the sweep, and two
 * processes sweeping at once share the work instead of blocking each other.
 * Not touched: `intel_reports` (alerts' enrichment records name them for as long as the alerts
 * exist).
 */

/** Kept past each window, so a window raised in tenant config still finds its recent rows. */
export const HOUSEKEEPING_GRACE_SECONDS = 3600;
/** How long a stage's retry marker is kept: far past any retry of its job (see above). */
export const MARKER_RETENTION_SECONDS = 7 * 86_400;
/** The stages whose `pipeline_batches` rows are retry markers (the other stages are tagged by their job ids). */
const MARKER_STAGES = ['normalize', 'dedupe'] as const;
const CHUNK = 5000;

export interface HousekeepingResult {
  correlationKeys: number;
  correlationPending: number;
  intelCache: number;
  /** `pipeline_batches` rows: stage retry markers past retention, expired vendor idempotency records. */
  markers: number;
  /** Pending alerts attached to an incident by the sweep. */
  attached: number;
  /** Tenants skipped this time, with why (an invalid tenant config); the others were swept. */
  skipped: { tenantId: string; reason: string }[];
}

export interface HousekeepingOptions {
  graceSeconds?: number;
  markerRetentionSeconds?: number;
  /** Rows per transaction (tests use small chunks to cover the loop). */
  chunk?: number;
}

type Trx = Transaction<Database>;

/** Deletes up to `limit` rows of `table` matching `where`, skipping rows another transaction holds. */
async function deleteChunk(trx: Trx, table: 'correlation_keys' | 'correlation_pending' | 'intel_cache' | 'pipeline_batches', where: ReturnType<typeof sql>, limit: number): Promise<number> {
  const res = await sql`
    delete from ${sql.table(table)} where ctid = any(array(
      select ctid from ${sql.table(table)} where ${where} limit ${limit} for update skip locked))`.execute(trx);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Runs `step` in audited transactions until it deletes fewer than `chunk` rows of every table;
 * the total per table. Each transaction's audit entry names `target` and the counts.
 */
async function inChunks<K extends string>(
  db: Kysely<Database>,
  tenantId: string | null,
  target: string,
  chunk: number,
  step: (trx: Trx) => Promise<Record<K, number>>,
): Promise<Record<K, number>> {
  const total = {} as Record<K, number>;
  for (;;) {
    const deleted = await auditedWrite(db, 'system', async (trx, audit) => {
      const counts = await step(trx);
      audit({ tenantId, action: 'pipeline.housekeeping', target, delta: { deleted: counts } });
      return counts;
    });
    for (const [k, n] of Object.entries(deleted) as [K, number][]) total[k] = (total[k] ?? 0) + n;
    if (Object.values<number>(deleted).every((n) => n < chunk)) return total;
  }
}

/**
 * Deletes every row of a deployment-wide table matching `where`, in audited chunks (target: the
 * table's name). A cheap probe first: most sweeps find nothing, and an empty sweep writes no audit
 * entry. Returns how many rows went.
 */
async function sweepTable(db: Kysely<Database>, table: 'intel_cache' | 'pipeline_batches', where: ReturnType<typeof sql>, chunk: number): Promise<number> {
  const probe = await sql<{ any: boolean }>`select exists(select 1 from ${sql.table(table)} where ${where}) as any`.execute(db);
  if (!probe.rows[0]?.any) return 0;
  const n = await inChunks(db, null, table, chunk, async (trx) => ({ [table]: await deleteChunk(trx, table, where, chunk) }));
  return n[table] ?? 0;
}

/** One sweep over every tenant. Safe to run at any time, from any number of processes. */
export async function runHousekeeping(db: Kysely<Database>, opts: HousekeepingOptions = {}): Promise<HousekeepingResult> {
  const grace = opts.graceSeconds ?? HOUSEKEEPING_GRACE_SECONDS;
  const chunk = opts.chunk ?? CHUNK;
  const markerRetention = opts.markerRetentionSeconds ?? MARKER_RETENTION_SECONDS;
  const out: HousekeepingResult = { correlationKeys: 0, correlationPending: 0, intelCache: 0, markers: 0, attached: 0, skipped: [] };
  const tenants = await db.selectFrom('tenants').select(['id', 'config']).orderBy('id').execute();
  for (const t of tenants) {
    let cfg: TenantPipelineConfig;
    try {
      cfg = parseTenantConfig(t.id, t.config);
    } catch (err) {
      // Its windows are unknown, so nothing of it is deleted; one broken tenant does not stop the rest.
      out.skipped.push({ tenantId: t.id, reason: toReflexError(err).message });
      continue;
    }
    const keysFor = Math.max(cfg.correlation_window_seconds, cfg.dedupe_window_seconds) + grace;
    const staleKeys = sql`tenant_id = ${t.id} and last_received_at < now() - make_interval(secs => ${keysFor})`;
    const stalePending = sql`tenant_id = ${t.id} and created_at < now() - make_interval(secs => ${cfg.correlation_window_seconds})`;
    // Cheap probes first: most sweeps find nothing, and an empty sweep writes no audit entry.
    const found = await sql<{ keys: boolean; stale_pending: boolean; pending: boolean }>`
      select exists(select 1 from correlation_keys where ${staleKeys}) as keys,
             exists(select 1 from correlation_pending where ${stalePending}) as stale_pending,
             exists(select 1 from correlation_pending where tenant_id = ${t.id} and not (${stalePending})) as pending`.execute(db);
    const probe = found.rows[0];
    if (probe?.keys || probe?.stale_pending) {
      const n = await inChunks(db, t.id, `tenant:${t.id}`, chunk, async (trx) => ({
        correlation_keys: await deleteChunk(trx, 'correlation_keys', staleKeys, chunk),
        correlation_pending: await deleteChunk(trx, 'correlation_pending', stalePending, chunk),
      }));
      out.correlationKeys += n.correlation_keys;
      out.correlationPending += n.correlation_pending;
    }
    if (probe?.pending) out.attached += await attachPendingAlerts(db, t.id, 'any', cfg.correlation_window_seconds);
  }
  out.intelCache = await sweepTable(db, 'intel_cache', sql`expires_at < now() - make_interval(secs => ${grace})`, chunk);
  // Vendor records hold their expiry as epoch milliseconds (database-idempotency-store.ts); one
  // whose result is not a number there is not theirs to judge and stays.
  out.markers = await sweepTable(
    db,
    'pipeline_batches',
    sql`(stage in (${sql.join([...MARKER_STAGES])}) and processed_at < now() - make_interval(secs => ${markerRetention}))
      or (stage like 'vendor-idempotency:%' and jsonb_typeof(result->'expires_at') = 'number'
          and (result->>'expires_at')::numeric < (extract(epoch from now()) - ${grace}) * 1000)`,
    chunk,
  );
  return out;
}
