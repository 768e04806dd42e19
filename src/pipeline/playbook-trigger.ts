import type { SentinelEvent } from './event.ts';

/**
 * The seam between the SentinelNet pipeline and the playbook engine: the pipeline's trigger
 * stage hands every new alert's event here; the engine starts the runs whose trigger matches.
 * Implementations must be idempotent on `alertId` (the stage may be retried).
 *
 * @example
 * const trigger: PlaybookTrigger = { async onAlert(e) { return engine.startMatchingRuns(e); } };
 */
export interface PlaybookTrigger {
  onAlert(input: { tenantId: string; alertId: string; incidentId: string | null; event: SentinelEvent }): Promise<{ runIds: string[] }>;
}

/** What the pipeline uses when no engine is wired: nothing matches, and that is recorded as such. */
export const NO_PLAYBOOKS: PlaybookTrigger = {
  async onAlert() {
    return { runIds: [] };
  },
};
