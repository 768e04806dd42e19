import type { Migration } from 'kysely';
import * as initial from './20261121_0001_initial.ts';

/**
 * Every migration, in order. Listed statically (not read from disk) so they work the same under
 * tsx, a build and a bundle. Names are timestamped; never rename one that has shipped.
 */
export const migrations: Record<string, Migration> = {
  '20261121_0001_initial': initial,
  '20261121_0002_pipeline': await import('./20261121_0002_pipeline.ts'),
  '20261121_0003_chat': await import('./20261121_0003_chat.ts'),
  '20261121_0004_engine': await import('./20261121_0004_engine.ts'),
  '20261121_0005_rollup': await import('./20261121_0005_rollup.ts'),
  '20261121_0006_sentchat': await import('./20261121_0006_sentchat.ts'),
  '20261121_0007_correlation_indexes': await import('./20261121_0007_correlation_indexes.ts'),
  '20261122_0008_correlation_keys': await import('./20261122_0008_correlation_keys.ts'),
  '20261122_0009_intel_reports': await import('./20261122_0009_intel_reports.ts'),
};
