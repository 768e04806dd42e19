import { ReflexError } from '../../errors.ts';
import { pagerSeverityFor, type PagerSeverity } from '../../integrations/containment-ports.ts';
import type { ActionName } from '../action-catalogue.ts';
import { optionalObject, optionalString, requiredString, stringList } from './action-inputs.ts';
import { sourceOf } from './containment-actions.ts';
import type { ActionExecutor } from './registry.ts';
import { contactPhoneSecret, type TenantIntegrations } from './tenant-integrations.ts';

export interface MessagingExecutorDeps {
  integrations: TenantIntegrations;
  /** The principal at position 0 (primary) of a tenant's on-call schedule (OnCallDirectory.onCall). */
  onCall(tenantId: string, schedule: string): Promise<string | undefined>;
  /**
   * The signed URL a call's "press 1 to acknowledge" posts to (PhoneAcknowledgements.urlFor), or
   * undefined when this server cannot take it (no https public URL): the call then asks nothing.
   */
  acknowledgeUrl?(call: { tenantId: string; runId: string; stepId: string; principalId?: string }): string | undefined;
}

const SEVERITIES: readonly PagerSeverity[] = ['critical', 'error', 'warning', 'info'];

/**
 * `pager.page`, `phone.call` and `mail.send` over the tenant's pager (PagerDuty), phone (Twilio)
 * and the deployment's mailer (SMTP), as docs/INTEGRATIONS.md maps them.
 *
 * - `pager.page`: severity defaults to the event's (1 → critical … 4 → info; `critical` for a run
 *   without an event), the source to the event's host; the dedup key is the step's idempotency
 *   key unless the step sets `dedup_key`, so a retried step folds into the same PagerDuty alert.
 * - `phone.call`: calls `to`, or the primary on-call of `schedule` at the number stored for that
 *   person in the vault (`contact.phone.<principal id>`: personal data, encrypted, masked in logs).
 *   With an https public URL the call ends in "press 1 to acknowledge", posted to a signed URL
 *   bound to tenant, run, step and callee (src/engine/phone-ack/).
 * - `mail.send`: through SMTP with a Message-ID derived from the key.
 *
 * @example
 * for (const [name, run] of Object.entries(createMessagingExecutors({ integrations, onCall }))) registry.register(name, run);
 */
