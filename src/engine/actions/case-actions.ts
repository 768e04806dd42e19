import { sql, type Kysely } from 'kysely';
import { ReflexError } from '../../errors.ts';
import type { IdempotencyStore } from '../../integrations/containment-ports.ts';
import { isRecord } from '../../integrations/http.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline } from '../../store/incidents.ts';
import type { Database } from '../../store/schema.ts';
import type { ActionName } from '../action-catalogue.ts';
import { engineDb } from '../engine-schema.ts';
import { requiredString } from './action-inputs.ts';
import { sourceOf } from './containment-actions.ts';
import { DatabaseIdempotencyStore } from './database-idempotency-store.ts';
import type { ActionContext, ActionExecutor } from './registry.ts';
import type { TenantIntegrations } from './tenant-integrations.ts';

export interface CaseExecutorDeps {
  /** The engine's database: the run, its incident's timeline, the alerts' TheHive links. */
  db: Kysely<Database>;
  integrations: Pick<TenantIntegrations, 'caseSystem'>;
  /** Where "TheHive has this step's comment" is remembered; default the engine's DatabaseIdempotencyStore. */
  idempotencyStore?: (tenantId: string) => IdempotencyStore;
}

/** The incident timeline's limit on one entry. */
const MAX_TEXT = 4000;
/** Long enough for any retry of a step; the record only has to outlive the run. */
const RECORD_TTL_MS = 7 * 86_400_000;
export const CASE_COMMENT_KIND = 'case.comment';

/**
 * `case.comment {text}`: the comment goes on the run's case, in both places the case lives:
 *
 * 1. the internal incident's timeline (kind `case.comment`, actor `playbook:<id>`, data
 *    `{runId, stepId, idempotencyKey}`), in an audited transaction; and
 * 2. when the tenant has TheHive (`thehive.url` + secret `thehive.api_key`) and the case is there,
 *    `POST /api/v1/case/{caseId}/comment {message}`. The TheHive case is the one the pipeline
 *    linked to the alert that started the run (`alerts.case_refs.thehive.caseId`), else to the
 *    newest alert of the run's incident that has one.
 *
 * Idempotent per run and step: the timeline entry is found by the step's idempotency key (under
 * an advisory lock, so two attempts racing add one), and TheHive's comment, which has no key of
 * its own, is recorded in the idempotency store after it is posted; a retry (TheHive was down
 * after the timeline entry was written, or the worker died after both) writes and posts nothing
 * twice. The one window left is a crash between TheHive's answer and the record: the retry then
 * posts again. A run with neither an incident nor a TheHive case fails, not retryably: there is
 * no case to comment on.
 *
 * Output: `{ incident_id, timeline: {entry_id, reused} | null, thehive: {case_id, posted, reused} | {case_id: null, reason} | null }`.
 *
 * @example
 * registry.register('case.comment', createCaseExecutors({ db, integrations })['case.comment']!);
 */
export function createCaseExecutors(deps: CaseExecutorDeps): Partial<Record<ActionName, ActionExecutor>> {
  const store = deps.idempotencyStore ?? ((tenantId: string) => new DatabaseIdempotencyStore(deps.db, tenantId));
  return {
    'case.comment': async (input, ctx) => {
      const text = requiredString(input, 'case.comment', 'text');
      if (text.length > MAX_TEXT) {
        throw new ReflexError('input.invalid', `case.comment: with.text is ${text.length} characters, over ${MAX_TEXT}`, {
          retryable: false,
          safeMessage: `case.comment: the text is longer than ${MAX_TEXT} characters.`,
          details: { field: 'text' },
        });
      }
      const run = await engineDb(deps.db)
        .selectFrom('playbook_runs')
        .select(['playbook_id', 'incident_id', 'trigger'])
        .where('id', '=', ctx.runId)
        .where('tenant_id', '=', ctx.tenantId)
        .executeTakeFirst();
      if (!run) throw new ReflexError('not_found', `case.comment: no run ${ctx.runId} in tenant ${ctx.tenantId}`, { retryable: false });
      const actor = `playbook:${run.playbook_id}`;

      // Configuration first: a broken TheHive setting fails the step before anything is written.
      const hive = await deps.integrations.caseSystem(sourceOf(ctx));
      const caseId = hive ? await linkedTheHiveCase(deps.db, ctx.tenantId, run.incident_id, run.trigger) : undefined;
      if (!run.incident_id && !caseId) {
        throw new ReflexError('not_found', `case.comment: run ${ctx.runId} has no incident${hive ? ' and no TheHive case' : ''} to comment on`, {
          retryable: false,
          safeMessage: 'case.comment: this run has no incident or case to comment on (start it from an alert or an incident).',
        });
      }

      const timeline = run.incident_id ? await commentOnTimeline(deps.db, ctx, run.incident_id, actor, text) : null;
      if (timeline) ctx.log(`incident ${run.incident_id}: ${timeline.reused ? 'comment already on the timeline' : 'comment added to the timeline'}`);

      let thehive: Record<string, unknown> | null = null;
      if (hive && caseId) {
        const records = store(ctx.tenantId);
        const recordKey = `thehive:comment:${caseId}:${ctx.idempotencyKey}`;
        const reused = (await records.get(recordKey)) !== undefined;
        if (!reused) {
          await hive.addComment({ kind: 'case', id: caseId }, text);
          await records.set(recordKey, JSON.stringify({ caseId, at: new Date().toISOString() }), RECORD_TTL_MS);
          await auditedWrite(deps.db, actor, async (_trx, audit) => {
            audit({ tenantId: ctx.tenantId, action: 'case.comment.thehive', target: `thehive:case:${caseId}`, delta: { runId: ctx.runId, stepId: ctx.stepId, chars: text.length } });
          });
        }
        ctx.log(`${hive.name}: ${reused ? 'comment already on' : 'commented on'} case ${caseId}`);
        thehive = { case_id: caseId, posted: true, reused };
      } else if (hive) {
        ctx.log('thehive: the incident is not linked to a TheHive case; timeline only');
        thehive = { case_id: null, posted: false, reason: 'the incident is not linked to a TheHive case' };
      }
      return { incident_id: run.incident_id, timeline, thehive };
    },
  };
}

