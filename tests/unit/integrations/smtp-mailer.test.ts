import net from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { messageIdFor } from '../../../src/integrations/smtp/mail-message.ts';
import { SmtpMailer, requiresStartTls, type SmtpMailerOptions } from '../../../src/integrations/smtp/smtp-mailer.ts';
import { InMemoryIdempotencyStore } from '../../../src/integrations/twilio/in-memory-idempotency-store.ts';
import { freePort } from '../../helpers/env.ts';
import { failure } from '../../helpers/vendor-http.ts';
import { parseMail } from '../../helpers/mail.ts';

const FROM = 'sentreflex@example.test';
const TO = 'soc@acme.example';
const PASSWORD = 'hunter2-smtp-secret-0042';

interface Received {
  envelopeFrom: string;
  envelopeTo: string[];
  raw: string;
}

interface TestSmtp {
  port: number;
  received: Received[];
  /** TCP sessions the server saw. */
  connections: number;
  close(): Promise<void>;
}

/**
 * A real SMTP server on 127.0.0.1 (random port), no STARTTLS. `dataReplies` are the reply codes
 * of successive DATA commands (then it accepts); `rcptReply` refuses every recipient;
 * `rejectAuth` requires AUTH and refuses every login with 535.
 */
async function startSmtp(behaviour: { dataReplies?: number[]; rcptReply?: number; rejectAuth?: boolean; stallData?: boolean } = {}): Promise<TestSmtp> {
  const dataReplies = [...(behaviour.dataReplies ?? [])];
  const state = { received: [] as Received[], connections: 0 };
  const refuse = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
  const options: SMTPServerOptions = {
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: !behaviour.rejectAuth,
    allowInsecureAuth: true,
    closeTimeout: 1000,
    onConnect(_session, cb) {
      state.connections++;
      cb();
    },
    onAuth(_auth, _session, cb) {
      cb(refuse(535, '5.7.8 Authentication credentials invalid'));
    },
    onRcptTo(_addr, _session, cb) {
      if (behaviour.rcptReply) return cb(refuse(behaviour.rcptReply, behaviour.rcptReply === 550 ? '5.1.1 Mailbox unavailable' : '5.1.3 Mailbox name not allowed'));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (behaviour.stallData) return; // never answers the final dot
        const code = dataReplies.shift();
        if (code !== undefined) return cb(refuse(code, '4.3.0 Try again later'));
        const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        state.received.push({ envelopeFrom, envelopeTo: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        cb();
      });
    },
  };
  const server = new SMTPServer(options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    get received() {
      return state.received;
    },
    get connections() {
      return state.connections;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Headers (unfolded, keys lower-case) and the decoded text/plain and text/html parts of a message. */


const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  // Mailers first (their pooled connections say QUIT), then the servers.
  for (const o of open.splice(0).reverse()) await o.close();
});

async function setup(behaviour: Parameters<typeof startSmtp>[0] = {}, extra: Partial<SmtpMailerOptions> = {}) {
  const smtp = await startSmtp(behaviour);
  open.push(smtp);
  const mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, from: { name: 'SENTreflex', address: FROM }, ...extra });
  open.push(mailer);
  return { smtp, mailer };
}

