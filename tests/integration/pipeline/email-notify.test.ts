import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SmtpMailer } from '../../../src/integrations/smtp/smtp-mailer.ts';
import { EmailNotifier } from '../../../src/pipeline/email-notifier.ts';
import { addIngestToken, generateIngestToken } from '../../../src/pipeline/ingest/ingest-credentials.ts';
import { pipelineFeature } from '../../../src/pipeline/pipeline-feature.ts';
import { parseTenantConfig } from '../../../src/pipeline/tenant-config.ts';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';
import { settle } from '../../helpers/pipeline.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';
import { decode, parseMail as parseReceived } from '../../helpers/mail.ts';

const SSHD = fixtureJson<Record<string, unknown>>('wazuh/docs_alert_5716_sshd_auth_failed.json');
const DOWNSTREAM = ['pipeline.enrich', 'pipeline.case', 'pipeline.notify', 'pipeline.trigger'];
const FROM = 'sentreflex@example.test';

interface Mail {
  envelopeTo: string[];
  headers: Record<string, string>;
  text: string;
  html: string;
}

/** A real SMTP server on 127.0.0.1 (random port) that accepts everything and keeps what it got. */
async function startSmtp(): Promise<{ port: number; received: Mail[]; close(): Promise<void> }> {
  const received: Mail[] = [];
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    closeTimeout: 1000,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({ envelopeTo: session.envelope.rcptTo.map((r) => r.address), ...parseMail(Buffer.concat(chunks).toString('utf8')) });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : 0, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The received message with its text and HTML parts ('' when a part is missing). */
function parseMail(raw: string): { headers: Record<string, string>; text: string; html: string } {
  const m = parseReceived(raw);
  return { headers: m.headers, text: m.text ?? '', html: m.html ?? '' };
}

/** An RFC 2047 encoded subject (nodemailer encodes non-ASCII ones) back to text. */
function decodeSubject(value: string): string {
  return value.replace(/=\?utf-8\?([BQ])\?([^?]*)\?=\s*/gi, (_m, enc: string, text: string) =>
    enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : decode(text.replace(/_/g, ' '), 'quoted-printable'),
  );
}

describe('e-mail notifications', () => {
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let s: TestServer;
  beforeAll(async () => {
    smtp = await startSmtp();
    s = await startTestServer({ features: [pipelineFeature], env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, SMTP_FROM: FROM } });
  });
  afterAll(async () => {
    await s?.stop(); // closes the mailer's pool before the server goes
    await smtp?.close();
  });

  it('mails the first alert, then a "2nd occurrence" reply threaded under it', async () => {
    const tenantId = `mail-${Date.now().toString(36)}`;
    const config = { notify: { email_to: ['soc@acme.example', 'oncall@acme.example'], repeat_interval_seconds: 1, min_severity: 3 } };
    await auditedWrite(s.store.db, 'test', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id: tenantId, name: tenantId, config: JSON.stringify(config) }).execute();
      audit({ tenantId, action: 'tenant.create', target: tenantId, delta: {} });
    });
    const token = generateIngestToken();
    await addIngestToken(s.store.db, { tenantId, source: '*', token, actor: 'test' });
    const post = async () => {
      const res = await fetch(`${s.url}/hooks/wazuh`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(SSHD) });
      expect(res.status).toBe(202);
    };

    await post();
    await settle(s, { tenant: tenantId, queues: DOWNSTREAM });
    await vi.waitFor(() => expect(smtp.received).toHaveLength(1), { timeout: 10_000 });
    const [alert] = await s.store.db.selectFrom('alerts').selectAll().where('tenant_id', '=', tenantId).execute();
    const first = smtp.received[0]!;
    const firstId = `<alert-${alert!.id}-first@sentreflex>`;
    const subject = `[SENTreflex] SEV3 medium: ${alert!.title}`;
    expect(alert!.title).toMatch(/^sshd: authentication failed\./);
    expect(first.envelopeTo).toEqual(['soc@acme.example', 'oncall@acme.example']);
    expect(first.headers.from).toBe(FROM);
    expect(first.headers.to).toBe('soc@acme.example, oncall@acme.example');
    expect(first.headers.subject).toBe(subject);
    expect(first.headers['message-id']).toBe(firstId);
    expect(first.headers['in-reply-to']).toBeUndefined();
    expect(first.text).toContain(`SEV3 medium: ${alert!.title}`);
    expect(first.text).toContain('Host: Centos');
    expect(first.text).toContain('IPs: 61.177.172.13');
    expect(first.text).toContain(`alert ${alert!.id.slice(0, 8)}`);
    expect(first.html).toContain('<th align="left" style="padding:2px 12px 2px 0">User</th><td style="padding:2px 0">root</td>');

    await post();
    await vi.waitFor(() => expect(smtp.received).toHaveLength(2), { timeout: 15_000 });
    const reply = smtp.received[1]!;
    expect(reply.text.startsWith(`2nd occurrence of ${alert!.title} (last seen `)).toBe(true);
    expect(reply.headers.subject).toBe(`Re: ${subject}`);
    expect(reply.headers['message-id']).toBe(`<alert-${alert!.id}-repeat-2@sentreflex>`);
    expect(reply.headers['in-reply-to']).toBe(firstId);
    expect(reply.headers.references).toBe(firstId);
    expect(reply.envelopeTo).toEqual(['soc@acme.example', 'oncall@acme.example']);

    await vi.waitFor(async () => {
      const throttle = await s.store.db.selectFrom('notification_throttle').selectAll().where('tenant_id', '=', tenantId).execute();
      expect(throttle.map((r) => [r.channel, r.sent, r.thread_ref])).toEqual([['email', 2, { messageId: firstId, subject }]]);
    });
  });

  it('renders alert text from the source safely: one-line subject, escaped HTML', async () => {
    const mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, from: FROM });
    try {
      const notifier = new EmailNotifier(mailer);
      const config = parseTenantConfig('t', { notify: { email_to: ['soc@acme.example'] } });
      expect(notifier.enabledFor('t', parseTenantConfig('t', {}))).toBe(false);
      expect(notifier.enabledFor('t', config)).toBe(true);
      const before = smtp.received.length;
      const { ref } = await notifier.send({
        tenantId: 't',
        config,
        message: {
          title: 'SEV2 high: rule <script>alert(1)</script>\r\nBcc: everyone@evil.example',
          text: 'Tom & "Jerry" <tom@acme.example>',
          fields: [{ label: 'User', value: '<img src=x onerror=alert(1)>' }],
          context: ["alert 'abc'"],
        },
        idempotencyKey: 'render-1',
      });
      await vi.waitFor(() => expect(smtp.received).toHaveLength(before + 1));
      const mail = smtp.received[before]!;
      expect(mail.envelopeTo).toEqual(['soc@acme.example']);
      expect(mail.headers.bcc).toBeUndefined();
      expect(decodeSubject(mail.headers.subject ?? '')).toBe('[SENTreflex] SEV2 high: rule <script>alert(1)</script> Bcc: everyone@evil.example');
      expect(mail.html).toContain('rule &lt;script&gt;alert(1)&lt;/script&gt;');
      expect(mail.html).toContain('Tom &amp; &quot;Jerry&quot; &lt;tom@acme.example&gt;');
      expect(mail.html).toContain('&lt;img src=x onerror=alert(1)&gt;');
      expect(mail.html).toContain('alert &#39;abc&#39;');
      expect(mail.html).not.toMatch(/<script|<img/);
      expect(mail.text).toContain('User: <img src=x onerror=alert(1)>');
      expect(ref).toEqual({ messageId: '<render-1@sentreflex>', subject: decodeSubject(mail.headers.subject ?? '') });
    } finally {
      await mailer.close();
    }
  });
});
