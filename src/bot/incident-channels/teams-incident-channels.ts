import { createHash } from 'node:crypto';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import { graphError, withPermissionHint } from '../teams/teams-graph.ts';
import { TEAMS_CHANNEL_NAME_MAX, type TeamsTransport } from '../teams/teams-transport.ts';
import type { IncidentChannelPlatform } from './incident-channel-platform.ts';

/**
 * The channel's Teams name: the shared name (up to 80 characters) when it fits Teams' 50, else
 * its first 44 characters and a digest of the whole, so `-2` … `-9` stay distinct and a retry
 * computes the same name (the `name_taken` lookup depends on it).
 */
export function teamsChannelName(name: string): string {
  if (name.length <= TEAMS_CHANNEL_NAME_MAX) return name;
  return `${name.slice(0, TEAMS_CHANNEL_NAME_MAX - 6).replace(/-+$/, '')}-${createHash('sha256').update(name).digest('hex').slice(0, 5)}`;
}

/**
 * The SEV1 channel steps on Teams: a standard channel in the team `TEAMS_INCIDENT_TEAM_ID`
 * (Graph), its responders and approvers added to that team, the topic as the channel's
 * description, the summary card as the channel's first post (Bot Connector), alert threads
 * answered in place. Graph's "name already exists" is `name_taken`. Graph can pin messages in
 * chats only, not in channels: `pin` does nothing (TeamsTransport explains); the card is the
 * channel's first post and the channel's description names the incident. Group chats, which can
 * pin, are `TeamsIncidentGroupChats` (`TEAMS_INCIDENT_MODE=groupchat`).
 *
 * @example
 * registerIncidentChannels(ctx, { db, platforms: [new TeamsIncidentChannels(teamsTransport)] });
 */
export class TeamsIncidentChannels implements IncidentChannelPlatform {
  readonly platform = 'teams' as const;

  constructor(private readonly transport: TeamsTransport) {}

  async createChannel(name: string): Promise<{ channelId: string; name: string } | 'name_taken'> {
    try {
      return await this.transport.createChannel(teamsChannelName(name));
    } catch (err) {
      const g = graphError(err);
      if (g && (g.code === 'NameAlreadyExists' || g.status === 409 || (g.status === 400 && /already exist/i.test(g.message)))) return 'name_taken';
      throw withPermissionHint(err, 'Creating the SEV1 channel', 'Channel.Create');
    }
  }

  findChannelByName(name: string): Promise<{ channelId: string; name: string } | undefined> {
    return this.transport.findChannel(teamsChannelName(name));
  }

  invite(_channelId: string, userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }> {
    return this.transport.inviteToTeam(userIds);
  }

  setTopic(channelId: string, topic: string): Promise<void> {
    return this.transport.setTopic(channelId, topic);
  }

  post(channelId: string, message: ChatMessage): Promise<MessageRef> {
    return this.transport.post({ channelId }, message);
  }

  pin(ref: MessageRef): Promise<void> {
    return this.transport.pin(ref);
  }

  threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    return this.transport.threadReply(ref, message);
  }
}
