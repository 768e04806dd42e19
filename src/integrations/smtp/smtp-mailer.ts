import nodemailer from 'nodemailer';
import type { SMTPPoolSentMessageInfo } from 'nodemailer';
import type { Logger } from 'pino';
import { ReflexError } from '../../errors.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { IdempotencyStore, Mailer, MessageReceipt, MutationOptions } from '../containment-ports.ts';
import { isPlainAddress, messageIdFor, parseMailMessage, type ThreadedMailMessage } from './mail-message.ts';
import { mapSmtpError } from './smtp-errors.ts';

export interface SmtpMailerOptions {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (`smtps://`, port 465). Otherwise STARTTLS when offered. */
  secure: boolean;
  auth?: { user: string; password: string } | undefined;
  /** `sentreflex@acme.example` or `{ name: 'SENTreflex', address: … }`. */
  from: string | { name?: string | undefined; address: string };
  /**
   * Refuse to continue without STARTTLS on a plain `smtp://` connection. Default: on when
   * credentials are configured and the host is not loopback, so a password never crosses a
   * network in the clear because a server (or someone in between) stopped offering STARTTLS.
   */
  requireTls?: boolean;
  /**
   * Remembers which Message-ID an idempotency key already sent, so a retried step answers from
   * the record (`reused: true`) instead of sending again. Without it a retry sends again, with
   * the same Message-ID.
   */
  store?: IdempotencyStore;
  /** How long a key is remembered. Default 24 h. */
  recordTtlMs?: number;
  /** TCP connect. Default 10 s. */
  connectionTimeoutMs?: number;
  /** From connect to the 220 greeting. Default 10 s. */
  greetingTimeoutMs?: number;
  /** Idle socket inside a session. Default 30 s. */
  socketTimeoutMs?: number;
  /**
   * The whole send, queue wait in the pool included; a server that trickles its replies is not
   * caught by the socket timeout. Default 60 s.
   */
  sendTimeoutMs?: number;
  /** Pooled connections. Default 3. */
  maxConnections?: number;
  logger?: Pick<Logger, 'warn'>;
}

const VENDOR = 'SMTP';

interface SendRecord {
  sid: string;
  to: string[];
}

/**
 * The `Mailer` port over SMTP (nodemailer's pooled transport).
 *
 * - **TLS as the URL says**: `smtps://` is implicit TLS; `smtp://` upgrades with STARTTLS when the
 *   server offers it and, with credentials on a non-loopback host, refuses to go on without it.
 *   Certificates are verified (give Node a private CA with `NODE_EXTRA_CA_CERTS`).
 * - **Idempotency**: the Message-ID is derived from the key (`<key@sentreflex>`, see
 *   `messageIdFor`), so a retried send is the same message to every mail system downstream. With
 *   a `store`, a repeat of a key that already went out sends nothing (`reused: true`).
 * - **Header injection**: subjects and addresses with CR/LF are refused before any connection
 *   (`parseMailMessage`), not cleaned.
 * - **Errors**: `mapSmtpError` (4xx and network → retryable; 5xx and bad credentials → not).
 * - **Credentials** stay in the transport: nodemailer's logger is off, and they are redacted from
 *   every error message this class produces.
 *
 * @example
 * const mailer = new SmtpMailer({ host: 'smtp.acme.example', port: 587, secure: false, auth: { user, password }, from: 'sentreflex@acme.example' });
 * const r = await mailer.send({ to: 'oncall@acme.example', subject: 'Approve: isolate web-01', text: link }, { idempotencyKey: `${approvalId}:mail` });
 * // r.sid === '<appr_7%3Amail@sentreflex>'
 * await mailer.close();
 */
export class SmtpMailer implements Mailer {
  readonly name = 'smtp';
  private readonly transport: ReturnType<typeof createPool>;
  private readonly opts: SmtpMailerOptions;
  private readonly secrets: string[];

  constructor(opts: SmtpMailerOptions) {
    if (!opts.host) throw new ReflexError('config.invalid', 'SMTP host is empty', { safeMessage: 'E-mail is misconfigured (SMTP_URL host).' });
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new ReflexError('config.invalid', `SMTP port ${opts.port} is not a TCP port`, { safeMessage: 'E-mail is misconfigured (SMTP_URL port).' });
    }
    const sender = typeof opts.from === 'string' ? { address: opts.from, name: '' } : opts.from;
    if (!isPlainAddress(sender.address) || /[\r\n<>"]/.test(sender.name ?? '')) {
      throw new ReflexError('config.invalid', 'SMTP from must be a plain address with an optional name without CR, LF, <, > or "', {
        safeMessage: 'E-mail is misconfigured (SMTP_FROM).',
      });
    }
    this.opts = opts;
    this.secrets = [opts.auth?.password, opts.auth?.user]
      .filter((s): s is string => typeof s === 'string' && s.length >= 4)
      .flatMap((s) => [s, Buffer.from(s).toString('base64')]);
    this.transport = createPool(opts);
  }

