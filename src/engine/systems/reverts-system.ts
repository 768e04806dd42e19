import { ReflexError, toReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline } from '../../store/incidents.ts';
import { findAction } from '../action-catalogue.ts';
import type { ActionContext } from '../actions/registry.ts';
import { engineDb } from '../engine-schema.ts';
import { Expression, resolveTemplate, resolveValue, type ExpressionContext } from '../expressions.ts';
import { parseDuration } from '../manifest/duration.ts';
import type { RevertStep } from '../manifest/types.ts';
import type { Definition } from '../run/definition-cache.ts';
import type { Effect, RunRecord } from '../run/run-record.ts';
import { maskSecrets } from '../run/secret-masking.ts';
import type { RunEngine } from '../run-engine.ts';
import { secretReader } from '../step-kinds/side-effect-steps.ts';

/**
 * Reverts: a `revert` step schedules the catalogue's undo of an earlier containment (unblock,
 * release, re-enable) `after` a delay, as a row in run_reverts plus a timer. The undo outlives
 * its run (a run that ends does not cancel it), runs with its own idempotency key, and can be run
 * early (the incident's "undo now" button) with `runNow`; whichever comes first claims the row,
 * the other finds it done.
 *
 * @example
 * await engine.reverts.runNow('acme', revertId, 'principal:…');
 */
const REVERT_TIMEOUT_MS = 60_000;
const MAX_REVERT_ATTEMPTS = 5;

export class RevertsSystem {
  constructor(private readonly engine: RunEngine) {}

  async begin(run: RunRecord, def: Definition, step: RevertStep, ctx: ExpressionContext): Promise<void> {
    const actor = `playbook:${run.playbookId}`;
    const target = def.graph.step(step.target);
    const view = ctx.steps?.[step.target];
    if (target.kind !== 'action' || view?.status !== 'succeeded') {
      await this.engine.steps.settle(run.id, step.id, 1, { status: 'skipped', output: { scheduled: false, reason: `${step.target} did not succeed (${view?.status ?? 'not run'})` } }, actor);
      return;
    }
    let afterMs: number | undefined;
    if (step.after.kind === 'fixed') afterMs = step.after.ms;
    else {
      const value = await resolveTemplate(step.after.source, ctx, `${step.id}.revert.after`);
      afterMs = typeof value === 'string' ? parseDuration(value) : undefined;
      if (afterMs === undefined) throw new ReflexError('input.invalid', `${step.id}.revert.after evaluated to ${JSON.stringify(value)}, not a duration`, { retryable: false });
    }
    const undo = findAction(target.action)?.undo;
    if (!undo) throw new ReflexError('input.invalid', `${target.action} has no undo`, { retryable: false });
    // The undo reads the target's inputs as the target resolved them: the context up to the target
    // has not changed since, so resolving its `with:` again gives the same values (and, unlike the
    // masked execution log, the real ones).
    const original = (await resolveValue(target.with, ctx, `${target.id}.with`)) as Record<string, unknown>;
    const input: Record<string, unknown> = {};
    for (const [field, source] of Object.entries(undo.with)) {
      const value = await Expression.compile(source, `${step.id}.undo.${field}`).evaluate({ original, output: view.output });
      if (value !== undefined) input[field] = value;
    }
    const dueAt = new Date(this.engine.now().getTime() + afterMs);
    await this.engine.transition(actor, run.id, async (tx) => {
      const row = await engineDb(tx.trx)
        .insertInto('run_reverts')
        .values({ tenant_id: run.tenantId, run_id: run.id, step_id: step.id, target_step: step.target, action: undo.action, input: JSON.stringify(input), due_at: dueAt })
        .onConflict((oc) => oc.columns(['run_id', 'step_id']).doNothing())
        .returning('id')
        .executeTakeFirst();
      const id = row?.id ?? (await engineDb(tx.trx).selectFrom('run_reverts').select('id').where('run_id', '=', run.id).where('step_id', '=', step.id).executeTakeFirstOrThrow()).id;
      tx.effects.push(await this.engine.timers.schedule(tx.trx, { id: `revert-${id}-1`, kind: 'revert.run', tenantId: run.tenantId, runId: run.id, refId: id, dueAt }));
      const settled = await this.engine.steps.settleIn(tx, def, step.id, 1, { status: 'succeeded', output: { scheduled: true, revertId: id, action: undo.action, input, dueAt: dueAt.toISOString() } });
      if (!settled) tx.nothing();
    });
  }

  /** The revert's timer fired. */
  async fire(timerId: string, revertId: string): Promise<void> {
    await this.execute(revertId, 'system:reverts', ['scheduled'], timerId);
  }

