import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../errors.ts';
import { linkAlertsToIncidents, lockAlertRows } from './alert-rows.ts';
import { auditedWrite, type AuditEntry } from './audit-log.ts';
import type { Database, Incident, IncidentChannelsTable, Severity, TimelineEntriesTable } from './schema.ts';

/**
 * Incidents and their timelines. Every change is audited and leaves a timeline entry in the same
 * transaction, so the timeline an analyst reads in chat is exactly what happened.
 *
 * Callers that must react to a change (a SEV1 gets its own channel) pass an `IncidentEvents`; its
 * listeners run after the commit, so they never see a change that was rolled back, and a listener
 * that fails never undoes the change.
 */
export type TimelineEntry = Selectable<TimelineEntriesTable>;
export type IncidentChannel = Selectable<IncidentChannelsTable>;

export type IncidentEvent =
  | { type: 'incident.created'; incident: Incident }
  | { type: 'incident.severity_changed'; incident: Incident; from: Severity; actor: string }
  | { type: 'incident.closed'; incident: Incident; actor: string };

export type IncidentListener = (event: IncidentEvent) => Promise<void> | void;

/**
 * Listeners told about incident changes after they commit. Keep listeners quick (enqueue a job,
 * do not call Slack inline): `emit` awaits them before the command answers.
 *
 * @example
 * const events = new IncidentEvents((err) => log.error({ err }, 'incident listener failed'));
 * events.on(async (e) => {
 *   if (isNowSev1(e)) await queues.add('incident.channel', 'ensure', { incidentId: e.incident.id }, { jobId: `channel:${e.incident.id}` });
 * });
 * await createIncident(db, { tenantId: 'acme', title: 'Ransomware on web-01', severity: 1, createdBy: 'slack:T1:U1' }, events);
 */
export class IncidentEvents {
  private readonly listeners: IncidentListener[] = [];

  constructor(private readonly onError: (err: unknown, event: IncidentEvent) => void = () => undefined) {}

  on(listener: IncidentListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Never throws: the change it reports has committed already. */
  async emit(event: IncidentEvent): Promise<void> {
    await Promise.all(
      this.listeners.map(async (l) => {
        try {
          await l(event);
        } catch (err) {
          this.onError(err, event);
        }
      }),
    );
  }
}

/** True when the event made the incident a SEV1 (created as one, or raised to one). */
export function isNowSev1(e: IncidentEvent): boolean {
  if (e.type === 'incident.created') return e.incident.severity === 1;
  if (e.type === 'incident.severity_changed') return e.incident.severity === 1 && e.from !== 1;
  return false;
}

/** The 8-hex-digit prefix chat shows for an incident id. */
export function shortIncidentId(id: string): string {
  return id.slice(0, 8);
}

// Titles and notes reach chat channels and case systems: one line of printable text.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/;
const title = z
  .string()
  .transform((s) => s.trim().replace(/\s+/g, ' '))
  .pipe(z.string().min(3, 'the title needs at least 3 characters').max(200, 'the title is longer than 200 characters'))
  .refine((s) => !CONTROL.test(s), 'the title contains control characters');
export const severitySchema = z.coerce
  .number({ error: 'severity must be a number from 1 (critical) to 4 (info)' })
  .int('severity must be a whole number from 1 (critical) to 4 (info)')
  .min(1, 'severity must be from 1 (critical) to 4 (info)')
  .max(4, 'severity must be from 1 (critical) to 4 (info)')
  .transform((n) => n as Severity);
const actor = z.string().min(1).max(300);
const tenantId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'is not a tenant id');

const createInput = z.object({
  tenantId,
  title,
  severity: severitySchema,
  createdBy: actor,
  summary: z.string().max(10_000, 'the summary is longer than 10,000 characters').optional(),
  alertIds: z.array(z.uuid('an alert id is not a UUID')).max(1000).optional(),
});
export type CreateIncidentInput = z.input<typeof createInput>;

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.join('.') || what;
  throw new ReflexError('input.invalid', `bad ${what}: ${field}: ${issue.message}`, { safeMessage: issue.message, details: { field } });
}

