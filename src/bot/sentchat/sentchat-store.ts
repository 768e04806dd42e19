import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database, SentchatChannelsTable, SentchatMessagesTable } from '../../store/schema.ts';
import type { ChatMessage } from '../chat-types.ts';

/**
 * SENTchat's rows: channels, members, messages. Every change that others must see is followed,
 * in the same transaction, by a PostgreSQL NOTIFY naming what changed; each API process LISTENs
 * and pushes it to its WebSocket clients (`sentchat-live.ts`). A worker process on another
 * machine (a command's answer, an approval card) is thereby seen by browsers connected anywhere,
 * and a rolled-back write is never announced.
 *
 * Channel and membership changes are audited; message posts by people are audited
 * (`sentchat.message.post`, without the text); the bot's own posts and updates are not: the
 * command or decision that produced them is.
 */
export type ChannelRow = Selectable<SentchatChannelsTable>;
export type MessageRow = Selectable<SentchatMessagesTable>;
type Db = Kysely<Database> | Transaction<Database>;

/** What a live listener is told; it loads the row itself (NOTIFY payloads are limited to 8 kB). */
export type LiveEvent =
  | { type: 'message'; op: 'new' | 'updated'; id: string }
  | { type: 'channel'; op: 'new' | 'updated'; id: string }
  | { type: 'session.ended'; session: string };

export const liveEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message'), op: z.enum(['new', 'updated']), id: z.uuid() }),
  z.object({ type: z.literal('channel'), op: z.enum(['new', 'updated']), id: z.uuid() }),
  z.object({ type: z.literal('session.ended'), session: z.string().regex(/^[0-9a-f]{64}$/) }),
]);

