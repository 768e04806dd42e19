import { defineConfig } from 'vitest/config';

// isolated-vm needs --no-node-snapshot on Node 20. Integration tests share the machine's
// PostgreSQL and Redis but each uses its own schema / queue prefix, so files may run in parallel.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    execArgv: ['--no-node-snapshot'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.reflex-test/results.json' }]],
  },
});
