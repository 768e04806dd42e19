import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline } from '../../store/incidents.ts';
import { canonicalJson } from '../../store/canonical-json.ts';
import { engineDb } from '../engine-schema.ts';
import { resolveRunInputs } from '../run/run-inputs.ts';
import { loadRun, type RunRecord, type RunStatus } from '../run/run-record.ts';
import { maskSecrets } from '../run/secret-masking.ts';
import { runSecretName, sensitiveValues } from '../run/run-context.ts';
import type { RunEngine, TransitionTx } from '../run-engine.ts';

/**
 * Runs: start one (manually, from an alert, or one per tenant for a fan-out), end one, read them.
 *
 * Starting is one audited transaction: the definition (stored once per hash), the run row with
 * its resolved inputs, the first step queued, the incident's timeline entry. An event-triggered
 * start carries `trigger_key = alert-<alertId>-<playbookId>`, unique in the database, so a retried
 * trigger stage finds the run it started instead of starting a second one.
 *
 * @example
 * const run = await engine.runs.start({ tenantId: 'acme', playbookId: 'host-isolation', inputs: { host: 'web-01' }, startedBy: 'principal:…', manual: true });
 */
export interface StartRunInput {
  tenantId: string;
  playbookId: string;
  inputs: Readonly<Record<string, unknown>>;
  /** `principal:<id>`, `api:admin`, `pipeline`, … (the requester an approval gate checks against). */
  startedBy: string;
  /** True for a start by a person or the API: the playbook must allow `trigger.manual`. */
  manual: boolean;
  event?: unknown;
  incidentId?: string | null;
  triggerKey?: string;
  batchId?: string;
  trigger?: Record<string, unknown>;
}

export interface StartedRun {
  id: string;
  status: RunStatus;
  created: boolean;
}

export class RunsSystem {
  private readonly storedDefinitions = new Set<string>();

  constructor(private readonly engine: RunEngine) {}

  async load(runId: string): Promise<RunRecord | undefined> {
    return loadRun(this.engine.deps.db, runId);
  }

  async start(input: StartRunInput): Promise<StartedRun> {
    const { db } = this.engine.deps;
    const entry = this.engine.deps.catalog.require(input.playbookId);
    const { playbook, hash } = entry;
    if (input.manual && !playbook.trigger.manual) {
      throw new ReflexError('input.invalid', `playbook ${playbook.id} is not manual`, {
        safeMessage: `Playbook ${playbook.id} cannot be started by hand (its trigger has no manual: true); it starts from matching events.`,
      });
    }
    if (input.triggerKey) {
      const existing = await engineDb(db).selectFrom('playbook_runs').select(['id', 'status']).where('trigger_key', '=', input.triggerKey).executeTakeFirst();
      if (existing) return { id: existing.id, status: existing.status as RunStatus, created: false };
    }
    const tenant = await this.engine.tenants.get(input.tenantId);
    if (!('name' in tenant)) throw new ReflexError('not_found', `no tenant ${input.tenantId}`, { safeMessage: `There is no tenant "${input.tenantId.slice(0, 63)}".` });
    const inputs = await resolveRunInputs(playbook, input.inputs, { event: input.event, tenant });
    if (input.incidentId !== undefined && input.incidentId !== null) {
      if (!z.uuid().safeParse(input.incidentId).success) throw new ReflexError('input.invalid', 'bad incident id', { safeMessage: 'The incident id is not a UUID.' });
      const inc = await db.selectFrom('incidents').select('id').where('id', '=', input.incidentId).where('tenant_id', '=', input.tenantId).executeTakeFirst();
      if (!inc) throw new ReflexError('not_found', `no incident ${input.incidentId}`, { safeMessage: `No incident ${input.incidentId.slice(0, 8)} in this tenant.` });
    }
    const first = this.engine.definitions.graphFor(hash)?.first() ?? playbook.steps[0]!;
    const masked = maskSecrets(inputs, sensitiveValues(playbook, inputs));
    // Sensitive inputs go to the vault, keyed by the run; the run row only points at them.
    const runId = randomUUID();
    const stored: Record<string, unknown> = { ...inputs };
    for (const declared of playbook.inputs) {
      if (!declared.sensitive || inputs[declared.name] === undefined) continue;
      const name = runSecretName(runId, declared.name);
      await this.engine.deps.vault.set(input.tenantId, name, JSON.stringify(inputs[declared.name]), input.startedBy);
      stored[declared.name] = { $vault: name };
    }
    // One batched statement (systems/batched-writes.ts): definition, run row, first step queued,
    // the incident's timeline entry and the audit row, committed together.
    const created = await this.engine.writes.runStarts.submit({
      id: runId,
      tenantId: input.tenantId,
      playbookId: playbook.id,
      playbookVersion: String(playbook.version),
      definitionHash: hash,
      definition: this.storedDefinitions.has(hash) ? null : { hash, version: playbook.version, json: canonicalJson(playbook) },
      trigger: input.trigger ?? { kind: input.manual ? 'manual' : 'event' },
      inputs: stored,
      incidentId: input.incidentId ?? null,
      startedBy: input.startedBy,
      event: input.event,
      triggerKey: input.triggerKey ?? null,
      batchId: input.batchId ?? null,
      first: { stepId: first.id, kind: first.kind },
      timelineText: `Playbook ${playbook.name} (${playbook.id} v${playbook.version}) started`,
      auditDelta: { playbookId: playbook.id, version: playbook.version, definition: hash, inputs: masked as Record<string, unknown>, trigger: input.triggerKey ?? (input.manual ? 'manual' : 'event') },
    });
    if (!created) {
      // Another start holds the trigger key (a retried trigger stage): that run is the answer.
      const existing = await engineDb(db).selectFrom('playbook_runs').select(['id', 'status']).where('trigger_key', '=', input.triggerKey ?? '').executeTakeFirstOrThrow();
      return { id: existing.id, status: existing.status as RunStatus, created: false };
    }
    this.storedDefinitions.add(hash);
    await this.engine.steps.enqueue({ runId, stepId: first.id, attempt: 1 });
    return { id: runId, status: 'running', created: true };
  }

