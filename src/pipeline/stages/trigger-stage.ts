import type { Kysely } from 'kysely';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertBatch } from '../jobs.ts';
import type { PlaybookTrigger } from '../playbook-trigger.ts';
import { eachLimited, loadBatchAlerts, type BatchOutcome } from './alert-batch.ts';

/**
 * trigger: hands a batch's new alerts to the playbook engine, which starts the runs whose trigger
 * matches (idempotent per alert); the alerts that started runs are audited in one write.
 */
export async function runTriggerStage(batch: AlertBatch, deps: { db: Kysely<Database>; trigger: PlaybookTrigger; concurrency?: number }): Promise<BatchOutcome<{ runIds: string[] }>> {
  const { rows, missing } = await loadBatchAlerts(deps.db, batch);
  const out: BatchOutcome<{ runIds: string[] }> = { results: new Map(), failed: missing };
  await eachLimited(rows, deps.concurrency ?? 4, async (alert) => {
    try {
      out.results.set(alert.id, await deps.trigger.onAlert({ tenantId: batch.tenantId, alertId: alert.id, incidentId: alert.incident_id, event: alert.event as SentinelEvent }));
    } catch (err) {
      out.failed.set(alert.id, err);
    }
  });
  const started = [...out.results].filter(([, r]) => r.runIds.length > 0);
  if (started.length > 0) {
    await auditedWrite(deps.db, 'pipeline', async (_trx, audit) => {
      for (const [alertId, r] of started) audit({ tenantId: batch.tenantId, action: 'alert.playbooks_triggered', target: `alert:${alertId}`, delta: { runIds: r.runIds } });
    });
  }
  return out;
}
