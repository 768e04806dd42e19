import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { QueueSystem } from '../../app/queue.ts';
import { evaluateCondition } from '../../engine/expressions.ts';
import { lockAlertRows } from '../../store/alert-rows.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { refreshCorrelationKeys } from '../../store/correlation-keys.ts';
import { GroupCommit } from '../../store/group-commit.ts';
import type { Database } from '../../store/schema.ts';
import { incrementCounters } from '../counters.ts';
import type { SentinelEvent } from '../event.ts';
import { fingerprintOf, titleOf } from '../fingerprint.ts';
import { ALERT_BATCH, alertJobPriority, isUrgent, PIPELINE_QUEUES, type AlertJob, type DedupeJob } from '../jobs.ts';
import type { TenantPipelineConfig } from '../tenant-config.ts';
import type { ActiveSuppressionRule, TenantDirectory } from '../tenant-directory.ts';

export interface DedupeResult {
  newAlertIds: string[];
  /** The SEV1/SEV2 ones among them (absent in batch markers written before priorities). */
  urgentAlertIds?: string[];
  /** Existing alerts this batch bumped that are due an "Nth occurrence" update (notified at all). */
  repeatAlertIds: string[];
  suppressed: number;
  deduplicated: number;
}

interface OpenAlert {
  id: string;
  fingerprint: string;
  occurrences: number;
  lastSeen: Date;
  added: number;
  severity: number;
  /** An existing alert's incident: its repeats refresh the incident's correlation keys. */
  incidentId?: string | null;
  /** The first event and title of an alert this transaction creates; existing alerts need neither. */
  created?: { event: SentinelEvent; title: string };
}
type NewAlert = OpenAlert & Required<Pick<OpenAlert, 'created'>>;

/** Events per dedupe transaction at most: the events INSERT binds 9 parameters each (PostgreSQL allows 65,535). */
const MAX_EVENTS_PER_COMMIT = 5000;

export interface DedupeDeps {
  db: Kysely<Database>;
  queues: QueueSystem;
  tenants: TenantDirectory;
  /** Whether any notifier posts this tenant's alerts; without one, repeats schedule no update. Default: yes. */
  notifies?: (tenantId: string, config: TenantPipelineConfig) => boolean;
}

/**
 * dedupe / correlate / suppress, one transaction per batch of jobs:
 * - suppression rules (JSONata over the event, with owner, reason and expiry) mark matching events
 *   `suppressed`, counted and kept, and bump the rule's hit counter;
 * - the rest are grouped by fingerprint; a fingerprint seen within the tenant's window bumps
 *   `occurrences` and `last_seen` on the existing alert, otherwise a new alert is created;
 * - counters, events, alerts, the audit rows and the batch markers commit together, so a retry
 *   after a crash finds its marker and neither counts nor creates anything twice.
 * Per-fingerprint advisory locks (taken in sorted order) serialise concurrent transactions that
 * share a fingerprint, so two workers cannot both create "the first" alert.
 *
 * `createDedupeStage` merges the jobs that arrive while earlier ones are being written into one
 * transaction per tenant (group commit, store/group-commit.ts): a storm of small batches costs a
 * few statements per merge instead of a dozen per job. Each job
 * still gets its own result and marker, hands its own alerts on, and completes only after the
 * commit; a merge that fails is retried job by job, so one bad job fails alone.
 */
export function createDedupeStage(deps: DedupeDeps, opts: { maxJobs?: number; maxConcurrent?: number } = {}): (job: DedupeJob) => Promise<DedupeResult> {
  const scheduled = new ScheduledRepeats();
  const lane = () =>
    new GroupCommit<DedupeJob, DedupeResult>({
      name: 'pipeline.dedupe',
      maxBatch: opts.maxJobs ?? 64,
      // One merge in flight per lane: a storm's batches share their hot fingerprints, so a second
      // concurrent transaction mostly waits on the first one's locks (measured: the routine lane
      // spent 51.5 s in flushes of 7.5 jobs each with two, 24.9 s in flushes of 13.6 with one).
      maxConcurrent: opts.maxConcurrent ?? 1,
      flush: async (jobs) => {
        const done = await commitDedupe(deps, jobs);
        await handOn(deps, jobs, done, scheduled);
        return done.map((d) => d.result);
      },
    });
  // Urgent jobs (SEV1/SEV2 payloads) merge only with each other, never behind a routine merge.
  const routine = lane();
  const urgent = lane();
  return (job) => (job.urgent ? urgent : routine).submit(job);
}

