import type { FeatureContext } from '../app/features.ts';
import { DEFAULT_TENANT } from '../app/runtime.ts';
import type { CommandDeps } from '../commands/command.ts';
import { createIntelLookup, defaultIntelProviders } from '../commands/intel-lookup.ts';
import type { PlaybookEngine } from '../commands/ports.ts';
import { ENGINE_PORTS } from '../engine/engine-ports.ts';

/**
 * What every chat transport's commands run with (Slack, Teams, SENTchat share one set per
 * server): the store, intel lookups with the tenant's keys, the server's IncidentEvents, and the
 * engine, read at use because the engine feature starts after the chat feature.
 */
export function chatCommandDeps(ctx: FeatureContext, onError: CommandDeps['onError']): CommandDeps {
  return {
    db: ctx.store.db,
    lookupIntel: createIntelLookup(ctx.store.vault, defaultIntelProviders({ virustotal: ctx.config.intel.virustotalUrl, abuseipdb: ctx.config.intel.abuseipdbUrl })),
    // The server's one IncidentEvents: the SEV1 incident channel listens on it.
    incidentEvents: ctx.seams.incidentEvents,
    ...(ctx.config.mode === 'embedded' ? { fallbackTenant: DEFAULT_TENANT } : {}),
    get engine(): PlaybookEngine | undefined {
      return ENGINE_PORTS.engine;
    },
    ...(onError ? { onError } : {}),
  };
}
