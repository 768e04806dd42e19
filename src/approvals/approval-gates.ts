import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { z } from 'zod';
import { ReflexError, type ErrorCode } from '../errors.ts';
import { auditedWrite, type AuditEntry } from '../store/audit-log.ts';
import { appendTimeline } from '../store/incidents.ts';
import type { ApprovalsTable, Database, Role } from '../store/schema.ts';
import { engineDb, type ApprovalColumns } from '../engine/engine-schema.ts';
import type { ApprovalCardView } from './approval-card.ts';
import { signApprovalLink } from './approval-links.ts';
import { checkDecision, tally, type ApprovalPolicy, type GateStatus, type PriorDecision } from './approval-policy.ts';
import type { Pager } from './approval-ports.ts';
import type { OnCallDirectory } from './oncall-directory.ts';

/**
 * Approval gates in the database: open one for a run's approval step, record decisions under the
 * policy (approval-policy.ts), expire or escalate it, cancel it when its run ends.
 *
 * Every decision is taken in one transaction that locks the gate row, so two approvers clicking
 * at once cannot both be "the second of two", and a click racing the expiry job loses or wins
 * cleanly. When the decision closes the gate, the engine's `closed` hook settles the approval
 * step in that same transaction: an approved gate can never be left without its run moving on.
 * Every refusal (double click, replay, forged id, wrong person, too late) is audited too.
 *
 * @example
 * const outcome = await gates.decide({ tenantId: 'acme', approvalRef: id, principal, decision: 'approve', via: 'slack.button' });
 */
export type StoredPolicy = ApprovalPolicy & { playbookId?: string; stepId?: string };
export type GateRow = Selectable<ApprovalsTable> & Selectable<ApprovalColumns>;
export type AfterCommit = () => Promise<void>;

export interface GateHooks {
  /** In the transaction that closed the gate; returns what to do once it committed. */
  closed(
    trx: Transaction<Database>,
    audit: (e: AuditEntry) => void,
    gate: GateRow,
    outcome: 'approved' | 'denied' | 'expired' | 'cancelled',
    actor: string,
  ): Promise<AfterCommit>;
  /** In the transaction that opened or escalated the gate: schedule `expire(gate.id, level)` at `expires_at`. */
  scheduleExpiry(trx: Transaction<Database>, gate: GateRow): Promise<AfterCommit>;
}

export interface Decider {
  principalId: string;
  displayName: string;
}

export interface DecideInput {
  tenantId: string;
  /** The id the button, link or API call carried: a UUID or a unique prefix of 8+ hex digits. */
  approvalRef: string;
  principal: Decider;
  decision: 'approve' | 'deny';
  reason?: string | undefined;
  /** `slack.button`, `sentchat.button`, `mobile-link`, `api`, … */
  via: string;
  /** Extra work in the deciding transaction (the mobile page claims its one-time link here). */
  claim?: (trx: Transaction<Database>) => Promise<void>;
}

export interface DecideResult {
  approvalId: string;
  status: GateStatus;
  summary: string;
  remaining: number;
  approvals: number;
  quorum: number;
}

export type RefusalReason = 'not_found' | 'malformed' | 'closed' | 'expired' | 'not_eligible' | 'self_approval' | 'already_decided' | 'link_used';

const REFUSAL_CODES: Record<RefusalReason, ErrorCode> = {
  not_found: 'not_found',
  malformed: 'input.invalid',
  closed: 'conflict',
  expired: 'conflict',
  not_eligible: 'auth.forbidden',
  self_approval: 'auth.forbidden',
  already_decided: 'conflict',
  link_used: 'conflict',
};

/** A refused decision; carries what the audit row records. */
export class GateRefusal extends Error {
  constructor(
    readonly reason: RefusalReason,
    readonly safe: string,
  ) {
    super(safe);
  }

  toReflexError(): ReflexError {
    return new ReflexError(REFUSAL_CODES[this.reason], `approval refused: ${this.reason}: ${this.safe}`, {
      safeMessage: this.safe,
      details: { refusal: this.reason },
    });
  }
}

