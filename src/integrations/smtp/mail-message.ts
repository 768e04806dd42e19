import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import type { MailMessage } from '../containment-ports.ts';

/**
 * A `MailMessage` that may continue a thread. Mail clients group a reply with the message whose
 * Message-ID it names in `In-Reply-To` and `References` (RFC 5322 §3.6.4); Gmail also wants the
 * same subject, which is why the e-mail notifier keeps it.
 *
 * @example
 * await mailer.send({ to: 'soc@acme.example', subject: 'Re: SEV2 high: sshd brute force', text: '2nd occurrence …', inReplyTo: '<alert-1-first@sentreflex>' }, { idempotencyKey: 'alert-1-repeat-2' });
 */
export interface ThreadedMailMessage extends MailMessage {
  /** The Message-ID (with angle brackets) this message answers; also sent as `References`. */
  inReplyTo?: string;
}

/** More recipients than this in one message is a configuration mistake, not a notification. */
export const MAX_RECIPIENTS = 50;
/** RFC 5322 §2.1.1 caps a header line at 998 characters; a subject well under it stays readable. */
export const SUBJECT_MAX = 400;
/** Per body part; an alert notification is a few kilobytes. */
export const BODY_MAX = 1_000_000;

/** The right-hand side of every Message-ID SENTreflex sets. */
export const MESSAGE_ID_DOMAIN = 'sentreflex';

const NO_CRLF = /^[^\r\n]*$/;
const CONTROL = /^[^\x00-\x08\x0b-\x1f\x7f]*$/;
// A msg-id as this module writes it: `<left@right>` with no whitespace, brackets or control characters.
const MESSAGE_ID = /^<[^<>\s@]+@[^<>\s@]+>$/;

// z.email() already refuses CR/LF, but the explicit rule is what says why in the error.
const address = z
  .string()
  .regex(NO_CRLF, 'must not contain CR or LF (header injection)')
  .pipe(z.email('must be a plain e-mail address (name@example.org)'));

const mailMessageSchema = z.object({
  to: z.preprocess(
    (v) => (typeof v === 'string' ? [v] : v),
    z.array(address).min(1, 'needs at least one recipient').max(MAX_RECIPIENTS, `may name at most ${MAX_RECIPIENTS} recipients`),
  ),
  subject: z
    .string()
    .min(1, 'must not be empty')
    .max(SUBJECT_MAX, `must be at most ${SUBJECT_MAX} characters`)
    .regex(NO_CRLF, 'must not contain CR or LF (header injection)')
    .regex(CONTROL, 'must not contain control characters'),
  text: z.string().max(BODY_MAX, `must be at most ${BODY_MAX} characters`),
  html: z.string().max(BODY_MAX, `must be at most ${BODY_MAX} characters`).optional(),
  inReplyTo: z.string().regex(MESSAGE_ID, 'must be a Message-ID such as <id@host>').optional(),
});

export interface ValidMailMessage {
  to: string[];
  subject: string;
  text: string;
  html: string | undefined;
  inReplyTo: string | undefined;
}

/**
 * Validates a message at the port, before any connection. nodemailer encodes or strips CR/LF in
 * most headers itself, but a subject or address that carries a line break is refused here
 * rather than repaired: it is either a bug or an attempt to add headers (`Bcc:`), and sending a
 * "cleaned" version would hide both. Callers that build subjects from alert text (the e-mail
 * notifier) flatten whitespace first.
 *
 * @example
 * parseMailMessage({ to: 'soc@acme.example', subject: 'x\r\nBcc: a@evil.example', text: '' }); // throws input.invalid
 */
export function parseMailMessage(message: ThreadedMailMessage): ValidMailMessage {
  const r = mailMessageSchema.safeParse(message);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.filter((p) => typeof p === 'string').join('.') || 'message';
    throw new ReflexError('input.invalid', `SMTP: ${field}: ${issue.message}`, {
      safeMessage: `The e-mail was refused before sending: ${field} ${issue.message}.`,
      details: { field },
    });
  }
  const m = r.data;
  return { to: m.to, subject: m.subject, text: m.text, html: m.html, inReplyTo: m.inReplyTo };
}

/**
 * The Message-ID for an idempotency key: `<key@sentreflex>`, so every attempt of one step sends
 * the same id and a duplicate delivered by a retry is recognisable downstream (and dropped by
 * clients that de-duplicate on it). Characters a msg-id may not hold (`:` of `<runId>:<stepId>`,
 * `@`, spaces …) are percent-encoded, `%` included, so the mapping stays one-to-one.
 *
 * @example
 * messageIdFor('run_42:mail')          // '<run_42%3Amail@sentreflex>'
 * messageIdFor('alert-9f1c-first')     // '<alert-9f1c-first@sentreflex>'
 */
export function messageIdFor(idempotencyKey: string): string {
  // RFC 5322 atext, without '%' (the escape) and '.' (dot-atom forbids leading, trailing and double dots).
  const left = Array.from(new TextEncoder().encode(idempotencyKey), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9!#$&'*+\-/=?^_`{|}~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
  return `<${left}@${MESSAGE_ID_DOMAIN}>`;
}

/** Whether a string is an address `parseMailMessage` accepts. */
export function isPlainAddress(value: string): boolean {
  return address.safeParse(value).success;
}

/** Whether a value is a Message-ID as `messageIdFor` (or any well-formed sender) writes it. */
export function isMessageId(value: unknown): value is string {
  return typeof value === 'string' && MESSAGE_ID.test(value);
}
