import type { ChatMessage } from '../bot/chat-types.ts';
import type { Mailer, MessageReceipt, MutationOptions } from '../integrations/containment-ports.ts';
import { isMessageId, type ThreadedMailMessage } from '../integrations/smtp/mail-message.ts';
import type { Notifier } from './notifiers.ts';
import type { TenantPipelineConfig } from './tenant-config.ts';

/** A `Mailer` that can continue a thread (`SmtpMailer` is one). */
export interface ThreadingMailer extends Mailer {
  send(message: ThreadedMailMessage, opts: MutationOptions): Promise<MessageReceipt>;
}

/**
 * What the notify stage stores for an e-mail thread and hands back on a repeat: the first
 * message's Message-ID, and its subject, because Gmail starts a new conversation when a reply's
 * subject differs from the original's (References alone is not enough there).
 */
export interface EmailThreadRef {
  messageId: string;
  subject: string;
}

const SUBJECT_PREFIX = '[SENTreflex]';
/** Long enough for a severity and a rule description; mail clients cut the rest anyway. */
const SUBJECT_TEXT_MAX = 200;

/**
 * Alert notifications by e-mail to the tenant's `notify.email_to`, through the server's SMTP
 * mailer (registered only when SMTP_URL is set).
 *
 * The first message of an alert gets the Message-ID of its idempotency key
 * (`<alert-…-first@sentreflex>`); each "Nth occurrence" is a reply to it (`In-Reply-To` and
 * `References` set to that id, subject `Re: …`), so mail clients show one conversation per
 * alert. The ChatMessage is rendered as plain text and as minimal HTML in which every piece of
 * alert text is escaped: rule descriptions, hostnames and user names come from the monitored
 * systems, i.e. possibly from the attacker.
 *
 * @example
 * ctx.seams.notifiers.push(new EmailNotifier(new SmtpMailer({ ...config.smtp, from: config.smtp.from })));
 */
export class EmailNotifier implements Notifier {
  readonly name = 'email';
  private readonly mailer: ThreadingMailer;

  constructor(mailer: ThreadingMailer) {
    this.mailer = mailer;
  }

  enabledFor(_tenantId: string, config: TenantPipelineConfig): boolean {
    return (config.notify.email_to?.length ?? 0) > 0;
  }

  async send(input: { tenantId: string; config: TenantPipelineConfig; message: ChatMessage; thread?: unknown; idempotencyKey: string }): Promise<{ ref: unknown }> {
    const thread = readThread(input.thread);
    const subject = thread ? `Re: ${thread.subject}` : subjectFor(input.message);
    const receipt = await this.mailer.send(
      {
        to: input.config.notify.email_to ?? [],
        subject,
        text: renderText(input.message),
        html: renderHtml(input.message),
        ...(thread?.messageId ? { inReplyTo: thread.messageId } : {}),
      },
      { idempotencyKey: input.idempotencyKey },
    );
    // A repeat keeps pointing at the first message, so every later reply threads under it.
    const ref: EmailThreadRef = thread?.messageId ? { messageId: thread.messageId, subject: thread.subject } : { messageId: receipt.sid, subject };
    return { ref };
  }
}

/** The stored thread: an `EmailThreadRef`, or a bare Message-ID string. Anything else starts a new thread. */
function readThread(thread: unknown): { messageId: string | undefined; subject: string } | undefined {
  if (thread === undefined || thread === null) return undefined;
  if (isMessageId(thread)) return { messageId: thread, subject: `${SUBJECT_PREFIX} alert update` };
  if (typeof thread === 'object') {
    const t = thread as Partial<EmailThreadRef>;
    if (isMessageId(t.messageId) && typeof t.subject === 'string') return { messageId: t.messageId, subject: oneLine(t.subject, SUBJECT_TEXT_MAX + SUBJECT_PREFIX.length + 1) };
  }
  return undefined;
}

/**
 * `[SENTreflex] <title or first line>`, on one line. Alert titles come from the source (a Wazuh
 * rule description, a generic hook's payload); line breaks and control characters are folded to
 * spaces here so that such a title is delivered, while the mailer still refuses a raw CR/LF.
 */
export function subjectFor(message: ChatMessage): string {
  const base = message.title?.trim() || message.text.split('\n').find((l) => l.trim() !== '') || 'notification';
  return `${SUBJECT_PREFIX} ${oneLine(base, SUBJECT_TEXT_MAX)}`;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/[\s\x00-\x1f\x7f\u0085]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1).trimEnd()}…` : flat;
}

export function renderText(message: ChatMessage): string {
  const parts: string[] = [];
  if (message.title) parts.push(message.title);
  parts.push(message.text);
  if (message.fields?.length) parts.push(message.fields.map((f) => `${f.label}: ${f.value}`).join('\n'));
  if (message.context?.length) parts.push(message.context.join(' · '));
  parts.push('-- \nSENTreflex');
  return `${parts.join('\n\n')}\n`;
}

export function renderHtml(message: ChatMessage): string {
  const rows = (message.fields ?? [])
    .map((f) => `<tr><th align="left" style="padding:2px 12px 2px 0">${escapeHtml(f.label)}</th><td style="padding:2px 0">${escapeHtml(f.value)}</td></tr>`)
    .join('');
  return [
    '<!doctype html><html><body style="font-family:sans-serif;font-size:14px">',
    message.title ? `<h2 style="font-size:16px;margin:0 0 8px">${escapeHtml(message.title)}</h2>` : '',
    `<p style="white-space:pre-wrap;margin:0 0 8px">${escapeHtml(message.text)}</p>`,
    rows ? `<table style="border-collapse:collapse;margin:0 0 8px">${rows}</table>` : '',
    message.context?.length ? `<p style="color:#666;font-size:12px;margin:0">${message.context.map(escapeHtml).join(' &middot; ')}</p>` : '',
    '</body></html>',
  ].join('');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
