import { describe, expect, it } from 'vitest';
import { checkDecision, tally, type ApprovalPolicy, type DeciderFacts, type GateFacts } from '../../../src/approvals/approval-policy.ts';

const policy: ApprovalPolicy = {
  roles: ['approver'],
  users: ['slack:T1:U9'],
  userPrincipalIds: ['p-named'],
  oncall: 'secops-primary',
  quorum: 2,
  destructive: true,
  onExpiry: 'deny',
  expiresMs: 15 * 60_000,
};
const now = new Date('2026-11-21T10:00:00Z');
const gate: GateFacts = { status: 'pending', expiresAt: new Date('2026-11-21T10:15:00Z'), requestedBy: 'principal:p-req', escalationLevel: 0 };
const who = (over: Partial<DeciderFacts> = {}): DeciderFacts => ({ principalId: 'p1', roles: ['approver'], identities: [], oncallPositions: [], ...over });

describe('checkDecision', () => {
  it('accepts an approver by role, a named user (by principal or identity) and the current on-call', () => {
    expect(checkDecision({ policy, gate, decider: who(), decision: 'approve', prior: [], now })).toEqual({ ok: true, as: 'role approver' });
    expect(checkDecision({ policy, gate, decider: who({ principalId: 'p-named', roles: [] }), decision: 'approve', prior: [], now })).toEqual({ ok: true, as: 'named approver' });
    expect(checkDecision({ policy, gate, decider: who({ roles: [], identities: ['slack:T1:U9'] }), decision: 'approve', prior: [], now })).toEqual({ ok: true, as: 'named approver' });
    expect(checkDecision({ policy, gate, decider: who({ roles: [], oncallPositions: [0] }), decision: 'approve', prior: [], now })).toEqual({ ok: true, as: 'on call for secops-primary' });
  });

  it('lets the next on-call decide only once the gate escalated to them', () => {
    const next = who({ roles: ['analyst'], oncallPositions: [1] });
    expect(checkDecision({ policy, gate, decider: next, decision: 'approve', prior: [], now })).toMatchObject({ ok: false, code: 'not_eligible' });
    expect(checkDecision({ policy, gate: { ...gate, escalationLevel: 1 }, decider: next, decision: 'approve', prior: [], now })).toMatchObject({ ok: true });
  });

  it('refuses outsiders, naming who may decide', () => {
    const v = checkDecision({ policy, gate, decider: who({ roles: ['analyst', 'responder'] }), decision: 'approve', prior: [], now });
    expect(v).toEqual({ ok: false, code: 'not_eligible', message: 'You may not decide this approval: it needs role approver, or named approvers (slack:T1:U9), or the on-call of secops-primary.' });
  });

  it('never lets the requester approve a destructive gate, but lets them deny it', () => {
    const requester = who({ principalId: 'p-req' });
    expect(checkDecision({ policy, gate, decider: requester, decision: 'approve', prior: [], now })).toMatchObject({ ok: false, code: 'self_approval' });
    expect(checkDecision({ policy, gate, decider: requester, decision: 'deny', prior: [], now })).toMatchObject({ ok: true });
    expect(checkDecision({ policy: { ...policy, destructive: false }, gate, decider: requester, decision: 'approve', prior: [], now })).toMatchObject({ ok: true });
  });

  it('refuses a second decision by the same principal, decisions after close, and after expiry', () => {
    expect(checkDecision({ policy, gate, decider: who(), decision: 'approve', prior: [{ principalId: 'p1', decision: 'approve' }], now })).toMatchObject({ ok: false, code: 'already_decided' });
    expect(checkDecision({ policy, gate: { ...gate, status: 'denied' }, decider: who(), decision: 'approve', prior: [], now })).toMatchObject({ ok: false, code: 'closed', message: 'This approval was already denied; nothing was recorded.' });
    // Expiry is checked against the clock even before the expiry job closed the gate.
    expect(checkDecision({ policy, gate, decider: who(), decision: 'approve', prior: [], now: new Date('2026-11-21T10:15:00Z') })).toMatchObject({ ok: false, code: 'expired' });
  });

  it('checks the gate state before eligibility, so a closed gate says so to anyone', () => {
    expect(checkDecision({ policy, gate: { ...gate, status: 'approved' }, decider: who({ roles: [] }), decision: 'approve', prior: [], now })).toMatchObject({ code: 'closed' });
  });
});

describe('tally', () => {
  it('opens at quorum distinct approvals and closes on any denial', () => {
    expect(tally({ quorum: 2 }, [{ principalId: 'a', decision: 'approve' }])).toEqual({ status: 'pending', approvals: 1, remaining: 1 });
    expect(tally({ quorum: 2 }, [{ principalId: 'a', decision: 'approve' }, { principalId: 'a', decision: 'approve' }])).toEqual({ status: 'pending', approvals: 1, remaining: 1 });
    expect(tally({ quorum: 2 }, [{ principalId: 'a', decision: 'approve' }, { principalId: 'b', decision: 'approve' }])).toEqual({ status: 'approved', approvals: 2, remaining: 0 });
    expect(tally({ quorum: 2 }, [{ principalId: 'a', decision: 'approve' }, { principalId: 'c', decision: 'deny' }])).toMatchObject({ status: 'denied' });
  });
});