  /** Ends the run inside a transition: its status, open gates, waits and timers (not reverts). */
  async finishIn(tx: TransitionTx, status: 'succeeded' | 'failed' | 'cancelled', error?: string): Promise<void> {
    const res = await tx.trx
      .updateTable('playbook_runs')
      .set({ status, finished_at: this.engine.now(), error: error ? error.slice(0, 4000) : null })
      .where('id', '=', tx.run.id)
      .where('status', 'in', ['queued', 'running', 'waiting'])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return;
    tx.run.status = status;
    await this.engine.gates.cancelForRun(tx.trx, tx.audit, tx.run.id);
    await engineDb(tx.trx).updateTable('run_waits').set({ status: 'cancelled' }).where('run_id', '=', tx.run.id).where('status', '=', 'waiting').execute();
    await this.engine.timers.cancelForRun(tx.trx, tx.run.id);
    if (status !== 'succeeded') {
      // Whatever is still open (a waiting gate in another branch, a queued retry) ends with the run.
      await engineDb(tx.trx)
        .updateTable('run_steps')
        .set({ status: 'cancelled', finished_at: this.engine.now() })
        .where('run_id', '=', tx.run.id)
        .where('status', 'in', ['queued', 'running', 'waiting'])
        .execute();
    }
    if (tx.run.incidentId) {
      await appendTimeline(tx.trx, {
        tenantId: tx.run.tenantId,
        incidentId: tx.run.incidentId,
        kind: `playbook.run.${status}`,
        actor: `playbook:${tx.run.playbookId}`,
        text: `Playbook ${tx.run.playbookId} ${status}${error ? `: ${error.slice(0, 500)}` : ''}`,
        data: { runId: tx.run.id },
      });
    }
    tx.audit({ tenantId: tx.run.tenantId, action: `run.${status}`, target: `run:${tx.run.id}`, delta: { ...(error ? { error: error.slice(0, 500) } : {}) } });
    const runId = tx.run.id;
    tx.effects.push({ kind: 'call', what: 'run finished', fn: async () => this.engine.emitFinished(runId, status) });
  }

  /** Cancels a run (an analyst's decision); its scheduled reverts stay scheduled. */
  async cancel(runId: string, actor: string, reason: string): Promise<boolean> {
    return this.engine.transition(actor, runId, async (tx) => {
      if (!['queued', 'running', 'waiting'].includes(tx.run.status)) tx.nothing();
      await this.finishIn(tx, 'cancelled', reason);
    });
  }

