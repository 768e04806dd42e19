import { ConversationClient, type ActivityParams } from '@microsoft/teams.api';
import type { Logger } from '../../app/logger.ts';
import { ReflexError } from '../../errors.ts';
import { parseRetryAfter } from '../../integrations/http.ts';
import type { ChatMessage, ChatTransport, ChatUserRef, MessageRef } from '../chat-types.ts';
import { cardActivity } from './adaptive-card.ts';
import { sdkLogger } from './sdk-logger.ts';
import type { TeamsGraph } from './teams-graph.ts';
import type { TeamsTokens } from './teams-tokens.ts';

/** Teams' limit on a channel's display name. */
export const TEAMS_CHANNEL_NAME_MAX = 50;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface TeamsTransportOptions {
  tokens: TeamsTokens;
  /** Scope of Bot Connector tokens (the cloud's). */
  botScope: string;
  /** `TEAMS_SERVICE_URL`: the connector for conversations no activity told us the regional URL of. */
  serviceUrl: string;
  /** The bot's app id, as the connector knows the bot (`28:<id>`). */
  clientId: string;
  /** The Entra ID tenant the bot (single-tenant) lives in. */
  tenantId: string;
  /** Graph and the team SEV1 channels are made in (`TEAMS_INCIDENT_TEAM_ID`); channels need both. */
  graph?: TeamsGraph;
  incidentTeamId?: string;
  logger: Logger;
  timeoutMs?: number;
}

/** A Teams channel (as opposed to a chat): posts there start threads. */
export function isTeamsChannel(conversationId: string): boolean {
  return /@thread\.(tacv2|skype)$/.test(conversationId);
}

/** The conversation of one thread of a channel, as the connector names it. */
export function channelThread(channelId: string, rootMessageId: string): string {
  return `${channelId};messageid=${rootMessageId}`;
}

/**
 * Teams through the Bot Connector (the Teams SDK's `ConversationClient`, with our app-only token)
 * and, for channels, Microsoft Graph. One call per method, no retries of its own: the outbox and
 * the SEV1 channel job retry, durably, honouring `Retry-After`. Every failure leaves as a
 * ReflexError whose `retryable` and `retryAfterMs` the queue acts on, and never carries the
 * request (whose headers hold the bot token).
 *
 * Where Teams differs from Slack:
 * - `post` to a channel starts a new thread; to a chat it adds a message.
 * - `threadReply` in a channel answers in the root message's thread; chats have no threads, so
 *   the reply is a message that quotes the one it answers (`replyToId`).
 * - `pin` does nothing: the Bot Connector and Graph have no way to pin a channel message for an
 *   app (Graph's `pinnedMessages` exist for chats only; SEV1 group chats pin through
 *   `TeamsGroupChats`). The SEV1 summary card is the first post of its channel, and the topic (the
 *   channel's description) names the incident.
 * - `createChannel`, `invite`, `setTopic` need `TEAMS_INCIDENT_TEAM_ID`: a standard channel of
 *   that team (Graph `Channel.Create`), members added to the team (`TeamMember.ReadWrite.All`),
 *   the description as topic (`ChannelSettings.ReadWrite.All`).
 *
 * @example
 * const ref = await teams.post({ channelId: '19:abc@thread.tacv2' }, { text: 'SEV1 declared' });
 * await teams.threadReply(ref, { text: 'Containment started' });
 */
export class TeamsTransport implements ChatTransport {
  readonly platform = 'teams' as const;
  private readonly clients = new Map<string, ConversationClient>();

  constructor(private readonly opts: TeamsTransportOptions) {}

  // -- The connector, with an explicit service URL (the outbox answers on the one an activity came from).

  /** A message in a conversation (chat, or a channel thread). */
  async send(serviceUrl: string, conversationId: string, message: ChatMessage, replyToId?: string): Promise<MessageRef> {
    const activity = { ...cardActivity(message), ...(replyToId ? { replyToId } : {}) } as ActivityParams;
    const res = await this.call('send', serviceUrl, (c) => c.createActivity(conversationId, activity));
    return { platform: 'teams', channelId: conversationId, ...(res.id ? { messageId: res.id } : {}) };
  }

  /** Replaces a message the bot sent (a card updated in place). */
  async replace(serviceUrl: string, conversationId: string, activityId: string, message: ChatMessage): Promise<void> {
    await this.call('update', serviceUrl, (c) => c.updateActivity(conversationId, activityId, cardActivity(message) as ActivityParams));
  }

