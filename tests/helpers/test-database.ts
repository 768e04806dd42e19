import { sql } from 'kysely';
import pg from 'pg';
import { createDatabase, migrateToLatest, type DatabaseHandle } from '../../src/store/database.ts';
import { TEST_DATABASE_URL, uniqueName } from './env.ts';

/**
 * A migrated schema of its own on the machine's PostgreSQL, dropped by `drop()`.
 *
 * @example
 * let t: TestDatabase;
 * beforeAll(async () => { t = await createTestDatabase(); });
 * afterAll(() => t.drop());
 */
export interface TestDatabase extends DatabaseHandle {
  drop(): Promise<void>;
}

export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const schema = uniqueName('t');
  const handle = createDatabase({ url: TEST_DATABASE_URL, schema });
  if (opts.migrate !== false) await migrateToLatest(handle.db, schema);
  else await sql`create schema ${sql.id(schema)}`.execute(handle.db);
  return {
    ...handle,
    drop: async () => {
      await handle.close();
      await dropSchemas([schema, `${schema}_queue`]);
    },
  };
}

export async function dropSchemas(schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`drop schema if exists "${s}" cascade`);
  } finally {
    await client.end();
  }
}
