import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';

/**
 * Exact pipeline counters, per tenant. Every alert that is accepted ends as exactly one of
 * new / deduplicated / suppressed / dead_lettered, and each is counted in the same transaction as
 * the write that decided it, so `accepted - (new + deduplicated + suppressed + dead_lettered)` is
 * what is still in flight.
 */
export const COUNTERS = ['accepted', 'new', 'deduplicated', 'suppressed', 'dead_lettered'] as const;
export type CounterName = (typeof COUNTERS)[number];
const SHARDS = 16;

export type CounterDelta = Partial<Record<CounterName, number>>;

/** Adds to the counters of one or more tenants in one statement (a random shard per call). */
export async function incrementCounters(
  db: Kysely<Database> | Transaction<Database>,
  deltas: { tenantId: string; delta: CounterDelta }[],
): Promise<void> {
  const rows: { tenant_id: string; counter: string; shard: number; value: number }[] = [];
  const shard = Math.floor(Math.random() * SHARDS);
  for (const { tenantId, delta } of deltas) {
    for (const [counter, value] of Object.entries(delta)) {
      if (value) rows.push({ tenant_id: tenantId, counter, shard, value });
    }
  }
  if (rows.length === 0) return;
  // Merge same-key rows: ON CONFLICT cannot touch one row twice in a statement.
  const merged = new Map<string, (typeof rows)[number]>();
  for (const r of rows) {
    const k = `${r.tenant_id}\u0000${r.counter}`;
    const m = merged.get(k);
    if (m) m.value += r.value;
    else merged.set(k, { ...r });
  }
  await db
    .insertInto('pipeline_counters')
    .values([...merged.values()])
    .onConflict((oc) => oc.columns(['tenant_id', 'counter', 'shard']).doUpdateSet({ value: sql`pipeline_counters.value + excluded.value` }))
    .execute();
}

export type PipelineStats = Record<CounterName, number> & { in_flight: number };

export async function readCounters(db: Kysely<Database>, tenantId?: string): Promise<PipelineStats> {
  const rows = await sql<{ counter: CounterName; total: string }>`
    select counter, sum(value)::text as total from pipeline_counters
    where ${tenantId === undefined ? sql`true` : sql`tenant_id = ${tenantId}`}
    group by counter`.execute(db);
  const out = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<CounterName, number>;
  for (const r of rows.rows) out[r.counter] = Number(r.total);
  const settled = out.new + out.deduplicated + out.suppressed + out.dead_lettered;
  return { ...out, in_flight: Math.max(0, out.accepted - settled) };
}
