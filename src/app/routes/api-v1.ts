import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import type { Database } from '../../store/schema.ts';
import { sealAuditLog } from '../../store/audit-log.ts';
import { requireBearer } from '../auth.ts';
import { withIntelReports, type StoredVerdict } from '../../store/intel-reports.ts';

/**
 * Read endpoints under /api/v1, all behind `Authorization: Bearer <REFLEX_API_TOKEN>`.
 * Lists page newest-first with `limit` and an opaque `cursor` (the last row's created_at|id).
 */
const listQuery = z.object({
  tenant: z.string().min(1).max(63).optional(),
  severity: z.coerce.number().int().min(1).max(4).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  status: z.string().min(1).max(32).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});
type ListQuery = z.infer<typeof listQuery>;

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || what;
    throw new ReflexError('input.invalid', `bad ${what}: ${field}: ${issue.message}`, {
      safeMessage: `Invalid ${what} parameter "${field}": ${issue.message}`,
      details: { field },
    });
  }
  return r.data;
}

function decodeCursor(cursor: string | undefined): { at: Date; id: string } | undefined {
  if (!cursor) return undefined;
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const date = new Date(at ?? '');
  if (!id || Number.isNaN(date.getTime())) {
    throw new ReflexError('input.invalid', 'bad cursor', { safeMessage: 'Invalid cursor.', details: { field: 'cursor' } });
  }
  return { at: date, id };
}

function page<T extends { id: string | number; created_at: Date }>(rows: T[], limit: number) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  const next = rows.length > limit && last ? Buffer.from(`${last.created_at.toISOString()}|${last.id}`).toString('base64url') : null;
  return { items, next_cursor: next };
}

const uuid = z.object({ id: z.uuid() });

export function registerApiV1(app: FastifyInstance, deps: { db: Kysely<Database>; apiToken: string }): void {
  const { db } = deps;
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/api/v1/')) return;
    // An approval decision is made by a person with their own principal token (rpt_…), which
    // its route verifies; the admin token acting as nobody must not be able to decide.
    if (req.method === 'POST' && /^\/api\/v1\/approvals\/[^/]+\/decision(\?|$)/.test(req.url)) return;
    // Twilio posts a phone call's keypress here and cannot send a bearer token; the route checks
    // X-Twilio-Signature and its signed one-time token instead (src/engine/phone-ack/).
    if (req.method === 'POST' && /^\/api\/v1\/phone\/ack\/[^/?]+(\?|$)/.test(req.url)) return;
    requireBearer(req.headers.authorization, deps.apiToken);
  });

  app.get('/api/v1/tenants', async () => {
    const items = await db.selectFrom('tenants').select(['id', 'name', 'created_at']).orderBy('id').execute();
    return { items };
  });

  // Shared shape for the tenant/severity/since/cursor filters of the list endpoints.
  function listOf<TB extends 'alerts' | 'incidents' | 'playbook_runs'>(table: TB, q: ListQuery) {
    const cursor = decodeCursor(q.cursor);
    let query = db.selectFrom(table as 'alerts').selectAll();
    if (q.tenant) query = query.where('tenant_id', '=', q.tenant);
    if (q.severity && table !== 'playbook_runs') query = query.where('severity', '=', q.severity);
    if (q.since) query = query.where('created_at', '>=', new Date(q.since));
    if (q.status) query = query.where('status', '=', q.status as never);
    if (cursor) {
      query = query.where((eb) =>
        eb.or([eb('created_at', '<', cursor.at), eb.and([eb('created_at', '=', cursor.at), eb('id', '<', cursor.id)])]),
      );
    }
    return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.limit + 1).execute();
  }

  app.get('/api/v1/alerts', async (req) => {
    const q = parse(listQuery, req.query, 'query');
    return page(await listOf('alerts', q), q.limit);
  });
  app.get('/api/v1/alerts/:id', async (req) => {
    const { id } = parse(uuid, req.params, 'alert id');
    const alert = await db.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!alert) throw new ReflexError('not_found', `alert ${id}`, { safeMessage: `No alert ${id}.` });
    // The record names each vendor answer (intel_reports); the alert is shown with the answers in it.
    const enrichment = alert.enrichment as { verdicts?: StoredVerdict[] } | null;
    if (!enrichment?.verdicts?.length) return alert;
    return { ...alert, enrichment: { ...enrichment, verdicts: await withIntelReports(db, enrichment.verdicts) } };
  });

  app.get('/api/v1/incidents', async (req) => {
    const q = parse(listQuery, req.query, 'query');
    return page((await listOf('incidents', q)) as never, q.limit);
  });
  app.get('/api/v1/incidents/:id', async (req) => {
    const { id } = parse(uuid, req.params, 'incident id');
    const incident = await db.selectFrom('incidents').selectAll().where('id', '=', id).executeTakeFirst();
    if (!incident) throw new ReflexError('not_found', `incident ${id}`, { safeMessage: `No incident ${id}.` });
    const channels = await db.selectFrom('incident_channels').select(['platform', 'channel_id', 'name', 'created_at']).where('incident_id', '=', id).execute();
    const alerts = await db.selectFrom('alerts').select(['id', 'title', 'severity', 'occurrences']).where('incident_id', '=', id).execute();
    return { ...incident, channels, alerts };
  });

  app.get('/api/v1/runs', async (req) => {
    const q = parse(listQuery, req.query, 'query');
    return page((await listOf('playbook_runs', q)) as never, q.limit);
  });
  app.get('/api/v1/runs/:id', async (req) => {
    const { id } = parse(uuid, req.params, 'run id');
    const run = await db.selectFrom('playbook_runs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!run) throw new ReflexError('not_found', `run ${id}`, { safeMessage: `No run ${id}.` });
    const steps = await db.selectFrom('run_steps').selectAll().where('run_id', '=', id).orderBy('started_at').orderBy('step_id').execute();
    return { ...run, steps };
  });

  const auditQuery = z.object({
    tenant: z.string().min(1).max(63).optional(),
    after: z.coerce.number().int().min(0).default(0),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  });
  app.get('/api/v1/audit', async (req) => {
    const q = parse(auditQuery, req.query, 'query');
    // Rows are listed once linked into the chain; seal what is pending so the list is current.
    await sealAuditLog(db);
    let query = db.selectFrom('audit_log').selectAll().where('hash', 'is not', null).where('seq', '>', String(q.after));
    if (q.tenant) query = query.where('tenant_id', '=', q.tenant);
    const items = await query.orderBy('seq').limit(q.limit).execute();
    return { items, next_after: items.length === q.limit ? items[items.length - 1]!.seq : null };
  });
}
