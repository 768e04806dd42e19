import type { ColumnType, Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

interface ChatDeliveriesTable {
  platform: string;
  delivery_id: string;
  received_at: ColumnType<Date, Date | string | undefined, never>;
}
type ReceiptsDb = { chat_deliveries: ChatDeliveriesTable };

/**
 * Receipts of inbound chat deliveries (migrations/20261121_0003_chat.ts), so a platform's retry
 * of a delivery we already queued is answered 200 and not run again.
 *
 * A receipt is transport bookkeeping, like BullMQ's own job rows, not something a person or the
 * system did: it is written outside the audit chain on purpose (one chained, advisory-locked
 * audit row per inbound request would sit on Slack's 3-second ack path). What the delivery
 * carried is audited when it runs (`command.*`, `command.refused`, with the delivery id).
 *
 * @example
 * const queued = await receipts.queueOnce('slack', eventId, () => queues.add('chat.commands', 'slack.event', job, { jobId: `slack-${eventId}` }));
 * if (!queued) return reply.send(); // a retry of a delivery already taken
 */
export class DeliveryReceipts {
  private readonly db: Kysely<Database & ReceiptsDb>;

  constructor(db: Kysely<Database>) {
    this.db = db.withTables<ReceiptsDb>();
  }

  /**
   * Takes a delivery in one statement: true when this call recorded it, false when it was taken
   * before (a platform retry, a replayed request). The caller queues the work next and, if that
   * fails, gives the delivery back with `release` so the platform's retry is not mistaken for a
   * repeat. Two copies arriving at once: exactly one of them gets true.
   */
  async claim(platform: string, deliveryId: string): Promise<boolean> {
    const row = await this.db
      .insertInto('chat_deliveries')
      .values({ platform, delivery_id: deliveryId })
      .onConflict((oc) => oc.doNothing())
      .returning('delivery_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  async release(platform: string, deliveryId: string): Promise<void> {
    await this.db.deleteFrom('chat_deliveries').where('platform', '=', platform).where('delivery_id', '=', deliveryId).execute();
  }

  /**
   * Claims a delivery and queues its work; false (nothing queued) when it was claimed before. When
   * queueing fails the claim is given back and the error rethrown, so the platform's retry runs
   * it; `onReleaseFailed` hears about a claim that could not be given back either.
   */
  async queueOnce(platform: string, deliveryId: string, enqueue: () => Promise<unknown>, onReleaseFailed?: (err: unknown) => void): Promise<boolean> {
    if (!(await this.claim(platform, deliveryId))) return false;
    try {
      await enqueue();
    } catch (err) {
      await this.release(platform, deliveryId).catch((releaseErr: unknown) => onReleaseFailed?.(releaseErr));
      throw err;
    }
    return true;
  }

  /** Drops receipts older than `before`; Slack stops retrying after about five minutes. */
  async prune(before: Date): Promise<number> {
    const res = await this.db.deleteFrom('chat_deliveries').where('received_at', '<', before).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}

/** Prunes receipts older than `ttlMs` every hour; returns how to stop. */
export function startReceiptPruner(receipts: DeliveryReceipts, ttlMs: number, onError: (err: unknown) => void): () => void {
  const timer = setInterval(() => void receipts.prune(new Date(Date.now() - ttlMs)).catch(onError), 3600_000);
  timer.unref();
  return () => clearInterval(timer);
}
