import type { Logger } from 'pino';
import { ReflexError, toReflexError } from '../errors.ts';
import { contactPhoneSecret, vaultSecretReader, type TenantIntegrations, type TenantSource } from '../engine/actions/tenant-integrations.ts';
import { SMS_MAX } from '../integrations/twilio/twilio-client.ts';
import type { SecretsVault } from '../store/secrets-vault.ts';
import type { ApprovalLinkSender, Pager } from './approval-ports.ts';

export interface VendorApprovalPortsDeps {
  integrations: TenantIntegrations;
  vault: Pick<SecretsVault, 'get'>;
  /** The tenant's configuration (`tenants.config`), read fresh (the engine's TenantInfoCache). */
  tenantConfig(tenantId: string): Promise<Readonly<Record<string, unknown>>>;
  logger?: Pick<Logger, 'warn'>;
}

async function sourceFor(deps: VendorApprovalPortsDeps, tenantId: string): Promise<TenantSource> {
  return { tenantId, config: await deps.tenantConfig(tenantId), secrets: vaultSecretReader(deps.vault, tenantId) };
}

/**
 * The approvals' `Pager` over the tenant's PagerDuty: an expiring gate with `on_expiry: escalate`
 * pages the next on-call of its schedule, and a `notify: { channel: "oncall:<schedule>" }` step
 * pages the schedule. The routing key is the schedule's (`pagerduty.routing_key.<schedule>`);
 * the dedup key is the escalation's (`approval-<id>-<level>`) or the step's idempotency key, so a
 * repeated escalation or a retried step folds into the same PagerDuty alert.
 *
 * @example
 * ENGINE_PORTS.pager = new VendorEscalationPager({ integrations, vault, tenantConfig: (t) => engine.tenants.get(t) });
 */
export class VendorEscalationPager implements Pager {
  constructor(private readonly deps: VendorApprovalPortsDeps) {}

  async page(input: Parameters<Pager['page']>[0]): Promise<{ ref: string }> {
    const pager = await this.deps.integrations.pager(await sourceFor(this.deps, input.tenantId), input.schedule);
    const r = await pager.page(
      {
        summary: input.summary,
        severity: 'critical',
        schedule: input.schedule,
        dedupKey: input.dedupKey,
        details: {
          tenant: input.tenantId,
          schedule: input.schedule,
          escalation_level: input.level,
          ...(input.principalId ? { principal_id: input.principalId } : {}),
        },
        ...(input.url ? { links: [{ href: input.url, text: 'Open in SENTreflex' }] } : {}),
      },
      { idempotencyKey: input.dedupKey },
    );
    return { ref: r.dedupKey };
  }
}

/**
 * Sends a signed one-time approval link to one approver, by what SENTreflex knows of them:
 *
 * 1. **SMS** through the tenant's Twilio when a phone number is on record for the person (vault
 *    secret `contact.phone.<principal id>`, tenant or platform-wide): the on-call's phone is what
 *    wakes them at night.
 * 2. **E-mail** through the server's SMTP to the principal's address, when SMS is not possible or
 *    failed.
 *
 * Neither possible: nothing is sent (undefined); the chat card and the API still work. The text
 * carries the summary and the link only; the link is never shortened (a cut link is worse than
 * none), the summary is. The idempotency key is the link's id, so one link goes out once.
 *
 * @example
 * ENGINE_PORTS.linkSender = new VendorApprovalLinkSender({ integrations, vault, tenantConfig });
 */
export class VendorApprovalLinkSender implements ApprovalLinkSender {
  constructor(private readonly deps: VendorApprovalPortsDeps) {}

  async send(
    to: Parameters<ApprovalLinkSender['send']>[0],
    link: Parameters<ApprovalLinkSender['send']>[1],
  ): Promise<{ via: 'sms' | 'email' } | undefined> {
    const src = await sourceFor(this.deps, link.tenantId);
    const phone = await src.secrets.get(contactPhoneSecret(to.principalId));
    let smsFailure: ReflexError | undefined;
    if (phone !== undefined) {
      try {
        const twilio = await this.deps.integrations.twilio(src);
        await twilio.sendSms(phone, smsText(link), { idempotencyKey: `approval-link-${link.linkId}-sms` });
        return { via: 'sms' };
      } catch (err) {
        smsFailure = toReflexError(err);
        // The safe message only: an adapter's internal message may quote the phone number.
        this.deps.logger?.warn({ code: smsFailure.code, approvalId: link.approvalId, principalId: to.principalId }, `approval link by SMS failed: ${smsFailure.safeMessage}`);
      }
    }
    const mailer = to.email ? this.deps.integrations.optionalMailer() : undefined;
    if (to.email && mailer) {
      await mailer.send(
        { to: to.email, subject: mailSubject(link.summary), text: mailText(to.displayName, link) },
        { idempotencyKey: `approval-link-${link.linkId}-mail` },
      );
      return { via: 'email' };
    }
    if (smsFailure) {
      throw new ReflexError(smsFailure.code, `approval link by SMS failed: ${smsFailure.safeMessage}`, {
        retryable: smsFailure.retryable,
        safeMessage: smsFailure.safeMessage,
      });
    }
    return undefined;
  }
}

/** Text from playbooks and events on one line, without control characters. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
}

function until(expiresAt: Date): string {
  return `${expiresAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function smsText(link: { url: string; summary: string; expiresAt: Date; tenantId: string }): string {
  const head = `SENTreflex (${link.tenantId}) approval needed: `;
  const tail = ` Decide by ${until(link.expiresAt)}, one use: ${link.url}`;
  const room = SMS_MAX - head.length - tail.length;
  const summary = oneLine(link.summary);
  const cut = room <= 1 ? '' : summary.length > room ? `${summary.slice(0, room - 1)}…` : summary;
  return `${head}${cut}${tail}`;
}

export function mailSubject(summary: string): string {
  const s = oneLine(summary);
  return `[SENTreflex] Approval needed: ${s.length > 120 ? `${s.slice(0, 119)}…` : s}`;
}

function mailText(displayName: string, link: { url: string; summary: string; expiresAt: Date; tenantId: string }): string {
  return [
    `Hello ${oneLine(displayName)},`,
    '',
    `SENTreflex asks for your decision (tenant ${link.tenantId}):`,
    '',
    link.summary.trim(),
    '',
    `Approve or deny here until ${until(link.expiresAt)}. The link works once and only for you:`,
    link.url,
    '',
    'If you did not expect this message, do not open the link; tell your security team.',
  ].join('\n');
}