describe('SmtpMailer against a real SMTP server', () => {
  it('delivers the message with From, To, Subject, the Message-ID of the idempotency key, and both bodies', async () => {
    const { smtp, mailer } = await setup();
    const receipt = await mailer.send(
      { to: [TO, 'oncall@acme.example'], subject: 'Approve: isolate web-01', text: 'Isolation of web-01 waits for you.\nhttps://reflex.acme.example/a/1', html: '<p>Isolation of web-01 waits for you.</p>' },
      { idempotencyKey: 'run_42:mail' },
    );

    expect(receipt).toMatchObject({ vendor: 'smtp', sid: '<run_42%3Amail@sentreflex>', status: 'accepted', reused: false });
    expect(smtp.received).toHaveLength(1);
    const got = smtp.received[0]!;
    expect(got.envelopeFrom).toBe(FROM);
    expect(got.envelopeTo).toEqual([TO, 'oncall@acme.example']);
    const mail = parseMail(got.raw);
    expect(mail.headers.from).toBe(`SENTreflex <${FROM}>`);
    expect(mail.headers.to).toBe(`${TO}, oncall@acme.example`);
    expect(mail.headers.subject).toBe('Approve: isolate web-01');
    expect(mail.headers['message-id']).toBe('<run_42%3Amail@sentreflex>');
    expect(mail.headers['in-reply-to']).toBeUndefined();
    expect(mail.text).toBe('Isolation of web-01 waits for you.\r\nhttps://reflex.acme.example/a/1');
    expect(mail.html).toBe('<p>Isolation of web-01 waits for you.</p>');
  });

  it('threads a reply with In-Reply-To and References', async () => {
    const { smtp, mailer } = await setup();
    await mailer.send({ to: TO, subject: 'Re: SEV2 high: sshd brute force', text: '2nd occurrence', inReplyTo: '<alert-1-first@sentreflex>' }, { idempotencyKey: 'alert-1-repeat-2' });
    const mail = parseMail(smtp.received[0]!.raw);
    expect(mail.headers['message-id']).toBe('<alert-1-repeat-2@sentreflex>');
    expect(mail.headers['in-reply-to']).toBe('<alert-1-first@sentreflex>');
    expect(mail.headers.references).toBe('<alert-1-first@sentreflex>');
  });

  it('a 451 is retryable, and the retry with the same key delivers one message with the same Message-ID', async () => {
    const { smtp, mailer } = await setup({ dataReplies: [451] });
    const message = { to: TO, subject: 'SEV1: ransomware on web-01', text: 'Contained.' };
    const err = await failure(mailer.send(message, { idempotencyKey: 'run_7:notify' }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true, details: { vendor: 'SMTP', smtpReply: 451 } });
    expect(err.safeMessage).toMatch(/deferred.*451/);
    expect(smtp.received).toHaveLength(0);

    const receipt = await mailer.send(message, { idempotencyKey: 'run_7:notify' });
    expect(smtp.received).toHaveLength(1);
    expect(parseMail(smtp.received[0]!.raw).headers['message-id']).toBe(messageIdFor('run_7:notify'));
    expect(receipt.sid).toBe(messageIdFor('run_7:notify'));
  });

  it.each([
    [550, /550: a mailbox is unavailable/],
    [553, /553: a mailbox name is not allowed/],
  ])('a permanent %i is not retryable, with a safe message', async (code, safe) => {
    const { smtp, mailer } = await setup({ rcptReply: code });
    const err = await failure(mailer.send({ to: 'gone@acme.example', subject: 'x', text: 'y' }, { idempotencyKey: `k-${code}` }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false, details: { smtpReply: code } });
    expect(err.safeMessage).toMatch(safe);
    expect(err.safeMessage).not.toMatch(/gone@acme/);
    expect(smtp.received).toHaveLength(0);
  });

  it('a 535 login failure is not retryable, says the credentials were rejected, and never shows them', async () => {
    const { smtp, mailer } = await setup({ rejectAuth: true }, { auth: { user: 'reflex-mailer', password: PASSWORD } });
    const err = await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'k-auth' }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false, safeMessage: 'SMTP rejected the credentials.', details: { smtpReply: 535 } });
    const shown = JSON.stringify({ m: err.message, s: err.safeMessage, d: err.details });
    expect(shown).not.toContain(PASSWORD);
    expect(shown).not.toContain(Buffer.from(PASSWORD).toString('base64'));
    expect(smtp.connections).toBe(1);
    expect(smtp.received).toHaveLength(0);
  });

  it.each([
    ['subject', { to: TO, subject: 'Alert\r\nBcc: everyone@evil.example', text: 'y' }],
    ['subject', { to: TO, subject: 'Alert\nBcc: everyone@evil.example', text: 'y' }],
    ['to', { to: `${TO}\r\nBcc: everyone@evil.example`, subject: 'Alert', text: 'y' }],
    ['to', { to: [TO, 'x@acme.example\nCc: a@evil.example'], subject: 'Alert', text: 'y' }],
  ])('refuses CR/LF in %s before any connection', async (field, message) => {
    const { smtp, mailer } = await setup();
    const err = await failure(mailer.send(message, { idempotencyKey: 'k-inject' }));
    expect(err).toMatchObject({ code: 'input.invalid', retryable: false, details: { field } });
    expect(err.message).toMatch(/CR or LF \(header injection\)/);
    expect(smtp.connections).toBe(0);
  });

  it('refuses a missing idempotency key and a malformed address before any connection', async () => {
    const { smtp, mailer } = await setup();
    expect((await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: '' }))).code).toBe('input.invalid');
    expect((await failure(mailer.send({ to: 'Alice <alice@acme.example>', subject: 'x', text: 'y' }, { idempotencyKey: 'k' }))).details).toEqual({ field: 'to' });
    expect((await failure(mailer.send({ to: [], subject: 'x', text: 'y' }, { idempotencyKey: 'k' }))).code).toBe('input.invalid');
    expect(smtp.connections).toBe(0);
  });

  it('connection refused is retryable', async () => {
    const port = await freePort(); // nothing listens there
    const mailer = new SmtpMailer({ host: '127.0.0.1', port, secure: false, from: FROM });
    open.push(mailer);
    const err = await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'k-refused' }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true, details: { smtpError: 'ESOCKET' } });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('a server that never greets is a retryable timeout', async () => {
    const silent = net.createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    open.push({ close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); silent.close(() => resolve()); }) });
    const port = (silent.address() as net.AddressInfo).port;
    const mailer = new SmtpMailer({ host: '127.0.0.1', port, secure: false, from: FROM, greetingTimeoutMs: 200 });
    open.push(mailer);
    const err = await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'k-silent' }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true, details: { smtpError: 'ETIMEDOUT' } });
  });

  it('a send that outlives its deadline is retryable', async () => {
    const { mailer } = await setup({ stallData: true }, { sendTimeoutMs: 300 });
    const err = await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'k-stall' }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true, details: { smtpError: 'EABORT' } });
  });

  it('with a store, a repeated key sends nothing the second time; the same key to other recipients is a conflict', async () => {
    const { smtp, mailer } = await setup({}, { store: new InMemoryIdempotencyStore() });
    const first = await mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'run_9:mail' });
    const again = await mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'run_9:mail' });
    expect(first.reused).toBe(false);
    expect(again).toMatchObject({ sid: first.sid, reused: true });
    expect(smtp.received).toHaveLength(1);
    expect((await failure(mailer.send({ to: 'other@acme.example', subject: 'x', text: 'y' }, { idempotencyKey: 'run_9:mail' }))).code).toBe('conflict');
    expect(smtp.received).toHaveLength(1);
  });

  it('refuses to send credentials without STARTTLS when told to require it', async () => {
    const { smtp, mailer } = await setup({}, { auth: { user: 'reflex-mailer', password: PASSWORD }, requireTls: true });
    const err = await failure(mailer.send({ to: TO, subject: 'x', text: 'y' }, { idempotencyKey: 'k-tls' }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false, details: { smtpError: 'ETLS' } });
    expect(err.safeMessage).toMatch(/TLS with the mail server failed/);
    expect(JSON.stringify({ m: err.message, s: err.safeMessage })).not.toContain(PASSWORD);
    expect(smtp.received).toHaveLength(0);
  });
});