interface Committed {
  result: DedupeResult;
  /** The job's marker was there already: a retry, whose alerts were handed on before. */
  replayed: boolean;
}

/** Commits the jobs, one transaction per tenant (and per MAX_EVENTS_PER_COMMIT events); results in job order. */
async function commitDedupe(deps: DedupeDeps, jobs: readonly DedupeJob[]): Promise<Committed[]> {
  const results: Committed[] = new Array(jobs.length);
  const byTenant = new Map<string, { chunks: number[][]; events: number }>();
  jobs.forEach((job, i) => {
    const t = byTenant.get(job.tenantId) ?? { chunks: [[]], events: 0 };
    if (t.events > 0 && t.events + job.events.length > MAX_EVENTS_PER_COMMIT) {
      t.chunks.push([]);
      t.events = 0;
    }
    t.chunks[t.chunks.length - 1]!.push(i);
    t.events += job.events.length;
    byTenant.set(job.tenantId, t);
  });
  for (const [tenantId, { chunks }] of byTenant) {
    for (const chunk of chunks) {
      const out = await dedupeTenant(deps, tenantId, chunk.map((i) => jobs[i]!));
      chunk.forEach((i, k) => (results[i] = out[k]!));
    }
  }
  return results;
}

/** Which suppression rule (if any) takes each event of a job. */
async function suppressions(rules: ActiveSuppressionRule[], events: readonly SentinelEvent[]): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (const event of events) {
    let hit: string | null = null;
    for (const rule of rules) {
      if (rule.expiresAt.getTime() <= Date.now()) continue;
      try {
        if (await evaluateCondition(rule.match, { event }, `suppression rule ${rule.name}`)) {
          hit = rule.id;
          break;
        }
      } catch {
        // A broken rule must not drop events: it matches nothing (the rule editor validates).
      }
    }
    out.push(hit);
  }
  return out;
}

/** An `events` row of this tenant, as the insert's JSON document carries it. */
interface EventRow {
  source: string;
  event_type: string;
  severity: number;
  fingerprint: string;
  occurred_at: Date;
  alert_id: string | null;
  normalized: SentinelEvent;
  outcome: 'new' | 'deduplicated' | 'suppressed';
  suppressed_by: string | null;
}

