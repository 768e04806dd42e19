import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VendorApprovalLinkSender, VendorEscalationPager } from '../../../src/approvals/vendor-approval-ports.ts';
import { DatabaseIdempotencyStore } from '../../../src/engine/actions/database-idempotency-store.ts';
import { TenantIntegrations } from '../../../src/engine/actions/tenant-integrations.ts';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { messageIdFor } from '../../../src/integrations/smtp/mail-message.ts';
import { SmtpMailer } from '../../../src/integrations/smtp/smtp-mailer.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';
import { parseMail } from '../../helpers/mail.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';
import {
  SECRETS,
  TENANT_CONFIG,
  TWILIO_CALL,
  TWILIO_ERROR,
  stagePagerDuty,
  stageTwilio,
  startTestSmtp,
  type Seen,
  type TestSmtp,
} from './helpers/vendor-stubs.ts';

/**
 * The approvals' outside world wired to real vendors: escalation pages through the tenant's
 * PagerDuty, one-time links go out by SMS (Twilio) or e-mail (SMTP) by what is on record for the
 * approver, Twilio's records of what a key sent live in PostgreSQL, and a pager that fails never
 * stops an escalation. Real engine and database; vendor HTTP answered by nock from the fixtures.
 */

const ESCALATES = playbook(`
id: escalates
name: Escalates
version: 1
trigger: { manual: true }
steps:
  - id: gate
    approval:
      approvers: { oncall: secops-primary }
      expires: 3s
      on_expiry: escalate
      message: "Isolate web-01?"
  - id: gated
    script: { javascript: "return 'ran'" }
`);

useStrictNock();

let h: Harness;
let smtp: TestSmtp;
let mailer: SmtpMailer;
let integrations: TenantIntegrations;
let pager: VendorEscalationPager;
let sender: VendorApprovalLinkSender;

beforeAll(async () => {
  h = await createHarness({ playbooks: [ESCALATES] });
  await h.db.updateTable('tenants').set({ config: JSON.stringify(TENANT_CONFIG) }).where('id', '=', h.tenantId).execute();
  for (const [name, value] of Object.entries(SECRETS)) await h.vault.set(h.tenantId, name, value, 'test');
  smtp = await startTestSmtp();
  mailer = new SmtpMailer({ host: '127.0.0.1', port: smtp.port, secure: false, from: 'sentreflex@example.test', store: new DatabaseIdempotencyStore(h.db, '*') });
  integrations = new TenantIntegrations({ idempotencyStore: (t) => new DatabaseIdempotencyStore(h.db, t), mailer: () => mailer });
  const deps = { integrations, vault: h.vault, tenantConfig: (t: string) => h.engine.tenants.get(t) };
  pager = new VendorEscalationPager(deps);
  sender = new VendorApprovalLinkSender(deps);
});
afterAll(async () => {
  await h?.stop();
  await mailer?.close();
  await smtp?.close();
});

const link = (linkId: string) => ({
  tenantId: 'acme',
  approvalId: '00000000-0000-4000-8000-000000000001',
  linkId,
  url: `http://reflex.test/approve/v1.token-${linkId}.sig`,
  summary: 'Disable `ana@acme.example`? A login from 198.51.100.7 succeeded during a brute-force burst.',
  expiresAt: new Date('2026-11-21T03:30:00Z'),
});

describe('DatabaseIdempotencyStore', () => {
  it('remembers per scope until the record expires, then lets the key be written again', async () => {
    let now = 1_000_000;
    const acme = new DatabaseIdempotencyStore(h.db, 'acme', () => now);
    const other = new DatabaseIdempotencyStore(h.db, 'other', () => now);
    await acme.set('twilio:call:AC1:reflex-r-s', '{"sid":"CA1"}', 60_000);
    expect(await acme.get('twilio:call:AC1:reflex-r-s')).toBe('{"sid":"CA1"}');
    expect(await other.get('twilio:call:AC1:reflex-r-s')).toBeUndefined();
    now += 60_000;
    expect(await acme.get('twilio:call:AC1:reflex-r-s')).toBeUndefined();
    await acme.set('twilio:call:AC1:reflex-r-s', '{"sid":"CA2"}', 60_000);
    expect(await acme.get('twilio:call:AC1:reflex-r-s')).toBe('{"sid":"CA2"}');
    const long = `k${'x'.repeat(300)}`;
    await acme.set(long, 'v', 1000);
    expect(await acme.get(long)).toBe('v');
  });
});