describe('SMTP helpers', () => {
  it('derives a stable, valid, one-to-one Message-ID from the idempotency key', () => {
    expect(messageIdFor('alert-3f2a-first')).toBe('<alert-3f2a-first@sentreflex>');
    expect(messageIdFor('run_42:mail')).toBe('<run_42%3Amail@sentreflex>');
    expect(messageIdFor('run_42%3Amail')).toBe('<run_42%253Amail@sentreflex>');
    expect(messageIdFor('a b@c>\r\nX: y')).toBe('<a%20b%40c%3E%0D%0AX%3A%20y@sentreflex>');
    expect(messageIdFor('é.x')).toBe('<%C3%A9%2Ex@sentreflex>');
  });

  it('requires STARTTLS by default only for credentials sent to another machine', () => {
    const auth = { user: 'u', password: 'p' };
    expect(requiresStartTls({ host: 'smtp.acme.example', secure: false, auth })).toBe(true);
    expect(requiresStartTls({ host: 'smtp.acme.example', secure: false })).toBe(false);
    expect(requiresStartTls({ host: '127.0.0.1', secure: false, auth })).toBe(false);
    expect(requiresStartTls({ host: 'smtp.acme.example', secure: true, auth })).toBe(false);
    expect(requiresStartTls({ host: 'relay.internal', secure: false, requireTls: true })).toBe(true);
  });

  it('refuses a From with a line break at construction', () => {
    expect(() => new SmtpMailer({ host: '127.0.0.1', port: 25, secure: false, from: `${FROM}\r\nBcc: a@evil.example` })).toThrow(ReflexError);
    expect(() => new SmtpMailer({ host: '127.0.0.1', port: 25, secure: false, from: { name: 'SOC\r\nBcc: a@evil.example', address: FROM } })).toThrow(ReflexError);
  });
});
