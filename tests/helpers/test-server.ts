import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/app/config.ts';
import type { Feature } from '../../src/app/features.ts';
import { createLogger } from '../../src/app/logger.ts';
import { startServer, type RunningServer } from '../../src/app/server.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from './env.ts';
import { dropSchemas } from './test-database.ts';

export interface TestServer extends RunningServer {
  config: Config;
  apiToken: string;
  stop(): Promise<void>;
}

/**
 * The real app, in this process, on the machine's PostgreSQL (its own schema) and the chosen
 * queue backend (its own schema or Redis prefix), on a free port.
 */
export async function startTestServer(
  opts: { queue?: 'postgres' | 'redis'; env?: Record<string, string>; features?: readonly Feature[] } = {},
): Promise<TestServer> {
  const schema = uniqueName('t');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'reflex-test-'));
  const apiToken = `test_${randomBytes(18).toString('base64url')}`;
  const config = loadConfig({
    DATABASE_URL: TEST_DATABASE_URL,
    REFLEX_DB_SCHEMA: schema,
    ...(opts.queue === 'redis' ? { REDIS_URL: TEST_REDIS_URL, REFLEX_QUEUE_PREFIX: `{${schema}}` } : {}),
    PORT: '0',
    HOST: '127.0.0.1',
    REFLEX_DATA_DIR: dataDir,
    REFLEX_API_TOKEN: apiToken,
    REFLEX_MASTER_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Small pools: test files run in parallel against one PostgreSQL (max_connections applies).
    REFLEX_WORKER_CONCURRENCY: '4',
    ...opts.env,
  });
  const server = await startServer(config, createLogger(config.logLevel), 'all', opts.features);
  return {
    ...server,
    url: `http://127.0.0.1:${server.port}`,
    config,
    apiToken,
    stop: async () => {
      await server.close();
      await dropSchemas([schema, `${schema}_queue`]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The environment for a `reflex` CLI pointed at a running test server's database and queue backend. */
export function cliEnv(s: TestServer): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: TEST_DATABASE_URL,
    REFLEX_DB_SCHEMA: s.config.dbSchema,
    REFLEX_DATA_DIR: s.config.dataDir,
    REFLEX_MASTER_KEY: s.store.local.masterKey.toString('base64'),
    REFLEX_API_TOKEN: s.apiToken,
    LOG_LEVEL: 'warn',
  };
  delete env.REDIS_URL;
  delete env.REFLEX_QUEUE_PREFIX;
  if (s.config.queue.backend === 'redis') Object.assign(env, { REDIS_URL: s.config.queue.url, REFLEX_QUEUE_PREFIX: s.config.queue.prefix });
  return env;
}
