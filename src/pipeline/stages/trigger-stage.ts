import type { Kysely } from 'kysely';
import { ReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertRef } from '../jobs.ts';
import type { PlaybookTrigger } from '../playbook-trigger.ts';

/** trigger: hands a new alert to the playbook engine, which starts the runs whose trigger matches. */
export async function runTriggerStage(job: AlertRef, deps: { db: Kysely<Database>; trigger: PlaybookTrigger }): Promise<{ runIds: string[] }> {
  const alert = await deps.db.selectFrom('alerts').select(['id', 'event', 'incident_id']).where('id', '=', job.alertId).executeTakeFirst();
  if (!alert) throw new ReflexError('not_found', `alert ${job.alertId} vanished`, { retryable: false });
  const result = await deps.trigger.onAlert({ tenantId: job.tenantId, alertId: alert.id, incidentId: alert.incident_id, event: alert.event as SentinelEvent });
  if (result.runIds.length > 0) {
    await auditedWrite(deps.db, 'pipeline', async (_trx, audit) => {
      audit({ tenantId: job.tenantId, action: 'alert.playbooks_triggered', target: `alert:${alert.id}`, delta: { runIds: result.runIds } });
    });
  }
  return result;
}
