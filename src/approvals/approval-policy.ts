import type { Role } from '../store/schema.ts';

/**
 * Who may decide an approval gate, and when the gate opens. Pure functions over facts the caller
 * read from the database (in the deciding transaction), so every rule is unit-tested without one
 * and the rules cannot drift between chat buttons, the mobile link and the API.
 *
 * Rules, in the order they are checked (the first that fails is the answer):
 * 1. the gate is still pending (a decided, expired or cancelled gate takes no more clicks);
 * 2. it has not expired (a click after `expires_at` loses even if the expiry job is late);
 * 3. the decider is eligible: holds one of `roles` in the tenant, is one of the named `users`, or
 *    is on call for `oncall` at a position up to the gate's escalation level;
 * 4. the requester never approves a destructive gate (denying their own request is fine);
 * 5. one decision per principal (a double click, a replayed button, a second device).
 * Quorum: `quorum` distinct approvals open the gate; a single denial closes it.
 *
 * @example
 * const verdict = checkDecision({ policy, gate, decider, decision: 'approve', prior, now: new Date() });
 * if (!verdict.ok) throw refusal(verdict);
 */
export interface ApprovalPolicy {
  roles: Role[];
  /** Named approvers as written in the manifest (`slack:T01:U123` or a principal id). */
  users: string[];
  /** The principals the named users resolved to when the gate opened. */
  userPrincipalIds: string[];
  oncall?: string;
  quorum: number;
  destructive: boolean;
  onExpiry: 'deny' | 'escalate';
  expiresMs: number;
}

export type GateStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface GateFacts {
  status: GateStatus;
  expiresAt: Date;
  /** `principal:<id>` for a run a person started; `pipeline`, `playbook:<id>`, … otherwise. */
  requestedBy: string;
  escalationLevel: number;
}

export interface DeciderFacts {
  principalId: string;
  /** The decider's roles in the gate's tenant, read fresh from the database. */
  roles: readonly Role[];
  /** `platform:workspace:user` of each chat identity of the decider. */
  identities: readonly string[];
  /** Positions the decider holds in the gate's on-call schedule (0 = primary). */
  oncallPositions: readonly number[];
}

export interface PriorDecision {
  principalId: string;
  decision: 'approve' | 'deny';
}

export type RefusalCode = 'closed' | 'expired' | 'not_eligible' | 'self_approval' | 'already_decided';

export type PolicyVerdict = { ok: true; as: string } | { ok: false; code: RefusalCode; message: string };

export function requesterPrincipal(requestedBy: string): string | undefined {
  return requestedBy.startsWith('principal:') ? requestedBy.slice('principal:'.length) : undefined;
}

/** Why a decider may decide (`role approver`, `named approver`, `on call for secops-primary`), or undefined. */
export function eligibility(policy: ApprovalPolicy, gate: Pick<GateFacts, 'escalationLevel'>, decider: DeciderFacts): string | undefined {
  const role = policy.roles.find((r) => decider.roles.includes(r));
  if (role) return `role ${role}`;
  if (policy.userPrincipalIds.includes(decider.principalId) || policy.users.some((u) => u === decider.principalId || decider.identities.includes(u))) {
    return 'named approver';
  }
  if (policy.oncall !== undefined && decider.oncallPositions.some((p) => p <= gate.escalationLevel)) return `on call for ${policy.oncall}`;
  return undefined;
}

export function describeApprovers(policy: ApprovalPolicy): string {
  const parts: string[] = [];
  if (policy.roles.length) parts.push(`role ${policy.roles.join(' or ')}`);
  if (policy.users.length) parts.push(`named approvers (${policy.users.join(', ')})`);
  if (policy.oncall) parts.push(`the on-call of ${policy.oncall}`);
  return parts.join(', or ');
}

const CLOSED_WORDS: Record<Exclude<GateStatus, 'pending'>, string> = {
  approved: 'was already approved',
  denied: 'was already denied',
  expired: 'has expired',
  cancelled: 'was cancelled (its run ended)',
};

export function checkDecision(input: {
  policy: ApprovalPolicy;
  gate: GateFacts;
  decider: DeciderFacts;
  decision: 'approve' | 'deny';
  prior: readonly PriorDecision[];
  now: Date;
}): PolicyVerdict {
  const { policy, gate, decider, decision, prior, now } = input;
  if (gate.status !== 'pending') return { ok: false, code: 'closed', message: `This approval ${CLOSED_WORDS[gate.status]}; nothing was recorded.` };
  if (gate.expiresAt.getTime() <= now.getTime()) {
    return { ok: false, code: 'expired', message: `This approval expired at ${gate.expiresAt.toISOString()}; nothing was recorded.` };
  }
  const as = eligibility(policy, gate, decider);
  if (!as) return { ok: false, code: 'not_eligible', message: `You may not decide this approval: it needs ${describeApprovers(policy)}.` };
  if (decision === 'approve' && policy.destructive && requesterPrincipal(gate.requestedBy) === decider.principalId) {
    return { ok: false, code: 'self_approval', message: 'You requested this destructive step, so someone else must approve it.' };
  }
  const mine = prior.find((d) => d.principalId === decider.principalId);
  if (mine) return { ok: false, code: 'already_decided', message: `You already ${mine.decision === 'approve' ? 'approved' : 'denied'} this; a decision counts once.` };
  return { ok: true, as };
}

export interface Tally {
  status: 'pending' | 'approved' | 'denied';
  approvals: number;
  /** Approvals still needed while pending. */
  remaining: number;
}

export function tally(policy: Pick<ApprovalPolicy, 'quorum'>, decisions: readonly PriorDecision[]): Tally {
  const approvers = new Set(decisions.filter((d) => d.decision === 'approve').map((d) => d.principalId));
  const denied = decisions.some((d) => d.decision === 'deny');
  const approvals = approvers.size;
  if (denied) return { status: 'denied', approvals, remaining: 0 };
  if (approvals >= policy.quorum) return { status: 'approved', approvals, remaining: 0 };
  return { status: 'pending', approvals, remaining: policy.quorum - approvals };
}
