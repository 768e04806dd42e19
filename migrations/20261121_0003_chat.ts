import { sql, type Kysely } from 'kysely';

/**
 * The chat side: which SENTreflex tenant a chat workspace (Slack team, Teams tenant, SENTchat
 * realm) belongs to, and receipts of inbound chat deliveries so a platform's retry of the same
 * delivery is recognised and not executed twice.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // One workspace belongs to exactly one tenant; a tenant may have several workspaces (a Slack
  // Enterprise Grid org with many teams, or Slack and Teams side by side).
  await db.schema
    .createTable('chat_workspaces')
    .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('slack','teams','sentchat')`))
    .addColumn('workspace', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('chat_workspaces_pk', ['platform', 'workspace'])
    .execute();
  await db.schema.createIndex('chat_workspaces_tenant').on('chat_workspaces').column('tenant_id').execute();

  // Slack retries a delivery it thinks we missed (X-Slack-Retry-Num); the receipt makes the
  // second one a no-op. Old receipts are only useful for minutes (Slack retries within ~5 min).
  await db.schema
    .createTable('chat_deliveries')
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('delivery_id', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('chat_deliveries_pk', ['platform', 'delivery_id'])
    .execute();
  await db.schema.createIndex('chat_deliveries_received').on('chat_deliveries').column('received_at').execute();

  // A channel belongs to one incident; a 📌 reaction in #inc-… finds it by this index.
  await db.schema
    .createIndex('incident_channels_channel')
    .on('incident_channels')
    .columns(['platform', 'channel_id'])
    .unique()
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('incident_channels_channel').ifExists().execute();
  await db.schema.dropTable('chat_deliveries').ifExists().execute();
  await db.schema.dropTable('chat_workspaces').ifExists().execute();
}
