import { webApi } from '@slack/bolt';
import { ReflexError } from '../../errors.ts';
import type { ChatMessage, MessageRef } from '../chat-types.ts';
import { slackError, type SlackTransport } from '../slack/slack-transport.ts';
import type { IncidentChannelPlatform } from './incident-channel-platform.ts';

// conversations.invite refusals about one user: that user stays out, the others still go in.
const PER_USER_REFUSALS = new Set(['already_in_channel', 'cant_invite_self', 'user_not_found', 'user_is_restricted', 'user_is_ultra_restricted', 'ura_max_channels', 'user_team_not_in_channel']);
const MAX_LIST_PAGES = 50;

/** The Slack error code carried by a ReflexError from `slackError`, if any. */
function slackCode(err: unknown): string | undefined {
  return err instanceof ReflexError ? (err.details?.error as string | undefined) : undefined;
}

/**
 * The SEV1 channel steps on Slack: SlackTransport for the calls it has, and conversations.list
 * (for `name_taken`) on a WebClient configured the same way (no retries of its own: the job queue
 * retries, durably).
 */
export class SlackIncidentChannels implements IncidentChannelPlatform {
  readonly platform = 'slack' as const;
  private readonly client: InstanceType<typeof webApi.WebClient>;

  constructor(
    private readonly transport: SlackTransport,
    opts: { botToken: string; apiUrl: string; timeoutMs?: number },
  ) {
    this.client = new webApi.WebClient(opts.botToken, {
      slackApiUrl: opts.apiUrl,
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: opts.timeoutMs ?? 10_000,
      logLevel: webApi.LogLevel.ERROR,
    });
  }

  async createChannel(name: string): Promise<{ channelId: string; name: string } | 'name_taken'> {
    try {
      return await this.transport.createChannel(name);
    } catch (err) {
      if (slackCode(err) === 'name_taken') return 'name_taken';
      throw err;
    }
  }

  async findChannelByName(name: string): Promise<{ channelId: string; name: string } | undefined> {
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      let res;
      try {
        res = await this.client.conversations.list({ types: 'public_channel,private_channel', exclude_archived: true, limit: 1000, ...(cursor ? { cursor } : {}) });
      } catch (err) {
        throw slackError('conversations.list', err);
      }
      const hit = res.channels?.find((c) => c.name === name && !c.is_archived);
      if (hit?.id) return { channelId: hit.id, name: hit.name ?? name };
      cursor = res.response_metadata?.next_cursor || undefined;
      if (!cursor) return undefined;
    }
    return undefined;
  }

  async invite(channelId: string, userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }> {
    const users = [...new Set(userIds)];
    if (users.length === 0) return { skipped: [] };
    try {
      await this.transport.invite(channelId, users.map((userId) => ({ platform: 'slack', workspace: '', userId })));
      return { skipped: [] };
    } catch (err) {
      const code = slackCode(err);
      if (!code || !PER_USER_REFUSALS.has(code)) throw err;
      if (users.length === 1) return { skipped: code === 'already_in_channel' ? [] : [{ userId: users[0]!, reason: code }] };
    }
    // One refusal fails the whole list: invite one at a time so everyone else still gets in.
    const skipped: { userId: string; reason: string }[] = [];
    for (const userId of users) skipped.push(...(await this.invite(channelId, [userId])).skipped);
    return { skipped };
  }

  setTopic(channelId: string, topic: string): Promise<void> {
    return this.transport.setTopic(channelId, topic);
  }

  post(channelId: string, message: ChatMessage): Promise<MessageRef> {
    return this.transport.post({ channelId }, message);
  }

  async pin(ref: MessageRef): Promise<void> {
    try {
      await this.transport.pin(ref);
    } catch (err) {
      if (slackCode(err) !== 'already_pinned') throw err;
    }
  }

  threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    return this.transport.threadReply(ref, message);
  }
}
