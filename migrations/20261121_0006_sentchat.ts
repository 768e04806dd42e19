import { sql, type Kysely } from 'kysely';

/**
 * SENTchat, the built-in web chat: channels (public, SEV1 incident rooms, the bot's direct
 * messages), their members, messages (a user's text, or a bot card as the platform-neutral
 * `ChatMessage` JSON) and browser sessions.
 *
 * A session row holds only the sha256 of the opaque cookie value, so a copy of the table does not
 * let anyone sign in.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sentchat_channels')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull().check(sql`name ~ '^[a-z0-9][a-z0-9._-]{0,79}$'`))
    .addColumn('topic', 'text', (c) => c.notNull().defaultTo('').check(sql`length(topic) <= 500`))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('public','incident','dm')`))
    // A private channel (and every DM) is seen only by its members; the others by the whole tenant.
    .addColumn('private', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // "Find by name" is how a retried SEV1 job adopts the room an earlier attempt made.
    .addUniqueConstraint('sentchat_channels_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('sentchat_channel_members')
    .addColumn('channel_id', 'uuid', (c) => c.notNull().references('sentchat_channels.id').onDelete('cascade'))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id').onDelete('cascade'))
    .addColumn('added_by', 'text', (c) => c.notNull())
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('sentchat_channel_members_pk', ['channel_id', 'principal_id'])
    .execute();
  await db.schema.createIndex('sentchat_channel_members_principal').on('sentchat_channel_members').column('principal_id').execute();

  await db.schema
    .createTable('sentchat_messages')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    // Paging order: ids are random, timestamps may tie.
    .addColumn('seq', 'bigint', (c) => c.notNull().generatedAlwaysAsIdentity().unique())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('channel_id', 'uuid', (c) => c.notNull().references('sentchat_channels.id').onDelete('cascade'))
    .addColumn('thread_parent_id', 'uuid', (c) => c.references('sentchat_messages.id').onDelete('set null'))
    .addColumn('author_kind', 'text', (c) => c.notNull().check(sql`author_kind in ('user','bot')`))
    .addColumn('author_principal_id', 'uuid', (c) => c.references('principals.id').onDelete('set null'))
    .addColumn('author_name', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull().check(sql`length(text) <= 40000`))
    // A bot card: the ChatMessage as the command returned it (title, fields, buttons, context).
    .addColumn('card', 'jsonb')
    // Ephemeral answers: only this principal sees them (`/reflex help`, refusals).
    .addColumn('visible_to', 'uuid', (c) => c.references('principals.id').onDelete('cascade'))
    .addColumn('pinned', 'boolean', (c) => c.notNull().defaultTo(false))
    // Bumped by every update in place; a click's answer replaces the card only if nobody else did first.
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    // `answer:<message id>` for a command's answer: a retried job does not post it twice.
    .addColumn('dedupe_key', 'text', (c) => c.unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('sentchat_messages_channel_seq').on('sentchat_messages').columns(['channel_id', 'seq']).execute();

  await db.schema
    .createTable('sentchat_sessions')
    .addColumn('token_sha256', 'text', (c) => c.primaryKey())
    .addColumn('workspace', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull().check(sql`method in ('api-token','principal-token','oidc')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sentchat_sessions_expires').on('sentchat_sessions').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['sentchat_sessions', 'sentchat_messages', 'sentchat_channel_members', 'sentchat_channels']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
