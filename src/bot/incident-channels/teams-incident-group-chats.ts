import type { Logger } from '../../app/logger.ts';
import { ReflexError } from '../../errors.ts';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import type { TeamsGroupChats } from '../teams/teams-group-chats.ts';
import type { TeamsTransport } from '../teams/teams-transport.ts';
import type { IncidentChannelPlatform } from './incident-channel-platform.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The SEV1 room steps on Teams in group-chat mode (`TEAMS_INCIDENT_MODE=groupchat`, the default
 * without `TEAMS_INCIDENT_TEAM_ID`): a Graph group chat whose topic is the room's name and whose
 * members (responders, approvers, the reporter: their Entra object ids) are given at creation, as
 * Graph requires; the SENTreflex app installed into it so its bot may post; the summary card posted
 * by the bot (Bot Connector, proactive) and pinned through Graph.
 *
 * Once only: Graph makes a new group chat on every `POST /chats` and takes no id of ours, so the
 * SEV1 handler records the chat id the moment Graph answers, and a retry continues in the recorded
 * chat. The remaining window (Graph made the chat, the process died before the record) is closed
 * by looking, before creating, for a group chat of the first member with exactly this topic (the
 * name holds the incident's id) and adopting it; without `Chat.ReadBasic.All` that lookup is
 * skipped and such a crash leaves an empty orphan chat beside the new one.
 *
 * @example
 * registerIncidentChannels(ctx, { db, platforms: [new TeamsIncidentGroupChats(teamsTransport, groupChats, log)] });
 */
export class TeamsIncidentGroupChats implements IncidentChannelPlatform {
  readonly platform = 'teams' as const;

  constructor(
    private readonly transport: TeamsTransport,
    private readonly chats: TeamsGroupChats,
    private readonly logger: Logger,
  ) {}

  async createChannel(name: string, opts: { members?: readonly string[] } = {}): Promise<{ channelId: string; name: string }> {
    const members = [...new Set((opts.members ?? []).filter((u) => GUID.test(u)))];
    if (members.length === 0) {
      throw new ReflexError('conflict', `no Teams user with an Entra object id to put in the SEV1 group chat ${name}: grant the responder or approver role to Teams users`, {
        retryable: false,
        safeMessage: 'No Teams responder, approver or reporter to put in the SEV1 group chat.',
      });
    }
    const earlier = await this.chats.findByTopic(name, members[0]!).catch((err: unknown) => {
      if (err instanceof ReflexError && err.retryable) throw err;
      // Refused for good (no Chat.ReadBasic.All): create without the lookup; see the class comment.
      this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'SEV1 group chat lookup refused; creating without it');
      return undefined;
    });
    if (earlier) return { channelId: earlier.chatId, name };
    const made = await this.chats.create(name, members);
    return { channelId: made.chatId, name };
  }

  /** Group chats never answer "name taken" (Graph makes another chat with the same topic); `createChannel` looks itself. */
  async findChannelByName(_name: string): Promise<undefined> {
    return undefined;
  }

  /**
   * The people were made members at creation; here the bot joins (the app installed into the
   * chat). Users without an Entra object id could not be members and are listed as skipped.
   */
  async invite(chatId: string, userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }> {
    await this.chats.installApp(chatId);
    return { skipped: userIds.filter((u) => !GUID.test(u)).map((userId) => ({ userId, reason: 'not_an_entra_user' })) };
  }

  /** The chat's topic is its name, set at creation; the summary card carries the rest. */
  async setTopic(_chatId: string, _topic: string): Promise<void> {}

  async post(chatId: string, message: ChatMessage): Promise<MessageRef> {
    try {
      return await this.transport.post({ channelId: chatId }, message);
    } catch (err) {
      // Teams adds the bot to the chat's roster a little after the installation answered: until
      // then the connector says 403. Retried with backoff; a bot refused for good dead-letters.
      if (err instanceof ReflexError && err.details?.status === 403) {
        throw new ReflexError('upstream.unavailable', `${err.message}: the bot is not (yet) a member of SEV1 group chat ${chatId}`, {
          safeMessage: 'Waiting for Teams to add the SENTreflex bot to the incident chat.',
          details: err.details,
        });
      }
      throw err;
    }
  }

  /**
   * Pins the summary card. Pinning needs `Chat.ReadWrite.All`, which lets the app read every chat
   * of the organisation: an organisation that withholds it still gets its room, with the card as
   * its first message, unpinned, and a warning in the log.
   */
  async pin(ref: MessageRef): Promise<void> {
    if (!ref.messageId) return;
    try {
      await this.chats.pin(ref.channelId, ref.messageId);
    } catch (err) {
      if (err instanceof ReflexError && err.details?.permission) {
        this.logger.warn({ chatId: ref.channelId, err: err.message }, 'SEV1 summary card left unpinned');
        return;
      }
      throw err;
    }
  }

  threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    return this.transport.threadReply(ref, message);
  }
}
