import { ReflexError } from '../../errors.ts';
import type { MailboxDeleteResult, MailDeleteMode, MailDeleteReceipt } from '../../integrations/containment-ports.ts';
import type { ActionName } from '../action-catalogue.ts';
import { optionalString, requiredString } from './action-inputs.ts';
import { sourceOf } from './containment-actions.ts';
import type { ActionContext, ActionExecutor } from './registry.ts';
import type { TenantIntegrations } from './tenant-integrations.ts';

const MODES: readonly MailDeleteMode[] = ['soft', 'hard'];
/** Lines of per-mailbox detail a step log gets (the engine keeps 200 lines per step). */
const LOGGED_MAILBOXES = 150;

/**
 * `mail.get_message` and `mail.delete_message` over the tenant's `MailboxAdmin`
 * (`mailbox.provider`; docs/INTEGRATIONS.md).
 *
 * - `mail.get_message {message_id, mailbox}` → `{ source, mailbox, message_id, vendor, bytes }`:
 *   the RFC 822 source for a parsing step (phishing-triage's parse-mail-headers.py).
 * - `mail.delete_message {message_id, mailboxes: "all" | [addresses], mode: soft | hard}` →
 *   `{ vendor, message_id, mode, scope, mailboxes: [{mailbox, found, deleted}], totals }`, one log
 *   line per mailbox that held the message or failed. A mailbox that fails fails the step after
 *   the others are done: retryably while any failure is transient (429 beyond the in-place
 *   waits, 5xx, timeout), so the retry (which finds nothing in the mailboxes already cleaned)
 *   finishes the job; otherwise not. The error and the log say which mailboxes and why.
 *
 * @example
 * for (const [name, run] of Object.entries(createMailboxExecutors(integrations))) registry.register(name, run);
 */
export function createMailboxExecutors(integrations: TenantIntegrations): Partial<Record<ActionName, ActionExecutor>> {
  return {
    'mail.get_message': async (input, ctx) => {
      const messageId = requiredString(input, 'mail.get_message', 'message_id');
      const mailbox = requiredString(input, 'mail.get_message', 'mailbox');
      const admin = await integrations.mailbox(sourceOf(ctx));
      const m = await admin.getMessage(mailbox, messageId);
      const bytes = Buffer.byteLength(m.source, 'utf8');
      ctx.log(`${admin.name}: read ${m.messageId} from ${m.mailbox} (${bytes} bytes)`);
      return { source: m.source, mailbox: m.mailbox, message_id: m.messageId, vendor: m.vendor, bytes };
    },

    'mail.delete_message': async (input, ctx) => {
      const messageId = requiredString(input, 'mail.delete_message', 'message_id');
      const mailboxes = mailboxSelection(input['mailboxes']);
      const mode = (optionalString(input, 'mail.delete_message', 'mode') ?? 'soft').toLowerCase();
      if (!MODES.includes(mode as MailDeleteMode)) {
        throw new ReflexError('input.invalid', `mail.delete_message: with.mode must be soft or hard, got ${JSON.stringify(mode.slice(0, 20))}`, {
          retryable: false,
          safeMessage: 'mail.delete_message: mode must be soft (recoverable) or hard.',
          details: { field: 'mode' },
        });
      }
      const admin = await integrations.mailbox(sourceOf(ctx));
      const r = await admin.deleteMessage(messageId, mailboxes, { idempotencyKey: ctx.idempotencyKey, mode: mode as MailDeleteMode, signal: ctx.signal });
      logReceipt(admin.name, r, ctx);
      const failed = r.mailboxes.filter((m) => m.error);
      if (failed.length > 0) throw deleteFailure(r, failed);
      return { vendor: r.vendor, message_id: r.messageId, mode: r.mode, scope: r.scope, mailboxes: r.mailboxes, totals: r.totals };
    },
  };
}

/** `mailboxes:` is "all" (also the default), one address, or a list of addresses. */
function mailboxSelection(v: unknown): 'all' | string[] {
  if (v === undefined || v === null || (typeof v === 'string' && v.trim().toLowerCase() === 'all')) return 'all';
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'string' && x.trim() !== '') || list.length === 0) {
    throw new ReflexError('input.invalid', 'mail.delete_message: with.mailboxes must be "all" or a non-empty list of addresses', {
      retryable: false,
      safeMessage: 'mail.delete_message: mailboxes must be "all" or a list of addresses.',
      details: { field: 'mailboxes' },
    });
  }
  const names = (list as string[]).map((s) => s.trim());
  if (names.some((s) => s.toLowerCase() === 'all')) {
    throw new ReflexError('input.invalid', 'mail.delete_message: "all" cannot be combined with addresses', {
      retryable: false,
      safeMessage: 'mail.delete_message: use either "all" or a list of addresses.',
      details: { field: 'mailboxes' },
    });
  }
  return names;
}

function logReceipt(vendor: string, r: MailDeleteReceipt, ctx: ActionContext): void {
  const shown = r.mailboxes.slice(0, LOGGED_MAILBOXES);
  for (const m of shown) ctx.log(`${m.mailbox}: found ${m.found}, deleted ${m.deleted}${m.error ? `; FAILED (${m.error.code}${m.error.retryable ? ', will retry' : ''}): ${m.error.message}` : ''}`);
  if (r.mailboxes.length > shown.length) ctx.log(`… and ${r.mailboxes.length - shown.length} more mailbox(es) in the step output`);
  const t = r.totals;
  ctx.log(
    `${vendor}: ${r.mode} delete of ${r.messageId} from ${r.scope === 'all' ? 'all mailboxes' : `${t.searched} named mailbox(es)`}: ` +
      `searched ${t.searched}, found ${t.found}, deleted ${t.deleted}, failed ${t.failed}${t.withoutMailbox ? `, ${t.withoutMailbox} user(s) without a reachable mailbox` : ''}`,
  );
}

function deleteFailure(r: MailDeleteReceipt, failed: MailboxDeleteResult[]): ReflexError {
  const transient = failed.filter((m) => m.error?.retryable);
  const names = failed.slice(0, 5).map((m) => `${m.mailbox} (${m.error?.code})`).join(', ') + (failed.length > 5 ? `, … ${failed.length - 5} more` : '');
  const message = `mail.delete_message: ${failed.length} of ${r.totals.searched} mailbox(es) failed: ${names}; deleted ${r.totals.deleted} of ${r.totals.found} copies found`;
  const details = { totals: r.totals, failed: failed.slice(0, 50).map((m) => ({ mailbox: m.mailbox, code: m.error?.code, retryable: m.error?.retryable })) };
  if (transient.length > 0) {
    const waits = transient.map((m) => m.error?.retryAfterMs).filter((n): n is number => n !== undefined);
    const rateLimited = transient.every((m) => m.error?.code === 'upstream.rate_limited');
    return new ReflexError(rateLimited ? 'upstream.rate_limited' : 'upstream.unavailable', message, {
      retryable: true,
      ...(waits.length ? { retryAfterMs: Math.max(...waits) } : {}),
      details,
      safeMessage: `The message could not be deleted from ${failed.length} mailbox(es) yet; retrying.`,
    });
  }
  const allMissing = failed.every((m) => m.error?.code === 'not_found');
  return new ReflexError(allMissing ? 'not_found' : 'upstream.rejected', message, {
    retryable: false,
    details,
    safeMessage: `The message could not be deleted from ${failed.length} mailbox(es): ${names}.`,
  });
}
