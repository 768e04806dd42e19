/**
 * What approvals need from the outside world. The engine works without any of them (a gate is
 * then only recorded and retrievable over the API); vendor features plug them in.
 */

/**
 * Pages a person (PagerDuty, Twilio). Escalation of an expiring gate pages the next on-call
 * through it.
 *
 * @example
 * await pager.page({ tenantId: 'acme', schedule: 'secops-primary', level: 1, summary: 'Approve isolating web-01', dedupKey: 'approval-…-1' });
 */
export interface Pager {
  page(input: {
    tenantId: string;
    schedule: string;
    /** 0 = primary; an escalation pages level 1, then 2, … */
    level: number;
    /** The principal on call at that level, when SENTreflex knows who it is. */
    principalId?: string;
    summary: string;
    /** The same for a repeated page of one escalation, so the pager deduplicates it. */
    dedupKey: string;
    url?: string;
  }): Promise<{ ref: string }>;
}

/**
 * Delivers a signed one-time approval link by SMS or e-mail. Answers how it went out, or
 * undefined when it had no way to reach that person (no phone or address on record, nothing
 * configured). `linkId` names the link (one `approval_links` row): a sender derives its
 * idempotency key from it, so one link is never delivered twice and a new link always is.
 *
 * @example
 * await sender.send({ principalId, email: 'oncall@acme.example', displayName: 'Ana' }, { tenantId: 'acme', approvalId, linkId, url, summary, expiresAt });
 */
export interface ApprovalLinkSender {
  send(
    to: { principalId: string; displayName: string; email: string | null },
    link: { tenantId: string; approvalId: string; linkId: string; url: string; summary: string; expiresAt: Date },
  ): Promise<{ via: 'sms' | 'email' } | undefined>;
}
