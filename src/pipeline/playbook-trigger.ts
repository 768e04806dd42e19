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
  /**
   * Whether any playbook could start for this tenant's alerts. When it says no, the pipeline
   * does not queue the trigger stage at all. Absent: yes, always queue.
   */
  wants?(tenantId: string): boolean | Promise<boolean>;
}

/**
 * What the pipeline uses when no engine is wired (`REFLEX_DISABLED_FEATURES=engine`): nothing
 * matches, so the trigger stage is not queued.
 */
export const NO_PLAYBOOKS: PlaybookTrigger = {
  async onAlert() {
    return { runIds: [] };
  },
  wants: () => false,
};