describe('VendorEscalationPager', () => {
  it("pages the schedule's PagerDuty service with the escalation's dedup key and a link back", async () => {
    const seen: Seen[] = [];
    const scope = stagePagerDuty('success', seen);
    const r = await pager.page({ tenantId: 'acme', schedule: 'secops-primary', level: 1, principalId: 'p-2', summary: 'Approval needed: Isolate web-01?', dedupKey: 'approval-a1-1', url: 'http://reflex.test/api/v1/approvals/a1' });
    expect(scope.isDone()).toBe(true);
    expect(r).toEqual({ ref: 'approval-a1-1' });
    expect(seen[0]?.body).toMatchObject({
      routing_key: SECRETS['pagerduty.routing_key.secops-primary'],
      dedup_key: 'approval-a1-1',
      payload: { summary: 'Approval needed: Isolate web-01?', severity: 'critical', custom_details: { tenant: 'acme', schedule: 'secops-primary', escalation_level: 1, principal_id: 'p-2' } },
      links: [{ href: 'http://reflex.test/api/v1/approvals/a1', text: 'Open in SENTreflex' }],
    });
  });

  it('a schedule without a routing key is config.invalid naming the secret', async () => {
    const err = await failure(pager.page({ tenantId: 'acme', schedule: 'dba', level: 1, summary: 's', dedupKey: 'd' }));
    expect(err).toMatchObject({ code: 'config.invalid', retryable: false });
    expect(err.safeMessage).toContain('pagerduty.routing_key.dba');
  });
});

describe('VendorApprovalLinkSender', () => {
  it('texts the link to the number on record, once per link even when asked twice (records in PostgreSQL)', async () => {
    const ana = await h.person('Ana', ['approver'], 'ana@acme.example');
    await h.vault.set('acme', `contact.phone.${ana.principalId}`, TWILIO_CALL.to, 'test');
    const seen: Seen[] = [];
    // No Message fixture exists; Twilio's Calls 201 fixture carries the fields the client reads (sid, status).
    const scope = stageTwilio('Messages.json', { status: 201, body: TWILIO_CALL }, seen);
    const to = { principalId: ana.principalId, displayName: 'Ana', email: 'ana@acme.example' };
    expect(await sender.send(to, link('l-sms-1'))).toEqual({ via: 'sms' });
    // A second send of the same link (a re-run announce) finds the record and sends nothing.
    const fresh = new VendorApprovalLinkSender({ integrations: new TenantIntegrations({ idempotencyStore: (t) => new DatabaseIdempotencyStore(h.db, t), mailer: () => mailer }), vault: h.vault, tenantConfig: (t) => h.engine.tenants.get(t) });
    expect(await fresh.send(to, link('l-sms-1'))).toEqual({ via: 'sms' });
    expect(scope.isDone()).toBe(true);
    expect(seen).toHaveLength(1);
    const body = seen[0]?.body as { To: string; From: string; Body: string };
    expect(body.To).toBe(TWILIO_CALL.to);
    expect(body.Body).toContain('http://reflex.test/approve/v1.token-l-sms-1.sig');
    expect(body.Body).toContain('Disable `ana@acme.example`?');
    expect(body.Body.length).toBeLessThanOrEqual(1600);
  });

  it('e-mails the link when no phone number is on record', async () => {
    const ben = await h.person('Ben', ['approver'], 'ben@acme.example');
    const before = smtp.received.length;
    expect(await sender.send({ principalId: ben.principalId, displayName: 'Ben', email: 'ben@acme.example' }, link('l-mail-1'))).toEqual({ via: 'email' });
    expect(smtp.received.length - before).toBe(1);
    const mail = parseMail(smtp.received.at(-1)!.raw);
    expect(smtp.received.at(-1)!.envelopeTo).toEqual(['ben@acme.example']);
    expect(mail.headers['message-id']).toBe(messageIdFor('approval-link-l-mail-1-mail'));
    expect(mail.headers.subject).toContain('[SENTreflex] Approval needed: Disable `ana@acme.example`?');
    expect(mail.text).toContain('http://reflex.test/approve/v1.token-l-mail-1.sig');
  });

  it("falls back to e-mail when Twilio refuses the SMS (Twilio's error envelope)", async () => {
    const cy = await h.person('Cy', ['approver'], 'cy@acme.example');
    await h.vault.set('acme', `contact.phone.${cy.principalId}`, '+14155550100', 'test');
    stageTwilio('Messages.json', { status: 400, body: TWILIO_ERROR });
    const before = smtp.received.length;
    expect(await sender.send({ principalId: cy.principalId, displayName: 'Cy', email: 'cy@acme.example' }, link('l-fallback'))).toEqual({ via: 'email' });
    expect(smtp.received.length - before).toBe(1);
  });

  it('reports a failed SMS when there is no address to fall back to, without the phone number', async () => {
    const eve = await h.person('Eve', ['approver']);
    await h.vault.set('acme', `contact.phone.${eve.principalId}`, '+14155550177', 'test');
    stageTwilio('Messages.json', { status: 400, body: TWILIO_ERROR });
    const err = await failure(sender.send({ principalId: eve.principalId, displayName: 'Eve', email: null }, link('l-sms-fails')));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(`${err.message} ${err.safeMessage}`).not.toContain('+14155550177');
  });

  it('sends nothing when it has no way to reach the person', async () => {
    const dee = await h.person('Dee', ['approver']);
    expect(await sender.send({ principalId: dee.principalId, displayName: 'Dee', email: null }, link('l-none'))).toBeUndefined();
  });
});

