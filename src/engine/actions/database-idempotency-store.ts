import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { IdempotencyStore } from '../../integrations/containment-ports.ts';
import type { Database } from '../../store/schema.ts';

/**
 * The engine's `IdempotencyStore` for vendors without idempotency of their own (Twilio, SMTP):
 * one row per scope (tenant) and key, with an expiry, in PostgreSQL, so a step retried after a
 * restart or on another worker finds what the first attempt sent.
 *
 * The rows live in `pipeline_batches`, the database's table of "this was already applied"
 * markers (primary key `(batch_id, stage)`): `stage` is `vendor-idempotency:<scope>`, `batch_id`
 * the adapter's record key (hashed when longer than 200 characters) and `result` holds
 * `{ value, expires_at }`. Reusing it needs no migration; a dedicated table would only rename it.
 * An expired row reads as absent and is overwritten by the next `set`.
 *
 * @example
 * const store = new DatabaseIdempotencyStore(db, 'acme');
 * await store.set('twilio:call:AC…:reflex-run-step', '{"sid":"CA…"}', 86_400_000);
 * await store.get('twilio:call:AC…:reflex-run-step'); // '{"sid":"CA…"}'
 */
export class DatabaseIdempotencyStore implements IdempotencyStore {
  private readonly stage: string;

  constructor(
    private readonly db: Kysely<Database>,
    /** The tenant id, or `*` for records of deployment-wide adapters (the SMTP mailer). */
    scope: string,
    private readonly now: () => number = Date.now,
  ) {
    this.stage = `vendor-idempotency:${scope}`;
  }

  async get(key: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('pipeline_batches')
      .select('result')
      .where('batch_id', '=', rowKey(key))
      .where('stage', '=', this.stage)
      .executeTakeFirst();
    const record = row?.result as { value?: unknown; expires_at?: unknown } | undefined;
    if (!record || typeof record.value !== 'string' || typeof record.expires_at !== 'number') return undefined;
    return this.now() < record.expires_at ? record.value : undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
    const result = JSON.stringify({ value, expires_at: this.now() + ttlMs });
    await this.db
      .insertInto('pipeline_batches')
      .values({ batch_id: rowKey(key), stage: this.stage, tenant_id: this.stage.slice('vendor-idempotency:'.length), result })
      .onConflict((oc) => oc.columns(['batch_id', 'stage']).doUpdateSet({ result }))
      .execute();
  }
}

function rowKey(key: string): string {
  return key.length <= 200 ? key : `sha256:${createHash('sha256').update(key).digest('hex')}`;
}
