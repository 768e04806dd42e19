import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyApprovalLink } from '../../../src/approvals/approval-links.ts';
import { registerApprovalPage } from '../../../src/approvals/approval-page.ts';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { ReflexError } from '../../../src/errors.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

const step = (id: string) => `  - id: ${id}\n    script: { javascript: "return '${id} ran'" }\n`;

const QUORUM = playbook(`
id: quorum
name: Two of three
version: 1
trigger: { manual: true }
steps:
  - id: gate
    approval:
      approvers: { roles: [approver] }
      quorum: 2
      expires: 1h
      message: "Disable ana@acme.example?"
${step('disable_user')}`);

const EXPIRES = playbook(`
id: expires
name: Expires
version: 1
trigger: { manual: true }
steps:
  - id: gate
    approval:
      approvers: { roles: [approver] }
      expires: 1s
${step('gated')}`);

const ESCALATES = playbook(`
id: escalates
name: Escalates
version: 1
trigger: { manual: true }
steps:
  - id: gate
    approval:
      approvers: { oncall: secops-primary }
      expires: 2s
      on_expiry: escalate
${step('gated')}`);

let h: Harness;
let page: FastifyInstance;
let alice: Awaited<ReturnType<Harness['person']>>;
let bob: Awaited<ReturnType<Harness['person']>>;
let carol: Awaited<ReturnType<Harness['person']>>;
let victor: Awaited<ReturnType<Harness['person']>>;

async function start(playbookId: string, startedBy = 'test', incidentId?: string) {
  const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId, inputs: {}, startedBy, manual: true, ...(incidentId ? { incidentId } : {}) });
  await h.waitForRun(run.id, ['waiting']);
  const gate = await h.db.selectFrom('approvals').selectAll().where('run_id', '=', run.id).executeTakeFirstOrThrow();
  return { runId: run.id, approvalId: gate.id };
}

async function refusal(p: Promise<unknown>): Promise<ReflexError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  h = await createHarness({ playbooks: [QUORUM, EXPIRES, ESCALATES] });
  alice = await h.person('Alice', ['approver'], 'alice@acme.example');
  bob = await h.person('Bob', ['approver'], 'bob@acme.example');
  carol = await h.person('Carol', ['approver']);
  victor = await h.person('Victor', ['analyst']);
  page = Fastify();
  registerApprovalPage(page, { db: h.db, gates: h.engine.gates, linkSecret: h.linkSecret });
  await page.ready();
});
afterAll(async () => {
  await page.close();
  await h.stop();
});

