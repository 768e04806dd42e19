import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrations } from '../../migrations/index.ts';
import { ReflexError } from '../errors.ts';
import type { Database } from './schema.ts';

// timestamptz -> Date (pg's default); bigint (int8) stays a string: audit seq and counters can
// exceed 2^53 in theory and we never do arithmetic on them in JS.
export interface DatabaseHandle {
  db: Kysely<Database>;
  pool: pg.Pool;
  schema: string;
  url: string;
  close(): Promise<void>;
}

/**
 * Opens a pool whose every connection has `search_path` pinned to `schema`, so tests (one schema
 * each) and tenants of a shared cluster never see each other's tables.
 *
 * @example
 * const { db, close } = createDatabase({ url: config.databaseUrl, schema: 'reflex' });
 * await migrateToLatest(db, 'reflex');
 */
export function createDatabase(opts: { url: string; schema: string; max?: number }): DatabaseHandle {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) {
    throw new ReflexError('config.invalid', `invalid schema name ${opts.schema}`);
  }
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 20,
    options: `-c search_path=${opts.schema},public`,
    application_name: 'sentreflex',
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closed: Promise<void> | undefined;
  return {
    db,
    pool,
    schema: opts.schema,
    url: opts.url,
    close: () => (closed ??= db.destroy()),
  };
}

/**
 * Creates the schema if needed and applies every pending migration, in one transaction under an
 * advisory lock per schema. Hand-rolled rather than Kysely's `Migrator`: that one looks its ledger
 * up through catalogue-wide introspection (`pg_get_serial_sequence` over every table of every
 * schema), which fails when another process drops an unrelated schema at that moment. The ledger
 * keeps Kysely's table layout (`kysely_migration(name, timestamp)`), so existing data dirs carry on.
 */
export async function migrateToLatest(db: Kysely<Database>, schema: string): Promise<string[]> {
  const ledger = sql.id(schema, 'kysely_migration');
  // Fast path: when every migration is recorded, there is nothing to lock or do.
  const found = await sql<{ t: string | null }>`select to_regclass(${`${schema}.kysely_migration`})::text as t`.execute(db);
  if (found.rows[0]?.t) {
    const done = await sql<{ name: string }>`select name from ${ledger}`.execute(db);
    const names = new Set(done.rows.map((r) => r.name));
    if (Object.keys(migrations).every((m) => names.has(m))) return [];
  }
  let current = '';
  try {
    return await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`sentreflex.migrate.${schema}`}))`.execute(trx);
      await sql`create schema if not exists ${sql.id(schema)}`.execute(trx);
      await sql`create table if not exists ${ledger} (name varchar(255) primary key, timestamp varchar(255) not null)`.execute(trx);
      const done = await sql<{ name: string }>`select name from ${ledger}`.execute(trx);
      const names = new Set(done.rows.map((r) => r.name));
      // Features add migrations independently; order within a release is by name, gaps are fine.
      const pending = Object.keys(migrations).filter((m) => !names.has(m)).sort();
      for (const name of pending) {
        current = name;
        await migrations[name]!.up(trx);
        await sql`insert into ${ledger} (name, timestamp) values (${name}, ${new Date().toISOString()})`.execute(trx);
      }
      return pending;
    });
  } catch (error) {
    throw new ReflexError('internal', `migration ${current} failed: ${String(error)}`, { cause: error });
  }
}

/** `select 1` with a short timeout, for /readyz. */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}
