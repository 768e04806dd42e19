import type { QueueBackendConfig } from '../../src/app/queue.ts';
import { dropSchemas } from './test-database.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from './env.ts';
import { Redis } from 'ioredis';

/**
 * Both queue backends, each test on a fresh namespace (a PostgreSQL schema or a Redis key prefix),
 * so one suite runs unchanged over both (STYLE.md: one conformance suite per port).
 */
export interface BackendUnderTest {
  name: 'postgres' | 'redis';
  fresh(): QueueBackendConfig;
  cleanup(config: QueueBackendConfig): Promise<void>;
}

export const QUEUE_BACKENDS: BackendUnderTest[] = [
  {
    name: 'postgres',
    fresh: () => ({ backend: 'postgres', url: TEST_DATABASE_URL, schema: uniqueName('q') }),
    cleanup: async (c) => {
      if (c.backend === 'postgres') await dropSchemas([c.schema]);
    },
  },
  {
    name: 'redis',
    fresh: () => ({ backend: 'redis', url: TEST_REDIS_URL, prefix: `{${uniqueName('test')}}` }),
    cleanup: async (c) => {
      if (c.backend !== 'redis') return;
      const redis = new Redis(c.url);
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${c.prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  },
];