async function dedupeTenant(deps: DedupeDeps, tenantId: string, jobs: DedupeJob[]): Promise<Committed[]> {
  const config = await deps.tenants.config(tenantId);
  const rules = await deps.tenants.suppressionRules(tenantId);
  const suppressedBy = await Promise.all(jobs.map((job) => suppressions(rules, job.events)));

  return auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
    const markers = await trx
      .selectFrom('pipeline_batches')
      .select(['batch_id', 'result'])
      .where('batch_id', 'in', [...new Set(jobs.map((j) => j.batchId))])
      .where('stage', '=', 'dedupe')
      .execute();
    const done = new Map(markers.map((m) => [m.batch_id, m.result as DedupeResult]));
    for (const job of jobs.filter((j) => done.has(j.batchId))) {
      audit({ tenantId, action: 'pipeline.dedupe.replayed', target: `batch:${job.batchId}`, delta: {} });
    }
    // The first copy of each batch without a marker counts; any other copy of it in this merge (a
    // re-queued one) replays that copy's result.
    const firstCopy = new Map<string, number>();
    jobs.forEach((job, i) => {
      if (!done.has(job.batchId) && !firstCopy.has(job.batchId)) firstCopy.set(job.batchId, i);
    });
    const todo = [...firstCopy.values()].map((i) => ({ job: jobs[i]!, suppressed: suppressedBy[i]! }));
    const committed = (): Committed[] => jobs.map((job, i) => ({ result: done.get(job.batchId)!, replayed: firstCopy.get(job.batchId) !== i }));
    if (todo.length === 0) return committed();

    const fingerprints = todo.map(({ job }) => job.events.map((e) => fingerprintOf(e)));
    const live = [...new Set(todo.flatMap(({ suppressed }, t) => fingerprints[t]!.filter((_, i) => !suppressed[i])))].sort();
    if (live.length > 0) {
      await sql`select pg_advisory_xact_lock(hashtextextended(${tenantId} || ':' || fp, 0))
                from unnest(${live}::text[]) as fp order by fp`.execute(trx);
    }
    const existing = live.length
      ? await trx
          .selectFrom('alerts')
          .select(['id', 'fingerprint', 'occurrences', 'last_seen', 'severity', 'incident_id'])
          .where('tenant_id', '=', tenantId)
          .where('fingerprint', 'in', live)
          .where('status', '!=', 'closed')
          .where('last_received_at', '>=', sql<Date>`now() - make_interval(secs => ${config.dedupe_window_seconds})`)
          .orderBy('last_received_at', 'desc')
          .execute()
      : [];
    const open = new Map<string, OpenAlert>();
    for (const a of existing) {
      if (!open.has(a.fingerprint)) {
        open.set(a.fingerprint, { id: a.id, fingerprint: a.fingerprint, occurrences: a.occurrences, lastSeen: a.last_seen, added: 0, severity: a.severity, incidentId: a.incident_id });
      }
    }
    const notified = deps.notifies?.(tenantId, config) ?? true;
    const eventRows: EventRow[] = [];
    const ruleHits = new Map<string, number>();
    const created: NewAlert[] = [];
    let totals = { new: 0, deduplicated: 0, suppressed: 0 };
    const batchRows: { batch_id: string; stage: string; tenant_id: string; result: string }[] = [];
    todo.forEach(({ job, suppressed: suppressedOf }, t) => {
      let suppressed = 0;
      let deduplicated = 0;
      const mine: NewAlert[] = [];
      const bumpedHere = new Map<OpenAlert, number>();
      job.events.forEach((event, i) => {
        const fp = fingerprints[t]![i]!;
        const at = new Date(event.timestamp);
        const rule = suppressedOf[i];
        if (rule) {
          suppressed += 1;
          ruleHits.set(rule, (ruleHits.get(rule) ?? 0) + 1);
          eventRows.push({ source: event.source, event_type: event.event_type, severity: event.severity, fingerprint: fp, occurred_at: at, alert_id: null, normalized: event, outcome: 'suppressed', suppressed_by: rule });
          return;
        }
        let alert = open.get(fp);
        if (alert) {
          deduplicated += 1;
          alert.added += 1;
          bumpedHere.set(alert, (bumpedHere.get(alert) ?? 0) + 1);
          if (at > alert.lastSeen) alert.lastSeen = at;
        } else {
          const fresh: NewAlert = { id: randomUUID(), fingerprint: fp, occurrences: 1, lastSeen: at, added: 0, severity: event.severity, created: { event, title: titleOf(event) } };
          alert = fresh;
          open.set(fp, alert);
          mine.push(fresh);
        }
        eventRows.push({ source: event.source, event_type: event.event_type, severity: event.severity, fingerprint: fp, occurred_at: at, alert_id: alert.id, normalized: event, outcome: alert.created && alert.added === 0 ? 'new' : 'deduplicated', suppressed_by: null });
      });
      created.push(...mine);
      totals = { new: totals.new + mine.length, deduplicated: totals.deduplicated + deduplicated, suppressed: totals.suppressed + suppressed };
      const outcome: DedupeResult = {
        newAlertIds: mine.map((a) => a.id),
        urgentAlertIds: mine.filter((a) => isUrgent(a.severity)).map((a) => a.id),
        repeatAlertIds: notified ? [...bumpedHere.keys()].filter((a) => a.severity <= config.notify.min_severity).map((a) => a.id) : [],
        suppressed,
        deduplicated,
      };
      done.set(job.batchId, outcome);
      batchRows.push({ batch_id: job.batchId, stage: 'dedupe', tenant_id: tenantId, result: JSON.stringify(outcome) });
      audit({
        tenantId,
        action: 'pipeline.alerts',
        target: `batch:${job.batchId}`,
        delta: { created: outcome.newAlertIds, bumped: [...bumpedHere].map(([a, by]) => ({ id: a.id, by })), suppressed, deduplicated },
      });
    });
    const bumped = [...open.values()].filter((a) => !a.created && a.added > 0);
    // Both inserts send their rows as one JSON document that PostgreSQL expands
    // (jsonb_to_recordset), events nested as objects: a bind parameter per column per row cost the
    // server twice the CPU (query building, parameter encoding, and the garbage of both), measured
    // on 800-row inserts: 10-13 ms against 5 ms of node CPU. As jsonb, the document is parsed once
    // and each event copied out in binary; json_to_recordset lexes it, then parses every event
    // again into its jsonb column (39-41 against 29-30 µs of PostgreSQL time per 930-byte event).
    if (created.length) {
      const rows = created.map(({ created: c, ...a }) => ({
        id: a.id,
        fingerprint: a.fingerprint,
        source: c.event.source,
        event_type: c.event.event_type,
        severity: a.severity,
        title: c.title,
        occurrences: 1 + a.added,
        first_seen: c.event.timestamp,
        last_seen: a.lastSeen,
        event: c.event,
      }));
      await sql`
        insert into alerts (id, tenant_id, fingerprint, source, event_type, severity, title, occurrences, first_seen, last_seen, event)
        select r.id, ${tenantId}, r.fingerprint, r.source, r.event_type, r.severity, r.title, r.occurrences, r.first_seen, r.last_seen, r.event
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(id uuid, fingerprint text, source text, event_type text, severity smallint, title text,
          occurrences int, first_seen timestamptz, last_seen timestamptz, event jsonb)`.execute(trx);
    }
    if (eventRows.length) {
      await sql`
        insert into events (tenant_id, source, event_type, severity, fingerprint, occurred_at, alert_id, normalized, outcome, suppressed_by)
        select ${tenantId}, r.source, r.event_type, r.severity, r.fingerprint, r.occurred_at, r.alert_id, r.normalized, r.outcome, r.suppressed_by
        from jsonb_to_recordset(${JSON.stringify(eventRows)}::jsonb) as r(source text, event_type text, severity smallint, fingerprint text,
          occurred_at timestamptz, alert_id uuid, normalized jsonb, outcome text, suppressed_by uuid)`.execute(trx);
    }
    for (const [ruleId, n] of ruleHits) {
      await trx
        .updateTable('suppression_rules')
        .set({ hits: sql`hits + ${n}`, last_hit_at: new Date() })
        .where('id', '=', ruleId)
        .execute();
    }
    await incrementCounters(trx, [{ tenantId, delta: totals }]);
    await trx.insertInto('pipeline_batches').values(batchRows).execute();
    // Last, so the repeats' row locks, which the enrich and case stages wait for, are held only
    // until the commit.
    if (bumped.length) {
      await lockAlertRows(trx, bumped.map((a) => a.id));
      const values = sql.join(bumped.map((a) => sql`(${a.id}::uuid, ${a.added}::int, ${a.lastSeen}::timestamptz)`));
      await sql`update alerts set occurrences = alerts.occurrences + v.n, last_seen = greatest(alerts.last_seen, v.ls), last_received_at = now()
                from (values ${values}) as v(id, n, ls) where alerts.id = v.id`.execute(trx);
      await refreshCorrelationKeys(trx, bumped.filter((a) => a.incidentId).map((a) => a.id));
    }
    return committed();
  });
}