  /**
   * One run per tenant (`all` = every tenant), each with its own tenant's configuration and
   * credentials. Tenants whose run cannot start are reported, not fatal to the others.
   */
  async fanOut(input: { playbookId: string; tenants: 'all' | string[]; inputs: Record<string, unknown>; startedBy: string }): Promise<{
    batchId: string;
    runs: { tenantId: string; runId?: string; error?: string }[];
  }> {
    const { db } = this.engine.deps;
    this.engine.deps.catalog.require(input.playbookId);
    const all = (await db.selectFrom('tenants').select('id').orderBy('id').execute()).map((r) => r.id);
    const tenants = input.tenants === 'all' ? all : [...new Set(input.tenants)];
    const unknown = tenants.filter((t) => !all.includes(t));
    if (unknown.length) throw new ReflexError('not_found', `unknown tenants ${unknown.join(', ')}`, { safeMessage: `Unknown tenant(s): ${unknown.join(', ')}.` });
    if (tenants.length === 0) throw new ReflexError('input.invalid', 'no tenants', { safeMessage: 'No tenant to run on.' });
    const batchId = await auditedWrite(db, input.startedBy, async (trx, audit) => {
      const row = await engineDb(trx)
        .insertInto('run_batches')
        .values({ playbook_id: input.playbookId, tenants: JSON.stringify(tenants), started_by: input.startedBy })
        .returning('id')
        .executeTakeFirstOrThrow();
      audit({ tenantId: null, action: 'run.batch.start', target: `run_batch:${row.id}`, delta: { playbookId: input.playbookId, tenants } });
      return row.id;
    });
    const runs: { tenantId: string; runId?: string; error?: string }[] = [];
    for (const tenantId of tenants) {
      try {
        const r = await this.start({ tenantId, playbookId: input.playbookId, inputs: input.inputs, startedBy: input.startedBy, manual: true, batchId, trigger: { kind: 'fan-out', batchId } });
        runs.push({ tenantId, runId: r.id });
      } catch (err) {
        runs.push({ tenantId, error: err instanceof ReflexError ? err.safeMessage : String(err) });
      }
    }
    return { batchId, runs };
  }

  async batchProgress(batchId: string): Promise<{ tenantId: string; runId: string; status: RunStatus; error: string | null; finishedAt: Date | null }[]> {
    const rows = await engineDb(this.engine.deps.db)
      .selectFrom('playbook_runs')
      .select(['id', 'tenant_id', 'status', 'error', 'finished_at'])
      .where('batch_id', '=', batchId)
      .orderBy('tenant_id')
      .execute();
    return rows.map((r) => ({ tenantId: r.tenant_id, runId: r.id, status: r.status as RunStatus, error: r.error, finishedAt: r.finished_at }));
  }

  /** A run id as a person typed it: the UUID, or a unique prefix of 8+ hex digits, within the tenant. */
  async resolveRef(tenantId: string, ref: string): Promise<string | undefined> {
    const r = ref.trim().toLowerCase();
    if (!/^[0-9a-f]{8}[0-9a-f-]{0,28}$/.test(r)) {
      throw new ReflexError('input.invalid', `bad run ref ${ref}`, { safeMessage: `"${ref.slice(0, 40)}" is not a run id: give its first 8 hex characters or the whole id.` });
    }
    const rows = await this.engine.deps.db
      .selectFrom('playbook_runs')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where((eb) => (r.length === 36 ? eb('id', '=', r) : eb(eb.cast('id', 'text'), 'like', `${r}%`)))
      .limit(2)
      .execute();
    if (rows.length > 1) throw new ReflexError('input.invalid', `run ref ${r} is ambiguous`, { safeMessage: `More than one run starts with ${r}; give more of the id.` });
    return rows[0]?.id;
  }

  /** The execution log: every step attempt with start, end, duration, masked input, output, error. */
  async log(runId: string) {
    const { db } = this.engine.deps;
    const run = await engineDb(db).selectFrom('playbook_runs').selectAll().where('id', '=', runId).executeTakeFirst();
    if (!run) return undefined;
    const steps = await engineDb(db)
      .selectFrom('run_steps')
      .select(['step_id', 'attempt', 'kind', 'status', 'input', 'output', 'error', 'logs', 'idempotency_key', 'queued_at', 'started_at', 'finished_at', 'duration_ms'])
      .where('run_id', '=', runId)
      .orderBy(sql`coalesce(started_at, queued_at)`)
      .orderBy('attempt')
      .execute();
    const approvals = await db.selectFrom('approvals').select(['id', 'step_id', 'status', 'summary', 'expires_at', 'decided_at']).where('run_id', '=', runId).execute();
    const reverts = await engineDb(db).selectFrom('run_reverts').select(['id', 'step_id', 'target_step', 'action', 'status', 'due_at', 'finished_at', 'error']).where('run_id', '=', runId).execute();
    const { event: _event, trigger_key: _key, ...rest } = run;
    return { ...rest, steps, approvals, reverts };
  }
}