/**
 * Opens an incident, links `alertIds` (which must belong to the tenant) and writes the
 * `incident.created` timeline entry, all in one audited transaction. The pipeline's case stage
 * calls this too.
 *
 * @example
 * const inc = await createIncident(db, { tenantId: 'acme', title: 'SSH brute force on web-01', severity: 2, createdBy: 'pipeline' });
 */
export async function createIncident(db: Kysely<Database>, input: CreateIncidentInput, events?: IncidentEvents): Promise<Incident> {
  const v = parse(createInput, input, 'incident');
  const [incident] = await auditedWrite(db, v.createdBy, (trx, audit) => insertIncidents(trx, audit, [v]));
  await events?.emit({ type: 'incident.created', incident: incident! });
  return incident!;
}

/**
 * Opens incidents inside the caller's audited transaction (the pipeline opens a batch's incidents
 * in the transaction that holds its correlation locks): each validated, all inserted in one
 * statement, their alerts linked in one, their `incident.created` entries in one. Returns them in
 * input order; the caller emits `incident.created` for each after its commit.
 */
export async function createIncidentsIn(trx: Transaction<Database>, audit: (entry: AuditEntry) => void, inputs: CreateIncidentInput[]): Promise<Incident[]> {
  return insertIncidents(
    trx,
    audit,
    inputs.map((input) => parse(createInput, input, 'incident')),
  );
}

async function insertIncidents(trx: Transaction<Database>, audit: (entry: AuditEntry) => void, inputs: z.infer<typeof createInput>[]): Promise<Incident[]> {
  if (inputs.length === 0) return [];
  const valid = inputs.map((v) => ({ ...v, id: randomUUID(), alertIds: [...new Set(v.alertIds ?? [])] }));
  const rows = await trx
    .insertInto('incidents')
    .values(valid.map((v) => ({ id: v.id, tenant_id: v.tenantId, title: v.title, severity: v.severity, summary: v.summary ?? null, created_by: v.createdBy })))
    .returningAll()
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const links = valid.flatMap((v) => v.alertIds.map((alertId) => ({ alertId, incidentId: v.id, tenantId: v.tenantId })));
  if (links.length > 0) {
    const tenantOf = new Map((await lockAlertRows(trx, links.map((l) => l.alertId))).map((r) => [r.id, r.tenant_id]));
    const present = links.filter((l) => tenantOf.get(l.alertId) === l.tenantId).length;
    if (present !== links.length) {
      // Rolls the incidents back too: an incident citing alerts it does not have would mislead.
      throw new ReflexError('not_found', `only ${present} of ${links.length} alerts exist in their tenants`, {
        safeMessage: 'Some of the alerts to link do not exist in this tenant.',
      });
    }
    await linkAlertsToIncidents(trx, links);
  }
  const facts = (v: (typeof valid)[number]) => ({ severity: v.severity, ...(v.alertIds.length ? { alertIds: v.alertIds } : {}) });
  await insertTimelines(
    trx,
    valid.map((v) => ({ tenantId: v.tenantId, incidentId: v.id, kind: 'incident.created', actor: v.createdBy, text: `Incident opened at SEV${v.severity}: ${v.title}`, data: facts(v) })),
    false,
  );
  for (const v of valid) audit({ tenantId: v.tenantId, action: 'incident.create', target: `incident:${v.id}`, delta: { title: v.title, ...facts(v) } });
  return valid.map((v) => byId.get(v.id)!);
}

