import { sql, type Kysely } from 'kysely';

/**
 * Vendor answers stored once per lookup. An alert's enrichment record kept every verdict's `raw`
 * (the vendor's answer as received: VirusTotal's is several kilobytes) inline, so an IP seen in
 * a thousand alerts stored its answer a thousand times, and the intel cache once more; in the
 * storm of bench/pipeline that was about 6 KB an alert, written by the enrich stage and read back
 * by the later ones. A verdict now names its answer (`report`, an id here) instead; the alert API
 * puts `raw` back when it shows an alert. Records written before this keep their inline `raw`.
 * Rows are never updated; nothing references them by foreign key (a report outlives the cache
 * entry that named it, as long as the alerts do).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table intel_reports (
      id uuid primary key,
      provider text not null,
      kind text not null,
      value text not null,
      fetched_at timestamptz not null,
      raw jsonb not null
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table intel_reports`.execute(db);
}