describe('approval escalation through the real engine', () => {
  async function startGate(): Promise<{ runId: string; approvalId: string }> {
    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'escalates', inputs: {}, startedBy: 'test', manual: true });
    await h.waitForRun(run.id, ['waiting']);
    const gate = await h.db.selectFrom('approvals').select('id').where('run_id', '=', run.id).executeTakeFirstOrThrow();
    return { runId: run.id, approvalId: gate.id };
  }
  async function escalated(approvalId: string) {
    await vi.waitFor(
      async () => expect((await engineDb(h.db).selectFrom('approvals').select('escalation_level').where('id', '=', approvalId).executeTakeFirstOrThrow()).escalation_level).toBe(1),
      { timeout: 15_000, interval: 25 },
    );
  }

  it('e-mails the primary a link, pages PagerDuty on expiry and texts the next on-call, who decides', async () => {
    // The harness's recording fakes, pointed at the vendor ports (the notifier and gates read them per use).
    h.pager.page = pager.page.bind(pager);
    h.links.send = sender.send.bind(sender) as never;
    const primary = await h.person('Pia', ['viewer'], 'pia@acme.example');
    const secondary = await h.person('Sam', ['viewer'], 'sam@acme.example');
    await h.vault.set('acme', `contact.phone.${secondary.principalId}`, '+14155550123', 'test');
    await h.engine.oncall.setRotation(h.tenantId, 'secops-primary', [primary.principalId, secondary.principalId], 'test');
    const pages: Seen[] = [];
    const texts: Seen[] = [];
    const pd = stagePagerDuty('success', pages);
    const sms = stageTwilio('Messages.json', { status: 201, body: TWILIO_CALL }, texts);

    const { runId, approvalId } = await startGate();
    await escalated(approvalId);
    // nock can report an interceptor done before its reply callback has recorded the request.
    await vi.waitFor(() => expect(pd.isDone() && sms.isDone() && pages.length > 0 && texts.length > 0).toBe(true), { timeout: 10_000, interval: 25 });
    expect(pages[0]?.body).toMatchObject({ dedup_key: `approval-${approvalId}-1`, payload: { summary: 'Approval needed: Isolate web-01?', severity: 'critical' } });
    expect((texts[0]?.body as { To: string; Body: string }).To).toBe('+14155550123');
    await vi.waitFor(
      async () => {
        const rows = await engineDb(h.db).selectFrom('approval_links').select(['principal_id', 'sent_via']).where('approval_id', '=', approvalId).execute();
        expect(rows.map((r) => [r.principal_id, r.sent_via]).sort()).toEqual([[primary.principalId, 'email'], [secondary.principalId, 'sms']].sort());
      },
      { timeout: 10_000, interval: 25 },
    );
    const audit = await h.db.selectFrom('audit_log').select('delta').where('action', '=', 'approval.escalate').where('target', '=', `approval:${approvalId}`).executeTakeFirstOrThrow();
    expect(audit.delta).toMatchObject({ level: 1, principalId: secondary.principalId, paged: true });

    const r = await h.service.decide(h.tenantId, approvalId, { ...secondary, roles: [] }, 'approve', undefined, 'sentchat.button');
    expect(r.status).toBe('approved');
    expect(await h.waitForRun(runId)).toMatchObject({ status: 'succeeded' });
  });

  it('escalates even when the pager cannot page (not configured), and records why', async () => {
    await h.vault.delete('acme', 'pagerduty.routing_key.secops-primary', 'test');
    // The secondary's SMS goes out again for this new gate.
    stageTwilio('Messages.json', { status: 201, body: TWILIO_CALL });
    const { approvalId } = await startGate();
    await escalated(approvalId);
    await vi.waitFor(async () => {
      const rows = await engineDb(h.db).selectFrom('approval_links').select('sent_via').where('approval_id', '=', approvalId).execute();
      expect(rows.map((r) => r.sent_via).sort()).toEqual(['email', 'sms']);
    }, { timeout: 10_000, interval: 25 });
    const audit = await h.db.selectFrom('audit_log').select('delta').where('action', '=', 'approval.escalate').where('target', '=', `approval:${approvalId}`).executeTakeFirstOrThrow();
    expect(audit.delta).toMatchObject({ level: 1, paged: false, pageError: 'config.invalid' });
  });
});