export async function getIncident(db: Kysely<Database>, tenantId: string, id: string): Promise<Incident | undefined> {
  if (!z.uuid().safeParse(id).success) return undefined;
  return db.selectFrom('incidents').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

/**
 * The incident a chat user means by `ref`: its UUID or a unique prefix of at least 8 hex digits
 * (what chat shows), within the tenant only.
 */
export async function resolveIncidentRef(db: Kysely<Database>, tenantId: string, ref: string): Promise<Incident> {
  const r = ref.trim().toLowerCase().replace(/^#/, '');
  if (!/^[0-9a-f]{8}[0-9a-f-]{0,28}$/.test(r)) {
    throw new ReflexError('input.invalid', `bad incident ref ${ref}`, {
      safeMessage: `"${ref.slice(0, 40)}" is not an incident id: give its first 8 hex characters or the whole id.`,
    });
  }
  if (r.length === 36) {
    const inc = await getIncident(db, tenantId, r);
    if (!inc) throw new ReflexError('not_found', `no incident ${r} in ${tenantId}`, { safeMessage: `No incident ${shortIncidentId(r)} in this tenant.` });
    return inc;
  }
  const rows = await db
    .selectFrom('incidents')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb(eb.cast('id', 'text'), 'like', `${r}%`))
    .limit(2)
    .execute();
  if (rows.length === 0) throw new ReflexError('not_found', `no incident ${r}* in ${tenantId}`, { safeMessage: `No incident ${r} in this tenant.` });
  if (rows.length > 1) {
    throw new ReflexError('input.invalid', `incident ref ${r} is ambiguous`, {
      safeMessage: `More than one incident starts with ${r}; give more of the id.`,
    });
  }
  return rows[0]!;
}

export async function listIncidents(
  db: Kysely<Database>,
  tenantId: string,
  opts: { status?: 'open' | 'closed' | 'all'; limit?: number } = {},
): Promise<Incident[]> {
  let q = db.selectFrom('incidents').selectAll().where('tenant_id', '=', tenantId);
  const status = opts.status ?? 'open';
  if (status === 'open') q = q.where('status', '!=', 'closed');
  else if (status === 'closed') q = q.where('status', '=', 'closed');
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(Math.min(Math.max(opts.limit ?? 20, 1), 200)).execute();
}

export async function closeIncident(
  db: Kysely<Database>,
  input: { tenantId: string; incidentId: string; actor: string; reason?: string },
  events?: IncidentEvents,
): Promise<Incident> {
  const reason = input.reason?.trim() || undefined;
  const incident = await auditedWrite(db, input.actor, async (trx, audit) => {
    const current = await lockIncident(trx, input.tenantId, input.incidentId);
    if (current.status === 'closed') {
      throw new ReflexError('conflict', `incident ${current.id} is closed already`, {
        safeMessage: `Incident ${shortIncidentId(current.id)} was closed already (${current.closed_at?.toISOString() ?? 'earlier'}).`,
      });
    }
    const inc = await trx
      .updateTable('incidents')
      .set({ status: 'closed', closed_at: new Date() })
      .where('id', '=', current.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await insertTimeline(trx, {
      tenantId: input.tenantId,
      incidentId: inc.id,
      kind: 'incident.closed',
      actor: input.actor,
      text: reason ? `Incident closed: ${reason}` : 'Incident closed',
      data: { previousStatus: current.status, ...(reason ? { reason } : {}) },
    });
    audit({ tenantId: input.tenantId, action: 'incident.close', target: `incident:${inc.id}`, delta: { previousStatus: current.status, reason: reason ?? null } });
    return inc;
  });
  await events?.emit({ type: 'incident.closed', incident, actor: input.actor });
  return incident;
}

export async function setSeverity(
  db: Kysely<Database>,
  input: { tenantId: string; incidentId: string; severity: Severity; actor: string },
  events?: IncidentEvents,
): Promise<{ incident: Incident; previous: Severity }> {
  const severity = parse(severitySchema, input.severity, 'severity');
  const result = await auditedWrite(db, input.actor, async (trx, audit) => {
    const current = await lockIncident(trx, input.tenantId, input.incidentId);
    const previous = current.severity as Severity;
    if (current.status === 'closed') {
      throw new ReflexError('conflict', `incident ${current.id} is closed`, { safeMessage: `Incident ${shortIncidentId(current.id)} is closed; its severity is final.` });
    }
    if (previous === severity) {
      throw new ReflexError('conflict', `incident ${current.id} is SEV${severity} already`, { safeMessage: `Incident ${shortIncidentId(current.id)} is SEV${severity} already.` });
    }
    const inc = await trx.updateTable('incidents').set({ severity }).where('id', '=', current.id).returningAll().executeTakeFirstOrThrow();
    await insertTimeline(trx, {
      tenantId: input.tenantId,
      incidentId: inc.id,
      kind: 'incident.severity_changed',
      actor: input.actor,
      text: `Severity ${severity < previous ? 'raised' : 'lowered'} from SEV${previous} to SEV${severity}`,
      data: { from: previous, to: severity },
    });
    audit({ tenantId: input.tenantId, action: 'incident.severity', target: `incident:${inc.id}`, delta: { from: previous, to: severity } });
    return { incident: inc, previous };
  });
  await events?.emit({ type: 'incident.severity_changed', incident: result.incident, from: result.previous, actor: input.actor });
  return result;
}

export interface TimelineInput {
  tenantId: string;
  incidentId: string;
  /** Dotted, e.g. `note`, `chat.pinned`, `playbook.step.succeeded`, `approval.decided`. */
  kind: string;
  actor: string;
  text: string;
  data?: Record<string, unknown>;
}

const timelineInput = z.object({
  tenantId,
  incidentId: z.uuid('the incident id is not a UUID'),
  kind: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, 'the kind is not a dotted lower-case name').max(100),
  actor,
  text: z.string().trim().min(1, 'the text is empty').max(4000, 'the text is longer than 4,000 characters'),
  data: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Appends a timeline entry. Given a database it writes in its own audited transaction (audit
 * action `timeline.append`); given a transaction it writes inside it, and the caller (already in
 * an `auditedWrite`) audits the change the entry belongs to.
 *
 * @example
 * await appendTimeline(db, { tenantId, incidentId, kind: 'note', actor: 'slack:T1:U1', text: 'Called the ISP' });
 */
export async function appendTimeline(target: Kysely<Database> | Transaction<Database>, entry: TimelineInput): Promise<TimelineEntry> {
  const v = parse(timelineInput, entry, 'timeline entry');
  if (target.isTransaction) return insertTimeline(target as Transaction<Database>, { ...v, data: v.data ?? {} }, true);
  return auditedWrite(target, v.actor, async (trx, audit) => {
    const row = await insertTimeline(trx, { ...v, data: v.data ?? {} }, true);
    audit({ tenantId: v.tenantId, action: 'timeline.append', target: `incident:${v.incidentId}`, delta: { entry: row.id, kind: v.kind } });
    return row;
  });
}

/**
 * Appends several timeline entries inside the caller's transaction (which audits the changes they
 * belong to): each validated, the incidents checked in one query, the rows in one statement.
 *
 * @example
 * await auditedWrite(db, 'pipeline', async (trx, audit) => { await appendTimelineEntries(trx, entries); audit(…); });
 */
export async function appendTimelineEntries(trx: Transaction<Database>, entries: TimelineInput[]): Promise<TimelineEntry[]> {
  const valid = entries.map((e) => parse(timelineInput, e, 'timeline entry'));
  return insertTimelines(trx, valid.map((v) => ({ ...v, data: v.data ?? {} })), true);
}

export async function listTimeline(
  db: Kysely<Database>,
  tenantId: string,
  incidentId: string,
  opts: { limit?: number } = {},
): Promise<TimelineEntry[]> {
  // The newest `limit` entries, oldest first: the end of a long incident matters most in chat.
  const rows = await db
    .selectFrom('timeline_entries')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('incident_id', '=', incidentId)
    .orderBy('id', 'desc')
    .limit(Math.min(Math.max(opts.limit ?? 500, 1), 5000))
    .execute();
  return rows.reverse();
}

/** The incident whose chat channel this is, if any. */
export async function findIncidentByChannel(db: Kysely<Database>, platform: string, channelId: string): Promise<Incident | undefined> {
  return db
    .selectFrom('incident_channels as c')
    .innerJoin('incidents as i', 'i.id', 'c.incident_id')
    .selectAll('i')
    .where('c.platform', '=', platform)
    .where('c.channel_id', '=', channelId)
    .executeTakeFirst();
}

export async function getIncidentChannel(db: Kysely<Database>, incidentId: string, platform: string): Promise<IncidentChannel | undefined> {
  return db.selectFrom('incident_channels').selectAll().where('incident_id', '=', incidentId).where('platform', '=', platform).executeTakeFirst();
}

/**
 * Records the chat channel of an incident; one per platform (the table's key), so a retried
 * "create the SEV1 channel" job finds the first one and answers it instead of adding another.
 */
export async function recordIncidentChannel(
  db: Kysely<Database>,
  input: { tenantId: string; incidentId: string; platform: string; channelId: string; name: string; actor: string },
): Promise<{ channel: IncidentChannel; created: boolean }> {
  const existing = await getIncidentChannel(db, input.incidentId, input.platform);
  if (existing) return { channel: existing, created: false };
  return auditedWrite(db, input.actor, async (trx, audit) => {
    await lockIncident(trx, input.tenantId, input.incidentId);
    const row = await trx
      .insertInto('incident_channels')
      .values({ incident_id: input.incidentId, tenant_id: input.tenantId, platform: input.platform, channel_id: input.channelId, name: input.name })
      .onConflict((oc) => oc.columns(['incident_id', 'platform']).doNothing())
      .returningAll()
      .executeTakeFirst();
    const channel = row ?? (await trx.selectFrom('incident_channels').selectAll().where('incident_id', '=', input.incidentId).where('platform', '=', input.platform).executeTakeFirstOrThrow());
    if (row) {
      await insertTimeline(trx, {
        tenantId: input.tenantId,
        incidentId: input.incidentId,
        kind: 'incident.channel',
        actor: input.actor,
        text: `Incident channel #${input.name} on ${input.platform}`,
        data: { platform: input.platform, channelId: input.channelId },
      });
    }
    audit({
      tenantId: input.tenantId,
      action: 'incident.channel',
      target: `incident:${input.incidentId}`,
      delta: { platform: input.platform, channelId: channel.channel_id, created: Boolean(row) },
    });
    return { channel, created: Boolean(row) };
  });
}

/** Reads the incident FOR UPDATE, so two closes (or close and re-sev) serialise. */
async function lockIncident(trx: Transaction<Database>, tenantId: string, incidentId: string): Promise<Incident> {
  const inc = z.uuid().safeParse(incidentId).success
    ? await trx.selectFrom('incidents').selectAll().where('tenant_id', '=', tenantId).where('id', '=', incidentId).forUpdate().executeTakeFirst()
    : undefined;
  if (!inc) throw new ReflexError('not_found', `no incident ${incidentId} in ${tenantId}`, { safeMessage: `No incident ${shortIncidentId(incidentId)} in this tenant.` });
  return inc;
}

async function insertTimeline(trx: Transaction<Database>, e: Required<Omit<TimelineInput, 'data'>> & { data: Record<string, unknown> }, checkIncident = false): Promise<TimelineEntry> {
  return (await insertTimelines(trx, [e], checkIncident))[0]!;
}

async function insertTimelines(trx: Transaction<Database>, entries: (Required<Omit<TimelineInput, 'data'>> & { data: Record<string, unknown> })[], checkIncident: boolean): Promise<TimelineEntry[]> {
  if (entries.length === 0) return [];
  if (checkIncident) {
    // timeline_entries.incident_id references incidents(id) alone; keep tenants apart here.
    const wanted = new Map(entries.map((e) => [`${e.tenantId}\u0000${e.incidentId}`, e]));
    const found = await trx
      .selectFrom('incidents')
      .select(['id', 'tenant_id'])
      .where('id', 'in', [...new Set(entries.map((e) => e.incidentId))])
      .execute();
    for (const f of found) wanted.delete(`${f.tenant_id}\u0000${f.id}`);
    const e = [...wanted.values()][0];
    if (e) throw new ReflexError('not_found', `no incident ${e.incidentId} in ${e.tenantId}`, { safeMessage: `No incident ${shortIncidentId(e.incidentId)} in this tenant.` });
  }
  return trx
    .insertInto('timeline_entries')
    .values(entries.map((e) => ({ tenant_id: e.tenantId, incident_id: e.incidentId, kind: e.kind, actor: e.actor, text: e.text, data: JSON.stringify(e.data) })))
    .returningAll()
    .execute();
}
