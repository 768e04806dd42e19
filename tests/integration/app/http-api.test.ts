import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

describe('HTTP edge and read API', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
    await auditedWrite(s.store.db, 'test', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: {} }).execute();
      for (let i = 1; i <= 5; i++) {
        await trx.insertInto('incidents').values({ tenant_id: 'acme', title: `incident ${i}`, severity: (i % 4) + 1, created_by: 'test', created_at: new Date(Date.UTC(2026, 10, i)) }).execute();
      }
      audit({ tenantId: 'acme', action: 'seed', target: 'tenant:acme', delta: {} });
    });
  });
  afterAll(() => s.stop());

  const get = (path: string, token?: string) =>
    fetch(`${s.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers /healthz and /readyz without a token', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', queue: 'ok' } });
  });

  it.each(['/api/v1/tenants', '/api/v1/alerts', '/api/v1/incidents', '/api/v1/runs', '/api/v1/audit'])(
    'refuses %s with 401 without the token, or with a wrong one',
    async (path) => {
      const none = await get(path);
      expect(none.status).toBe(401);
      expect(await none.json()).toEqual({ error: { code: 'auth.unauthenticated', message: expect.stringContaining('Bearer') } });
      expect((await get(path, `${s.apiToken}x`)).status).toBe(401);
      expect((await get(path, s.apiToken)).status).toBe(200);
    },
  );

  it('lists incidents newest first, filters by severity, pages with a cursor', async () => {
    const first = (await (await get('/api/v1/incidents?tenant=acme&limit=2', s.apiToken)).json()) as { items: { title: string }[]; next_cursor: string };
    expect(first.items.map((i) => i.title)).toEqual(['incident 5', 'incident 4']);
    const second = (await (await get(`/api/v1/incidents?tenant=acme&limit=2&cursor=${first.next_cursor}`, s.apiToken)).json()) as { items: { title: string }[] };
    expect(second.items.map((i) => i.title)).toEqual(['incident 3', 'incident 2']);
    const sev2 = (await (await get('/api/v1/incidents?tenant=acme&severity=2', s.apiToken)).json()) as { items: { title: string }[] };
    expect(sev2.items.map((i) => i.title)).toEqual(['incident 5', 'incident 1']);
  });

  it('answers bad parameters with 400 naming the field, unknown ids with 404', async () => {
    const bad = await get('/api/v1/incidents?severity=9', s.apiToken);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'input.invalid', details: { field: 'severity' } } });
    expect((await get('/api/v1/incidents/not-a-uuid', s.apiToken)).status).toBe(400);
    const missing = await get('/api/v1/incidents/00000000-0000-4000-8000-000000000000', s.apiToken);
    expect(missing.status).toBe(404);
  });

  it('shows the audit chain through the API', async () => {
    const body = (await (await get('/api/v1/audit?tenant=acme', s.apiToken)).json()) as { items: { action: string; hash: string }[] };
    expect(body.items.map((i) => i.action)).toContain('seed');
    expect(body.items[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('exposes Prometheus metrics with the HTTP latency histogram', async () => {
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/reflex_http_request_duration_seconds_bucket\{.*route="\/api\/v1\/incidents".*\}/);
    expect(text).toContain('reflex_jobs_completed_total');
    expect(text).toContain('reflex_process_resident_memory_bytes');
  });
});
