import { readFileSync } from 'node:fs';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import type { IdempotencyStore } from '../../../src/integrations/containment-ports.ts';
import { InMemoryIdempotencyStore } from '../../../src/integrations/twilio/in-memory-idempotency-store.ts';
import { SMS_MAX, TwilioClient } from '../../../src/integrations/twilio/twilio-client.ts';
import { TWIML_MAX, buildCallTwiml, escapeXml } from '../../../src/integrations/twilio/twiml.ts';
import { failure } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');
const CALL_JSON = fixture('oncall_phone/twilio_calls_create_201_response.json');
const CALL = JSON.parse(CALL_JSON) as Record<string, string>;
const ERROR = JSON.parse(fixture('oncall_phone/twilio_rest_error_response.json')) as Record<string, unknown>;

const ACCOUNT = CALL.account_sid ?? '';
const AUTH_TOKEN = 'twilio-auth-token-0123456789abcdef';
const FROM = CALL.from ?? '';
const TO = CALL.to ?? '';
const BASIC = `Basic ${Buffer.from(`${ACCOUNT}:${AUTH_TOKEN}`).toString('base64')}`;
const CALLS_PATH = `/2010-04-01/Accounts/${ACCOUNT}/Calls.json`;
const MESSAGES_PATH = `/2010-04-01/Accounts/${ACCOUNT}/Messages.json`;
const KEY = 'run_42:call';

let clock = Date.parse('2025-03-01T12:00:00.000Z');
const twilio = (store: IdempotencyStore = new InMemoryIdempotencyStore(() => clock), extra: Partial<ConstructorParameters<typeof TwilioClient>[0]> = {}) =>
  new TwilioClient({ accountSid: ACCOUNT, authToken: AUTH_TOKEN, from: FROM, store, ...extra });
const api = () => nock('https://api.twilio.com', { reqheaders: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' } });

/** Parses TwiML back, as Twilio would, into [element, text] pairs under <Response>. */
function readTwiml(twiml: string): [string, string][] {
  expect(XMLValidator.validate(twiml)).toBe(true);
  const doc = new XMLParser({ ignoreAttributes: false, preserveOrder: true, parseTagValue: false, trimValues: false }).parse(twiml) as Record<
    string,
    Record<string, { '#text'?: string }[]>[]
  >[];
  const response = doc.find((n) => 'Response' in n)?.Response ?? [];
  return response.map((el) => {
    const name = Object.keys(el).find((k) => k !== ':@') ?? '';
    return [name, (el[name] ?? []).map((c) => c['#text'] ?? '').join('')];
  });
}


beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
  clock = Date.parse('2025-03-01T12:00:00.000Z');
});

