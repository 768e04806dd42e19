import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { z } from 'zod';
import { toReflexError } from '../../errors.ts';
import { twilioSettings } from '../../integrations/tenant-integration-config.ts';
import { buildAnswerTwiml } from '../../integrations/twilio/twiml.ts';
import { verifyTwilioSignature } from '../../integrations/twilio/twilio-signature.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { appendTimeline } from '../../store/incidents.ts';
import type { Database } from '../../store/schema.ts';
import type { SecretsVault } from '../../store/secrets-vault.ts';
import { vaultSecretReader, type TenantIntegrations } from '../actions/tenant-integrations.ts';
import { engineDb } from '../engine-schema.ts';
import type { Playbook, Step } from '../manifest/types.ts';
import { signPhoneAck, verifyPhoneAck, type PhoneAckClaims } from './phone-ack-token.ts';

/** Where Twilio posts the callee's keypress. */
export const PHONE_ACK_PATH = '/api/v1/phone/ack';
/** The "already acknowledged" markers, in the database's table of them (see below). */
export const PHONE_ACK_STAGE = 'phone-ack';

export interface PhoneAcknowledgementsDeps {
  db: Kysely<Database>;
  /** The server's link secret (the approval links' key; the token key is derived from it). */
  linkSecret: Buffer;
  /** The public base URL (`REFLEX_PUBLIC_URL`). A keypress is only asked for when it is https. */
  publicUrl: () => string;
  vault: Pick<SecretsVault, 'get'>;
  /** The tenant's configuration (`tenants.config`), read fresh. */
  tenantConfig(tenantId: string): Promise<Readonly<Record<string, unknown>>>;
  /** The playbook a run executes, by its definition hash (the engine's DefinitionCache). */
  playbook(definitionHash: string): Promise<Playbook>;
  integrations: Pick<TenantIntegrations, 'pager'>;
  logger?: Pick<Logger, 'warn'>;
  now?: () => number;
  /** How long after the call a keypress counts. Default 1 h. */
  ttlMs?: number;
}

export interface PhoneAckRequest {
  /** The `:token` of the path. */
  token: string;
  /** The path and query as this server received them (`/api/v1/phone/ack/pa1…`). */
  pathAndQuery: string;
  /** `X-Twilio-Signature`. */
  signature: string | undefined;
  /** The form body as received (names and values, duplicates kept). */
  params: [string, string][];
}

export type PhoneAckOutcome = 'acknowledged' | 'already_acknowledged' | 'not_acknowledged' | 'expired' | 'refused' | 'invalid';

export interface PhoneAckAnswer {
  status: number;
  /** Always TwiML, so whoever is on the line hears what happened. */
  twiml: string;
  outcome: PhoneAckOutcome;
  /** The PagerDuty alerts acknowledged with it (dedup keys), for `acknowledged`. */
  pagerAcknowledged?: string[];
}

/**
 * The body Twilio posts when a `<Gather>` ends (twilio.com/docs/voice/twiml/gather, "action"):
 * the call's parameters plus `Digits`. Only what we use is checked; the rest passes through,
 * because the signature covers every parameter Twilio sent, including ones added in the future.
 */
