import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { ENGINE_PORTS } from '../../../src/engine/engine-ports.ts';
import { signPhoneAck, verifyPhoneAck } from '../../../src/engine/phone-ack/phone-ack-token.ts';
import { twilioSignature } from '../../../src/integrations/twilio/twilio-signature.ts';
import { createIncident } from '../../../src/store/incidents.ts';
import { grantRole } from '../../../src/store/principals.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';
import { SECRETS, TWILIO_ACCOUNT, TWILIO_CALL, stagePagerDuty, stageTwilio, type Seen } from './helpers/vendor-stubs.ts';

/**
 * "Press 1 to acknowledge" end to end, through the running app: a playbook pages the on-call
 * (PagerDuty) and calls them (Twilio, the call's TwiML captured at the nock edge); the keypress
 * comes back as Twilio would post it, signed with X-Twilio-Signature over the public URL. Checks:
 * the TwiML's <Gather> carries a signed URL bound to tenant, run, step and callee; a bad
 * signature, a forged or expired token, another account, another digit and a malformed form
 * change nothing; the keypress is recorded once (audit row, timeline entry) and PagerDuty gets
 * exactly one acknowledge for the run's page (fixture: pagerduty_events_v2_response_202_success_example.json);
 * a replay of the same request changes nothing.
 */

const TENANT = 'acme';
const PUBLIC = 'https://reflex.example.test';
const LINK_SECRET = 'phone-ack-test-link-secret-0123456789abcdef';
const AUTH_TOKEN: string = SECRETS['twilio.auth_token'];
const PLAYBOOK = `
id: wake-oncall-test
name: Wake the on-call
version: 1
trigger: { manual: true }
steps:
  - id: page_oncall
    action: pager.page
    with: { summary: "SEV1: ransomware on web-01", schedule: secops-primary }
  - id: call_oncall
    action: phone.call
    with: { message: "SEV1: ransomware on web-01. Acknowledge the page.", schedule: secops-primary }
`;

let server: TestServer;
let dir: string;
let principalId: string;
let incidentId: string;
let runId: string;
let ackUrl: string;
let pageDedupKey: string;
const pdSeen: Seen[] = [];

async function countAudit(action: string): Promise<number> {
  const rows = await server.store.db.selectFrom('audit_log').select('seq').where('action', '=', action).where('tenant_id', '=', TENANT).execute();
  return rows.length;
}

async function timelineKinds(): Promise<string[]> {
  const rows = await server.store.db.selectFrom('timeline_entries').select('kind').where('incident_id', '=', incidentId).orderBy('id').execute();
  return rows.map((r) => r.kind);
}

/** The form of a <Gather> action request (twilio.com/docs/voice/twiml/gather: the call's parameters plus Digits). */
function gatherForm(digits: string, overrides: Record<string, string> = {}): [string, string][] {
  return Object.entries({
    AccountSid: TWILIO_ACCOUNT,
    ApiVersion: '2010-04-01',
    CallSid: TWILIO_CALL.sid,
    CallStatus: 'in-progress',
    Called: TWILIO_CALL.to,
    Caller: '+15017122661',
    Digits: digits,
    Direction: 'outbound-api',
    FinishedOnKey: '',
    From: '+15017122661',
    To: TWILIO_CALL.to,
    msg: 'Gather End',
    ...overrides,
  });
}