/**
 * Repeat-update job ids this process has queued (they carry their interval's bucket): a storm
 * bumps the same alerts in every batch, and asking the queue again (it would answer "exists") is
 * a round trip per alert per batch. Bounded: forgotten all at once past 100,000 ids.
 */
class ScheduledRepeats {
  private readonly ids = new Set<string>();

  fresh(jobIds: string[]): string[] {
    if (this.ids.size > 100_000) this.ids.clear();
    return jobIds.filter((id) => !this.ids.has(id));
  }

  remember(jobIds: string[]): void {
    for (const id of jobIds) this.ids.add(id);
  }
}

/**
 * After commit: hand the new alerts on, and schedule at most one "Nth occurrence" update per
 * alert per repeat interval (the job id carries the interval's bucket).
 *
 * The new alerts of all the merge's jobs of a tenant travel together (chunks of ALERT_BATCH,
 * urgent ones apart, ahead of the routine backlog), under job ids derived from the first job's
 * batch id. A replayed job (its marker was there) hands its own alerts on under its own batch id,
 * as the first run did, so a retry queues nothing twice. Should the queue fail here, every job of
 * the merge fails and is retried alone, replaying; its alerts may then pass the next stages a
 * second time, which changes nothing there (every stage is idempotent per alert).
 */
