import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { requireBearer } from '../app/auth.ts';
import { renderApprovalCard } from '../approvals/approval-card.ts';
import { authenticatePrincipalToken } from '../approvals/principal-tokens.ts';
import { ReflexError } from '../errors.ts';
import type { PlaybookEngineService } from './playbook-engine-service.ts';

/**
 * The engine's HTTP API, beside the read routes of src/app/routes/api-v1.ts:
 *
 * - `POST /api/v1/runs` `{ playbook, tenant, inputs, incident? }` starts a run (admin token);
 *   `tenants: "all" | ["a","b"]` instead of `tenant` fans out, one run per tenant.
 * - `GET /api/v1/runs/:id/log`: the execution log (every attempt: start, end, duration, masked
 *   input, output, error, logs, idempotency key), with the run's approvals and reverts.
 * - `GET /api/v1/run-batches/:id`: progress of a fan-out.
 * - `GET /api/v1/playbooks`: what can run, and the manifests that failed to load.
 * - `GET /api/v1/approvals?status=pending&tenant=`: gates with their rendered cards.
 * - `GET /api/v1/approvals/:id`.
 * - `POST /api/v1/approvals/:id/decision` `{ decision, reason? }` decided by the principal whose
 *   own token is in `X-Reflex-Principal-Token` (or `Authorization: Bearer rpt_…`). The admin
 *   token alone never decides: a gate needs someone.
 *
 * @example
 * curl -H "Authorization: Bearer $REFLEX_API_TOKEN" -d '{"playbook":"kiosk-lockdown","tenant":"acme","inputs":{"site":"hq"}}' …/api/v1/runs
 */
export interface EngineRoutesDeps {
  service: PlaybookEngineService;
  apiToken: string;
}

const startBody = z
  .object({
    playbook: z.string().min(1).max(80),
    tenant: z.string().min(1).max(63).optional(),
    tenants: z.union([z.literal('all'), z.array(z.string().min(1).max(63)).min(1).max(1000)]).optional(),
    inputs: z.record(z.string(), z.unknown()).default({}),
    incident: z.uuid().optional(),
  })
  .refine((b) => (b.tenant === undefined) !== (b.tenants === undefined), { message: 'give exactly one of tenant and tenants' });

const decisionBody = z.object({
  decision: z.enum(['approve', 'deny']),
  reason: z.string().max(1000).optional(),
});

const listApprovals = z.object({
  tenant: z.string().min(1).max(63).optional(),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || what;
    throw new ReflexError('input.invalid', `bad ${what}: ${field}: ${issue.message}`, { safeMessage: `Invalid ${what} "${field}": ${issue.message}`, details: { field } });
  }
  return r.data;
}

const uuidParam = z.object({ id: z.uuid() });

function principalToken(req: FastifyRequest): string | undefined {
  const header = req.headers['x-reflex-principal-token'];
  if (typeof header === 'string' && header) return header.trim();
  const m = /^Bearer\s+(rpt_\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

export function registerEngineRoutes(app: FastifyInstance, deps: EngineRoutesDeps): void {
  const { service } = deps;
  const { engine } = service;

  app.post('/api/v1/runs', async (req, reply) => {
    requireBearer(req.headers.authorization, deps.apiToken);
    const body = parse(startBody, req.body ?? {}, 'body');
    // A principal token beside the admin token attributes the run to that person (the requester an
    // approval gate will not let approve its own destructive step).
    const token = principalToken(req);
    let startedBy = 'api:admin';
    if (token && body.tenant) startedBy = `principal:${(await authenticatePrincipalToken(engine.deps.db, token, body.tenant)).principalId}`;
    if (body.tenants !== undefined) {
      const out = await engine.runs.fanOut({ playbookId: body.playbook, tenants: body.tenants, inputs: body.inputs, startedBy });
      return reply.status(201).send({ batch: out.batchId, runs: out.runs });
    }
    const run = await engine.runs.start({
      tenantId: body.tenant!,
      playbookId: body.playbook,
      inputs: body.inputs,
      startedBy,
      manual: true,
      ...(body.incident ? { incidentId: body.incident } : {}),
      trigger: { kind: 'manual', via: 'api' },
    });
    return reply.status(201).send({ id: run.id, status: run.status });
  });

  app.get('/api/v1/runs/:id/log', async (req) => {
    const { id } = parse(uuidParam, req.params, 'run id');
    const log = await engine.runs.log(id);
    if (!log) throw new ReflexError('not_found', `run ${id}`, { safeMessage: `No run ${id}.` });
    return log;
  });

  app.get('/api/v1/run-batches/:id', async (req) => {
    const { id } = parse(uuidParam, req.params, 'batch id');
    const runs = await engine.runs.batchProgress(id);
    if (runs.length === 0) throw new ReflexError('not_found', `batch ${id}`, { safeMessage: `No run batch ${id}.` });
    const done = runs.filter((r) => ['succeeded', 'failed', 'cancelled'].includes(r.status)).length;
    return { id, total: runs.length, finished: done, runs };
  });

  app.get('/api/v1/playbooks', async () => ({
    items: engine.deps.catalog.list().map(({ playbook, hash }) => ({
      id: playbook.id,
      name: playbook.name,
      version: playbook.version,
      definition: hash,
      manual: playbook.trigger.manual,
      eventTypes: playbook.trigger.eventTypes,
      inputs: playbook.inputs.map((i) => ({ name: i.name, type: i.type, list: i.list, required: i.required, default: i.default })),
    })),
    errors: engine.deps.catalog.errors.map((e) => ({ file: e.file, error: e.error.message })),
  }));

  app.get('/api/v1/approvals', async (req) => {
    const q = parse(listApprovals, req.query, 'query');
    const gates = await engine.gates.list({ ...(q.tenant ? { tenantId: q.tenant } : {}), ...(q.status ? { status: q.status } : {}), limit: q.limit });
    const items = [];
    for (const g of gates) {
      const view = await engine.gates.view(g);
      items.push({ ...g, decisions: view.decisions, card: renderApprovalCard(view) });
    }
    return { items };
  });

  app.get('/api/v1/approvals/:id', async (req) => {
    const { id } = parse(uuidParam, req.params, 'approval id');
    const gate = await engine.gates.get(id);
    if (!gate) throw new ReflexError('not_found', `approval ${id}`, { safeMessage: `No approval ${id}.` });
    const view = await engine.gates.view(gate);
    return { ...gate, decisions: view.decisions, card: renderApprovalCard(view) };
  });

  app.post('/api/v1/approvals/:id/decision', async (req) => {
    const { id } = parse(uuidParam, req.params, 'approval id');
    const body = parse(decisionBody, req.body ?? {}, 'body');
    const token = principalToken(req);
    if (!token) {
      throw new ReflexError('auth.unauthenticated', 'decision without a principal token', {
        safeMessage: 'Approvals are decided by a person: send your own principal token in X-Reflex-Principal-Token (reflex playbook approver-token).',
      });
    }
    const gate = await engine.gates.get(id);
    // Unknown ids still go through decide(), so the refusal is audited like a forged button.
    const tenantId = gate?.tenant_id ?? '';
    const who = await authenticatePrincipalToken(engine.deps.db, token, tenantId);
    const r = await engine.gates.decide({
      tenantId,
      approvalRef: id,
      principal: { principalId: who.principalId, displayName: who.displayName },
      decision: body.decision,
      reason: body.reason,
      via: 'api',
    });
    return { approval: r.approvalId, status: r.status, approvals: r.approvals, quorum: r.quorum, remaining: r.remaining };
  });
}