  async send(message: ThreadedMailMessage, opts: MutationOptions): Promise<MessageReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts?.idempotencyKey);
    const m = parseMailMessage(message);
    const messageId = messageIdFor(key);

    const recordKey = `smtp:${key}`;
    if (this.opts.store) {
      const earlier = parseRecord(await this.opts.store.get(recordKey));
      if (earlier) {
        if (earlier.to.join(',') !== [...m.to].sort().join(',')) {
          throw new ReflexError('conflict', `SMTP: idempotency key ${key} already sent mail to other recipients`, {
            safeMessage: 'This step already sent its e-mail to different recipients.',
          });
        }
        return { vendor: this.name, sid: earlier.sid, status: 'accepted', reused: true };
      }
    }

    let info: SMTPPoolSentMessageInfo;
    try {
      info = await this.transport.sendMail({
        from: typeof this.opts.from === 'string' ? this.opts.from : { name: this.opts.from.name ?? '', address: this.opts.from.address },
        to: m.to,
        subject: m.subject,
        text: m.text,
        ...(m.html === undefined ? {} : { html: m.html }),
        messageId,
        ...(m.inReplyTo === undefined ? {} : { inReplyTo: m.inReplyTo, references: [m.inReplyTo] }),
        signal: AbortSignal.timeout(this.opts.sendTimeoutMs ?? 60_000),
      });
    } catch (err) {
      throw mapSmtpError(err, (t) => this.redact(t));
    }

    const record: SendRecord = { sid: info.messageId || messageId, to: [...m.to].sort() };
    if (this.opts.store) {
      try {
        await this.opts.store.set(recordKey, JSON.stringify(record), this.opts.recordTtlMs ?? 86_400_000);
      } catch (err) {
        // The mail is out; failing now would only make the retry send it again.
        this.opts.logger?.warn({ err: this.redact(String(err)), messageId: record.sid }, 'smtp: could not record idempotency key; a retry may send this mail again');
      }
    }
    const rejected = info.rejected.map(String);
    return {
      vendor: this.name,
      sid: record.sid,
      // Some recipients refused while others took it: sent, and the refusals are in raw.
      status: rejected.length > 0 ? 'partially-accepted' : 'accepted',
      reused: false,
      raw: { accepted: info.accepted.map(String), rejected, response: this.redact(String(info.response ?? '')) },
    };
  }

  /** Closes the pooled connections (idle ones at once, busy ones after their message). */
  async close(): Promise<void> {
    this.transport.close();
  }

  private redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('[REDACTED]');
    return out;
  }
}

/**
 * Whether a plain `smtp://` session must upgrade with STARTTLS before going on: when asked to, or
 * by default when it would send credentials to a host other than this machine.
 */
export function requiresStartTls(opts: Pick<SmtpMailerOptions, 'host' | 'secure' | 'auth' | 'requireTls'>): boolean {
  if (opts.secure) return false; // already TLS from the first byte
  const loopback = opts.host === 'localhost' || /^127\./.test(opts.host) || opts.host === '::1';
  return opts.requireTls ?? (opts.auth !== undefined && !loopback);
}

function createPool(opts: SmtpMailerOptions) {
  const requireTLS = requiresStartTls(opts);
  return nodemailer.createTransport({
    pool: true,
    host: opts.host,
    port: opts.port,
    secure: opts.secure,
    requireTLS,
    ...(opts.auth ? { auth: { user: opts.auth.user, pass: opts.auth.password } } : {}),
    maxConnections: opts.maxConnections ?? 3,
    // A connection that drops mid-send is retried once by the pool (a stale pooled socket);
    // anything beyond that is the queue's retry, with its backoff and dead-letter.
    maxRequeues: 1,
    connectionTimeout: opts.connectionTimeoutMs ?? 10_000,
    greetingTimeout: opts.greetingTimeoutMs ?? 10_000,
    socketTimeout: opts.socketTimeoutMs ?? 30_000,
    dnsTimeout: 10_000,
    // Never let message content make nodemailer read a file or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
    // nodemailer's own logger prints the AUTH exchange with debug on; keep both off.
    logger: false,
    debug: false,
  });
}

function parseRecord(raw: string | undefined): SendRecord | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<SendRecord>;
    if (typeof v.sid === 'string' && Array.isArray(v.to) && v.to.every((t) => typeof t === 'string')) return { sid: v.sid, to: v.to };
  } catch {
    // an unreadable record is treated as absent
  }
  return undefined;
}
