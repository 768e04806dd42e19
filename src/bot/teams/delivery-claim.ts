import type { ColumnType, Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';

type ClaimsDb = { chat_deliveries: { platform: string; delivery_id: string; received_at: ColumnType<Date, Date | string | undefined, never> } };

/**
 * Takes a delivery in one statement (the `chat_deliveries` receipts of DeliveryReceipts): true for
 * the first taker, false for every repeat, also when two copies arrive at once. For deliveries run
 * inline (a card click), where no queue job id dedupes them.
 *
 * @example
 * if (!(await claimDelivery(db, 'teams', id))) return alreadyHandled();
 */
export async function claimDelivery(db: Kysely<Database>, platform: string, deliveryId: string): Promise<boolean> {
  const row = await db
    .withTables<ClaimsDb>()
    .insertInto('chat_deliveries')
    .values({ platform, delivery_id: deliveryId })
    .onConflict((oc) => oc.doNothing())
    .returning('delivery_id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Gives a claim back when the work behind it failed on our side, so the platform's retry runs it. */
export async function releaseDelivery(db: Kysely<Database>, platform: string, deliveryId: string): Promise<void> {
  await db.withTables<ClaimsDb>().deleteFrom('chat_deliveries').where('platform', '=', platform).where('delivery_id', '=', deliveryId).execute();
}
