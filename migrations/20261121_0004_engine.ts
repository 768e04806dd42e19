import { sql, type Kysely } from 'kysely';

/**
 * The playbook engine and its approvals: the exact definition a run executes, the bookkeeping a
 * crash-safe run needs (timers, waits, reverts), approval cards and one-time mobile links,
 * per-principal API tokens and on-call rotations.
 *
 * The initial migration created playbook_runs, run_steps, approvals and approval_decisions; this
 * one adds the columns they were missing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A run records the exact playbook it executes. Definitions are shared by hash, so a thousand
  // runs of one playbook store its JSON once and a run row stays small.
  await db.schema
    .createTable('playbook_definitions')
    .addColumn('hash', 'text', (c) => c.primaryKey())
    .addColumn('playbook_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('definition', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // Fan-out: one run per tenant for `--tenants all|a,b,c`.
  await db.schema
    .createTable('run_batches')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('playbook_id', 'text', (c) => c.notNull())
    .addColumn('tenants', 'jsonb', (c) => c.notNull())
    .addColumn('started_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .alterTable('playbook_runs')
    .addColumn('definition_hash', 'text', (c) => c.references('playbook_definitions.hash'))
    .addColumn('event', 'jsonb')
    // `alert-<alertId>-<playbookId>` for event-triggered runs: a retried trigger stage finds the run.
    .addColumn('trigger_key', 'text', (c) => c.unique())
    .addColumn('batch_id', 'uuid', (c) => c.references('run_batches.id'))
    .execute();
  await db.schema.createIndex('runs_batch').on('playbook_runs').column('batch_id').where(sql.ref('batch_id'), 'is not', null).execute();

  await db.schema
    .alterTable('run_steps')
    .addColumn('kind', 'text')
    .addColumn('idempotency_key', 'text')
    .addColumn('duration_ms', 'integer')
    // Container bookkeeping (the chosen branch of a condition, the branches of a parallel step).
    .addColumn('state', 'jsonb')
    .addColumn('logs', 'jsonb')
    .addColumn('queued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // A retry's backoff: the job is delayed until then; the reconciler uses it too.
    .addColumn('not_before', 'timestamptz')
    .execute();
  // The reconciler looks for steps that were queued but whose job never made it to the queue.
  await db.schema.createIndex('run_steps_queued').on('run_steps').column('queued_at').where(sql.ref('status'), '=', 'queued').execute();

  await db.schema
    .alterTable('approvals')
    .addColumn('incident_id', 'uuid', (c) => c.references('incidents.id'))
    .addColumn('escalation_level', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // One gate per approval step of a run: a re-delivered step job finds the gate it opened.
  await db.schema
    .createIndex('approvals_run_step')
    .on('approvals')
    .columns(['run_id', 'step_id'])
    .unique()
    .where(sql.ref('run_id'), 'is not', null)
    .execute();

  // Every message that shows a gate, so each decision updates all of them in place.
  await db.schema
    .createTable('approval_cards')
    .addColumn('approval_id', 'uuid', (c) => c.notNull().references('approvals.id').onDelete('cascade'))
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('message_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('channel','dm')`))
    .addColumn('principal_id', 'uuid', (c) => c.references('principals.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('approval_cards_pk', ['approval_id', 'platform', 'channel_id'])
    .execute();

  // Signed one-time links for phones without the chat app. The id is the nonce inside the signed
  // token; `used_at` makes the link single-use.
  await db.schema
    .createTable('approval_links')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('approval_id', 'uuid', (c) => c.notNull().references('approvals.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id'))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('sent_via', 'text')
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // A principal's own API token (sha256 stored, never the token), so an approval decided over the
  // API is decided by someone, never by the admin token acting as nobody.
  await db.schema
    .createTable('principal_tokens')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id').onDelete('cascade'))
    .addColumn('token_sha256', 'text', (c) => c.notNull().unique())
    .addColumn('label', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  // Who is on call: position 0 is the primary, 1 the next one an expiring gate escalates to, …
  await db.schema
    .createTable('oncall_schedules')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('schedule', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull().check(sql`position >= 0`))
    .addColumn('principal_id', 'uuid', (c) => c.notNull().references('principals.id').onDelete('cascade'))
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('oncall_schedules_pk', ['tenant_id', 'schedule', 'position'])
    .execute();

  // Everything the engine must do later (wake a wait, expire a gate, undo a containment). The row
  // is the truth; a delayed BullMQ job with the same id fires it, and the reconciler re-adds the
  // job if a crash lost it between commit and enqueue.
  await db.schema
    .createTable('engine_timers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) =>
      c.notNull().check(sql`kind in ('wait.wake','wait.timeout','approval.expire','revert.run','parallel.timeout')`),
    )
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('run_id', 'uuid')
    .addColumn('step_id', 'text')
    .addColumn('ref_id', 'text')
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending').check(sql`status in ('pending','fired','cancelled')`))
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('fired_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('engine_timers_pending').on('engine_timers').column('due_at').where(sql.ref('status'), '=', 'pending').execute();

  // `wait: { until }`: a run waiting for an event of its tenant.
  await db.schema
    .createTable('run_waits')
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('playbook_runs.id').onDelete('cascade'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('until', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('waiting').check(sql`status in ('waiting','matched','timed_out','cancelled')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('run_waits_pk', ['run_id', 'step_id'])
    .execute();
  await db.schema.createIndex('run_waits_tenant').on('run_waits').column('tenant_id').where(sql.ref('status'), '=', 'waiting').execute();

  // Scheduled undos of containment (unblock, release, re-enable), which outlive their run.
  await db.schema
    .createTable('run_reverts')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('playbook_runs.id').onDelete('cascade'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('target_step', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('input', 'jsonb', (c) => c.notNull())
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('scheduled').check(sql`status in ('scheduled','running','succeeded','failed','cancelled')`),
    )
    .addColumn('output', 'jsonb')
    .addColumn('error', 'text')
    .addColumn('executed_by', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addUniqueConstraint('run_reverts_step', ['run_id', 'step_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['run_reverts', 'run_waits', 'engine_timers', 'oncall_schedules', 'principal_tokens', 'approval_links', 'approval_cards']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
  await db.schema.dropIndex('approvals_run_step').ifExists().execute();
  await db.schema.alterTable('approvals').dropColumn('escalation_level').dropColumn('incident_id').execute();
  await db.schema.dropIndex('run_steps_queued').ifExists().execute();
  await db.schema
    .alterTable('run_steps')
    .dropColumn('not_before')
    .dropColumn('queued_at')
    .dropColumn('logs')
    .dropColumn('state')
    .dropColumn('duration_ms')
    .dropColumn('idempotency_key')
    .dropColumn('kind')
    .execute();
  await db.schema.dropIndex('runs_batch').ifExists().execute();
  await db.schema.alterTable('playbook_runs').dropColumn('batch_id').dropColumn('trigger_key').dropColumn('event').dropColumn('definition_hash').execute();
  await db.schema.dropTable('run_batches').ifExists().execute();
  await db.schema.dropTable('playbook_definitions').ifExists().execute();
}
