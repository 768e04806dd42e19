import type { ChatMessage, ChatPlatform, MessageRef } from '../chat-types.ts';

/**
 * What the SEV1 channel job needs of a chat platform, with the platform's "already done" answers
 * (Slack's `already_in_channel`, `already_pinned`) turned into success, so that every step may be
 * repeated by a retried job. One adapter per platform; Slack's is `SlackIncidentChannels`.
 *
 * @example
 * const made = await platform.createChannel('inc-20261121-1a2b3c4d-ransomware');
 * if (made === 'name_taken') await platform.findChannelByName('inc-20261121-1a2b3c4d-ransomware');
 */
export interface IncidentChannelPlatform {
  readonly platform: ChatPlatform;
  /**
   * `members`: who `invite` will be asked to add (platform user ids), for platforms whose rooms take
   * their members at creation (Teams group chats); the others ignore it.
   */
  createChannel(name: string, opts?: { members?: readonly string[] }): Promise<{ channelId: string; name: string } | 'name_taken'>;
  /** A live (not archived) channel of that exact name the bot can see, if any. */
  findChannelByName(name: string): Promise<{ channelId: string; name: string } | undefined>;
  /** Users the platform will not add (deactivated, guests, the bot itself) are skipped, not fatal. */
  invite(channelId: string, userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }>;
  setTopic(channelId: string, topic: string): Promise<void>;
  post(channelId: string, message: ChatMessage): Promise<MessageRef>;
  pin(ref: MessageRef): Promise<void>;
  threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef>;
}