describe('approval gates', () => {
  it('needs 2 of 3 approvers, refuses the requester, double clicks and outsiders, and updates the card in place', async () => {
    const incidentId = await h.incident();
    const { runId, approvalId } = await start('quorum', `principal:${alice.principalId}`, incidentId);
    // The card went to the incident channel and by DM to the eligible approvers (not the requester).
    // The card is posted after the gate's transaction commits.
    await vi.waitFor(() => expect(h.chat.dms.filter((d) => d.message.buttons?.[0]?.value === approvalId)).toHaveLength(2), { timeout: 5000, interval: 20 });
    const card = h.chat.posts.find((p) => p.message.buttons?.some((b) => b.value === approvalId))!;
    expect(card.channelId).toMatch(/^C-inc-/);
    expect(card.message.buttons!.map((b) => [b.actionId, b.value])).toEqual([
      ['approval.approve', approvalId],
      ['approval.deny', approvalId],
    ]);
    const dmTo = h.chat.dms.filter((d) => d.message.buttons?.[0]?.value === approvalId).map((d) => d.user.userId);
    expect(dmTo).toHaveLength(2);
    expect(dmTo.some((u) => alice.identity.endsWith(u))).toBe(false);

    const self = await refusal(h.service.decide(h.tenantId, approvalId, { ...alice, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(self.code).toBe('auth.forbidden');
    expect(self.safeMessage).toMatch(/someone else must approve/);
    const outsider = await refusal(h.service.decide(h.tenantId, approvalId, { ...victor, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(outsider.code).toBe('auth.forbidden');
    expect(outsider.safeMessage).toMatch(/needs role approver/);

    const first = await h.service.decide(h.tenantId, approvalId.slice(0, 8), { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button');
    expect(first).toMatchObject({ status: 'pending', remaining: 1 });
    const doubleClick = await refusal(h.service.decide(h.tenantId, approvalId, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(doubleClick.code).toBe('conflict');
    expect(doubleClick.safeMessage).toMatch(/already approved/);
    // Nothing ran yet: one approval of two.
    expect((await h.steps(runId)).map((s) => s.step_id)).toEqual(['gate']);

    const second = await h.service.decide(h.tenantId, approvalId, { ...carol, roles: ['approver'] }, 'approve', undefined, 'sentchat.button');
    expect(second.status).toBe('approved');
    expect(await h.waitForRun(runId)).toMatchObject({ status: 'succeeded' });
    expect((await h.steps(runId)).find((s) => s.step_id === 'disable_user')).toMatchObject({ status: 'succeeded', output: 'disable_user ran' });

    const late = await refusal(h.service.decide(h.tenantId, approvalId, { ...alice, roles: ['approver'] }, 'deny', 'too late', 'sentchat.button'));
    expect(late.safeMessage).toMatch(/already approved/);

    // Each decision re-rendered every copy of the card; the last one shows who decided what.
    const updates = h.chat.updates.filter((u) => u.message.text === 'Disable ana@acme.example?');
    expect(updates.length).toBeGreaterThanOrEqual(2 * 3);
    const last = updates[updates.length - 1]!.message;
    expect(last.buttons).toBeUndefined();
    expect(last.context!.join('\n')).toMatch(/Bob approved via sentchat.button[\s\S]*Carol approved via sentchat.button/);

    const audit = (await h.db.selectFrom('audit_log').select(['action', 'delta']).where('target', '=', `approval:${approvalId}`).orderBy('seq').execute()).filter(
      (a) => !['approval.card.post', 'approval.link.issue', 'approval.link.sent'].includes(a.action),
    );
    expect(audit.map((a) => a.action)).toEqual([
      'approval.open',
      'approval.refused',
      'approval.refused',
      'approval.decide',
      'approval.refused',
      'approval.decide',
      'approval.refused',
    ]);
    expect(audit.filter((a) => a.action === 'approval.refused').map((a) => (a.delta as { refusal: string }).refusal)).toEqual(['self_approval', 'not_eligible', 'already_decided', 'closed']);
    const timeline = await h.db.selectFrom('timeline_entries').select(['kind', 'text']).where('incident_id', '=', incidentId).where('kind', 'like', 'approval.%').execute();
    expect(timeline.map((t) => t.kind)).toEqual(['approval.requested', 'approval.decided', 'approval.decided']);
  });

  it('refuses forged and replayed button payloads and audits them', async () => {
    const { approvalId } = await start('quorum');
    const forged = [
      'not-an-id',
      '00000000-0000-4000-8000-000000000000',
      `${approvalId}' or 1=1`,
    ];
    for (const value of forged) {
      const e = await refusal(h.service.decide(h.tenantId, value, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
      expect(['input.invalid', 'not_found']).toContain(e.code);
    }
    // Another tenant's click on this gate's id finds nothing.
    const { ensureTenant } = await import('../../../src/app/runtime.ts');
    await ensureTenant(h.db, 'other', 'Other');
    const crossTenant = await refusal(h.service.decide('other', approvalId, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(crossTenant.code).toBe('not_found');
    // A replay of a real click is the same principal deciding again.
    await h.service.decide(h.tenantId, approvalId, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button');
    const replay = await refusal(h.service.decide(h.tenantId, approvalId, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(replay.code).toBe('conflict');
    const refused = await h.db.selectFrom('audit_log').select('delta').where('action', '=', 'approval.refused').where('actor', '=', `principal:${bob.principalId}`).execute();
    expect(refused.map((r) => (r.delta as { refusal: string }).refusal)).toEqual(expect.arrayContaining(['malformed', 'not_found', 'already_decided']));
    expect(refused.length).toBeGreaterThanOrEqual(5);
    const gate = await h.db.selectFrom('approvals').select('status').where('id', '=', approvalId).executeTakeFirstOrThrow();
    expect(gate.status).toBe('pending');
  });

  it('denies a gate that expires, so the gated step never runs', async () => {
    const { runId, approvalId } = await start('expires');
    const done = await h.waitForRun(runId);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/expired/);
    expect((await h.steps(runId)).find((s) => s.step_id === 'gated')).toBeUndefined();
    const gate = await h.db.selectFrom('approvals').select('status').where('id', '=', approvalId).executeTakeFirstOrThrow();
    expect(gate.status).toBe('expired');
    const late = await refusal(h.service.decide(h.tenantId, approvalId, { ...bob, roles: ['approver'] }, 'approve', undefined, 'sentchat.button'));
    expect(late.safeMessage).toMatch(/has expired/);
  });

  it('escalates an unanswered gate to the next on-call, pages them, and restarts the clock', async () => {
    const primary = await h.person('Pia', ['viewer']);
    const secondary = await h.person('Sam', ['viewer']);
    await h.engine.oncall.setRotation(h.tenantId, 'secops-primary', [primary.principalId, secondary.principalId], 'test');
    const { runId, approvalId } = await start('escalates');
    // The secondary cannot decide before the escalation reaches them.
    const early = await refusal(h.service.decide(h.tenantId, approvalId, { ...secondary, roles: [] }, 'approve', undefined, 'sentchat.button'));
    expect(early.code).toBe('auth.forbidden');
    await vi.waitFor(
      async () => {
        const g = await engineDb(h.db).selectFrom('approvals').select('escalation_level').where('id', '=', approvalId).executeTakeFirstOrThrow();
        expect(g.escalation_level).toBe(1);
      },
      { timeout: 10_000, interval: 25 },
    );
    expect(h.pager.pages).toEqual([expect.objectContaining({ tenantId: h.tenantId, schedule: 'secops-primary', level: 1, principalId: secondary.principalId, dedupKey: `approval-${approvalId}-1` })]);
    // The next on-call also gets the card by DM once it is their turn (the primary had it from the start).
    await vi.waitFor(() => expect(h.chat.dms.filter((d) => d.message.buttons?.[0]?.value === approvalId).map((d) => d.user.userId)).toEqual([primary.identity.split(':')[2], secondary.identity.split(':')[2]]), { timeout: 5000, interval: 20 });
    const r = await h.service.decide(h.tenantId, approvalId, { ...secondary, roles: [] }, 'approve', undefined, 'sentchat.button');
    expect(r.status).toBe('approved');
    expect(await h.waitForRun(runId)).toMatchObject({ status: 'succeeded' });
    const actions = await h.db.selectFrom('audit_log').select('action').where('target', '=', `approval:${approvalId}`).execute();
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['approval.escalate', 'approval.decide']));
  });

  it('decides through a signed one-time link that works once', async () => {
    const { runId, approvalId } = await start('quorum');
    // Links of this gate only (earlier tests' gates may still be announcing): by the nonce in the token.
    const linkOf = async (principalId: string) => {
      const rows = await engineDb(h.db).selectFrom('approval_links').select('id').where('approval_id', '=', approvalId).where('principal_id', '=', principalId).execute();
      const ids = new Set(rows.map((r) => r.id));
      return h.links.sent.find((s) => {
        const v = verifyApprovalLink({ secret: h.linkSecret, token: s.url.split('/approve/')[1]!, nowMilliseconds: Date.now() });
        return v.ok && ids.has(v.payload.linkId);
      });
    };
    await vi.waitFor(async () => expect((await linkOf(bob.principalId)) && (await linkOf(alice.principalId))).toBeTruthy(), { timeout: 5000, interval: 20 });
    const bobsLink = (await linkOf(bob.principalId))!;
    const alicesLink = (await linkOf(alice.principalId))!;
    expect(bobsLink.url).toMatch(/^http:\/\/reflex\.test\/approve\/v1\./);
    const path = new URL(bobsLink.url).pathname;

    const view = await page.inject({ method: 'GET', url: path });
    expect(view.statusCode).toBe(200);
    expect(view.body).toContain('Disable ana@acme.example?');
    const csrf = /name="csrf" value="([^"]+)"/.exec(view.body)![1]!;
    const cookie = String(view.headers['set-cookie']).split(';')[0]!;

    // Without the CSRF cookie, or with a tampered token, nothing is recorded.
    const noCookie = await page.inject({ method: 'POST', url: path, payload: `csrf=${csrf}&decision=approve`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(noCookie.statusCode).toBe(403);
    const tampered = await page.inject({ method: 'GET', url: `${path.slice(0, -3)}abc` });
    expect(tampered.statusCode).toBe(410);

    const ok = await page.inject({ method: 'POST', url: path, payload: `csrf=${csrf}&decision=approve&reason=`, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('1 of 2 approvals so far');
    const again = await page.inject({ method: 'POST', url: path, payload: `csrf=${csrf}&decision=approve`, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
    expect(again.statusCode).toBe(410);
    expect(again.body).toContain('used already');
    expect((await page.inject({ method: 'GET', url: path })).statusCode).toBe(410);

    // Alice's own link still works for Alice (a different nonce), and her approval completes the gate.
    const a = await page.inject({ method: 'GET', url: new URL(alicesLink.url).pathname });
    const aCsrf = /name="csrf" value="([^"]+)"/.exec(a.body)![1]!;
    const aCookie = String(a.headers['set-cookie']).split(';')[0]!;
    const aOk = await page.inject({ method: 'POST', url: new URL(alicesLink.url).pathname, payload: `csrf=${aCsrf}&decision=approve`, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: aCookie } });
    expect(aOk.body).toContain('now approved');
    expect(await h.waitForRun(runId)).toMatchObject({ status: 'succeeded' });
    const decisions = await h.db.selectFrom('approval_decisions').select(['principal_id', 'via']).where('approval_id', '=', approvalId).execute();
    expect(decisions).toHaveLength(2);
    expect(decisions.every((d) => d.via === 'mobile-link')).toBe(true);
  });
});