async function handOn(deps: DedupeDeps, jobs: readonly DedupeJob[], done: readonly Committed[], scheduled: ScheduledRepeats): Promise<void> {
  const enrich: { name: string; data: AlertJob; opts: { jobId: string; priority?: number } }[] = [];
  const groups = new Map<string, { key: string; tenantId: string; ids: string[]; urgent: Set<string> }>();
  jobs.forEach((job, i) => {
    const { result, replayed } = done[i]!;
    const k = replayed ? `replay\u0000${job.batchId}` : job.tenantId;
    const g = groups.get(k) ?? { key: job.batchId, tenantId: job.tenantId, ids: [], urgent: new Set<string>() };
    g.ids.push(...result.newAlertIds);
    for (const id of result.urgentAlertIds ?? []) g.urgent.add(id);
    groups.set(k, g);
  });
  for (const g of groups.values()) {
    for (const urgent of [true, false]) {
      const ids = g.ids.filter((id) => g.urgent.has(id) === urgent);
      for (let i = 0; i < ids.length; i += ALERT_BATCH) {
        const batchKey = `${g.key}-${urgent ? 'u' : 'r'}${i / ALERT_BATCH}`;
        enrich.push({
          name: 'alert',
          data: { tenantId: g.tenantId, alertIds: ids.slice(i, i + ALERT_BATCH), batchKey, ...(urgent ? { urgent: true } : {}) },
          opts: { jobId: `enrich-${batchKey}`, ...alertJobPriority(urgent) },
        });
      }
    }
  }
  if (enrich.length) await deps.queues.addBulk(PIPELINE_QUEUES.enrich, enrich);

  const repeats: { name: string; data: AlertJob; opts: { jobId: string; delay: number } }[] = [];
  for (const [i, job] of jobs.entries()) {
    const { result } = done[i]!;
    const config = await deps.tenants.config(job.tenantId);
    const bucket = Math.floor(Date.now() / 1000 / config.notify.repeat_interval_seconds);
    const due = result.repeatAlertIds.filter((id) => !result.newAlertIds.includes(id));
    const fresh = new Set(scheduled.fresh(due.map((alertId) => `notify-${alertId}-repeat-${bucket}`)));
    for (const alertId of due) {
      const jobId = `notify-${alertId}-repeat-${bucket}`;
      if (!fresh.delete(jobId)) continue;
      repeats.push({ name: 'repeat', data: { tenantId: job.tenantId, alertIds: [alertId], kind: 'repeat' as const }, opts: { jobId, delay: config.notify.repeat_interval_seconds * 1000 } });
    }
  }
  if (repeats.length) {
    await deps.queues.addBulk(PIPELINE_QUEUES.notify, repeats);
    scheduled.remember(repeats.map((r) => r.opts.jobId));
  }
}
