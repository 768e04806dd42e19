import type { Kysely } from 'kysely';
import type { ChatTransport, ChatUserRef } from '../bot/chat-types.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import { engineDb } from '../engine/engine-schema.ts';
import { renderApprovalCard } from './approval-card.ts';
import type { ApprovalGates, GateRow } from './approval-gates.ts';
import type { ApprovalLinkSender } from './approval-ports.ts';

/**
 * Shows a gate to the people who can decide it: the card in the incident's channel, the same
 * card by DM to each eligible approver, and a signed one-time link by SMS or e-mail where a link
 * sender is configured. Remembers every posted card and re-renders all of them after each
 * decision, so everyone sees who decided what.
 *
 * Without a chat transport nothing is posted; the gate is still recorded and its card is
 * rendered on demand (`GET /api/v1/approvals/:id`).
 *
 * @example
 * await notifier.announce(gate); // after the gate's transaction committed
 * await notifier.refresh(gate.id); // after each decision
 */
export interface ApprovalNotifierDeps {
  db: Kysely<Database>;
  gates: ApprovalGates;
  transport: () => ChatTransport | undefined;
  linkSender: () => ApprovalLinkSender | undefined;
  onError: (err: unknown, what: string) => void;
}

export class ApprovalNotifier {
  constructor(private readonly deps: ApprovalNotifierDeps) {}

  /**
   * Posts the card (channel and DMs) and sends links. With `only`, just those principals get a DM
   * and a link (the next on-call after an escalation); the channel already has the card.
   */
  async announce(gate: GateRow, only?: readonly string[]): Promise<void> {
    const chat = this.deps.transport();
    const view = await this.deps.gates.view(gate);
    const card = renderApprovalCard(view);
    const eligible = (await this.deps.gates.eligiblePrincipals(gate)).filter((p) => !only || only.includes(p));
    const posted: { platform: string; channelId: string; messageId: string | null; kind: 'channel' | 'dm'; principalId: string | null }[] = [];
    if (chat) {
      if (gate.incident_id && !only) {
        const channel = await this.deps.db
          .selectFrom('incident_channels')
          .select('channel_id')
          .where('incident_id', '=', gate.incident_id)
          .where('platform', '=', chat.platform)
          .executeTakeFirst();
        if (channel) {
          try {
            const ref = await chat.post({ channelId: channel.channel_id }, card);
            posted.push({ platform: chat.platform, channelId: ref.channelId, messageId: ref.messageId ?? null, kind: 'channel', principalId: null });
          } catch (err) {
            this.deps.onError(err, 'approval card post');
          }
        }
      }
      const identities = eligible.length
        ? await this.deps.db
            .selectFrom('chat_identities')
            .select(['principal_id', 'platform', 'workspace', 'user_id'])
            .where('principal_id', 'in', eligible)
            .where('platform', '=', chat.platform)
            .execute()
        : [];
      for (const i of identities) {
        const user: ChatUserRef = { platform: i.platform, workspace: i.workspace, userId: i.user_id };
        try {
          const ref = await chat.directMessage(user, card);
          posted.push({ platform: chat.platform, channelId: ref.channelId, messageId: ref.messageId ?? null, kind: 'dm', principalId: i.principal_id });
        } catch (err) {
          this.deps.onError(err, 'approval card DM');
        }
      }
    }
    if (posted.length) {
      await auditedWrite(this.deps.db, 'system:approvals', async (trx, audit) => {
        await engineDb(trx)
          .insertInto('approval_cards')
          .values(posted.map((p) => ({ approval_id: gate.id, platform: p.platform, channel_id: p.channelId, message_id: p.messageId, kind: p.kind, principal_id: p.principalId })))
          .onConflict((oc) => oc.columns(['approval_id', 'platform', 'channel_id']).doNothing())
          .execute();
        audit({ tenantId: gate.tenant_id, action: 'approval.card.post', target: `approval:${gate.id}`, delta: { cards: posted.map((p) => `${p.kind}:${p.platform}:${p.channelId}`) } });
      });
    }
    const sender = this.deps.linkSender();
    if (sender && eligible.length) {
      const people = await this.deps.db.selectFrom('principals').select(['id', 'display_name', 'email']).where('id', 'in', eligible).execute();
      for (const p of people) {
        try {
          const link = await this.deps.gates.issueLink(gate.id, p.id, 'pending');
          const sent = await sender.send(
            { principalId: p.id, displayName: p.display_name, email: p.email },
            { tenantId: gate.tenant_id, approvalId: gate.id, linkId: link.linkId, url: link.url, summary: gate.summary, expiresAt: link.expiresAt },
          );
          // The row said 'pending' until now; record how (or that) the link left, for the audit trail.
          await auditedWrite(this.deps.db, 'system:approvals', async (trx, audit) => {
            await engineDb(trx).updateTable('approval_links').set({ sent_via: sent?.via ?? 'none' }).where('id', '=', link.linkId).execute();
            audit({ tenantId: gate.tenant_id, action: 'approval.link.sent', target: `approval:${gate.id}`, delta: { linkId: link.linkId, principalId: p.id, via: sent?.via ?? 'none' } });
          });
        } catch (err) {
          this.deps.onError(err, 'approval link delivery');
        }
      }
    }
  }

  /** Re-renders every posted copy of the gate's card. */
  async refresh(approvalId: string): Promise<void> {
    const chat = this.deps.transport();
    if (!chat) return;
    const gate = await this.deps.gates.get(approvalId);
    if (!gate) return;
    const card = renderApprovalCard(await this.deps.gates.view(gate));
    const refs = await engineDb(this.deps.db).selectFrom('approval_cards').selectAll().where('approval_id', '=', approvalId).where('platform', '=', chat.platform).execute();
    for (const r of refs) {
      try {
        await chat.update({ platform: chat.platform, channelId: r.channel_id, ...(r.message_id ? { messageId: r.message_id } : {}) }, card);
      } catch (err) {
        this.deps.onError(err, 'approval card update');
      }
    }
  }
}
