import type { Kysely, Selectable } from 'kysely';
import type { ChatMessage } from '../../bot/chat-types.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database, NotificationThrottleTable } from '../../store/schema.ts';
import type { EnrichmentRecord } from './enrich-stage.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertBatch } from '../jobs.ts';
import type { TenantPipelineConfig } from '../tenant-config.ts';
import { eachLimited, loadBatchAlerts, loadBatchAlertsWithEnrichment, type AlertRow, type BatchOutcome } from './alert-batch.ts';
import type { Notifier } from '../notifiers.ts';
import type { TenantDirectory } from '../tenant-directory.ts';

/** An alert as notify reads it: with its enrichment record when a first message will show it. */
type NotifyRow = AlertRow & { enrichment?: unknown };

const SEVERITY_NAME = { 1: 'SEV1 critical', 2: 'SEV2 high', 3: 'SEV3 medium', 4: 'SEV4 info' } as const;

function ordinal(n: number): string {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return `${n}${s[(v - 20) % 10] ?? s[v] ?? s[0]}`;
}

export function alertMessage(alert: { id: string; title: string; severity: number; occurrences: number; incident_id: string | null }, event: SentinelEvent, enrichment: EnrichmentRecord | null): ChatMessage {
  const worst = enrichment?.verdicts.reduce<string | undefined>((w, v) => (v.verdict === 'malicious' ? 'malicious' : w === 'malicious' ? w : v.verdict === 'suspicious' ? 'suspicious' : w ?? v.verdict), undefined);
  return {
    title: `${SEVERITY_NAME[alert.severity as 1 | 2 | 3 | 4]}: ${alert.title}`,
    text: `${event.event_type} from ${event.source} at ${event.timestamp}`,
    fields: [
      ...(event.host.name || event.host.ip ? [{ label: 'Host', value: [event.host.name, event.host.ip].filter(Boolean).join(' / ') }] : []),
      ...(event.principal.user ? [{ label: 'User', value: event.principal.user }] : []),
      ...(event.observables.ip.length ? [{ label: 'IPs', value: event.observables.ip.slice(0, 5).join(', ') }] : []),
      { label: 'Intel', value: enrichment ? `${enrichment.status}${worst ? `, worst verdict: ${worst}` : ''}` : 'pending' },
    ],
    context: [`alert ${alert.id.slice(0, 8)}`, ...(alert.incident_id ? [`incident ${alert.incident_id.slice(0, 8)}`] : [])],
  };
}

/**
 * notify: the first message per alert and channel, then at most one "Nth occurrence" update per
 * repeat interval into that message's thread (the dedupe stage schedules those with a delayed,
 * bucketed job id). The throttle row per (tenant, fingerprint, channel) records the first
 * message's reference, so a retried job never posts the first message twice. A batch's alerts
 * and throttle rows are read in one query each; the sends go out side by side.
 */
export async function runNotifyStage(
  batch: AlertBatch,
  deps: { db: Kysely<Database>; tenants: TenantDirectory; notifiers: readonly Notifier[]; concurrency?: number },
): Promise<BatchOutcome<{ sent: string[]; skipped: string[] }>> {
  const config = await deps.tenants.config(batch.tenantId);
  const notifiers = deps.notifiers.filter((n) => n.enabledFor(batch.tenantId, config));
  // Only a first message shows the enrichment record; it is the bulk of an alert row.
  const { rows, missing }: { rows: NotifyRow[]; missing: Map<string, unknown> } =
    notifiers.length > 0 && batch.kind !== 'repeat' ? await loadBatchAlertsWithEnrichment(deps.db, batch) : await loadBatchAlerts(deps.db, batch);
  const out: BatchOutcome<{ sent: string[]; skipped: string[] }> = { results: new Map(), failed: missing };
  const due: NotifyRow[] = [];
  for (const alert of rows) {
    if (alert.severity > config.notify.min_severity || alert.status === 'suppressed') {
      out.results.set(alert.id, { sent: [], skipped: deps.notifiers.map((n) => `${n.name}:below-threshold`) });
    } else if (notifiers.length === 0) out.results.set(alert.id, { sent: [], skipped: [] });
    else due.push(alert);
  }
  if (due.length === 0) return out;
  // The throttle rows of the whole batch in one read.
  const throttles = await deps.db
    .selectFrom('notification_throttle')
    .selectAll()
    .where('tenant_id', '=', batch.tenantId)
    .where('fingerprint', 'in', [...new Set(due.map((a) => a.fingerprint))])
    .where('channel', 'in', notifiers.map((n) => n.name))
    .execute();
  const throttleOf = new Map(throttles.map((t) => [`${t.fingerprint}\u0000${t.channel}`, t]));
  await eachLimited(due, deps.concurrency ?? 8, async (alert) => {
    try {
      out.results.set(alert.id, await notifyAlert(deps.db, batch, config, notifiers, alert, (channel) => throttleOf.get(`${alert.fingerprint}\u0000${channel}`)));
    } catch (err) {
      out.failed.set(alert.id, err);
    }
  });
  return out;
}

