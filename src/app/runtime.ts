import type { Kysely } from 'kysely';
import { auditedWrite } from '../store/audit-log.ts';
import { createDatabase, migrateToLatest, type DatabaseHandle } from '../store/database.ts';
import { ensureEmbeddedPostgres, type EmbeddedPostgresHandle } from '../store/embedded-postgres.ts';
import type { Database } from '../store/schema.ts';
import { SecretsVault } from '../store/secrets-vault.ts';
import type { Config } from './config.ts';
import { loadLocalState, type LocalState } from './local-state.ts';
import type { Logger } from './logger.ts';

export const DEFAULT_TENANT = 'default';

/**
 * The database side of SENTreflex, shared by the server and every CLI command: in embedded mode
 * it connects to the cluster in the data dir if one is running (the server's), or starts it for
 * the duration of the command and stops it after.
 */
export interface StoreRuntime {
  databaseUrl: string;
  database: DatabaseHandle;
  db: Kysely<Database>;
  vault: SecretsVault;
  local: LocalState;
  embedded: EmbeddedPostgresHandle | undefined;
  close(): Promise<void>;
}

export async function openStore(config: Config, logger: Logger, opts: { migrate: boolean }): Promise<StoreRuntime> {
  let embedded: EmbeddedPostgresHandle | undefined;
  let url = config.databaseUrl;
  if (config.mode === 'embedded') {
    embedded = await ensureEmbeddedPostgres(config.dataDir, (m) => logger.debug({ component: 'postgres' }, m));
    url = embedded.url;
    logger.info({ owned: embedded.owned }, embedded.owned ? 'embedded PostgreSQL started' : 'connected to running embedded PostgreSQL');
  }
  const local = loadLocalState(config.dataDir, { masterKey: config.masterKey, apiToken: config.apiToken, ingestToken: config.ingest.token });
  const database = createDatabase({ url: url!, schema: config.dbSchema });
  try {
    if (opts.migrate) {
      const applied = await migrateToLatest(database.db, config.dbSchema);
      if (applied.length) logger.info({ applied }, 'migrations applied');
      if (config.mode === 'embedded') await ensureTenant(database.db, DEFAULT_TENANT, 'Default tenant');
    }
  } catch (err) {
    await database.close();
    await embedded?.stop();
    throw err;
  }
  return {
    databaseUrl: url!,
    database,
    db: database.db,
    vault: new SecretsVault(database.db, local.masterKey),
    local,
    embedded,
    close: async () => {
      await database.close();
      await embedded?.stop();
    },
  };
}

export async function ensureTenant(db: Kysely<Database>, id: string, name: string): Promise<void> {
  const exists = await db.selectFrom('tenants').select('id').where('id', '=', id).executeTakeFirst();
  if (exists) return;
  await auditedWrite(db, 'system', async (trx, audit) => {
    const res = await trx.insertInto('tenants').values({ id, name, config: {} }).onConflict((oc) => oc.doNothing()).executeTakeFirst();
    audit({ tenantId: id, action: 'tenant.create', target: `tenant:${id}`, delta: { name, created: Number(res.numInsertedOrUpdatedRows ?? 0) > 0 } });
  });
}
