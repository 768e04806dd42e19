import type { Logger } from 'pino';
import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import type { VendorFailure } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { IdempotencyStore, MessageReceipt, MutationOptions, PhoneCallOptions, PhoneCaller, SmsSender } from '../containment-ports.ts';
import { buildCallTwiml } from './twiml.ts';

export interface TwilioClientOptions {
  /** `AC…` (tenant config `twilio.account_sid`). */
  accountSid: string;
  /** Vault: `twilio.auth_token`. */
  authToken: string;
  /** The caller id / sender, E.164 (a number on the account). */
  from: string;
  /** Send SMS through a Messaging Service (`MG…`) instead of `from`. */
  messagingServiceSid?: string;
  /**
   * Remembers which call or message an idempotency key already produced. Twilio has no
   * idempotency of its own; the engine passes a database-backed store.
   */
  store: IdempotencyStore;
  /** How long a key is remembered. Default 24 h (longer than any step's retry window). */
  recordTtlMs?: number;
  /** Default https://api.twilio.com. */
  baseUrl?: string;
  voice?: string;
  language?: string;
  logger?: Pick<Logger, 'warn'>;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const VENDOR = 'Twilio';
const E164 = /^\+[1-9]\d{1,14}$/;
/** Twilio splits long texts into segments and refuses bodies over 1600 characters. */
export const SMS_MAX = 1600;

/** Twilio error codes that mean "that phone number is wrong", not "try again". */
const BAD_NUMBER_CODES = new Set([21211, 21614]);

interface CallRecord {
  sid: string;
  status: string;
  to: string;
}

/**
 * Twilio Programmable Voice and Messaging (REST API 2010-04-01), as `PhoneCaller` and `SmsSender`.
 *
 * Calls: `POST /2010-04-01/Accounts/{sid}/Calls.json`, form-encoded `To`, `From`, `Twiml`, HTTP
 * basic auth (account sid : auth token); 201 with the call. The message is XML-escaped into
 * TwiML (see twiml.ts). SMS: `POST …/Messages.json` with `To`, `From` (or
 * `MessagingServiceSid`), `Body`. Errors: `{code, message, more_info, status}`.
 *
 * Idempotency: Twilio has none, so a retried step would ring the phone again. The client keeps
 * "idempotency key → sid" in the injected `IdempotencyStore` and answers a repeat from there
 * (`reused: true`) without calling Twilio. The remaining window, a crash between Twilio's 201 and
 * the store write, rings twice: for an alert call, better twice than never.
 *
 * @example
 * const twilio = new TwilioClient({ accountSid, authToken, from: '+15017122661', store: engineStore });
 * await twilio.call('+14158675309', 'SEV1 incident 42 on web-01. Check Slack.', { idempotencyKey: 'run_42:call' });
 * await twilio.sendSms('+14158675309', `Approve: ${link}`, { idempotencyKey: `${approvalId}:sms` });
 */
export class TwilioClient implements PhoneCaller, SmsSender {
  readonly name = 'twilio';
  private readonly http: VendorHttpClient;
  private readonly opts: TwilioClientOptions;
  private readonly ttlMs: number;