const gatherForm = z.looseObject({
  AccountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be a Twilio account sid'),
  CallSid: z.string().regex(/^CA[0-9a-fA-F]{32}$/, 'must be a Twilio call sid'),
  Digits: z.string().regex(/^[0-9*#]{0,32}$/, 'must be keypad digits').optional(),
});

class AlreadyAcknowledged extends Error {}

/**
 * "Press 1 to acknowledge" on a `phone.call`, end to end.
 *
 * The executor asks `urlFor()` for the `<Gather action>` of the call it places: a signed
 * one-time reference to tenant, run, step and callee, under the server's public https URL.
 * When the callee presses a key, Twilio posts it there and `answer()`:
 *
 * 1. verifies the token's signature (the tenant it names is trusted only after that);
 * 2. verifies `X-Twilio-Signature` over our public URL and the whole form with the tenant's
 *    `twilio.auth_token`, and that the form's `AccountSid` is the tenant's account;
 * 3. validates the form, refuses an expired token, and asks again for any key but 1;
 * 4. checks the call is the step's (its recorded sid), then claims the acknowledgement once:
 *    a marker row (`pipeline_batches`, stage `phone-ack`, key `<run>:<step>`, the database's
 *    table of "already applied" markers), the audit row and the incident's timeline entry in one
 *    transaction. A replay finds the marker and changes nothing;
 * 5. only the request that won the claim acknowledges the run's PagerDuty pages (every
 *    succeeded `pager.page` step of the run, by its dedup key and schedule), auditing each.
 *
 * Every answer is TwiML: 200 for what Twilio really sent (so the caller hears it), 403 for what
 * cannot be verified, 400 for a malformed form.
 *
 * @example
 * const acks = new PhoneAcknowledgements({ db, linkSecret, publicUrl, vault, tenantConfig, playbook, integrations });
 * const url = acks.urlFor({ tenantId: 'acme', runId, stepId: 'call_oncall', principalId }); // https://…/api/v1/phone/ack/pa1…
 */
export class PhoneAcknowledgements {
  private readonly now: () => number;
  private readonly ttlMs: number;

  constructor(private readonly deps: PhoneAcknowledgementsDeps) {
    this.now = deps.now ?? Date.now;
    this.ttlMs = deps.ttlMs ?? 3_600_000;
  }

  /** The `<Gather action>` URL for a call, or undefined when the public URL is not https (Twilio could not reach it safely). */
  urlFor(call: { tenantId: string; runId: string; stepId: string; principalId?: string }): string | undefined {
    const base = this.base();
    if (!/^https:\/\//i.test(base)) return undefined;
    const token = signPhoneAck(this.deps.linkSecret, { ...call, principalId: call.principalId ?? null, expiresAtMs: this.now() + this.ttlMs });
    return `${base}${PHONE_ACK_PATH}/${token}`;
  }

  async answer(req: PhoneAckRequest): Promise<PhoneAckAnswer> {
    const v = verifyPhoneAck({ secret: this.deps.linkSecret, token: req.token, nowMilliseconds: this.now() });
    if (!v.ok && v.reason !== 'expired') return this.refuse(undefined, `token ${v.reason}`);
    const claims = v.claims;
    const config = await this.deps.tenantConfig(claims.tenantId);
    const tw = twilioSettings.safeParse(config['twilio'] ?? {});
    const say = tw.success ? { ...(tw.data.voice ? { voice: tw.data.voice } : {}), ...(tw.data.language ? { language: tw.data.language } : {}) } : {};
    const authToken = await vaultSecretReader(this.deps.vault, claims.tenantId).get('twilio.auth_token');
    if (!authToken) return this.refuse(say, `tenant ${claims.tenantId} has no twilio.auth_token to verify the request with`);
    const url = `${this.base()}${req.pathAndQuery}`;
    if (!verifyTwilioSignature({ authToken, url, params: req.params, signature: req.signature })) return this.refuse(say, 'bad X-Twilio-Signature');

    const form = gatherForm.safeParse(Object.fromEntries(req.params));
    if (!form.success) {
      return { status: 400, outcome: 'invalid', twiml: buildAnswerTwiml('Sorry, that request was not understood. Nothing was recorded. Goodbye.', say) };
    }
    const accountSid = tw.success ? tw.data.account_sid : undefined;
    if (accountSid && form.data.AccountSid.toLowerCase() !== accountSid.toLowerCase()) return this.refuse(say, `AccountSid is not tenant ${claims.tenantId}'s`);
    if (!v.ok) {
      return { status: 200, outcome: 'expired', twiml: buildAnswerTwiml('This call can no longer be acknowledged here. Nothing was recorded. Acknowledge the page instead. Goodbye.', say) };
    }
    if (form.data.Digits !== '1') {
      return { status: 200, outcome: 'not_acknowledged', twiml: buildAnswerTwiml('Nothing was recorded.', { ...say, gatherUrl: url }) };
    }

    const run = await engineDb(this.deps.db)
      .selectFrom('playbook_runs')
      .select(['id', 'tenant_id', 'playbook_id', 'incident_id', 'definition_hash'])
      .where('id', '=', claims.runId)
      .executeTakeFirst();
    if (!run || run.tenant_id !== claims.tenantId) return this.refuse(say, `run ${claims.runId} is not tenant ${claims.tenantId}'s`);
    const call = await this.deps.db
      .selectFrom('run_steps')
      .select('output')
      .where('run_id', '=', run.id)
      .where('step_id', '=', claims.stepId)
      .where('status', '=', 'succeeded')
      .orderBy('attempt', 'desc')
      .executeTakeFirst();
    // The step records the call's sid when Twilio accepts it; a keypress from another call is not this one's.
    const sid = record(call?.output)?.['sid'];
    if (typeof sid === 'string' && sid !== form.data.CallSid) return this.refuse(say, `CallSid is not the call of step ${claims.stepId}`);

    const who = claims.principalId
      ? await this.deps.db.selectFrom('principals').select('display_name').where('id', '=', claims.principalId).executeTakeFirst()
      : undefined;
    const actor = claims.principalId ? `principal:${claims.principalId}` : 'phone:callee';
    const name = who?.display_name ?? (claims.principalId ? claims.principalId : 'The callee');
    try {
      await auditedWrite(this.deps.db, actor, async (trx, audit) => {
        const claimed = await trx
          .insertInto('pipeline_batches')
          .values({
            batch_id: `${run.id}:${claims.stepId}`,
            stage: PHONE_ACK_STAGE,
            tenant_id: claims.tenantId,
            result: JSON.stringify({ call_sid: form.data.CallSid, principal_id: claims.principalId, acknowledged_at: new Date(this.now()).toISOString() }),
          })
          .onConflict((oc) => oc.columns(['batch_id', 'stage']).doNothing())
          .returning('batch_id')
          .executeTakeFirst();
        if (!claimed) throw new AlreadyAcknowledged();
        audit({
          tenantId: claims.tenantId,
          action: 'phone.acknowledge',
          target: `run:${run.id}/step:${claims.stepId}`,
          delta: { callSid: form.data.CallSid, principalId: claims.principalId, via: 'twilio-keypress' },
        });
        if (run.incident_id) {
          await appendTimeline(trx, {
            tenantId: claims.tenantId,
            incidentId: run.incident_id,
            kind: 'phone.acknowledged',
            actor,
            text: `${name} acknowledged by phone (pressed 1 on the call of ${run.playbook_id} › ${claims.stepId})`.slice(0, 4000),
            data: { runId: run.id, stepId: claims.stepId, callSid: form.data.CallSid, principalId: claims.principalId },
          });
        }
      });
    } catch (err) {
      if (err instanceof AlreadyAcknowledged) {
        return { status: 200, outcome: 'already_acknowledged', twiml: buildAnswerTwiml('This call was already acknowledged. Nothing else was recorded. Goodbye.', say) };
      }
      throw err;
    }

    const pagerAcknowledged = await this.acknowledgePages(claims, run, actor);
    return { status: 200, outcome: 'acknowledged', twiml: buildAnswerTwiml('Acknowledged. Goodbye.', say), pagerAcknowledged };
  }

  /** Acknowledges the run's PagerDuty pages; a failure is audited and logged, never thrown at the caller on the line. */
  private async acknowledgePages(
    claims: PhoneAckClaims,
    run: { id: string; playbook_id: string; incident_id: string | null; definition_hash: string | null },
    actor: string,
  ): Promise<string[]> {
    const pages = await this.pagesOf(run);
    const done: string[] = [];
    for (const page of pages) {
      let outcome: { ok: true } | { ok: false; code: string };
      try {
        const src = { tenantId: claims.tenantId, config: await this.deps.tenantConfig(claims.tenantId), secrets: vaultSecretReader(this.deps.vault, claims.tenantId) };
        const pager = await this.deps.integrations.pager(src, page.schedule);
        await pager.acknowledge(page.dedupKey, { idempotencyKey: `phone-ack:${run.id}:${claims.stepId}`, ...(page.schedule ? { schedule: page.schedule } : {}) });
        outcome = { ok: true };
        done.push(page.dedupKey);
      } catch (err) {
        const e = toReflexError(err);
        this.deps.logger?.warn({ err: e, runId: run.id, dedupKey: page.dedupKey }, 'phone ack: PagerDuty acknowledge failed');
        outcome = { ok: false, code: e.code };
      }
      await auditedWrite(this.deps.db, actor, async (trx, audit) => {
        audit({
          tenantId: claims.tenantId,
          action: 'pager.acknowledge',
          target: `pagerduty:${page.dedupKey}`,
          delta: { runId: run.id, pageStep: page.stepId, via: 'phone', ...(outcome.ok ? { acknowledged: true } : { acknowledged: false, error: outcome.code }) },
        });
        if (run.incident_id) {
          await appendTimeline(trx, {
            tenantId: claims.tenantId,
            incidentId: run.incident_id,
            kind: outcome.ok ? 'pager.acknowledged' : 'pager.acknowledge_failed',
            actor,
            text: outcome.ok
              ? `PagerDuty alert ${page.dedupKey} acknowledged (phone keypress)`
              : `PagerDuty alert ${page.dedupKey} could not be acknowledged (${outcome.code}); acknowledge it in PagerDuty`,
            data: { runId: run.id, stepId: page.stepId, dedupKey: page.dedupKey },
          });
        }
      });
    }
    return done;
  }

  /** The PagerDuty pages the run opened: succeeded `pager.page` steps whose output has a dedup key. */
  private async pagesOf(run: { id: string; definition_hash: string | null }): Promise<{ stepId: string; dedupKey: string; schedule?: string }[]> {
    if (!run.definition_hash) return [];
    const playbook = await this.deps.playbook(run.definition_hash);
    const pageSteps = actionSteps(playbook.steps, 'pager.page');
    if (pageSteps.length === 0) return [];
    const rows = await this.deps.db
      .selectFrom('run_steps')
      .select(['step_id', 'output'])
      .where('run_id', '=', run.id)
      .where('step_id', 'in', pageSteps)
      .where('status', '=', 'succeeded')
      .execute();
    const pages = new Map<string, { stepId: string; dedupKey: string; schedule?: string }>();
    for (const row of rows) {
      const out = record(row.output);
      if (out?.['vendor'] !== 'pagerduty' || typeof out['dedupKey'] !== 'string' || out['dedupKey'] === '') continue;
      const schedule = typeof out['schedule'] === 'string' && out['schedule'] !== '' ? out['schedule'] : undefined;
      pages.set(`${schedule ?? ''}\u0000${out['dedupKey']}`, { stepId: row.step_id, dedupKey: out['dedupKey'], ...(schedule ? { schedule } : {}) });
    }
    return [...pages.values()];
  }

  private refuse(say: { voice?: string; language?: string } | undefined, why: string): PhoneAckAnswer {
    this.deps.logger?.warn({ why }, 'phone ack refused');
    return { status: 403, outcome: 'refused', twiml: buildAnswerTwiml('This request could not be verified. Nothing was recorded. Goodbye.', say ?? {}) };
  }

  private base(): string {
    return this.deps.publicUrl().replace(/\/+$/, '');
  }
}

function actionSteps(steps: readonly Step[], action: string): string[] {
  const out: string[] = [];
  for (const step of steps) {
    if (step.kind === 'action' && step.action === action) out.push(step.id);
    else if (step.kind === 'condition') out.push(...actionSteps(step.then, action), ...actionSteps(step.else, action));
    else if (step.kind === 'parallel') for (const b of step.branches) out.push(...actionSteps(b.steps, action));
  }
  return out;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