  /** A new thread in a Teams channel. The ref's channel is the channel; its message id the thread's root. */
  async startThread(serviceUrl: string, channelId: string, message: ChatMessage): Promise<MessageRef> {
    const res = await this.call('createConversation', serviceUrl, (c) =>
      c.create({ isGroup: true, tenantId: this.opts.tenantId, channelData: { channel: { id: channelId }, tenant: { id: this.opts.tenantId } }, activity: cardActivity(message) as ActivityParams }),
    );
    const root = res.activityId || /;messageid=(\d+)$/.exec(res.id ?? '')?.[1];
    return { platform: 'teams', channelId, ...(root ? { messageId: root } : {}) };
  }

  // -- ChatTransport

  post(target: { channelId: string }, message: ChatMessage): Promise<MessageRef> {
    return isTeamsChannel(target.channelId) ? this.startThread(this.opts.serviceUrl, target.channelId, message) : this.send(this.opts.serviceUrl, target.channelId, message);
  }

  async update(ref: MessageRef, message: ChatMessage): Promise<void> {
    if (!ref.messageId) throw new ReflexError('input.invalid', 'a Teams update needs the message (activity) id', { retryable: false });
    await this.replace(this.opts.serviceUrl, ref.channelId, ref.messageId, message);
  }

  async threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    if (ref.messageId && isTeamsChannel(ref.channelId)) {
      const sent = await this.send(this.opts.serviceUrl, channelThread(ref.channelId, ref.messageId), message);
      return { ...sent, channelId: ref.channelId };
    }
    return this.send(this.opts.serviceUrl, ref.channelId, message, ref.messageId);
  }

  /** A 1:1 chat with the user; the bot must be installed for them (personal scope) or Teams refuses. */
  async directMessage(user: ChatUserRef, message: ChatMessage): Promise<MessageRef> {
    const res = await this.call('createConversation', this.opts.serviceUrl, (c) =>
      c.create({ members: [{ id: user.userId, role: 'user', name: user.displayName ?? '' }], tenantId: user.workspace, channelData: { tenant: { id: user.workspace } } }),
    );
    if (!res.id) throw new ReflexError('upstream.rejected', 'Teams created no 1:1 conversation', { retryable: false });
    return this.send(res.serviceUrl || this.opts.serviceUrl, res.id, message);
  }

  async createChannel(name: string, opts: { private?: boolean } = {}): Promise<{ channelId: string; name: string }> {
    const { graph, teamId } = this.channels();
    if (name.length > TEAMS_CHANNEL_NAME_MAX) throw new ReflexError('input.invalid', `Teams channel names have at most ${TEAMS_CHANNEL_NAME_MAX} characters`, { retryable: false });
    if (opts.private) throw new ReflexError('input.invalid', 'private Teams channels need an owner at creation; SENTreflex makes standard ones', { retryable: false });
    const { body } = await graph.call<{ id?: string; displayName?: string }>('POST', `/v1.0/teams/${teamId}/channels`, {
      displayName: name,
      description: 'Incident room opened by SENTreflex',
      membershipType: 'standard',
    });
    if (!body?.id) throw new ReflexError('upstream.rejected', 'Graph created no channel', { retryable: false });
    return { channelId: body.id, name: body.displayName ?? name };
  }

  /**
   * A standard channel is open to every member of its team, so inviting someone means adding them
   * to the team (Graph `members/add`, which reports each user's result). Only Entra object ids can
   * be added; the result says which users were not.
   */
  async inviteToTeam(userIds: readonly string[]): Promise<{ skipped: { userId: string; reason: string }[] }> {
    const { graph, teamId } = this.channels();
    const skipped = userIds.filter((u) => !GUID.test(u)).map((userId) => ({ userId, reason: 'not_an_entra_user' }));
    const users = [...new Set(userIds.filter((u) => GUID.test(u)))];
    if (users.length === 0) return { skipped };
    const { body } = await graph.call<{ value?: { userId?: string; error?: { code?: string } | null }[] }>('POST', `/v1.0/teams/${teamId}/members/add`, {
      values: users.map((id) => ({ '@odata.type': 'microsoft.graph.aadUserConversationMember', roles: [], 'user@odata.bind': `${graph.baseUrl}/v1.0/users('${id}')` })),
    });
    for (const r of body?.value ?? []) if (r.error && r.userId) skipped.push({ userId: r.userId, reason: r.error.code ?? 'refused' });
    return { skipped };
  }

  async invite(_channelId: string, users: ChatUserRef[]): Promise<void> {
    await this.inviteToTeam(users.map((u) => u.userId));
  }

  async setTopic(channelId: string, topic: string): Promise<void> {
    const { graph, teamId } = this.channels();
    await graph.call('PATCH', `/v1.0/teams/${teamId}/channels/${encodeURIComponent(channelId)}`, { description: topic.slice(0, 1024) });
  }

  /** Teams has no pin an app can set on a channel message: nothing to do (see the class comment). */
  async pin(_ref: MessageRef): Promise<void> {}

  /** A live channel of the incident team with exactly this name, if any. */
  async findChannel(name: string): Promise<{ channelId: string; name: string } | undefined> {
    const { graph, teamId } = this.channels();
    const filter = encodeURIComponent(`displayName eq '${name.replace(/'/g, "''")}'`);
    const { body } = await graph.call<{ value?: { id?: string; displayName?: string; isArchived?: boolean }[] }>('GET', `/v1.0/teams/${teamId}/channels?$filter=${filter}`);
    const hit = (body?.value ?? []).find((c) => c.displayName === name && c.isArchived !== true && c.id);
    return hit ? { channelId: hit.id!, name } : undefined;
  }

  private channels(): { graph: TeamsGraph; teamId: string } {
    if (!this.opts.graph || !this.opts.incidentTeamId) {
      throw new ReflexError('input.invalid', 'Teams channels need TEAMS_INCIDENT_TEAM_ID', { retryable: false, safeMessage: 'Set TEAMS_INCIDENT_TEAM_ID to let SENTreflex make Teams channels.' });
    }
    return { graph: this.opts.graph, teamId: this.opts.incidentTeamId };
  }

  private client(serviceUrl: string): ConversationClient {
    const base = serviceUrl.replace(/\/+$/, '');
    let c = this.clients.get(base);
    if (!c) {
      c = new ConversationClient(base, {
        token: () => this.opts.tokens.get(this.opts.botScope),
        logger: sdkLogger(this.opts.logger, 'teams-connector'),
        timeout: this.opts.timeoutMs ?? 15_000,
      });
      this.clients.set(base, c);
    }
    return c;
  }

  private async call<T>(op: string, serviceUrl: string, fn: (c: ConversationClient) => Promise<T>): Promise<T> {
    if (!/^https:\/\//.test(serviceUrl)) throw new ReflexError('input.invalid', `Teams service URL must be https (${op})`, { retryable: false });
    try {
      return await fn(this.client(serviceUrl));
    } catch (err) {
      if (err instanceof ReflexError) throw err;
      throw this.connectorError(op, err);
    }
  }

  /** An axios failure from the SDK's client as a ReflexError; the error itself is dropped (its config holds the token). */
  private connectorError(op: string, err: unknown): ReflexError {
    const e = err as { response?: { status?: number; headers?: Record<string, unknown>; data?: unknown }; code?: string; message?: string };
    const status = e.response?.status;
    const details = { vendor: 'Microsoft Teams', op, ...(status ? { status } : {}) };
    if (status === undefined) {
      return new ReflexError('upstream.unavailable', `Teams ${op}: ${e.code ?? 'no response'}`, { safeMessage: 'Microsoft Teams is unreachable; retrying.', details });
    }
    const header = e.response?.headers?.['retry-after'];
    const retryAfterMs = parseRetryAfter(typeof header === 'string' ? header : undefined, Date.now());
    const code = (e.response?.data as { error?: { code?: unknown } } | undefined)?.error?.code;
    const what = `Teams ${op}: HTTP ${status}${typeof code === 'string' ? ` ${code}` : ''}`;
    if (status === 429) return new ReflexError('upstream.rate_limited', what, { retryAfterMs: retryAfterMs ?? 1000, safeMessage: 'Microsoft Teams is rate limiting us; retrying.', details });
    if (status === 401) {
      // A token Teams no longer takes (rotated secret, clock): get a new one on the next attempt.
      this.opts.tokens.invalidate(this.opts.botScope);
      return new ReflexError('upstream.unavailable', what, { details });
    }
    if (status >= 500) return new ReflexError('upstream.unavailable', what, { ...(retryAfterMs ? { retryAfterMs } : {}), details });
    // 400 bad activity, 403 bot not in the conversation or blocked, 404 no such conversation: another try cannot help.
    return new ReflexError('upstream.rejected', what, { retryable: false, safeMessage: `Microsoft Teams refused the message (HTTP ${status}).`, details });
  }
}
