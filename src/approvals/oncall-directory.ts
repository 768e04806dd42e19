import type { Kysely } from 'kysely';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import { engineDb } from '../engine/engine-schema.ts';

/**
 * Who is on call, per tenant and schedule, as an ordered rotation: position 0 is the primary an
 * approval gate with `oncall:` asks first, position 1 the one an expiring gate escalates to, and
 * so on. A PagerDuty sync (the vendor feature) or `setRotation` keeps it current.
 *
 * @example
 * await oncall.setRotation('acme', 'secops-primary', [anaId, benId], 'cli');
 * await oncall.onCall('acme', 'secops-primary', 1); // benId
 */
export class OnCallDirectory {
  constructor(private readonly db: Kysely<Database>) {}

  async setRotation(tenantId: string, schedule: string, principalIds: string[], actor: string): Promise<void> {
    if (!/^[A-Za-z0-9._-]{1,80}$/.test(schedule)) {
      throw new ReflexError('input.invalid', `bad schedule name ${schedule}`, { safeMessage: 'Schedule names use letters, digits and . _ - (at most 80).' });
    }
    await auditedWrite(this.db, actor, async (trx, audit) => {
      const t = engineDb(trx);
      await t.deleteFrom('oncall_schedules').where('tenant_id', '=', tenantId).where('schedule', '=', schedule).execute();
      if (principalIds.length) {
        await t
          .insertInto('oncall_schedules')
          .values(principalIds.map((principal_id, position) => ({ tenant_id: tenantId, schedule, position, principal_id, updated_by: actor })))
          .execute();
      }
      audit({ tenantId, action: 'oncall.rotation.set', target: `schedule:${tenantId}/${schedule}`, delta: { principalIds } });
    });
  }

  /** The principal at `position` of the rotation, or undefined when the rotation is shorter. */
  async onCall(tenantId: string, schedule: string, position: number): Promise<string | undefined> {
    const row = await engineDb(this.db)
      .selectFrom('oncall_schedules')
      .select('principal_id')
      .where('tenant_id', '=', tenantId)
      .where('schedule', '=', schedule)
      .where('position', '=', position)
      .executeTakeFirst();
    return row?.principal_id;
  }

  /** Positions a principal holds in a schedule. */
  async positionsOf(db: Kysely<Database>, tenantId: string, schedule: string, principalId: string): Promise<number[]> {
    const rows = await engineDb(db)
      .selectFrom('oncall_schedules')
      .select('position')
      .where('tenant_id', '=', tenantId)
      .where('schedule', '=', schedule)
      .where('principal_id', '=', principalId)
      .execute();
    return rows.map((r) => r.position);
  }

  /** Everyone on call up to `level` (inclusive). */
  async upTo(tenantId: string, schedule: string, level: number): Promise<string[]> {
    const rows = await engineDb(this.db)
      .selectFrom('oncall_schedules')
      .select('principal_id')
      .where('tenant_id', '=', tenantId)
      .where('schedule', '=', schedule)
      .where('position', '<=', level)
      .orderBy('position')
      .execute();
    return rows.map((r) => r.principal_id);
  }
}
