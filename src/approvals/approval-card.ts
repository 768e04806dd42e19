import type { ChatMessage } from '../bot/chat-types.ts';
import { describeApprovers, tally, type ApprovalPolicy, type GateStatus } from './approval-policy.ts';

/**
 * The approval card as a platform-neutral `ChatMessage`: what is asked, who may decide, how many
 * must agree, until when, and who decided what so far. While the gate is pending it carries
 * Approve and Deny buttons whose value is only the approval id; everything else is decided on the
 * server. Rendered again after every decision so each copy (channel and DMs) updates in place.
 *
 * @example
 * transport.update(ref, renderApprovalCard(view));
 */
export const APPROVE_ACTION_ID = 'approval.approve';
export const DENY_ACTION_ID = 'approval.deny';

export interface ApprovalCardView {
  id: string;
  summary: string;
  status: GateStatus;
  policy: ApprovalPolicy;
  expiresAt: Date;
  escalationLevel: number;
  playbookId?: string;
  stepId?: string;
  requestedBy: string;
  decisions: { displayName: string; principalId: string; decision: 'approve' | 'deny'; reason: string | null; via: string; at: Date }[];
}

const STATUS_LINE: Record<GateStatus, string> = {
  pending: ':hourglass_flowing_sand: Waiting for approval',
  approved: ':white_check_mark: Approved',
  denied: ':no_entry: Denied',
  expired: ':alarm_clock: Expired without a decision (denied)',
  cancelled: ':heavy_minus_sign: Cancelled',
};

export function renderApprovalCard(view: ApprovalCardView): ChatMessage {
  const t = tally(view.policy, view.decisions);
  const fields = [
    { label: 'Status', value: STATUS_LINE[view.status] },
    { label: 'Approvers', value: describeApprovers(view.policy) },
    { label: 'Quorum', value: `${t.approvals} of ${view.policy.quorum} approval(s)` },
    { label: 'Expires', value: view.expiresAt.toISOString() },
  ];
  if (view.playbookId) fields.push({ label: 'Playbook', value: `${view.playbookId}${view.stepId ? ` / ${view.stepId}` : ''}` });
  if (view.policy.destructive) fields.push({ label: 'Destructive', value: 'yes: the requester cannot approve it' });
  if (view.escalationLevel > 0) fields.push({ label: 'Escalated', value: `${view.escalationLevel} time(s)` });
  const context = view.decisions.map(
    (d) => `${d.decision === 'approve' ? ':white_check_mark:' : ':x:'} ${d.displayName} ${d.decision === 'approve' ? 'approved' : 'denied'} via ${d.via} at ${d.at.toISOString()}${d.reason ? `: ${d.reason}` : ''}`,
  );
  return {
    title: view.status === 'pending' ? 'Approval needed' : 'Approval',
    text: view.summary,
    fields,
    ...(view.status === 'pending'
      ? {
          buttons: [
            { actionId: APPROVE_ACTION_ID, label: 'Approve', value: view.id, style: 'primary' as const },
            { actionId: DENY_ACTION_ID, label: 'Deny', value: view.id, style: 'danger' as const },
          ],
        }
      : {}),
    ...(context.length ? { context } : {}),
  };
}