class NothingToDo extends Error {}

export interface ApprovalGatesDeps {
  db: Kysely<Database>;
  oncall: OnCallDirectory;
  pager: () => Pager | undefined;
  linkSecret: Buffer;
  publicUrl: () => string;
  now?: () => Date;
  /** Told after commit whenever a gate changed, so the chat cards update in place. */
  changed?: (approvalId: string) => Promise<void>;
  /** Told after commit when a gate escalated to a new on-call, who gets the card and a link. */
  escalated?: (gate: GateRow, principalId: string) => Promise<void>;
  onError?: (err: unknown, what: string) => void;
}

const HEX_REF = /^[0-9a-f]{8}[0-9a-f-]{0,28}$/;

export class ApprovalGates {
  hooks: GateHooks | undefined;
  private readonly now: () => Date;

  constructor(private readonly deps: ApprovalGatesDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * Opens the gate of a run's approval step inside the caller's transaction (idempotent: a
   * re-delivered step job finds the gate it opened) and schedules its expiry.
   */
  async open(
    trx: Transaction<Database>,
    audit: (e: AuditEntry) => void,
    input: {
      tenantId: string;
      runId: string;
      stepId: string;
      incidentId: string | null;
      summary: string;
      policy: StoredPolicy;
      requestedBy: string;
    },
  ): Promise<{ gate: GateRow; created: boolean; after: AfterCommit }> {
    const t = engineDb(trx);
    const existing = await t.selectFrom('approvals').selectAll().where('run_id', '=', input.runId).where('step_id', '=', input.stepId).executeTakeFirst();
    if (existing) return { gate: existing, created: false, after: async () => undefined };
    // Named users are resolved now, so the gate keeps meaning the people it meant when it opened.
    const userPrincipalIds = await this.resolveUsers(trx, input.policy.users);
    const policy: StoredPolicy = { ...input.policy, userPrincipalIds };
    const gate = await t
      .insertInto('approvals')
      .values({
        tenant_id: input.tenantId,
        run_id: input.runId,
        step_id: input.stepId,
        summary: input.summary.slice(0, 2000),
        policy: JSON.stringify(policy),
        requested_by: input.requestedBy,
        expires_at: new Date(this.now().getTime() + policy.expiresMs),
        incident_id: input.incidentId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    if (gate.incident_id) {
      await appendTimeline(trx, {
        tenantId: gate.tenant_id,
        incidentId: gate.incident_id,
        kind: 'approval.requested',
        actor: input.requestedBy,
        text: `Approval requested: ${gate.summary.slice(0, 3000)} (quorum ${policy.quorum}, expires ${gate.expires_at.toISOString()})`,
        data: { approvalId: gate.id, runId: input.runId, stepId: input.stepId },
      });
    }
    audit({
      tenantId: gate.tenant_id,
      action: 'approval.open',
      target: `approval:${gate.id}`,
      delta: { runId: input.runId, stepId: input.stepId, quorum: policy.quorum, destructive: policy.destructive, expiresAt: gate.expires_at.toISOString() },
    });
    const after = (await this.hooks?.scheduleExpiry(trx, gate)) ?? (async () => undefined);
    return { gate, created: true, after };
  }

  private async resolveUsers(db: Kysely<Database>, users: readonly string[]): Promise<string[]> {
    const ids = new Set<string>();
    for (const u of users) {
      if (z.uuid().safeParse(u).success) {
        ids.add(u);
        continue;
      }
      const [platform, workspace, userId] = u.split(':');
      if (!platform || !workspace || !userId) continue;
      const row = await db
        .selectFrom('chat_identities')
        .select('principal_id')
        .where('platform', '=', platform as 'slack')
        .where('workspace', '=', workspace)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (row) ids.add(row.principal_id);
    }
    return [...ids];
  }

  /** The approval a chat user or link means by `ref`, within the tenant. */
  async resolveRef(tenantId: string, ref: string): Promise<string> {
    const r = ref.trim().toLowerCase();
    if (!HEX_REF.test(r)) throw new GateRefusal('malformed', `"${ref.slice(0, 40)}" is not an approval id.`);
    if (r.length === 36 && z.uuid().safeParse(r).success) {
      const row = await this.deps.db.selectFrom('approvals').select('id').where('id', '=', r).where('tenant_id', '=', tenantId).executeTakeFirst();
      if (!row) throw new GateRefusal('not_found', `No approval ${r.slice(0, 8)} in this tenant.`);
      return row.id;
    }
    const rows = await this.deps.db
      .selectFrom('approvals')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb(eb.cast('id', 'text'), 'like', `${r}%`))
      .limit(2)
      .execute();
    if (rows.length !== 1) {
      throw new GateRefusal(rows.length === 0 ? 'not_found' : 'malformed', rows.length === 0 ? `No approval ${r} in this tenant.` : `More than one approval starts with ${r}; give more of the id.`);
    }
    return rows[0]!.id;
  }

  async decide(input: DecideInput): Promise<DecideResult> {
    const actor = `principal:${input.principal.principalId}`;
    const reason = input.reason?.trim().slice(0, 1000) || undefined;
    let approvalId: string | undefined;
    const after: AfterCommit[] = [];
    let result: DecideResult;
    try {
      approvalId = await this.resolveRef(input.tenantId, input.approvalRef);
      const id = approvalId;
      result = await auditedWrite(this.deps.db, actor, async (trx, audit) => {
        const t = engineDb(trx);
        await this.lockRunOf(trx, id);
        const gate = await t.selectFrom('approvals').selectAll().where('id', '=', id).where('tenant_id', '=', input.tenantId).forUpdate().executeTakeFirst();
        if (!gate) throw new GateRefusal('not_found', `No approval ${id.slice(0, 8)} in this tenant.`);
        const policy = gate.policy as StoredPolicy;
        const roles = (await trx.selectFrom('principal_roles').select('role').where('principal_id', '=', input.principal.principalId).where('tenant_id', '=', gate.tenant_id).execute()).map((r) => r.role as Role);
        const identities = (
          await trx.selectFrom('chat_identities').select(['platform', 'workspace', 'user_id']).where('principal_id', '=', input.principal.principalId).execute()
        ).map((i) => `${i.platform}:${i.workspace}:${i.user_id}`);
        const oncallPositions = policy.oncall ? await this.deps.oncall.positionsOf(trx, gate.tenant_id, policy.oncall, input.principal.principalId) : [];
        const prior: PriorDecision[] = await trx
          .selectFrom('approval_decisions')
          .select(['principal_id as principalId', 'decision'])
          .where('approval_id', '=', gate.id)
          .execute();
        const verdict = checkDecision({
          policy,
          gate: { status: gate.status, expiresAt: gate.expires_at, requestedBy: gate.requested_by, escalationLevel: gate.escalation_level },
          decider: { principalId: input.principal.principalId, roles, identities, oncallPositions },
          decision: input.decision,
          prior,
          now: this.now(),
        });
        if (!verdict.ok) throw new GateRefusal(verdict.code, verdict.message);
        await input.claim?.(trx);
        const inserted = await trx
          .insertInto('approval_decisions')
          .values({ approval_id: gate.id, tenant_id: gate.tenant_id, principal_id: input.principal.principalId, decision: input.decision, reason: reason ?? null, via: input.via })
          .onConflict((oc) => oc.columns(['approval_id', 'principal_id']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) throw new GateRefusal('already_decided', 'You already decided this; a decision counts once.');
        const count = tally(policy, [...prior, { principalId: input.principal.principalId, decision: input.decision }]);
        let status: GateStatus = gate.status;
        if (count.status !== 'pending') {
          status = count.status;
          const closed = await t.updateTable('approvals').set({ status, decided_at: this.now() }).where('id', '=', gate.id).returningAll().executeTakeFirstOrThrow();
          if (this.hooks) after.push(await this.hooks.closed(trx, audit, closed, count.status, actor));
        }
        const verb = input.decision === 'approve' ? 'approved' : 'denied';
        if (gate.incident_id) {
          await appendTimeline(trx, {
            tenantId: gate.tenant_id,
            incidentId: gate.incident_id,
            kind: 'approval.decided',
            actor,
            text: `${input.principal.displayName} ${verb} "${gate.summary.slice(0, 300)}" via ${input.via} (${count.approvals} of ${policy.quorum})${reason ? `: ${reason}` : ''}${status !== 'pending' ? `; the gate is ${status}` : ''}`,
            data: { approvalId: gate.id, decision: input.decision, via: input.via, status },
          });
        }
        audit({
          tenantId: gate.tenant_id,
          action: 'approval.decide',
          target: `approval:${gate.id}`,
          delta: { decision: input.decision, via: input.via, as: verdict.as, reason: reason ?? null, approvals: count.approvals, quorum: policy.quorum, status },
        });
        return { approvalId: gate.id, status, summary: gate.summary, remaining: count.remaining, approvals: count.approvals, quorum: policy.quorum };
      });
    } catch (err) {
      if (!(err instanceof GateRefusal)) throw err;
      await auditedWrite(this.deps.db, actor, async (_trx, audit) => {
        audit({
          tenantId: input.tenantId,
          action: 'approval.refused',
          target: `approval:${approvalId ?? input.approvalRef.slice(0, 64)}`,
          delta: { refusal: err.reason, decision: input.decision, via: input.via },
        });
      });
      throw err.toReflexError();
    }
    for (const a of after) await a();
    await this.notifyChanged(result.approvalId);
    return result;
  }

  /**
   * Locks the gate's run before the gate itself: the engine locks a run and then its gates (when
   * a run ends), so taking them in the same order here keeps a click and a finishing run from
   * deadlocking.
   */
  private async lockRunOf(trx: Transaction<Database>, approvalId: string): Promise<void> {
    const pre = await trx.selectFrom('approvals').select('run_id').where('id', '=', approvalId).executeTakeFirst();
    if (pre?.run_id) await trx.selectFrom('playbook_runs').select('id').where('id', '=', pre.run_id).forUpdate().execute();
  }

  private async notifyChanged(approvalId: string): Promise<void> {
    try {
      await this.deps.changed?.(approvalId);
    } catch (err) {
      // The decision stands; a chat outage must not turn it into an error for the decider.
      this.deps.onError?.(err, 'approval card update');
    }
  }

  /**
   * The expiry timer of escalation `level` fired. `on_expiry: escalate` pages the next on-call of
   * the gate's schedule and restarts the clock; with nobody left to escalate to (or `deny`), the
   * gate expires, which denies it.
   */
  async expire(approvalId: string, level: number): Promise<'expired' | 'escalated' | 'noop'> {
    const gate = await engineDb(this.deps.db).selectFrom('approvals').selectAll().where('id', '=', approvalId).executeTakeFirst();
    if (!gate || gate.status !== 'pending' || gate.escalation_level !== level) return 'noop';
    const policy = gate.policy as StoredPolicy;
    const nextLevel = level + 1;
    const next = policy.onExpiry === 'escalate' && policy.oncall ? await this.deps.oncall.onCall(gate.tenant_id, policy.oncall, nextLevel) : undefined;
    let paged = false;
    let pageError: string | undefined;
    if (next && policy.oncall) {
      // Paged before the commit, with a key per escalation: if the commit is lost and the timer
      // fires again, the pager drops the repeat instead of waking someone twice.
      const pager = this.deps.pager();
      if (pager) {
        try {
          await pager.page({
            tenantId: gate.tenant_id,
            schedule: policy.oncall,
            level: nextLevel,
            principalId: next,
            summary: `Approval needed: ${gate.summary.slice(0, 200)}`,
            dedupKey: `approval-${gate.id}-${nextLevel}`,
            url: `${this.deps.publicUrl()}/api/v1/approvals/${gate.id}`,
          });
          paged = true;
        } catch (err) {
          // The escalation still happens (the next on-call gets the card and a link); a pager that
          // is down or not configured for the tenant must not leave the gate pending for ever.
          pageError = err instanceof ReflexError ? err.code : 'internal';
          this.deps.onError?.(err, 'approval escalation page');
        }
      }
    }
    const after: AfterCommit[] = [];
    let outcome: 'expired' | 'escalated';
    try {
      outcome = await auditedWrite(this.deps.db, 'system:approvals', async (trx, audit) => {
        const t = engineDb(trx);
        await this.lockRunOf(trx, approvalId);
        const locked = await t.selectFrom('approvals').selectAll().where('id', '=', approvalId).forUpdate().executeTakeFirst();
        if (!locked || locked.status !== 'pending' || locked.escalation_level !== level) throw new NothingToDo();
        if (next && policy.oncall) {
          const escalated = await t
            .updateTable('approvals')
            .set({ escalation_level: nextLevel, expires_at: new Date(this.now().getTime() + policy.expiresMs) })
            .where('id', '=', approvalId)
            .returningAll()
            .executeTakeFirstOrThrow();
          if (escalated.incident_id) {
            await appendTimeline(trx, {
              tenantId: escalated.tenant_id,
              incidentId: escalated.incident_id,
              kind: 'approval.escalated',
              actor: 'system:approvals',
              text: `Nobody decided "${escalated.summary.slice(0, 300)}" in time; paged the next on-call of ${policy.oncall} (level ${nextLevel}); new expiry ${escalated.expires_at.toISOString()}`,
              data: { approvalId, level: nextLevel, principalId: next },
            });
          }
          audit({ tenantId: escalated.tenant_id, action: 'approval.escalate', target: `approval:${approvalId}`, delta: { level: nextLevel, principalId: next, paged, ...(pageError ? { pageError } : {}) } });
          if (this.hooks) after.push(await this.hooks.scheduleExpiry(trx, escalated));
          return 'escalated';
        }
        const expired = await t.updateTable('approvals').set({ status: 'expired', decided_at: this.now() }).where('id', '=', approvalId).returningAll().executeTakeFirstOrThrow();
        if (expired.incident_id) {
          await appendTimeline(trx, {
            tenantId: expired.tenant_id,
            incidentId: expired.incident_id,
            kind: 'approval.expired',
            actor: 'system:approvals',
            text: `Approval expired without a decision, which denies it: ${expired.summary.slice(0, 300)}`,
            data: { approvalId },
          });
        }
        audit({ tenantId: expired.tenant_id, action: 'approval.expire', target: `approval:${approvalId}`, delta: { level, onExpiry: policy.onExpiry } });
        if (this.hooks) after.push(await this.hooks.closed(trx, audit, expired, 'expired', 'system:approvals'));
        return 'expired';
      });
    } catch (err) {
      if (err instanceof NothingToDo) return 'noop';
      throw err;
    }
    for (const a of after) await a();
    await this.notifyChanged(approvalId);
    if (outcome === 'escalated' && next) {
      const escalated = await this.get(approvalId);
      if (escalated) await this.deps.escalated?.(escalated, next).catch((err: unknown) => this.deps.onError?.(err, 'escalation card'));
    }
    return outcome;
  }

  /** Cancels the open gates of a run that ended (in the caller's transaction). */
  async cancelForRun(trx: Transaction<Database>, audit: (e: AuditEntry) => void, runId: string): Promise<string[]> {
    const rows = await engineDb(trx)
      .updateTable('approvals')
      .set({ status: 'cancelled', decided_at: this.now() })
      .where('run_id', '=', runId)
      .where('status', '=', 'pending')
      .returning(['id', 'tenant_id'])
      .execute();
    for (const r of rows) audit({ tenantId: r.tenant_id, action: 'approval.cancel', target: `approval:${r.id}`, delta: { runId } });
    return rows.map((r) => r.id);
  }

  /**
   * Issues a signed one-time link for one approver (stored so it can be used once), valid until
   * the gate expires.
   */
  async issueLink(approvalId: string, principalId: string, sentVia: string, actor = 'system:approvals'): Promise<{ linkId: string; url: string; token: string; expiresAt: Date }> {
    const gate = await engineDb(this.deps.db).selectFrom('approvals').selectAll().where('id', '=', approvalId).executeTakeFirst();
    if (!gate) throw new ReflexError('not_found', `no approval ${approvalId}`);
    if (gate.status !== 'pending') throw new ReflexError('conflict', `approval ${approvalId} is ${gate.status}`, { safeMessage: `This approval is ${gate.status}.` });
    const linkId = randomUUID();
    const expiresAt = gate.expires_at;
    await auditedWrite(this.deps.db, actor, async (trx, audit) => {
      await engineDb(trx)
        .insertInto('approval_links')
        .values({ id: linkId, approval_id: gate.id, tenant_id: gate.tenant_id, principal_id: principalId, expires_at: expiresAt, sent_via: sentVia })
        .execute();
      audit({ tenantId: gate.tenant_id, action: 'approval.link.issue', target: `approval:${gate.id}`, delta: { linkId, principalId, sentVia, expiresAt: expiresAt.toISOString() } });
    });
    const token = signApprovalLink(this.deps.linkSecret, { linkId, expiresAtMs: expiresAt.getTime() });
    return { linkId, url: `${this.deps.publicUrl()}/approve/${token}`, token, expiresAt };
  }

  async get(id: string): Promise<GateRow | undefined> {
    if (!z.uuid().safeParse(id).success) return undefined;
    return engineDb(this.deps.db).selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(filter: { tenantId?: string; status?: GateStatus; limit?: number }): Promise<GateRow[]> {
    let q = engineDb(this.deps.db).selectFrom('approvals').selectAll();
    if (filter.tenantId) q = q.where('tenant_id', '=', filter.tenantId);
    if (filter.status) q = q.where('status', '=', filter.status);
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(Math.min(Math.max(filter.limit ?? 100, 1), 500)).execute();
  }

  /** What a card (or the API, or the mobile page) shows of a gate. */
  async view(gate: GateRow): Promise<ApprovalCardView> {
    const decisions = await this.deps.db
      .selectFrom('approval_decisions as d')
      .innerJoin('principals as p', 'p.id', 'd.principal_id')
      .select(['d.principal_id', 'p.display_name', 'd.decision', 'd.reason', 'd.via', 'd.created_at'])
      .where('d.approval_id', '=', gate.id)
      .orderBy('d.created_at')
      .execute();
    const policy = gate.policy as StoredPolicy;
    return {
      id: gate.id,
      summary: gate.summary,
      status: gate.status,
      policy,
      expiresAt: gate.expires_at,
      escalationLevel: gate.escalation_level,
      ...(policy.playbookId ? { playbookId: policy.playbookId } : {}),
      ...(gate.step_id ? { stepId: gate.step_id } : {}),
      requestedBy: gate.requested_by,
      decisions: decisions.map((d) => ({
        principalId: d.principal_id,
        displayName: d.display_name,
        decision: d.decision,
        reason: d.reason,
        via: d.via,
        at: d.created_at,
      })),
    };
  }

  /** Principals who may decide the gate right now (for DMs and links). */
  async eligiblePrincipals(gate: GateRow): Promise<string[]> {
    const policy = gate.policy as StoredPolicy;
    const ids = new Set<string>(policy.userPrincipalIds);
    if (policy.roles.length) {
      const rows = await this.deps.db.selectFrom('principal_roles').select('principal_id').where('tenant_id', '=', gate.tenant_id).where('role', 'in', policy.roles).execute();
      for (const r of rows) ids.add(r.principal_id);
    }
    if (policy.oncall) for (const p of await this.deps.oncall.upTo(gate.tenant_id, policy.oncall, gate.escalation_level)) ids.add(p);
    // The requester of a destructive gate cannot approve it; do not ask them.
    if (policy.destructive && gate.requested_by.startsWith('principal:')) ids.delete(gate.requested_by.slice('principal:'.length));
    return [...ids];
  }
}