  /** Runs a scheduled (or failed) undo now, for the incident's button. */
  async runNow(tenantId: string, revertId: string, actor: string): Promise<{ status: string; error?: string | null }> {
    const row = await engineDb(this.engine.deps.db).selectFrom('run_reverts').select(['id', 'tenant_id', 'status']).where('id', '=', revertId).executeTakeFirst();
    if (!row || row.tenant_id !== tenantId) throw new ReflexError('not_found', `no revert ${revertId}`, { safeMessage: 'No such scheduled undo in this tenant.' });
    const done = await this.execute(revertId, actor, ['scheduled', 'failed']);
    if (!done) throw new ReflexError('conflict', `revert ${revertId} is ${row.status}`, { safeMessage: `That undo is ${row.status} already.` });
    const after = await engineDb(this.engine.deps.db).selectFrom('run_reverts').select(['status', 'error']).where('id', '=', revertId).executeTakeFirstOrThrow();
    return { status: after.status, error: after.error };
  }

  private async execute(revertId: string, actor: string, from: ('scheduled' | 'failed')[], timerId?: string): Promise<boolean> {
    const { db } = this.engine.deps;
    let attempt = 1;
    const claimed = await auditedWrite(db, actor, async (trx, audit) => {
      const row = await engineDb(trx).updateTable('run_reverts').set({ status: 'running', executed_by: actor }).where('id', '=', revertId).where('status', 'in', from).returningAll().executeTakeFirst();
      if (timerId) await this.engine.timers.claim(trx, timerId);
      if (!row) {
        audit({ tenantId: null, action: 'run.revert.skip', target: `revert:${revertId}`, delta: { reason: 'not scheduled any more' } });
        return undefined;
      }
      if (timerId) attempt = Number(/-(\d+)$/.exec(timerId)?.[1] ?? 1);
      audit({ tenantId: row.tenant_id, action: 'run.revert.start', target: `revert:${revertId}`, delta: { action: row.action, runId: row.run_id, stepId: row.step_id, attempt } });
      return row;
    });
    if (!claimed) return false;
    const run = await this.engine.runs.load(claimed.run_id);
    const found: string[] = [];
    let outcome: { ok: true; output: unknown } | { ok: false; error: string; retryable: boolean };
    try {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), REVERT_TIMEOUT_MS);
      try {
        const ctx: ActionContext = {
          tenantId: claimed.tenant_id,
          runId: claimed.run_id,
          stepId: claimed.step_id,
          idempotencyKey: `reflex-${claimed.run_id}-${claimed.step_id}-revert`,
          attempt,
          secrets: secretReader(this.engine, claimed.tenant_id, found),
          config: (await this.engine.tenants.get(claimed.tenant_id)) ?? {},
          signal: controller.signal,
          timeoutMs: REVERT_TIMEOUT_MS,
          expressionContext: run ? await this.engine.context(run) : {},
          log: () => undefined,
        };
        outcome = { ok: true, output: await this.engine.deps.actions.require(claimed.action)(claimed.input, ctx) };
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      const e = toReflexError(err);
      outcome = { ok: false, error: e.message, retryable: e.retryable };
    }
    const retry = !outcome.ok && outcome.retryable && attempt < MAX_REVERT_ATTEMPTS && actor === 'system:reverts';
    const pending: Effect[] = [];
    await auditedWrite(db, actor, async (trx, audit) => {
      const t = engineDb(trx);
      if (retry) {
        const dueAt = new Date(this.engine.now().getTime() + 5_000 * 2 ** (attempt - 1));
        await t.updateTable('run_reverts').set({ status: 'scheduled', error: outcome.ok ? null : outcome.error }).where('id', '=', revertId).execute();
        const effect = await this.engine.timers.schedule(trx, { id: `revert-${revertId}-${attempt + 1}`, kind: 'revert.run', tenantId: claimed.tenant_id, runId: claimed.run_id, refId: revertId, dueAt });
        pending.push(effect);
      } else {
        await t
          .updateTable('run_reverts')
          .set({
            status: outcome.ok ? 'succeeded' : 'failed',
            output: outcome.ok ? JSON.stringify(maskSecrets(outcome.output ?? null, found)) : null,
            error: outcome.ok ? null : String(maskSecrets(outcome.error, found)).slice(0, 4000),
            finished_at: this.engine.now(),
          })
          .where('id', '=', revertId)
          .execute();
      }
      if (run?.incidentId) {
        await appendTimeline(trx, {
          tenantId: claimed.tenant_id,
          incidentId: run.incidentId,
          kind: outcome.ok ? 'playbook.revert.succeeded' : retry ? 'playbook.revert.retry' : 'playbook.revert.failed',
          actor,
          text: outcome.ok ? `Reverted ${claimed.target_step} with ${claimed.action}` : `Revert of ${claimed.target_step} (${claimed.action}) failed: ${outcome.error.slice(0, 500)}${retry ? '; retrying' : ''}`,
          data: { revertId, runId: claimed.run_id },
        });
      }
      audit({
        tenantId: claimed.tenant_id,
        action: outcome.ok ? 'run.revert.succeeded' : retry ? 'run.revert.retry' : 'run.revert.failed',
        target: `revert:${revertId}`,
        delta: { action: claimed.action, attempt, ...(outcome.ok ? {} : { error: String(maskSecrets(outcome.error, found)).slice(0, 500) }) },
      });
    });
    await this.engine.apply(pending);
    return true;
  }
}
