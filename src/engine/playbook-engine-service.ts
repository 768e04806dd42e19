import type { ApprovalOutcome, PlaybookEngine, PlaybookInfo, PrincipalRef, RunInfo } from '../commands/ports.ts';
import { ReflexError, toReflexError } from '../errors.ts';
import type { PlaybookTrigger } from '../pipeline/playbook-trigger.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { PlaybookRunsTable } from '../store/schema.ts';
import type { Selectable } from 'kysely';
import { evaluateCondition } from './expressions.ts';
import type { Playbook } from './manifest/types.ts';
import { engineDb } from './engine-schema.ts';
import type { RunStatus } from './run/run-record.ts';
import type { RunEngine } from './run-engine.ts';

/**
 * The engine as the rest of SENTreflex drives it: the chat commands' `PlaybookEngine` port
 * (src/commands/ports.ts) and the pipeline's `PlaybookTrigger` port (src/pipeline/playbook-trigger.ts).
 *
 * An alert starts every playbook whose trigger matches its event (event type, severity, `when`),
 * once per (alert, playbook) however often the pipeline retries, and is offered to runs waiting
 * for an event of its tenant.
 *
 * @example
 * const run = await service.start('acme', 'host-isolation', { host: 'web-01', agent_id: '003' }, who);
 * await service.decide('acme', approvalId, who, 'approve', undefined, 'slack.button');
 */
export class PlaybookEngineService implements PlaybookEngine, PlaybookTrigger {
  constructor(readonly engine: RunEngine) {}

  async list(_tenantId: string): Promise<PlaybookInfo[]> {
    return this.engine.deps.catalog.list().map(({ playbook }) => ({
      id: playbook.id,
      name: playbook.name,
      version: String(playbook.version),
      ...(playbook.description ? { description: playbook.description } : {}),
      inputs: playbook.inputs.map((i) => ({
        name: i.name,
        type: i.list ? `${i.type}[]` : i.type,
        required: i.required && i.default === undefined,
        ...(i.description ? { description: i.description } : {}),
      })),
    }));
  }

  async start(tenantId: string, playbookId: string, inputs: Record<string, string>, startedBy: PrincipalRef): Promise<RunInfo> {
    if (!startedBy.roles.some((r) => r === 'responder' || r === 'admin' || r === 'approver')) {
      throw new ReflexError('auth.forbidden', `${startedBy.identity} may not start playbooks`, { safeMessage: 'Starting a playbook needs the responder, approver or admin role.' });
    }
    const started = await this.engine.runs.start({ tenantId, playbookId, inputs, startedBy: `principal:${startedBy.principalId}`, manual: true, trigger: { kind: 'manual', via: startedBy.identity } });
    const run = await this.getRun(tenantId, started.id);
    if (!run) throw new ReflexError('internal', `run ${started.id} vanished`);
    return run;
  }

  async getRun(tenantId: string, runRef: string): Promise<RunInfo | undefined> {
    const id = await this.engine.runs.resolveRef(tenantId, runRef);
    if (!id) return undefined;
    const r = await this.engine.deps.db.selectFrom('playbook_runs').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
    if (!r) return undefined;
    const steps = await this.engine.deps.db.selectFrom('run_steps').select(['step_id', 'status', 'attempt']).where('run_id', '=', id).orderBy('started_at').orderBy('attempt').execute();
    return { ...runInfo(r), steps: steps.map((s) => ({ stepId: s.step_id, status: s.status, attempt: s.attempt })) };
  }

  async listRuns(tenantId: string, opts: { limit: number }): Promise<RunInfo[]> {
    const rows = await this.engine.deps.db
      .selectFrom('playbook_runs')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .orderBy('created_at', 'desc')
      .limit(Math.min(Math.max(opts.limit, 1), 200))
      .execute();
    return rows.map(runInfo);
  }

  async decide(tenantId: string, approvalId: string, principal: PrincipalRef, decision: 'approve' | 'deny', reason: string | undefined, via: string): Promise<ApprovalOutcome> {
    const r = await this.engine.gates.decide({
      tenantId,
      approvalRef: approvalId,
      principal: { principalId: principal.principalId, displayName: principal.displayName },
      decision,
      reason,
      via,
    });
    return { approvalId: r.approvalId, status: r.status, summary: r.summary, ...(r.status === 'pending' ? { remaining: r.remaining } : {}) };
  }

  /** Whether a playbook's trigger matches an event (event type, severity, then `when`). */
  async matches(playbook: Playbook, event: { event_type: string; severity: number }, tenant: unknown): Promise<boolean> {
    const t = playbook.trigger;
    if (t.eventTypes.length === 0) return false;
    if (!t.eventTypes.includes('*') && !t.eventTypes.includes(event.event_type)) return false;
    if (t.severities.length && !t.severities.includes(event.severity as 1)) return false;
    if (t.when === undefined) return true;
    return evaluateCondition(t.when, { event, tenant }, `${playbook.id}.trigger.when`);
  }

  async onAlert(input: { tenantId: string; alertId: string; incidentId: string | null; event: { event_type: string; severity: number } }): Promise<{ runIds: string[] }> {
    const tenant = await this.engine.tenants.get(input.tenantId);
    const runIds: string[] = [];
    for (const { playbook } of this.engine.deps.catalog.list()) {
      let match = false;
      try {
        match = await this.matches(playbook, input.event, tenant);
      } catch (err) {
        this.engine.deps.logger.warn({ err, playbookId: playbook.id }, 'trigger.when could not be evaluated');
      }
      if (!match) continue;
      try {
        const run = await this.engine.runs.start({
          tenantId: input.tenantId,
          playbookId: playbook.id,
          inputs: {},
          startedBy: 'pipeline',
          manual: false,
          event: input.event,
          incidentId: input.incidentId,
          triggerKey: `alert-${input.alertId}-${playbook.id}`,
          trigger: { kind: 'alert', alertId: input.alertId },
        });
        runIds.push(run.id);
      } catch (err) {
        // The alert matched but the run cannot start (an input the event does not have): say so
        // in the audit log rather than fail the pipeline stage, which would retry in vain.
        const e = toReflexError(err);
        await auditedWrite(this.engine.deps.db, 'pipeline', async (_trx, audit) => {
          audit({ tenantId: input.tenantId, action: 'run.refused', target: `alert:${input.alertId}`, delta: { playbookId: playbook.id, error: e.safeMessage.slice(0, 1000) } });
        });
      }
    }
    await this.engine.waits.deliverEvent(input.tenantId, input.event);
    return { runIds };
  }

  /** Pending approvals of a tenant, newest first. */
  async pendingApprovals(tenantId: string) {
    return this.engine.gates.list({ tenantId, status: 'pending' });
  }

  /** The id of an alert's run of a playbook, if the trigger started one. */
  async runForAlert(alertId: string, playbookId: string): Promise<string | undefined> {
    const row = await engineDb(this.engine.deps.db).selectFrom('playbook_runs').select('id').where('trigger_key', '=', `alert-${alertId}-${playbookId}`).executeTakeFirst();
    return row?.id;
  }
}

/** A run row as the chat commands see it (without its steps). */
function runInfo(r: Selectable<PlaybookRunsTable>): RunInfo {
  return {
    id: r.id,
    playbookId: r.playbook_id,
    playbookVersion: r.playbook_version,
    status: r.status as RunStatus,
    startedBy: r.started_by,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    incidentId: r.incident_id,
    error: r.error,
  };
}
