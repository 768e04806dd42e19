import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { IntelVerdict } from '../integrations/ports.ts';
import type { Database } from './schema.ts';

/**
 * A verdict as enrichment records and the intel cache keep it: the vendor's answer is stored once
 * in `intel_reports` (migration 0009) and named by `report`. Records written before that carry
 * `raw` inline instead.
 */
export type StoredVerdict = Omit<IntelVerdict, 'raw'> & { report?: string; raw?: unknown };

/**
 * Stores each verdict's vendor answer (one statement for all of them) and returns the verdicts,
 * in order, naming their answer instead of carrying it.
 */
export async function fileIntelReports(db: Kysely<Database>, verdicts: readonly IntelVerdict[]): Promise<StoredVerdict[]> {
  if (verdicts.length === 0) return [];
  const rows = verdicts.map((v) => ({ id: randomUUID(), provider: v.provider, kind: v.observable.kind, value: v.observable.value, fetched_at: v.fetchedAt, raw: v.raw ?? null }));
  // As jsonb, the document is parsed once and each answer copied out in binary (see dedupe-stage.ts).
  await sql`
    insert into intel_reports (id, provider, kind, value, fetched_at, raw)
    select r.id, r.provider, r.kind, r.value, r.fetched_at, coalesce(r.raw, 'null'::jsonb)
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(id uuid, provider text, kind text, value text, fetched_at timestamptz, raw jsonb)`.execute(db);
  return verdicts.map(({ raw: _raw, ...v }, i) => ({ ...v, report: rows[i]!.id }));
}

/**
 * The verdicts with each named answer put back as `raw` (one read), for showing an alert whole.
 * A report that is missing leaves the verdict as it is.
 */
export async function withIntelReports<V extends StoredVerdict>(db: Kysely<Database>, verdicts: readonly V[]): Promise<V[]> {
  const ids = [...new Set(verdicts.flatMap((v) => (v.report ? [v.report] : [])))];
  if (ids.length === 0) return [...verdicts];
  const rows = await db.selectFrom('intel_reports').select(['id', 'raw']).where('id', 'in', ids).execute();
  const raw = new Map(rows.map((r) => [r.id, r.raw]));
  return verdicts.map((v) => (v.report && raw.has(v.report) ? { ...v, raw: raw.get(v.report) } : v));
}