async function commentOnTimeline(db: Kysely<Database>, ctx: ActionContext, incidentId: string, actor: string, text: string): Promise<{ entry_id: string; reused: boolean }> {
  const find = (q: Kysely<Database>) =>
    q
      .selectFrom('timeline_entries')
      .select('id')
      .where('tenant_id', '=', ctx.tenantId)
      .where('incident_id', '=', incidentId)
      .where('kind', '=', CASE_COMMENT_KIND)
      .where(sql<string>`data->>'idempotencyKey'`, '=', ctx.idempotencyKey)
      .executeTakeFirst();
  const earlier = await find(db);
  if (earlier) return { entry_id: earlier.id, reused: true };
  return auditedWrite(db, actor, async (trx, audit) => {
    // Two attempts of one step (a stalled job handed on) must not both append.
    await sql`select pg_advisory_xact_lock(hashtextextended(${`case.comment:${ctx.idempotencyKey}`}, 0))`.execute(trx);
    const raced = await find(trx);
    if (raced) {
      audit({ tenantId: ctx.tenantId, action: 'case.comment.repeat', target: `incident:${incidentId}`, delta: { entry: raced.id, runId: ctx.runId, stepId: ctx.stepId } });
      return { entry_id: raced.id, reused: true };
    }
    const row = await appendTimeline(trx, {
      tenantId: ctx.tenantId,
      incidentId,
      kind: CASE_COMMENT_KIND,
      actor,
      text,
      data: { runId: ctx.runId, stepId: ctx.stepId, idempotencyKey: ctx.idempotencyKey },
    });
    audit({ tenantId: ctx.tenantId, action: 'case.comment', target: `incident:${incidentId}`, delta: { entry: row.id, runId: ctx.runId, stepId: ctx.stepId } });
    return { entry_id: row.id, reused: false };
  });
}

/** The TheHive case of the run's alert, else of the newest alert of its incident that has one. */
async function linkedTheHiveCase(db: Kysely<Database>, tenantId: string, incidentId: string | null, trigger: unknown): Promise<string | undefined> {
  const alertId = isRecord(trigger) && trigger.kind === 'alert' && typeof trigger.alertId === 'string' ? trigger.alertId : undefined;
  if (alertId && /^[0-9a-f-]{36}$/i.test(alertId)) {
    const alert = await db.selectFrom('alerts').select('case_refs').where('id', '=', alertId).where('tenant_id', '=', tenantId).executeTakeFirst();
    const id = caseIdOf(alert?.case_refs);
    if (id) return id;
  }
  if (!incidentId) return undefined;
  const rows = await db
    .selectFrom('alerts')
    .select('case_refs')
    .where('tenant_id', '=', tenantId)
    .where('incident_id', '=', incidentId)
    .where(sql<string>`case_refs->'thehive'->>'caseId'`, 'is not', null)
    .orderBy('last_received_at', 'desc')
    .limit(1)
    .execute();
  return caseIdOf(rows[0]?.case_refs);
}

function caseIdOf(refs: unknown): string | undefined {
  const hive = isRecord(refs) ? refs['thehive'] : undefined;
  const id = isRecord(hive) ? hive['caseId'] : undefined;
  return typeof id === 'string' && id !== '' ? id : undefined;
}
