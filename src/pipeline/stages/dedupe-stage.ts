import { randomUUID } from 'node:crypto';
import { sql, type Insertable, type Kysely } from 'kysely';
import type { QueueSystem } from '../../app/queue.ts';
import { evaluateCondition } from '../../engine/expressions.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database, EventsTable } from '../../store/schema.ts';
import { incrementCounters } from '../counters.ts';
import type { SentinelEvent } from '../event.ts';
import { fingerprintOf, titleOf } from '../fingerprint.ts';
import { ALERT_BATCH, alertJobPriority, isUrgent, PIPELINE_QUEUES, type AlertJob, type DedupeJob } from '../jobs.ts';
import type { TenantDirectory } from '../tenant-directory.ts';

export interface DedupeResult {
  newAlertIds: string[];
  /** The SEV1/SEV2 ones among them (absent in batch markers written before priorities). */
  urgentAlertIds?: string[];
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
  isNew: boolean;
  severity: number;
  event: SentinelEvent;
  title: string;
}

/**
 * dedupe / correlate / suppress, one transaction per batch:
 * - suppression rules (JSONata over the event, with owner, reason and expiry) mark matching events
 *   `suppressed`, counted and kept, and bump the rule's hit counter;
 * - the rest are grouped by fingerprint; a fingerprint seen within the tenant's window bumps
 *   `occurrences` and `last_seen` on the existing alert, otherwise a new alert is created;
 * - counters, events, alerts, the audit row and the batch marker commit together, so a retry after
 *   a crash finds the marker and neither counts nor creates anything twice.
 * Per-fingerprint advisory locks (taken in sorted order) serialise concurrent batches that share
 * a fingerprint, so two workers cannot both create "the first" alert.
 */