async function notifyAlert(
  db: Kysely<Database>,
  batch: AlertBatch,
  config: TenantPipelineConfig,
  notifiers: readonly Notifier[],
  alert: NotifyRow,
  throttleOf: (channel: string) => Selectable<NotificationThrottleTable> | undefined,
): Promise<{ sent: string[]; skipped: string[] }> {
  const sent: string[] = [];
  const skipped: string[] = [];
  const event = alert.event as SentinelEvent;
  for (const notifier of notifiers) {
    const throttle = throttleOf(notifier.name);
    if (batch.kind !== 'repeat') {
      if (throttle?.thread_ref && throttle.window_start >= alert.first_seen) {
        skipped.push(`${notifier.name}:already-sent`);
        continue;
      }
      const { ref } = await notifier.send({
        tenantId: batch.tenantId,
        config,
        message: alertMessage(alert, event, (alert.enrichment ?? null) as EnrichmentRecord | null),
        idempotencyKey: `alert-${alert.id}-first`,
      });
      await recordSend(db, batch.tenantId, alert, notifier.name, ref, 'first');
      sent.push(notifier.name);
    } else {
      if (!throttle?.thread_ref) {
        skipped.push(`${notifier.name}:no-first-message`);
        continue;
      }
      const { ref } = await notifier.send({
        tenantId: batch.tenantId,
        config,
        message: {
          text: `${ordinal(alert.occurrences)} occurrence of ${alert.title} (last seen ${alert.last_seen.toISOString()})`,
          context: [`alert ${alert.id.slice(0, 8)}`],
        },
        thread: throttle.thread_ref,
        idempotencyKey: `alert-${alert.id}-repeat-${alert.occurrences}`,
      });
      await recordSend(db, batch.tenantId, alert, notifier.name, throttle.thread_ref ?? ref, 'repeat');
      sent.push(notifier.name);
    }
  }
  return { sent, skipped };
}

async function recordSend(
  db: Kysely<Database>,
  tenantId: string,
  alert: { id: string; fingerprint: string; first_seen: Date; occurrences: number },
  channel: string,
  ref: unknown,
  kind: 'first' | 'repeat',
): Promise<void> {
  await auditedWrite(db, 'pipeline', async (trx, audit) => {
    await trx
      .insertInto('notification_throttle')
      .values({ tenant_id: tenantId, fingerprint: alert.fingerprint, channel, window_start: alert.first_seen, sent: 1, thread_ref: JSON.stringify(ref), last_sent_at: new Date() })
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'fingerprint', 'channel']).doUpdateSet((eb) => ({
          sent: eb('notification_throttle.sent', '+', 1),
          last_sent_at: new Date(),
          ...(kind === 'first' ? { thread_ref: JSON.stringify(ref), window_start: alert.first_seen } : {}),
        })),
      )
      .execute();
    audit({ tenantId, action: `notify.${kind}`, target: `alert:${alert.id}`, delta: { channel, occurrences: alert.occurrences } });
  });
}
