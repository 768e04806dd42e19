import type { Transaction } from 'kysely';
import type { AfterCommit, GateHooks, GateRow, StoredPolicy } from '../../approvals/approval-gates.ts';
import type { AuditEntry } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import { findAction } from '../action-catalogue.ts';
import { resolveTemplate, type ExpressionContext } from '../expressions.ts';
import type { ApprovalStep } from '../manifest/types.ts';
import type { Definition } from '../run/definition-cache.ts';
import { engineDb } from '../engine-schema.ts';
import { loadRun, type Effect, type RunRecord } from '../run/run-record.ts';
import type { RunEngine } from '../run-engine.ts';

/**
 * The approval step kind, between the run engine and the gates of src/approvals: it opens a gate
 * when the step runs, parks the step as `waiting`, and settles it when the gate closes (in the
 * very transaction of the deciding click or the expiry): approved -> succeeded, denied or expired
 * -> failed (so the gated step never runs unless `on_error` says otherwise).
 *
 * @example
 * gates.hooks = engine.approvals.hooks();
 */
export class ApprovalsSystem {
  constructor(private readonly engine: RunEngine) {}

  async begin(run: RunRecord, def: Definition, step: ApprovalStep, ctx: ExpressionContext): Promise<void> {
    const next = def.graph.next(step.id);
    const gated = next.kind === 'step' && next.step.kind === 'action' ? next.step : undefined;
    const summary = step.message
      ? String((await resolveTemplate(step.message, ctx, `${step.id}.approval.message`)) ?? '')
      : `${def.playbook.name}: approve ${gated ? `${gated.action} (${gated.name ?? gated.id})` : `the step after ${step.id}`}?`;
    const policy: StoredPolicy = {
      roles: step.approvers.roles,
      users: step.approvers.users,
      userPrincipalIds: [],
      ...(step.approvers.oncall !== undefined ? { oncall: step.approvers.oncall } : {}),
      quorum: step.quorum,
      // A gate in front of a destructive action is destructive whatever the manifest says.
      destructive: step.destructive || (gated ? (findAction(gated.action)?.destructive ?? false) : false),
      onExpiry: step.onExpiry,
      expiresMs: step.expiresMs,
      playbookId: run.playbookId,
      stepId: step.id,
    };
    let opened: GateRow | undefined;
    await this.engine.transition(`playbook:${run.playbookId}`, run.id, async (tx) => {
      if (!(await this.engine.steps.markWaiting(tx, step.id, 1, 'approval'))) tx.nothing();
      const { gate, created, after } = await this.engine.gates.open(tx.trx, tx.audit, {
        tenantId: run.tenantId,
        runId: run.id,
        stepId: step.id,
        incidentId: run.incidentId,
        summary: summary || `${def.playbook.name}: approval ${step.id}`,
        policy,
        requestedBy: run.startedBy,
      });
      if (created) opened = gate;
      tx.effects.push({ kind: 'call', what: 'approval expiry', fn: after });
      await engineRunStepOutput(tx.trx, run.id, step.id, { approvalId: gate.id });
      tx.audit({ tenantId: run.tenantId, action: 'run.step.waiting', target: `run:${run.id}/step:${step.id}`, delta: { approvalId: gate.id } });
    });
    if (opened) await this.engine.notifier.announce(opened).catch((err: unknown) => this.engine.deps.logger.error({ err, approvalId: opened!.id }, 'approval card could not be posted'));
  }

  /**
   * A gate whose card was never posted nor any link issued (its worker died between the commit and
   * the announcement) is announced now.
   */
  async announceIfSilent(runId: string, stepId: string): Promise<void> {
    const db = engineDb(this.engine.deps.db);
    const gate = await db.selectFrom('approvals').selectAll().where('run_id', '=', runId).where('step_id', '=', stepId).executeTakeFirst();
    if (!gate || gate.status !== 'pending') return;
    const card = await db.selectFrom('approval_cards').select('approval_id').where('approval_id', '=', gate.id).limit(1).executeTakeFirst();
    const link = await db.selectFrom('approval_links').select('id').where('approval_id', '=', gate.id).limit(1).executeTakeFirst();
    if (!card && !link) await this.engine.notifier.announce(gate);
  }

  /** The hooks the gates call in their deciding / expiring transactions. */
  hooks(): GateHooks {
    return {
      closed: async (trx, audit, gate, outcome) => this.closed(trx, audit, gate, outcome),
      scheduleExpiry: async (trx, gate) => {
        const effect = await this.engine.timers.schedule(trx, {
          id: `approval-${gate.id}-${gate.escalation_level}`,
          kind: 'approval.expire',
          tenantId: gate.tenant_id,
          ...(gate.run_id ? { runId: gate.run_id } : {}),
          refId: gate.id,
          dueAt: gate.expires_at,
          data: { level: gate.escalation_level },
        });
        return async () => this.engine.apply([effect]);
      },
    };
  }

  private async closed(
    trx: Transaction<Database>,
    audit: (e: AuditEntry) => void,
    gate: GateRow,
    outcome: 'approved' | 'denied' | 'expired' | 'cancelled',
  ): Promise<AfterCommit> {
    if (!gate.run_id || !gate.step_id || outcome === 'cancelled') return async () => undefined;
    const run = await loadRun(trx, gate.run_id, true);
    if (!run) return async () => undefined;
    const effects: Effect[] = [];
    const def = await this.engine.definitions.get(run.definitionHash);
    const decisions = await trx
      .selectFrom('approval_decisions as d')
      .innerJoin('principals as p', 'p.id', 'd.principal_id')
      .select(['p.display_name', 'd.principal_id', 'd.decision', 'd.reason', 'd.via', 'd.created_at'])
      .where('d.approval_id', '=', gate.id)
      .orderBy('d.created_at')
      .execute();
    const output = {
      approvalId: gate.id,
      status: outcome,
      decisions: decisions.map((d) => ({ by: d.display_name, principalId: d.principal_id, decision: d.decision, reason: d.reason, via: d.via, at: d.created_at.toISOString() })),
    };
    const deny = decisions.find((d) => d.decision === 'deny');
    await this.engine.steps.settleIn({ trx, audit, run, effects, nothing: nothingFn }, def, gate.step_id, 1, {
      status: outcome === 'approved' ? 'succeeded' : 'failed',
      output,
      ...(outcome === 'approved'
        ? {}
        : {
            error: outcome === 'expired' ? 'the approval expired without a decision' : `denied by ${deny?.display_name ?? 'an approver'}${deny?.reason ? `: ${deny.reason}` : ''}`,
            retryable: false,
          }),
    });
    return async () => this.engine.apply(effects);
  }

  async expire(timerId: string, approvalId: string, level: number): Promise<void> {
    await this.engine.gates.expire(approvalId, level);
    await this.engine.markTimerFired(timerId);
  }
}

function nothingFn(): never {
  throw new Error('approval settle: nothing to do');
}

async function engineRunStepOutput(trx: Transaction<Database>, runId: string, stepId: string, output: Record<string, unknown>): Promise<void> {
  await trx.updateTable('run_steps').set({ output: JSON.stringify(output) }).where('run_id', '=', runId).where('step_id', '=', stepId).where('attempt', '=', 1).execute();
}