  constructor(opts: TwilioClientOptions) {
    if (!/^AC[0-9a-fA-F]{32}$/.test(opts.accountSid ?? '')) {
      throw new ReflexError('config.invalid', 'Twilio account sid must be AC followed by 32 hex characters', {
        safeMessage: 'Twilio is misconfigured (account sid).',
      });
    }
    if (!opts.authToken) throw new ReflexError('config.invalid', 'Twilio auth token is empty');
    if (!E164.test(opts.from ?? '')) throw new ReflexError('config.invalid', 'Twilio from number must be E.164, e.g. +15017122661');
    this.opts = opts;
    this.ttlMs = opts.recordTtlMs ?? 86_400_000;
    this.http = new VendorHttpClient({
      vendor: VENDOR,
      baseUrl: opts.baseUrl ?? 'https://api.twilio.com',
      headers: { Authorization: `Basic ${Buffer.from(`${opts.accountSid}:${opts.authToken}`).toString('base64')}` },
      secretHeaders: ['Authorization'],
      describeError: describeTwilioError,
      mapError: mapTwilioError,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  async call(to: string, message: string, opts: PhoneCallOptions): Promise<MessageReceipt> {
    const number = validNumber(to);
    if (typeof message !== 'string' || message.trim() === '') {
      throw new ReflexError('input.invalid', 'Twilio: a call needs a message', { safeMessage: 'A phone call needs a message to read.' });
    }
    if (opts.acknowledgeUrl !== undefined && !/^https:\/\//i.test(opts.acknowledgeUrl)) {
      throw new ReflexError('input.invalid', 'Twilio: acknowledgeUrl must be https', { safeMessage: 'The acknowledgement URL must be https.' });
    }
    const twiml = buildCallTwiml(message, {
      ...(opts.acknowledgeUrl ? { acknowledgeUrl: opts.acknowledgeUrl } : {}),
      ...(this.opts.voice ? { voice: this.opts.voice } : {}),
      ...(this.opts.language ? { language: this.opts.language } : {}),
    });
    return this.once('call', number, opts, { To: number, From: this.opts.from, Twiml: twiml }, 'Calls.json');
  }

  async sendSms(to: string, body: string, opts: MutationOptions): Promise<MessageReceipt> {
    const number = validNumber(to);
    if (typeof body !== 'string' || body.trim() === '') {
      throw new ReflexError('input.invalid', 'Twilio: an SMS needs a body', { safeMessage: 'A text message needs a body.' });
    }
    if (body.length > SMS_MAX) {
      // Never truncate: the body usually ends in a signed approval link, and half a link is worse than none.
      throw new ReflexError('input.too_large', `Twilio: SMS body is ${body.length} characters, over ${SMS_MAX}`, {
        safeMessage: `A text message may hold at most ${SMS_MAX} characters.`,
      });
    }
    const sender: Record<string, string> = this.opts.messagingServiceSid
      ? { MessagingServiceSid: this.opts.messagingServiceSid }
      : { From: this.opts.from };
    return this.once('sms', number, opts, { To: number, ...sender, Body: body }, 'Messages.json');
  }

  private async once(
    kind: 'call' | 'sms',
    to: string,
    opts: MutationOptions,
    form: Record<string, string>,
    resource: 'Calls.json' | 'Messages.json',
  ): Promise<MessageReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const recordKey = `twilio:${kind}:${this.opts.accountSid}:${key}`;
    const earlier = parseRecord(await this.opts.store.get(recordKey));
    if (earlier) {
      if (earlier.to !== to) {
        throw new ReflexError('conflict', `Twilio: idempotency key ${key} already sent a ${kind} to another number`, {
          safeMessage: 'This step already contacted a different number.',
        });
      }
      return { vendor: this.name, sid: earlier.sid, status: earlier.status, reused: true };
    }

    const res = await this.http.request({ method: 'POST', path: `/2010-04-01/Accounts/${this.opts.accountSid}/${resource}`, form });
    const body = isRecord(res.body) ? res.body : {};
    if (typeof body.sid !== 'string' || body.sid === '') {
      throw new ReflexError('upstream.unavailable', `Twilio answered ${res.status} to ${resource} without a sid`, {
        details: { vendor: VENDOR },
        safeMessage: 'Twilio answered in an unexpected way.',
      });
    }
    const record: CallRecord = { sid: body.sid, status: typeof body.status === 'string' ? body.status : 'queued', to };
    try {
      await this.opts.store.set(recordKey, JSON.stringify(record), this.ttlMs);
    } catch (err) {
      // The call is placed; failing the step now would only make its retry ring again.
      this.opts.logger?.warn({ err, sid: record.sid }, 'twilio: could not record idempotency key; a retry may repeat this call');
    }
    return { vendor: this.name, sid: record.sid, status: record.status, reused: false, raw: res.body };
  }
}

function validNumber(to: string): string {
  const n = typeof to === 'string' ? to.replace(/[\s().-]/g, '') : '';
  if (!E164.test(n)) {
    throw new ReflexError('input.invalid', `Twilio: not an E.164 phone number: ${JSON.stringify(String(to).slice(0, 40))}`, {
      safeMessage: 'Give the phone number in international form, e.g. +14158675309.',
    });
  }
  return n;
}

function parseRecord(raw: string | undefined): CallRecord | undefined {
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    if (isRecord(v) && typeof v.sid === 'string' && typeof v.to === 'string') {
      return { sid: v.sid, to: v.to, status: typeof v.status === 'string' ? v.status : 'queued' };
    }
  } catch {
    // fall through: an unreadable record is treated as absent
  }
  return undefined;
}

/** `{"code":20001,"message":"Bad request","more_info":"https://www.twilio.com/docs/errors/20001","status":400}`. */
function describeTwilioError(body: unknown): string | undefined {
  if (!isRecord(body) || typeof body.message !== 'string') return undefined;
  const code = typeof body.code === 'number' ? `${body.code} ` : '';
  const more = typeof body.more_info === 'string' ? ` (${body.more_info})` : '';
  return `${code}${body.message}${more}`;
}

function mapTwilioError(f: VendorFailure): ReflexError | undefined {
  const code = isRecord(f.body) && typeof f.body.code === 'number' ? f.body.code : undefined;
  if (code !== undefined && BAD_NUMBER_CODES.has(code)) {
    return new ReflexError('input.invalid', `Twilio refused the number: ${f.detail ?? code}`, {
      details: { vendor: VENDOR, status: f.status, twilioCode: code },
      safeMessage: 'Twilio cannot reach that phone number.',
    });
  }
  return undefined;
}

