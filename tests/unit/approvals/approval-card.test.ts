import { describe, expect, it } from 'vitest';
import { renderApprovalCard, type ApprovalCardView } from '../../../src/approvals/approval-card.ts';

const view: ApprovalCardView = {
  id: '6f1c2a7e-9b3d-4c5e-8f00-112233445566',
  summary: 'Disable ana@acme.example?',
  status: 'pending',
  policy: { roles: ['approver'], users: [], userPrincipalIds: [], quorum: 2, destructive: true, onExpiry: 'deny', expiresMs: 900_000 },
  expiresAt: new Date('2026-11-21T10:15:00Z'),
  escalationLevel: 0,
  playbookId: 'brute-force-containment',
  stepId: 'approve_disable',
  requestedBy: 'pipeline',
  decisions: [{ displayName: 'Bob', principalId: 'p2', decision: 'approve', reason: null, via: 'slack.button', at: new Date('2026-11-21T10:01:00Z') }],
};

describe('renderApprovalCard', () => {
  it('carries only the approval id on its buttons, and shows quorum progress and who decided', () => {
    const card = renderApprovalCard(view);
    expect(card.buttons).toEqual([
      { actionId: 'approval.approve', label: 'Approve', value: view.id, style: 'primary' },
      { actionId: 'approval.deny', label: 'Deny', value: view.id, style: 'danger' },
    ]);
    expect(card.fields).toContainEqual({ label: 'Quorum', value: '1 of 2 approval(s)' });
    expect(card.context).toEqual([':white_check_mark: Bob approved via slack.button at 2026-11-21T10:01:00.000Z']);
  });

  it('drops the buttons once the gate is closed and says how it ended', () => {
    const card = renderApprovalCard({
      ...view,
      status: 'denied',
      decisions: [...view.decisions, { displayName: 'Carol', principalId: 'p3', decision: 'deny', reason: 'wrong user', via: 'mobile-link', at: new Date('2026-11-21T10:02:00Z') }],
    });
    expect(card.buttons).toBeUndefined();
    expect(card.fields![0]).toEqual({ label: 'Status', value: ':no_entry: Denied' });
    expect(card.context![1]).toBe(':x: Carol denied via mobile-link at 2026-11-21T10:02:00.000Z: wrong user');
  });
});
