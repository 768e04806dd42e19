import type { NodemailerError } from 'nodemailer';
import { ReflexError } from '../../errors.ts';

const VENDOR = 'SMTP';

/** Safe words for the permanent replies an analyst is likely to see (RFC 5321 §4.2.3). */
const PERMANENT_REASONS: Record<number, string> = {
  550: 'a mailbox is unavailable',
  551: 'a recipient is not local to the server',
  552: 'the message exceeds the mailbox or size limit',
  553: 'a mailbox name is not allowed',
  554: 'the transaction failed',
  556: 'a recipient domain does not accept mail',
};

/**
 * Turns what nodemailer throws into a `ReflexError` the queue can trust.
 *
 * | failure | code | retryable |
 * |---|---|---|
 * | connection refused, reset, DNS, timeout, dropped connection, our own send deadline | `upstream.unavailable` | yes |
 * | 4xx reply (421, 450, 451, 452, 454 …) and 503 (bad sequence: a new session fixes it) | `upstream.unavailable` | yes |
 * | 535/534/530 or any auth failure that is not 4xx; credentials missing | `upstream.rejected` "SMTP rejected the credentials" | no |
 * | other 5xx (550 mailbox unavailable, 553 mailbox name not allowed …) | `upstream.rejected` | no |
 * | TLS handshake or certificate failure, STARTTLS required but not offered | `upstream.rejected` | no (a certificate does not fix itself) |
 *
 * The internal message keeps the server's reply for the logs; `redact` removes the credentials
 * from it (servers do not echo passwords, but a custom SASL error text could). The safe message
 * never holds the reply.
 */
export function mapSmtpError(err: unknown, redact: (text: string) => string): ReflexError {
  if (err instanceof ReflexError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodemailerError;
  const raw = err instanceof Error ? err.message : String(err);
  const reply = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const where = e.command ? ` (${e.command})` : '';
  const message = redact(`SMTP ${e.code ?? 'error'}${where}: ${raw}`);
  const details: Record<string, unknown> = { vendor: VENDOR, ...(reply === undefined ? {} : { smtpReply: reply }), ...(e.code ? { smtpError: e.code } : {}) };
  const unavailable = (safe: string) => new ReflexError('upstream.unavailable', message, { retryable: true, details, safeMessage: safe, cause: err });

  if (e.code === 'EAUTH' || e.code === 'ENOAUTH' || reply === 530 || reply === 534 || reply === 535) {
    // 454 is "temporary authentication failure": the server's backend is down, not the password wrong.
    if (reply !== undefined && reply >= 400 && reply < 500) return unavailable('The mail server could not check the credentials right now; retrying later.');
    return new ReflexError('upstream.rejected', message, { retryable: false, details, safeMessage: 'SMTP rejected the credentials.', cause: err });
  }
  if (e.code === 'ETLS' && !(reply !== undefined && reply >= 400 && reply < 500)) {
    // Before the reply-code rules: a server without STARTTLS answers 500 to it, which is about
    // the session, not the message. 454 ("TLS not available for a temporary reason") retries.
    return new ReflexError('upstream.rejected', message, {
      retryable: false,
      details,
      safeMessage: 'TLS with the mail server failed (certificate, or STARTTLS required but not offered); check SMTP_URL and the server certificate.',
      cause: err,
    });
  }
  if (reply !== undefined && reply >= 400 && reply < 500) {
    return unavailable(`The mail server deferred the message (SMTP ${reply}); retrying later.`);
  }
  if (reply === 503) return unavailable('The mail server was out of step (SMTP 503); retrying on a new connection.');
  if (reply !== undefined && reply >= 500) {
    const reason = PERMANENT_REASONS[reply] ?? 'it refused the message';
    return new ReflexError('upstream.rejected', message, {
      retryable: false,
      details,
      safeMessage: `The mail server rejected the message for good (SMTP ${reply}: ${reason}).`,
      cause: err,
    });
  }
  switch (e.code) {
    case 'ECONFIG':
      return new ReflexError('config.invalid', message, { retryable: false, details, safeMessage: 'E-mail is misconfigured (SMTP_URL).', cause: err });
    case 'EMESSAGE':
    case 'ESTREAM':
    case 'EENVELOPE':
    case 'EMAXRECIPIENTS':
      // Without a reply code these are about the message we built, not the server.
      return new ReflexError('internal', message, { retryable: false, details, safeMessage: 'SENTreflex could not build the e-mail.', cause: err });
    case 'ETIMEDOUT':
      return unavailable('The mail server did not answer in time; retrying later.');
    case 'EABORT':
      return unavailable('Sending the e-mail took too long; retrying later.');
    default:
      // ESOCKET (refused, reset), EDNS, ECONNECTION, EPROTOCOL, EMAXLIMIT and anything new.
      return unavailable('The mail server is unreachable; retrying later.');
  }
}
