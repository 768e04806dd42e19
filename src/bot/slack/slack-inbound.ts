import type { ChatMessage } from '../chat-types.ts';
import type { InboundInvocation } from '../../commands/dispatch.ts';
import { renderBlockKit } from './block-kit.ts';
import type { SlackRequest } from './slack-payloads.ts';
import type { SlackOutboxJob } from './slack-outbox.ts';
import { slackToPlain, stripLeadingMention } from './slack-text.ts';

/** Where the answer to a Slack invocation goes. */
export type SlackReplyTarget =
  | { via: 'response_url'; responseUrl: string; channelId: string; userId: string }
  | { via: 'thread'; channelId: string; threadTs: string; userId: string };

/** An invocation as it waits in the `chat.commands` queue (JSON: dates as ISO strings). */
export interface SlackCommandJob {
  deliveryId: string;
  inbound: Omit<InboundInvocation, 'receivedAt'> & { receivedAt: string };
  reply: SlackReplyTarget;
  /** A reaction's message is fetched by the worker: the ack path makes no Slack calls. */
  reactionOn?: { name: string; channelId: string; ts: string };
  /** Set once dispatched, so a retried job answers without running the command again. */
  answer?: ChatMessage | null;
}

/**
 * A verified Slack request as a queued invocation, or undefined when there is nothing to run.
 * Pure translation: no database, no Slack calls.
 */
export function toSlackCommandJob(req: SlackRequest, now: Date, isCommandReaction: (name: string) => boolean): SlackCommandJob | undefined {
  const receivedAt = now.toISOString();
  switch (req.kind) {
    case 'command': {
      const c = req.command;
      return {
        deliveryId: req.deliveryId,
        inbound: {
          platform: 'slack',
          user: { platform: 'slack', workspace: c.team_id, userId: c.user_id, ...(c.user_name ? { displayName: c.user_name } : {}) },
          channel: { id: c.channel_id, ...(c.channel_name ? { name: c.channel_name } : {}) },
          text: slackToPlain(c.text),
          replyTo: { platform: 'slack', channelId: c.channel_id, responseUrl: c.response_url },
          deliveryId: req.deliveryId,
          receivedAt,
        },
        reply: { via: 'response_url', responseUrl: c.response_url, channelId: c.channel_id, userId: c.user_id },
      };
    }
    case 'block_actions': {
      const p = req.payload;
      const action = p.actions[0]!;
      const workspace = p.user.team_id ?? p.team?.id;
      const channelId = p.channel?.id ?? p.container?.channel_id;
      if (!workspace || !channelId) return undefined;
      const messageTs = p.container?.message_ts;
      const messageRef = { platform: 'slack' as const, channelId, ...(messageTs ? { messageId: messageTs } : {}), ...(p.response_url ? { responseUrl: p.response_url } : {}) };
      const reply: SlackReplyTarget | undefined = p.response_url
        ? { via: 'response_url', responseUrl: p.response_url, channelId, userId: p.user.id }
        : messageTs
          ? { via: 'thread', channelId, threadTs: messageTs, userId: p.user.id }
          : undefined;
      if (!reply) return undefined;
      return {
        deliveryId: req.deliveryId,
        inbound: {
          platform: 'slack',
          user: { platform: 'slack', workspace, userId: p.user.id, ...(p.user.name ? { displayName: p.user.name } : {}) },
          channel: { id: channelId, ...(p.channel?.name ? { name: p.channel.name } : {}) },
          action: { actionId: action.action_id, value: action.value ?? action.selected_option?.value ?? '', messageRef },
          replyTo: messageRef,
          deliveryId: req.deliveryId,
          receivedAt,
        },
        reply,
      };
    }
    case 'app_mention': {
      const e = req.event;
      const threadTs = e.thread_ts ?? e.ts;
      return {
        deliveryId: req.deliveryId,
        inbound: {
          platform: 'slack',
          user: { platform: 'slack', workspace: e.user_team ?? e.team ?? req.teamId, userId: e.user },
          channel: { id: e.channel },
          text: slackToPlain(stripLeadingMention(e.text)),
          replyTo: { platform: 'slack', channelId: e.channel, messageId: threadTs },
          deliveryId: req.deliveryId,
          receivedAt,
        },
        reply: { via: 'thread', channelId: e.channel, threadTs, userId: e.user },
      };
    }
    case 'reaction_added': {
      const e = req.event;
      if (e.item.type !== 'message' || !e.item.channel || !e.item.ts || !isCommandReaction(e.reaction)) return undefined;
      return {
        deliveryId: req.deliveryId,
        inbound: {
          platform: 'slack',
          user: { platform: 'slack', workspace: req.teamId, userId: e.user },
          channel: { id: e.item.channel },
          replyTo: { platform: 'slack', channelId: e.item.channel, messageId: e.item.ts },
          deliveryId: req.deliveryId,
          receivedAt,
        },
        reply: { via: 'thread', channelId: e.item.channel, threadTs: e.item.ts, userId: e.user },
        reactionOn: { name: e.reaction, channelId: e.item.channel, ts: e.item.ts },
      };
    }
    case 'url_verification':
    case 'ignored':
      return undefined;
  }
}

/** The outbox job that delivers `message` to where the invocation came from. */
export function slackReplyJob(reply: SlackReplyTarget, message: ChatMessage): SlackOutboxJob {
  if (reply.via === 'response_url') {
    const { text, blocks } = renderBlockKit(message);
    return {
      platform: 'slack',
      op: 'respond',
      responseUrl: reply.responseUrl,
      body: { response_type: message.ephemeral ? 'ephemeral' : 'in_channel', replace_original: false, text, blocks },
    };
  }
  return message.ephemeral
    ? { platform: 'slack', op: 'ephemeral', channelId: reply.channelId, userId: reply.userId, threadTs: reply.threadTs, message }
    : { platform: 'slack', op: 'post', channelId: reply.channelId, threadTs: reply.threadTs, message };
}