/** Posts as Twilio would: to the URL in the TwiML, signed over that public URL with `token`. */
async function press(url: string, form: [string, string][], token = AUTH_TOKEN): Promise<{ status: number; text: string; type: string | null }> {
  const { pathname, search } = new URL(url);
  const res = await fetch(`${server.url}${pathname}${search}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(token, url, form) },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  dir = mkdtempSync(path.join(os.tmpdir(), 'reflex-phone-ack-'));
  writeFileSync(path.join(dir, 'wake-oncall-test.yaml'), PLAYBOOK);
  server = await startTestServer({ queue: 'postgres', env: { REFLEX_PUBLIC_URL: PUBLIC, REFLEX_LINK_SECRET: LINK_SECRET, REFLEX_PLAYBOOK_DIRS: dir } });
  await ensureTenant(server.store.db, TENANT, 'ACME Corp');
  await server.store.db
    .updateTable('tenants')
    .set({ config: JSON.stringify({ twilio: { account_sid: TWILIO_ACCOUNT, from: '+15017122661' } }) })
    .where('id', '=', TENANT)
    .execute();
  principalId = (await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-ana' }, tenantId: TENANT, role: 'responder', actor: 'test', displayName: 'Ana Oncall' })).principalId;
  for (const name of ['twilio.auth_token', 'pagerduty.routing_key.secops-primary'] as const) await server.store.vault.set(TENANT, name, SECRETS[name], 'test');
  await server.store.vault.set(TENANT, `contact.phone.${principalId}`, TWILIO_CALL.to, 'test');
  await ENGINE_PORTS.engine!.engine.oncall.setRotation(TENANT, 'secops-primary', [principalId], 'test');
  incidentId = (await createIncident(server.store.db, { tenantId: TENANT, title: 'Ransomware on web-01', severity: 1, createdBy: 'test' })).id;

  // The run: one page, one call. The call's TwiML is what Twilio would execute.
  const twilioSeen: Seen[] = [];
  stagePagerDuty('success', pdSeen);
  stageTwilio('Calls.json', { status: 201, body: TWILIO_CALL }, twilioSeen);
  const started = await fetch(`${server.url}/api/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ playbook: 'wake-oncall-test', tenant: TENANT, incident: incidentId }),
  });
  expect(started.status).toBe(201);
  runId = ((await started.json()) as { id: string }).id;
  await vi.waitFor(
    async () => {
      const run = await server.store.db.selectFrom('playbook_runs').select(['status', 'error']).where('id', '=', runId).executeTakeFirstOrThrow();
      if (run.status === 'failed') throw new Error(`run failed: ${run.error}`);
      if (run.status !== 'succeeded') throw new Error(`run is ${run.status}`);
    },
    { timeout: 20_000, interval: 50 },
  );
  const twiml = (twilioSeen[0]?.body as { Twiml: string }).Twiml;
  const gather = /<Gather numDigits="1" method="POST" action="([^"]+)">/.exec(twiml);
  ackUrl = (gather?.[1] ?? '').replaceAll('&amp;', '&');
  pageDedupKey = String((pdSeen[0]?.body as { dedup_key: string }).dedup_key);
  pdSeen.length = 0;
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  nock.cleanAll();
  nock.enableNetConnect();
});

afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('phone.call asks for a keypress', () => {
  it("the call's TwiML gathers one digit and posts it to a signed URL bound to tenant, run, step and callee", () => {
    expect(ackUrl).toMatch(/^https:\/\/reflex\.example\.test\/api\/v1\/phone\/ack\/pa1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const v = verifyPhoneAck({ secret: Buffer.from(LINK_SECRET, 'utf8'), token: ackUrl.split('/').pop()!, nowMilliseconds: Date.now() });
    expect(v).toMatchObject({ ok: true, claims: { tenantId: TENANT, runId, stepId: 'call_oncall', principalId } });
  });
});

describe('POST /api/v1/phone/ack/:token', () => {
  it('refuses a request not signed by Twilio with the tenant auth token, and records nothing', async () => {
    const r = await press(ackUrl, gatherForm('1'), 'not-the-auth-token-0123456789');
    expect(r.status).toBe(403);
    expect(r.type).toContain('text/xml');
    expect(r.text).toContain('could not be verified');
    // Signed over another URL (what a proxy might have rewritten), or tampered after signing.
    const form = gatherForm('1');
    const wrongUrl = await fetch(`${server.url}${new URL(ackUrl).pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(AUTH_TOKEN, `http://127.0.0.1${new URL(ackUrl).pathname}`, form) },
      body: new URLSearchParams(form).toString(),
    });
    expect(wrongUrl.status).toBe(403);
    const unsigned = await fetch(`${server.url}${new URL(ackUrl).pathname}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    expect(unsigned.status).toBe(403);
    expect(await countAudit('phone.acknowledge')).toBe(0);
    expect(await timelineKinds()).not.toContain('phone.acknowledged');
  });

  it('refuses a forged token, another Twilio account and a malformed form', async () => {
    const forged = ackUrl.replace(/pa1\.([A-Za-z0-9_-])/, (_m, c: string) => `pa1.${c === 'A' ? 'B' : 'A'}`);
    expect((await press(forged, gatherForm('1'))).status).toBe(403);
    const otherAccount = await press(ackUrl, gatherForm('1', { AccountSid: `AC${'b'.repeat(32)}` }));
    expect(otherAccount.status).toBe(403);
    const malformed = await press(ackUrl, gatherForm('1', { CallSid: 'not-a-call' }));
    expect(malformed.status).toBe(400);
    expect(malformed.text).toContain('not understood');
    const json = await fetch(`${server.url}${new URL(ackUrl).pathname}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Digits":"1"}' });
    expect(json.status).toBe(400);
    expect(await countAudit('phone.acknowledge')).toBe(0);
  });

  it('an expired token answers so the caller hears it, and records nothing', async () => {
    const expired = signPhoneAck(Buffer.from(LINK_SECRET, 'utf8'), { tenantId: TENANT, runId, stepId: 'call_oncall', principalId, expiresAtMs: Date.now() - 1000 });
    const r = await press(`${PUBLIC}/api/v1/phone/ack/${expired}`, gatherForm('1'));
    expect(r.status).toBe(200);
    expect(r.text).toContain('can no longer be acknowledged');
    expect(await countAudit('phone.acknowledge')).toBe(0);
  });

  it('another digit records nothing and asks again at the same signed URL', async () => {
    const r = await press(ackUrl, gatherForm('2'));
    expect(r.status).toBe(200);
    expect(r.text).toContain('Nothing was recorded.');
    expect(r.text).toContain(`<Gather numDigits="1" method="POST" action="${ackUrl}">`);
    expect(await countAudit('phone.acknowledge')).toBe(0);
  });

  it('1 records the acknowledgement once and acknowledges the run\'s PagerDuty page once; a replay changes nothing', async () => {
    const scope = stagePagerDuty('success', pdSeen);
    const r = await press(ackUrl, gatherForm('1'));
    expect(r.status).toBe(200);
    expect(r.text).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Acknowledged. Goodbye.</Say><Hangup/></Response>');
    expect(scope.isDone()).toBe(true);
    expect(pdSeen).toHaveLength(1);
    expect(pdSeen[0]?.body).toEqual({ routing_key: SECRETS['pagerduty.routing_key.secops-primary'], event_action: 'acknowledge', dedup_key: pageDedupKey });

    const audit = await server.store.db.selectFrom('audit_log').select(['actor', 'target', 'delta']).where('action', '=', 'phone.acknowledge').execute();
    expect(audit).toEqual([
      { actor: `principal:${principalId}`, target: `run:${runId}/step:call_oncall`, delta: { callSid: TWILIO_CALL.sid, principalId, via: 'twilio-keypress' } },
    ]);
    expect(await countAudit('pager.acknowledge')).toBe(1);
    const kinds = await timelineKinds();
    expect(kinds.filter((k) => k === 'phone.acknowledged')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'pager.acknowledged')).toHaveLength(1);
    const entry = await server.store.db.selectFrom('timeline_entries').select('text').where('incident_id', '=', incidentId).where('kind', '=', 'phone.acknowledged').executeTakeFirstOrThrow();
    expect(entry.text).toContain('Ana Oncall acknowledged by phone');

    // Twilio retrying, or someone replaying the captured request: same signature, same body.
    const replay = await press(ackUrl, gatherForm('1'));
    expect(replay.status).toBe(200);
    expect(replay.text).toContain('already acknowledged');
    expect(pdSeen).toHaveLength(1);
    expect(await countAudit('phone.acknowledge')).toBe(1);
    expect(await countAudit('pager.acknowledge')).toBe(1);
    expect((await timelineKinds()).filter((k) => k.endsWith('acknowledged'))).toHaveLength(2);
  });
});