describe('TwilioClient.call', () => {
  it('creates a call with To, From and TwiML, form-encoded with basic auth', async () => {
    let form: Record<string, string> = {};
    api()
      .post(CALLS_PATH, (b: Record<string, string>) => {
        form = b;
        return true;
      })
      .reply(201, CALL_JSON);
    const r = await twilio().call(TO, 'SEV1 incident 42 on web-01.', { idempotencyKey: KEY });
    expect(Object.keys(form).sort()).toEqual(['From', 'To', 'Twiml']);
    expect([form.To, form.From]).toEqual([TO, FROM]);
    expect(readTwiml(form.Twiml ?? '')).toEqual([
      ['Say', 'SEV1 incident 42 on web-01.'],
      ['Pause', ''],
      ['Say', 'SEV1 incident 42 on web-01.'],
    ]);
    expect(r).toEqual({ vendor: 'twilio', sid: CALL.sid, status: CALL.status, reused: false, raw: CALL });
  });

  it('reads hostile text out instead of obeying it: the message is escaped, never spliced into TwiML', async () => {
    const hostile = `Alert on <web-01> & "db" </Say><Dial>+19005550100</Dial><Say>`;
    let twiml = '';
    api()
      .post(CALLS_PATH, (b: Record<string, string>) => {
        twiml = b.Twiml ?? '';
        return true;
      })
      .reply(201, CALL_JSON);
    await twilio().call(TO, hostile, { idempotencyKey: KEY });
    const elements = readTwiml(twiml);
    expect(elements.map(([name]) => name)).toEqual(['Say', 'Pause', 'Say']);
    expect(elements[0]?.[1]).toBe(hostile);
    expect(twiml).not.toContain('<Dial>');
  });

  it('adds "press 1 to acknowledge" when given an https acknowledgement URL, escaping it too', async () => {
    let twiml = '';
    api()
      .post(CALLS_PATH, (b: Record<string, string>) => {
        twiml = b.Twiml ?? '';
        return true;
      })
      .reply(201, CALL_JSON);
    await twilio().call(TO, 'SEV1', { idempotencyKey: KEY, acknowledgeUrl: 'https://reflex.example.test/ack?a=1&b="2"' });
    expect(readTwiml(twiml).map(([n]) => n)).toEqual(['Say', 'Pause', 'Say', 'Gather']);
    expect(twiml).toContain('action="https://reflex.example.test/ack?a=1&amp;b=&quot;2&quot;"');
    const err = await failure(twilio().call(TO, 'SEV1', { idempotencyKey: KEY, acknowledgeUrl: 'http://plain.example.test/ack' }));
    expect(err.code).toBe('input.invalid');
  });

  it('rings once per idempotency key: a retried step gets the recorded sid without calling Twilio', async () => {
    api().post(CALLS_PATH).reply(201, CALL_JSON);
    const store = new InMemoryIdempotencyStore(() => clock);
    const first = await twilio(store).call(TO, 'SEV1', { idempotencyKey: KEY });
    const again = await twilio(store).call('+1 (415) 867-5309', 'SEV1', { idempotencyKey: KEY });
    expect(first.reused).toBe(false);
    expect(again).toEqual({ vendor: 'twilio', sid: CALL.sid, status: CALL.status, reused: true });
  });

  it('refuses a reused key for another number, and calls again once the record has expired', async () => {
    api().post(CALLS_PATH).times(2).reply(201, CALL_JSON);
    const store = new InMemoryIdempotencyStore(() => clock);
    await twilio(store).call(TO, 'SEV1', { idempotencyKey: KEY });
    expect((await failure(twilio(store).call('+14155550100', 'SEV1', { idempotencyKey: KEY }))).code).toBe('conflict');
    clock += 86_400_001;
    expect((await twilio(store).call(TO, 'SEV1', { idempotencyKey: KEY })).reused).toBe(false);
  });

  it('still succeeds (and warns) when the store cannot record the key, rather than ringing again on retry', async () => {
    api().post(CALLS_PATH).reply(201, CALL_JSON);
    const warn = vi.fn();
    const broken: IdempotencyStore = { get: async () => undefined, set: async () => Promise.reject(new Error('db down')) };
    const r = await twilio(broken, { logger: { warn } as never }).call(TO, 'SEV1', { idempotencyKey: KEY });
    expect(r.sid).toBe(CALL.sid);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('refuses numbers that are not E.164 and empty messages without calling Twilio', async () => {
    for (const bad of ['4158675309', '+0123', 'tel:+14158675309', '']) {
      expect((await failure(twilio().call(bad, 'SEV1', { idempotencyKey: KEY }))).code, bad).toBe('input.invalid');
    }
    expect((await failure(twilio().call(TO, '   ', { idempotencyKey: KEY }))).code).toBe('input.invalid');
  });
});

describe('TwilioClient errors', () => {
  it('maps the REST error fixture (400, code 20001) to a non-retryable rejection naming the code', async () => {
    api().post(CALLS_PATH).reply(400, ERROR);
    const err = await failure(twilio().call(TO, 'SEV1', { idempotencyKey: KEY }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(err.message).toContain('20001 Bad request (https://www.twilio.com/docs/errors/20001)');
    expect(`${err.message}${err.safeMessage}`).not.toContain(AUTH_TOKEN);
    expect(`${err.message}${err.safeMessage}`).not.toContain(BASIC.slice(6));
  });

  it('maps an invalid To number (21211) to input.invalid, and 429/503 to retryable', async () => {
    // The error fixture with code/message changed to Twilio's invalid-'To' error.
    api()
      .post(CALLS_PATH)
      .reply(400, { ...ERROR, code: 21211, message: "The 'To' number +15005550001 is not a valid phone number." })
      .post(CALLS_PATH)
      .reply(429, { ...ERROR, code: 20429, message: 'Too Many Requests', status: 429 }, { 'Retry-After': '3' })
      .post(CALLS_PATH)
      .reply(503);
    const c = twilio();
    expect((await failure(c.call(TO, 'SEV1', { idempotencyKey: 'a' }))).code).toBe('input.invalid');
    const e429 = await failure(c.call(TO, 'SEV1', { idempotencyKey: 'b' }));
    expect([e429.code, e429.retryable, e429.retryAfterMs]).toEqual(['upstream.rate_limited', true, 3000]);
    expect((await failure(c.call(TO, 'SEV1', { idempotencyKey: 'c' }))).retryable).toBe(true);
  });

  it('does not record a key when the call failed, so the retry really calls', async () => {
    api().post(CALLS_PATH).reply(503).post(CALLS_PATH).reply(201, CALL_JSON);
    const store = new InMemoryIdempotencyStore(() => clock);
    await failure(twilio(store).call(TO, 'SEV1', { idempotencyKey: KEY }));
    expect((await twilio(store).call(TO, 'SEV1', { idempotencyKey: KEY })).reused).toBe(false);
  });
});

describe('TwilioClient.sendSms', () => {
  // No Message fixture exists: the Calls 201 fixture's shared fields with an SM sid, as Messages.json answers.
  const MESSAGE = { ...CALL, sid: 'SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', status: 'queued', uri: MESSAGES_PATH.replace('.json', '/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json') };

  it('sends To, From and Body, once per idempotency key', async () => {
    let form: Record<string, string> = {};
    api()
      .post(MESSAGES_PATH, (b: Record<string, string>) => {
        form = b;
        return true;
      })
      .reply(201, MESSAGE);
    const store = new InMemoryIdempotencyStore(() => clock);
    const link = 'https://reflex.example.test/a/ap_1?sig=abc&exp=1';
    const r = await twilio(store).sendSms(TO, `Approve isolation of web-01: ${link}`, { idempotencyKey: 'ap_1:sms' });
    expect(form).toEqual({ To: TO, From: FROM, Body: `Approve isolation of web-01: ${link}` });
    expect([r.sid, r.status, r.reused]).toEqual([MESSAGE.sid, 'queued', false]);
    expect((await twilio(store).sendSms(TO, 'again', { idempotencyKey: 'ap_1:sms' })).reused).toBe(true);
  });

  it('uses a Messaging Service when configured', async () => {
    api().post(MESSAGES_PATH, { To: TO, MessagingServiceSid: 'MG0123', Body: 'hi' }).reply(201, MESSAGE);
    await twilio(undefined, { messagingServiceSid: 'MG0123' }).sendSms(TO, 'hi', { idempotencyKey: 'k' });
  });

  it('refuses a body over 1600 characters instead of cutting the link off', async () => {
    const err = await failure(twilio().sendSms(TO, 'x'.repeat(SMS_MAX + 1), { idempotencyKey: 'k' }));
    expect(err.code).toBe('input.too_large');
  });
});

describe('TwiML building', () => {
  it('escapes the five XML specials and drops characters XML cannot carry', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
    expect(escapeXml('bell\u0007 null\u0000 tab\t ok')).toBe('bell null tab\t ok');
    expect(readTwiml(buildCallTwiml('host \u0001web-01\uFFFF'))[0]).toEqual(['Say', 'host web-01']);
  });

  it("stays within Twilio's 4000 characters however long or entity-heavy the message", () => {
    for (const message of ['a'.repeat(10_000), '&'.repeat(3000), '😀'.repeat(2500)]) {
      const twiml = buildCallTwiml(message, { acknowledgeUrl: 'https://reflex.example.test/ack' });
      expect(twiml.length).toBeLessThanOrEqual(TWIML_MAX);
      const [, said] = readTwiml(twiml)[0] ?? [];
      expect(said?.endsWith('…')).toBe(true);
      expect(message.startsWith(said?.slice(0, -1) ?? 'x')).toBe(true);
    }
  });
});
