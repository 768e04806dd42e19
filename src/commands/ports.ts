import type { IntelObservable, IntelVerdict } from '../integrations/ports.ts';
import type { Incident, Role } from '../store/schema.ts';
import type { TimelineEntry } from '../store/incidents.ts';

/**
 * What the chat commands need from parts of SENTreflex that live elsewhere (the playbook engine,
 * the assistant, the intel clients). The app wires implementations in; a command whose port is
 * not wired answers that the feature is not enabled instead of failing.
 */

/** Who acts, as the engine needs to know it (approval policy: the requester may not approve). */
export interface PrincipalRef {
  principalId: string;
  displayName: string;
  /** `platform:workspace:user` the request came from. */
  identity: string;
  roles: readonly Role[];
}

export interface PlaybookInfo {
  id: string;
  name: string;
  version: string;
  description?: string;
  inputs: { name: string; type: string; required: boolean; description?: string }[];
}

export type RunStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';

export interface RunInfo {
  id: string;
  playbookId: string;
  playbookVersion?: string;
  status: RunStatus;
  startedBy: string;
  createdAt: Date;
  finishedAt?: Date | null;
  incidentId?: string | null;
  error?: string | null;
  steps?: { stepId: string; status: string; attempt?: number }[];
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface ApprovalOutcome {
  approvalId: string;
  status: ApprovalStatus;
  /** One line: what was being approved, e.g. "Isolate host web-01 (run 1a2b3c4d)". */
  summary: string;
  /** Further approvals needed before the gate opens (quorum), when still pending. */
  remaining?: number;
}

/**
 * The playbook engine, as chat drives it. Ids are what the user typed or the button carried: a
 * full UUID or a unique prefix of at least 8 hex digits; the engine resolves them within the
 * tenant and throws `not_found` / `input.invalid` ReflexErrors with chat-safe messages.
 *
 * @example
 * const run = await engine.start('acme', 'host-isolation', { host: 'web-01' }, who);
 * const outcome = await engine.decide('acme', approvalId, who, 'approve', undefined, 'slack.button');
 */
export interface PlaybookEngine {
  list(tenantId: string): Promise<PlaybookInfo[]>;
  start(tenantId: string, playbookId: string, inputs: Record<string, string>, startedBy: PrincipalRef): Promise<RunInfo>;
  getRun(tenantId: string, runId: string): Promise<RunInfo | undefined>;
  listRuns(tenantId: string, opts: { limit: number }): Promise<RunInfo[]>;
  /** Records one decision; policy (who, quorum, self-approval, expiry) is the engine's. */
  decide(
    tenantId: string,
    approvalId: string,
    principal: PrincipalRef,
    decision: 'approve' | 'deny',
    reason: string | undefined,
    via: string,
  ): Promise<ApprovalOutcome>;
}

export interface Suggestion {
  text: string;
  /** A playbook that would carry the suggestion out, when there is one. */
  playbookId?: string;
  /** 0..1, from historical outcomes. */
  confidence?: number;
}

/**
 * Next steps and prose summaries (Claude when configured, statistics from past incidents).
 *
 * @example
 * const text = await assistant.summarize(incident, timeline);
 */
export interface Assistant {
  summarize(incident: Incident, timeline: TimelineEntry[]): Promise<string>;
  suggest(incident: Incident, timeline: TimelineEntry[]): Promise<Suggestion[]>;
}

/**
 * One intel provider's answer to an enrich. `not_configured`: the tenant has no credentials for
 * it; `unsupported`: it does not know this kind of observable; `unavailable`: it failed (rate
 * limit, outage, rejected key), which degrades the answer but never fails the command.
 */
export type IntelOutcome =
  | { provider: string; status: 'ok'; verdict: IntelVerdict }
  | { provider: string; status: 'not_configured' | 'unsupported' }
  | { provider: string; status: 'unavailable'; reason: string };

/**
 * Looks an observable up with every provider the tenant has, in parallel.
 *
 * @example
 * const outcomes = await lookupIntel('acme', { kind: 'ip', value: '198.51.100.100' });
 */
export type IntelLookup = (tenantId: string, observable: IntelObservable) => Promise<IntelOutcome[]>;
