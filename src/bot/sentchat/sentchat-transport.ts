import type { Kysely } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { resolveWorkspaceTenant } from '../../store/principals.ts';
import type { Database } from '../../store/schema.ts';
import type { ChatMessage, ChatTransport, ChatUserRef, MessageRef } from '../chat-types.ts';
import { channelNameOf, type ChannelRow, type MessageRow, type SentchatStore } from './sentchat-store.ts';

/** Who the transport's own audited changes (channels, invites, topics, pins) name. */
export const SENTCHAT_ACTOR = 'sentchat';

/**
 * SENTchat's `ChatTransport`: what the playbook engine (approval cards, `chat.notify`) and the
 * SEV1 channel job call. It persists, and the store's NOTIFY makes every connected browser see it.
 *
 * Channel targets are a SENTchat channel id, `<tenant>/<name>` (created when missing), or a bare
 * name (`soc`, as `chat.notify` passes it), which means the fallback tenant's channel (embedded
 * mode) and is refused otherwise: SENTchat holds every tenant's channels and will not guess.
 *
 * @example
 * const ref = await transport.post({ channelId: 'default/soc' }, { text: 'Blocked 203.0.113.9' });
 * await transport.update(ref, { text: 'Blocked 203.0.113.9 (reverted)' });
 */
export class SentchatTransport implements ChatTransport {
  readonly platform = 'sentchat' as const;

  constructor(
    readonly store: SentchatStore,
    private readonly opts: { fallbackTenant?: string | undefined } = {},
  ) {
    // The transport is how the engine reaches SENTchat; it reads but never owns the database.
  }

  private get db(): Kysely<Database> {
    return this.store.db;
  }

  /** The channel a target names (see the class comment); a target naming nothing is a permanent failure. */
  async channelFor(target: string): Promise<ChannelRow> {
    if (z.uuid().safeParse(target).success) {
      const c = await this.store.getChannel(target);
      if (!c) throw notFound(`no SENTchat channel ${target}`, 'That SENTchat channel does not exist.');
      return c;
    }
    const slash = target.indexOf('/');
    if (slash > 0) {
      const tenantId = target.slice(0, slash);
      const tenant = await this.db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst();
      if (!tenant) throw notFound(`no tenant ${tenantId}`, `There is no tenant "${tenantId.slice(0, 63)}".`);
      return (await this.store.ensureChannel({ tenantId, name: target.slice(slash + 1), kind: 'public', actor: SENTCHAT_ACTOR })).channel;
    }
    // A bare name carries no tenant: only the fallback tenant's (embedded mode) is safe to assume;
    // looking the name up across tenants could post one tenant's news into another's channel.
    const name = channelNameOf(target);
    if (!this.opts.fallbackTenant) {
      throw new ReflexError('input.invalid', `sentchat: bare channel name ${name} without a tenant`, {
        retryable: false,
        safeMessage: `SENTchat needs the tenant with the channel name: <tenant>/${name}.`,
      });
    }
    return (await this.store.ensureChannel({ tenantId: this.opts.fallbackTenant, name, kind: 'public', actor: SENTCHAT_ACTOR })).channel;
  }

  private async message(ref: MessageRef): Promise<MessageRow> {
    const m = ref.messageId ? await this.store.getMessage(ref.messageId) : undefined;
    if (!m) throw notFound(`no SENTchat message ${ref.messageId ?? '(none)'}`, 'That SENTchat message does not exist any more.');
    return m;
  }

  async post(target: { channelId: string }, message: ChatMessage): Promise<MessageRef> {
    const channel = await this.channelFor(target.channelId);
    const row = await this.store.postMessage({ tenantId: channel.tenant_id, channelId: channel.id, author: { kind: 'bot' }, text: message.text, card: message });
    return refOf(row);
  }

  async update(ref: MessageRef, message: ChatMessage): Promise<void> {
    const m = await this.message(ref);
    await this.store.updateMessage(m.id, message);
  }

  /** Threads are one level deep: a reply to a reply joins the first message's thread. */
  async threadReply(ref: MessageRef, message: ChatMessage): Promise<MessageRef> {
    const parent = await this.message(ref);
    const row = await this.store.postMessage({
      tenantId: parent.tenant_id,
      channelId: parent.channel_id,
      threadParentId: parent.thread_parent_id ?? parent.id,
      author: { kind: 'bot' },
      text: message.text,
      card: message,
      ...(parent.visible_to ? { visibleTo: parent.visible_to } : {}),
    });
    return refOf(row);
  }

  async directMessage(user: ChatUserRef, message: ChatMessage): Promise<MessageRef> {
    const who = await this.db
      .selectFrom('chat_identities')
      .select('principal_id')
      .where('platform', '=', 'sentchat')
      .where('workspace', '=', user.workspace)
      .where('user_id', '=', user.userId)
      .executeTakeFirst();
    if (!who) throw notFound(`no SENTchat user ${user.workspace}:${user.userId}`, 'That SENTchat user is not known.');
    const tenantId = (await resolveWorkspaceTenant(this.db, 'sentchat', user.workspace)) ?? this.opts.fallbackTenant;
    if (!tenantId) {
      throw new ReflexError('input.invalid', `sentchat realm ${user.workspace} is not mapped to a tenant`, {
        retryable: false,
        safeMessage: `The SENTchat realm ${user.workspace} is not connected to a tenant (reflex role workspace sentchat:${user.workspace} <tenant>).`,
      });
    }
    const channel = await this.store.dmChannel(tenantId, who.principal_id);
    const row = await this.store.postMessage({ tenantId, channelId: channel.id, author: { kind: 'bot' }, text: message.text, card: message });
    return refOf(row);
  }

  /** A channel in the fallback tenant; tenant-aware callers (the SEV1 job) use the store. */
  async createChannel(name: string, opts: { private?: boolean } = {}): Promise<{ channelId: string; name: string }> {
    if (!this.opts.fallbackTenant) {
      throw new ReflexError('input.invalid', 'sentchat createChannel without a tenant', { retryable: false, safeMessage: 'SENTchat needs to know the tenant to create a channel in.' });
    }
    const { channel } = await this.store.ensureChannel({ tenantId: this.opts.fallbackTenant, name, kind: 'public', private: opts.private ?? false, actor: SENTCHAT_ACTOR });
    return { channelId: channel.id, name: channel.name };
  }

  /** Users SENTchat does not know are skipped (they have never been granted a role). */
  async invite(channelId: string, users: ChatUserRef[]): Promise<void> {
    const channel = await this.channelFor(channelId);
    const principals: string[] = [];
    for (const u of users) {
      const who = await this.db
        .selectFrom('chat_identities')
        .select('principal_id')
        .where('platform', '=', 'sentchat')
        .where('workspace', '=', u.workspace)
        .where('user_id', '=', u.userId)
        .executeTakeFirst();
      if (who) principals.push(who.principal_id);
    }
    await this.store.addMembers(channel, principals, SENTCHAT_ACTOR);
  }

  async setTopic(channelId: string, topic: string): Promise<void> {
    await this.store.setTopic(await this.channelFor(channelId), topic, SENTCHAT_ACTOR);
  }

  async pin(ref: MessageRef): Promise<void> {
    await this.store.pin(await this.message(ref), SENTCHAT_ACTOR);
  }
}

export function refOf(row: MessageRow): MessageRef {
  return { platform: 'sentchat', channelId: row.channel_id, messageId: row.id };
}

function notFound(message: string, safeMessage: string): ReflexError {
  return new ReflexError('not_found', message, { retryable: false, safeMessage });
}