export async function runDedupeStage(job: DedupeJob, deps: { db: Kysely<Database>; queues: QueueSystem; tenants: TenantDirectory }): Promise<DedupeResult> {
  const config = await deps.tenants.config(job.tenantId);
  const rules = await deps.tenants.suppressionRules(job.tenantId);
  const suppressedBy: (string | null)[] = [];
  for (const [i, event] of job.events.entries()) {
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
    suppressedBy[i] = hit;
  }

  const result = await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
    const done = await trx
      .selectFrom('pipeline_batches')
      .select('result')
      .where('batch_id', '=', job.batchId)
      .where('stage', '=', 'dedupe')
      .executeTakeFirst();
    if (done) {
      audit({ tenantId: job.tenantId, action: 'pipeline.dedupe.replayed', target: `batch:${job.batchId}`, delta: {} });
      return done.result as DedupeResult;
    }
    const fingerprints = job.events.map((e) => fingerprintOf(e));
    const live = [...new Set(fingerprints.filter((_, i) => !suppressedBy[i]))].sort();
    if (live.length > 0) {
      await sql`select pg_advisory_xact_lock(hashtextextended(${job.tenantId} || ':' || fp, 0))
                from unnest(${live}::text[]) as fp order by fp`.execute(trx);
    }
    const existing = live.length
      ? await trx
          .selectFrom('alerts')
          .select(['id', 'fingerprint', 'occurrences', 'last_seen', 'severity', 'title', 'event'])
          .where('tenant_id', '=', job.tenantId)
          .where('fingerprint', 'in', live)
          .where('status', '!=', 'closed')
          .where('last_received_at', '>=', sql<Date>`now() - make_interval(secs => ${config.dedupe_window_seconds})`)
          .orderBy('last_received_at', 'desc')
          .execute()
      : [];
    const open = new Map<string, OpenAlert>();
    for (const a of existing) {
      if (!open.has(a.fingerprint)) {
        open.set(a.fingerprint, { id: a.id, fingerprint: a.fingerprint, occurrences: a.occurrences, lastSeen: a.last_seen, added: 0, isNew: false, severity: a.severity, event: a.event as SentinelEvent, title: a.title });
      }
    }
    const eventRows: Insertable<EventsTable>[] = [];
    let suppressed = 0;
    let deduplicated = 0;
    const ruleHits = new Map<string, number>();
    job.events.forEach((event, i) => {
      const fp = fingerprints[i]!;
      const at = new Date(event.timestamp);
      const rule = suppressedBy[i];
      if (rule) {
        suppressed += 1;
        ruleHits.set(rule, (ruleHits.get(rule) ?? 0) + 1);
        eventRows.push({ tenant_id: job.tenantId, source: event.source, event_type: event.event_type, severity: event.severity, fingerprint: fp, occurred_at: at, alert_id: null, normalized: JSON.stringify(event), outcome: 'suppressed', suppressed_by: rule });
        return;
      }
      let alert = open.get(fp);
      if (alert) {
        deduplicated += 1;
        alert.added += 1;
        if (at > alert.lastSeen) alert.lastSeen = at;
      } else {
        alert = { id: randomUUID(), fingerprint: fp, occurrences: 1, lastSeen: at, added: 0, isNew: true, severity: event.severity, event, title: titleOf(event) };
        open.set(fp, alert);
      }
      eventRows.push({ tenant_id: job.tenantId, source: event.source, event_type: event.event_type, severity: event.severity, fingerprint: fp, occurred_at: at, alert_id: alert.id, normalized: JSON.stringify(event), outcome: alert.isNew && alert.added === 0 && alert.occurrences === 1 ? 'new' : 'deduplicated' });
    });
    const created = [...open.values()].filter((a) => a.isNew);
    const bumped = [...open.values()].filter((a) => !a.isNew && a.added > 0);
    if (created.length) {
      await trx
        .insertInto('alerts')
        .values(
          created.map((a) => ({
            id: a.id,
            tenant_id: job.tenantId,
            fingerprint: a.fingerprint,
            source: a.event.source,
            event_type: a.event.event_type,
            severity: a.severity,
            title: a.title,
            occurrences: 1 + a.added,
            first_seen: a.event.timestamp,
            last_seen: a.lastSeen,
            event: JSON.stringify(a.event),
          })),
        )
        .execute();
    }
    if (bumped.length) {
      const values = sql.join(bumped.map((a) => sql`(${a.id}::uuid, ${a.added}::int, ${a.lastSeen}::timestamptz)`));
      await sql`update alerts set occurrences = alerts.occurrences + v.n, last_seen = greatest(alerts.last_seen, v.ls), last_received_at = now()
                from (values ${values}) as v(id, n, ls) where alerts.id = v.id`.execute(trx);
    }
    if (eventRows.length) await trx.insertInto('events').values(eventRows).execute();
    for (const [ruleId, n] of ruleHits) {
      await trx
        .updateTable('suppression_rules')
        .set({ hits: sql`hits + ${n}`, last_hit_at: new Date() })
        .where('id', '=', ruleId)
        .execute();
    }
    await incrementCounters(trx, [{ tenantId: job.tenantId, delta: { new: created.length, deduplicated, suppressed } }]);
    const outcome: DedupeResult = {
      newAlertIds: created.map((a) => a.id),
      urgentAlertIds: created.filter((a) => isUrgent(a.severity)).map((a) => a.id),
      repeatAlertIds: [...open.values()].filter((a) => a.added > 0).map((a) => a.id),
      suppressed,
      deduplicated,
    };
    await trx.insertInto('pipeline_batches').values({ batch_id: job.batchId, stage: 'dedupe', tenant_id: job.tenantId, result: JSON.stringify(outcome) }).execute();
    audit({
      tenantId: job.tenantId,
      action: 'pipeline.alerts',
      target: `batch:${job.batchId}`,
      delta: { created: outcome.newAlertIds, bumped: bumped.map((a) => ({ id: a.id, by: a.added })), suppressed, deduplicated },
    });
    return outcome;
  });

  // After commit: hand new alerts on, and schedule at most one "Nth occurrence" update per alert
  // per repeat interval (the job id carries the interval's bucket).
  const bucket = Math.floor(Date.now() / 1000 / config.notify.repeat_interval_seconds);
  // Urgent (SEV1/SEV2) alerts travel in chunks of their own that overtake the routine backlog.
  const urgentIds = new Set(result.urgentAlertIds ?? []);
  const jobs: { name: string; data: AlertJob; opts: { jobId: string; priority?: number } }[] = [];
  for (const urgent of [true, false]) {
    const ids = result.newAlertIds.filter((id) => urgentIds.has(id) === urgent);
    for (let i = 0; i < ids.length; i += ALERT_BATCH) {
      const batchKey = `${job.batchId}-${urgent ? 'u' : 'r'}${i / ALERT_BATCH}`;
      jobs.push({
        name: 'alert',
        data: { tenantId: job.tenantId, alertIds: ids.slice(i, i + ALERT_BATCH), batchKey, ...(urgent ? { urgent: true } : {}) },
        opts: { jobId: `enrich-${batchKey}`, ...alertJobPriority(urgent) },
      });
    }
  }
  if (jobs.length) await deps.queues.addBulk(PIPELINE_QUEUES.enrich, jobs);
  const repeats = result.repeatAlertIds.filter((id) => !result.newAlertIds.includes(id));
  if (repeats.length) {
    await deps.queues.addBulk(
      PIPELINE_QUEUES.notify,
      repeats.map((alertId) => ({
        name: 'repeat',
        data: { tenantId: job.tenantId, alertIds: [alertId], kind: 'repeat' as const },
        opts: { jobId: `notify-${alertId}-repeat-${bucket}`, delay: config.notify.repeat_interval_seconds * 1000 },
      })),
    );
  }
  return result;
}