export function createMessagingExecutors(deps: MessagingExecutorDeps): Partial<Record<ActionName, ActionExecutor>> {
  const { integrations } = deps;
  return {
    'pager.page': async (input, ctx) => {
      const summary = requiredString(input, 'pager.page', 'summary');
      const schedule = optionalString(input, 'pager.page', 'schedule');
      const given = optionalString(input, 'pager.page', 'severity');
      if (given !== undefined && !SEVERITIES.includes(given as PagerSeverity)) {
        throw new ReflexError('input.invalid', `pager.page: severity must be one of ${SEVERITIES.join(', ')}, got ${JSON.stringify(given.slice(0, 40))}`, {
          retryable: false,
          safeMessage: `pager.page: severity must be one of ${SEVERITIES.join(', ')}.`,
          details: { field: 'severity' },
        });
      }
      const event = record(ctx.expressionContext.event);
      const severity = (given as PagerSeverity | undefined) ?? severityOf(event?.['severity']);
      const dedupKey = optionalString(input, 'pager.page', 'dedup_key');
      const details = optionalObject(input, 'pager.page', 'details');
      const host = record(event?.['host'])?.['name'];
      const pager = await integrations.pager(sourceOf(ctx), schedule);
      const r = await pager.page(
        {
          summary,
          severity,
          ...(schedule ? { schedule } : {}),
          ...(dedupKey ? { dedupKey } : {}),
          ...(details ? { details } : {}),
          ...(typeof host === 'string' && host.trim() !== '' ? { source: host } : {}),
        },
        { idempotencyKey: ctx.idempotencyKey },
      );
      ctx.log(`${pager.name}: paged ${schedule ?? 'the default schedule'} (${severity}), dedup key ${r.dedupKey}`);
      return { vendor: r.vendor, dedupKey: r.dedupKey, schedule: schedule ?? null, severity, raw: r.raw ?? null };
    },

    'phone.call': async (input, ctx) => {
      const message = requiredString(input, 'phone.call', 'message');
      const given = optionalString(input, 'phone.call', 'to');
      const schedule = optionalString(input, 'phone.call', 'schedule');
      let to = given;
      let callee: string | undefined;
      if (to === undefined) {
        if (schedule === undefined) {
          throw new ReflexError('input.invalid', 'phone.call needs `to` or `schedule`', { retryable: false, safeMessage: 'phone.call needs a number (to) or an on-call schedule.', details: { field: 'to' } });
        }
        callee = await deps.onCall(ctx.tenantId, schedule);
        if (!callee) {
          throw new ReflexError('config.invalid', `phone.call: schedule ${schedule} of tenant ${ctx.tenantId} has nobody on call`, {
            retryable: false,
            safeMessage: `Nobody is on call for ${schedule} (reflex playbook oncall ${ctx.tenantId} ${schedule} <principal>…), so there is no one to call.`,
            details: { schedule },
          });
        }
        to = await ctx.secrets.get(contactPhoneSecret(callee));
        if (to === undefined) {
          throw new ReflexError('config.invalid', `phone.call: the on-call ${callee} of ${schedule} has no phone number (secret ${contactPhoneSecret(callee)})`, {
            retryable: false,
            safeMessage: `The on-call of ${schedule} has no phone number on record (reflex secrets set ${contactPhoneSecret(callee)} --tenant ${ctx.tenantId}).`,
            details: { secret: contactPhoneSecret(callee) },
          });
        }
      }
      const phone = await integrations.twilio(sourceOf(ctx));
      const acknowledgeUrl = deps.acknowledgeUrl?.({ tenantId: ctx.tenantId, runId: ctx.runId, stepId: ctx.stepId, ...(callee ? { principalId: callee } : {}) });
      const r = await phone.call(to, message, { idempotencyKey: ctx.idempotencyKey, ...(acknowledgeUrl ? { acknowledgeUrl } : {}) });
      ctx.log(
        `${phone.name}: ${r.reused ? 'already called' : 'calling'} ${callee ? `the on-call of ${schedule}` : 'the given number'} (${r.sid}, ${r.status})` +
          (acknowledgeUrl ? ', asking to press 1 to acknowledge' : ''),
      );
      // The URL itself is a credential for the keypress: it goes to Twilio only, not into the output.
      return { vendor: r.vendor, sid: r.sid, status: r.status, reused: r.reused, to, acknowledgement: acknowledgeUrl ? 'requested' : 'off', ...(callee ? { principalId: callee, schedule } : {}) };
    },

    'mail.send': async (input, ctx) => {
      const to = stringList(input, 'mail.send', 'to', true) ?? [];
      const subject = requiredString(input, 'mail.send', 'subject');
      const body = input['body'];
      if (typeof body !== 'string' || body.trim() === '') {
        throw new ReflexError('input.invalid', 'mail.send: with.body must be a non-empty string', { retryable: false, safeMessage: 'mail.send needs a body.', details: { field: 'body' } });
      }
      const mailer = integrations.mailer();
      const r = await mailer.send({ to, subject, text: body }, { idempotencyKey: ctx.idempotencyKey });
      ctx.log(`${mailer.name}: ${r.reused ? 'already sent' : r.status} ${r.sid} to ${to.length} recipient(s)`);
      return { vendor: r.vendor, messageId: r.sid, status: r.status, reused: r.reused, to };
    },
  };
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function severityOf(v: unknown): PagerSeverity {
  return v === 1 || v === 2 || v === 3 || v === 4 ? pagerSeverityFor(v) : 'critical';
}