/** One NOTIFY channel per schema: tests (one schema each) share a database without hearing each other. */
export function liveChannelFor(schema: string): string {
  return `sentchat_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

export const SENTCHAT_BOT_NAME = 'SENTreflex';
const MAX_TEXT = 40_000;

/** The card as persisted: what a transport may be handed, bounded so a runaway message cannot bloat a row. */
const cardSchema = z.object({
  text: z.string(),
  title: z.string().max(500).optional(),
  fields: z.array(z.object({ label: z.string().max(200), value: z.string().max(4000) })).max(50).optional(),
  buttons: z
    .array(z.object({ actionId: z.string().min(1).max(100), label: z.string().min(1).max(100), value: z.string().max(2000), style: z.enum(['primary', 'danger']).optional() }))
    .max(20)
    .optional(),
  context: z.array(z.string().max(2000)).max(50).optional(),
  ephemeral: z.boolean().optional(),
});

export function checkedCard(message: ChatMessage): ChatMessage {
  const r = cardSchema.safeParse(message);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ReflexError('input.invalid', `sentchat card: ${issue.path.join('.')}: ${issue.message}`, { retryable: false, safeMessage: 'That message cannot be shown in SENTchat.' });
  }
  const { ephemeral: _ephemeral, ...card } = r.data;
  return { ...card, text: card.text.slice(0, MAX_TEXT) };
}

/** Lower-case, `[a-z0-9._-]`, at most 80 characters: the form every channel name takes. */
export function channelNameOf(raw: string): string {
  const name = raw
    .trim()
    .replace(/^#/, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 80);
  if (!name) throw new ReflexError('input.invalid', `bad channel name ${JSON.stringify(raw.slice(0, 80))}`, { retryable: false, safeMessage: 'A channel name needs at least one letter or digit.' });
  return name;
}

export interface WireChannel {
  id: string;
  name: string;
  topic: string;
  kind: ChannelRow['kind'];
  private: boolean;
  createdAt: string;
}

export interface WireMessage {
  id: string;
  seq: string;
  channelId: string;
  threadParentId: string | null;
  author: { kind: 'user' | 'bot'; name: string; principalId: string | null };
  text: string;
  card: ChatMessage | null;
  /** Only the viewer sees it. */
  ephemeral: boolean;
  pinned: boolean;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export function toWireChannel(c: ChannelRow): WireChannel {
  return { id: c.id, name: c.name, topic: c.topic, kind: c.kind, private: c.private, createdAt: c.created_at.toISOString() };
}

export function toWireMessage(m: MessageRow): WireMessage {
  return {
    id: m.id,
    seq: String(m.seq),
    channelId: m.channel_id,
    threadParentId: m.thread_parent_id,
    author: { kind: m.author_kind, name: m.author_name, principalId: m.author_principal_id },
    text: m.text,
    card: (m.card ?? null) as ChatMessage | null,
    ephemeral: m.visible_to !== null,
    pinned: m.pinned,
    version: m.version,
    createdAt: m.created_at.toISOString(),
    updatedAt: m.updated_at.toISOString(),
  };
}

export interface NewMessage {
  tenantId: string;
  channelId: string;
  threadParentId?: string | undefined;
  author: { kind: 'user'; principalId: string; name: string; actor: string } | { kind: 'bot' };
  text: string;
  card?: ChatMessage | undefined;
  /** Ephemeral: only this principal sees it. */
  visibleTo?: string | undefined;
  /** A retried job posting the same answer gets the first message back instead of a second one. */
  dedupeKey?: string | undefined;
}

export class SentchatStore {
  constructor(
    readonly db: Kysely<Database>,
    private readonly liveChannel: string,
  ) {}

  private async notify(trx: Db, event: LiveEvent): Promise<void> {
    // Delivered at commit, and only then.
    await sql`select pg_notify(${this.liveChannel}, ${JSON.stringify(event)})`.execute(trx);
  }

  async getChannel(id: string): Promise<ChannelRow | undefined> {
    if (!z.uuid().safeParse(id).success) return undefined;
    return this.db.selectFrom('sentchat_channels').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findChannel(tenantId: string, name: string): Promise<ChannelRow | undefined> {
    return this.db.selectFrom('sentchat_channels').selectAll().where('tenant_id', '=', tenantId).where('name', '=', name).executeTakeFirst();
  }

  /**
   * The channel called `name` in the tenant, created when there is none. Repeating it (a retried
   * job, two requests at once) finds the same channel.
   */
  async ensureChannel(input: { tenantId: string; name: string; kind: ChannelRow['kind']; private?: boolean; topic?: string; actor: string }): Promise<{ channel: ChannelRow; created: boolean }> {
    const name = channelNameOf(input.name);
    const existing = await this.findChannel(input.tenantId, name);
    if (existing) return { channel: existing, created: false };
    return auditedWrite(this.db, input.actor, async (trx, audit) => {
      const inserted = await trx
        .insertInto('sentchat_channels')
        .values({ tenant_id: input.tenantId, name, kind: input.kind, private: input.private ?? false, topic: (input.topic ?? '').slice(0, 500), created_by: input.actor })
        .onConflict((oc) => oc.columns(['tenant_id', 'name']).doNothing())
        .returningAll()
        .executeTakeFirst();
      const channel = inserted ?? (await trx.selectFrom('sentchat_channels').selectAll().where('tenant_id', '=', input.tenantId).where('name', '=', name).executeTakeFirstOrThrow());
      audit({ tenantId: input.tenantId, action: 'sentchat.channel.create', target: `sentchat-channel:${channel.id}`, delta: { name, kind: input.kind, private: channel.private, created: inserted !== undefined } });
      if (inserted) await this.notify(trx, { type: 'channel', op: 'new', id: channel.id });
      return { channel, created: inserted !== undefined };
    });
  }

  /** The bot's direct-message channel with one principal in one tenant (private, that principal its only member). */
  async dmChannel(tenantId: string, principalId: string): Promise<ChannelRow> {
    const { channel, created } = await this.ensureChannel({ tenantId, name: `dm-${principalId}`, kind: 'dm', private: true, actor: 'sentchat' });
    if (created) await this.addMembers(channel, [principalId], 'sentchat');
    return channel;
  }

  /** Adds members; those already in are left alone. Returns how many were added. */
  async addMembers(channel: ChannelRow, principalIds: readonly string[], actor: string): Promise<number> {
    const ids = [...new Set(principalIds)];
    if (ids.length === 0) return 0;
    const present = await this.db.selectFrom('sentchat_channel_members').select('principal_id').where('channel_id', '=', channel.id).where('principal_id', 'in', ids).execute();
    const missing = ids.filter((id) => !present.some((p) => p.principal_id === id));
    if (missing.length === 0) return 0;
    return auditedWrite(this.db, actor, async (trx, audit) => {
      const res = await trx
        .insertInto('sentchat_channel_members')
        .values(missing.map((principal_id) => ({ channel_id: channel.id, principal_id, added_by: actor })))
        .onConflict((oc) => oc.columns(['channel_id', 'principal_id']).doNothing())
        .executeTakeFirst();
      const added = Number(res.numInsertedOrUpdatedRows ?? 0);
      audit({ tenantId: channel.tenant_id, action: 'sentchat.channel.invite', target: `sentchat-channel:${channel.id}`, delta: { principals: missing, added } });
      await this.notify(trx, { type: 'channel', op: 'updated', id: channel.id });
      return added;
    });
  }

  async setTopic(channel: ChannelRow, topic: string, actor: string): Promise<void> {
    const next = topic.slice(0, 500);
    if (channel.topic === next) return;
    await auditedWrite(this.db, actor, async (trx, audit) => {
      await trx.updateTable('sentchat_channels').set({ topic: next }).where('id', '=', channel.id).execute();
      audit({ tenantId: channel.tenant_id, action: 'sentchat.channel.topic', target: `sentchat-channel:${channel.id}`, delta: { topic: next } });
      await this.notify(trx, { type: 'channel', op: 'updated', id: channel.id });
    });
  }

  /** Channels the principal may see in the tenant: every public and incident channel, and private ones it is a member of. */
  async visibleChannels(tenantId: string, principalId: string): Promise<ChannelRow[]> {
    return this.db
      .selectFrom('sentchat_channels as c')
      .selectAll('c')
      .where('c.tenant_id', '=', tenantId)
      .where((eb) =>
        eb.or([
          eb('c.private', '=', false),
          eb.exists(eb.selectFrom('sentchat_channel_members as m').select('m.principal_id').whereRef('m.channel_id', '=', 'c.id').where('m.principal_id', '=', principalId)),
        ]),
      )
      .orderBy('c.kind')
      .orderBy('c.name')
      .execute();
  }

  async canSee(channel: ChannelRow, viewer: { tenantId: string; principalId: string }): Promise<boolean> {
    if (channel.tenant_id !== viewer.tenantId) return false;
    if (!channel.private) return true;
    const m = await this.db.selectFrom('sentchat_channel_members').select('principal_id').where('channel_id', '=', channel.id).where('principal_id', '=', viewer.principalId).executeTakeFirst();
    return m !== undefined;
  }

  async memberIds(channelId: string): Promise<Set<string>> {
    const rows = await this.db.selectFrom('sentchat_channel_members').select('principal_id').where('channel_id', '=', channelId).execute();
    return new Set(rows.map((r) => r.principal_id));
  }

  /** A page of the channel, oldest first, ending before `beforeSeq` (the newest when absent). */
  async listMessages(channelId: string, viewerPrincipalId: string, opts: { beforeSeq?: string | undefined; limit: number }): Promise<{ messages: MessageRow[]; hasMore: boolean }> {
    let q = this.db
      .selectFrom('sentchat_messages')
      .selectAll()
      .where('channel_id', '=', channelId)
      .where((eb) => eb.or([eb('visible_to', 'is', null), eb('visible_to', '=', viewerPrincipalId)]));
    if (opts.beforeSeq !== undefined) q = q.where('seq', '<', opts.beforeSeq as never);
    const rows = await q.orderBy('seq', 'desc').limit(opts.limit + 1).execute();
    return { messages: rows.slice(0, opts.limit).reverse(), hasMore: rows.length > opts.limit };
  }

  async getMessage(id: string): Promise<MessageRow | undefined> {
    if (!z.uuid().safeParse(id).success) return undefined;
    return this.db.selectFrom('sentchat_messages').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async postMessage(input: NewMessage): Promise<MessageRow> {
    const card = input.card ? checkedCard(input.card) : undefined;
    const values = {
      tenant_id: input.tenantId,
      channel_id: input.channelId,
      thread_parent_id: input.threadParentId ?? null,
      author_kind: input.author.kind,
      author_principal_id: input.author.kind === 'user' ? input.author.principalId : null,
      author_name: input.author.kind === 'user' ? input.author.name.slice(0, 200) : SENTCHAT_BOT_NAME,
      text: (card?.text ?? input.text).slice(0, MAX_TEXT),
      card: card ? JSON.stringify(card) : null,
      visible_to: input.visibleTo ?? null,
      dedupe_key: input.dedupeKey ?? null,
    };
    const insert = async (trx: Transaction<Database>): Promise<MessageRow | undefined> => {
      const row = await trx
        .insertInto('sentchat_messages')
        .values(values)
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (row) await this.notify(trx, { type: 'message', op: 'new', id: row.id });
      return row;
    };
    const author = input.author;
    const row =
      author.kind === 'user'
        ? await auditedWrite(this.db, author.actor, async (trx, audit) => {
            const r = await insert(trx);
            if (r) audit({ tenantId: input.tenantId, action: 'sentchat.message.post', target: `sentchat-message:${r.id}`, delta: { channel: input.channelId, length: r.text.length } });
            else audit({ tenantId: input.tenantId, action: 'sentchat.message.post', target: `sentchat-dedupe:${input.dedupeKey}`, delta: { channel: input.channelId, duplicate: true } });
            return r;
          })
        : await this.db.transaction().execute(insert);
    if (row) return row;
    // Only a dedupe key can make the insert a no-op: the message a first attempt posted.
    return this.db.selectFrom('sentchat_messages').selectAll().where('dedupe_key', '=', input.dedupeKey ?? '').executeTakeFirstOrThrow();
  }

  /**
   * Replaces a message's content in place for everyone who sees it. With `expectVersion`, only if
   * nobody updated it since that version (undefined answers "someone did").
   */
  async updateMessage(id: string, message: ChatMessage, opts: { expectVersion?: number } = {}): Promise<MessageRow | undefined> {
    const card = checkedCard(message);
    return this.db.transaction().execute(async (trx) => {
      let q = trx
        .updateTable('sentchat_messages')
        .set((eb) => ({ text: card.text, card: JSON.stringify(card), version: eb('version', '+', 1), updated_at: new Date() }))
        .where('id', '=', id);
      if (opts.expectVersion !== undefined) q = q.where('version', '=', opts.expectVersion);
      const row = await q.returningAll().executeTakeFirst();
      if (row) await this.notify(trx, { type: 'message', op: 'updated', id });
      return row;
    });
  }

  async pin(message: MessageRow, actor: string): Promise<void> {
    if (message.pinned) return;
    await auditedWrite(this.db, actor, async (trx, audit) => {
      await trx.updateTable('sentchat_messages').set((eb) => ({ pinned: true, version: eb('version', '+', 1), updated_at: new Date() })).where('id', '=', message.id).execute();
      audit({ tenantId: message.tenant_id, action: 'sentchat.message.pin', target: `sentchat-message:${message.id}`, delta: { channel: message.channel_id } });
      await this.notify(trx, { type: 'message', op: 'updated', id: message.id });
    });
  }

  /** Tells every API process that a session ended, so its sockets close at once. */
  async announceSessionEnded(sessionHash: string): Promise<void> {
    await this.notify(this.db, { type: 'session.ended', session: sessionHash });
  }
}
