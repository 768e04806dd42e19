import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { DefenderClient } from '../../../src/integrations/defender/defender-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');

/** mde_docs_isolate_machine_request.http: `POST <url>`, blank line, JSON body. */
const ISOLATE_HTTP = fixture('identity_containment/mde_docs_isolate_machine_request.http');
const ISOLATE_URL = new URL(ISOLATE_HTTP.split('\n')[0]?.split(' ')[1] ?? '');
const ISOLATE_BODY = JSON.parse(ISOLATE_HTTP.slice(ISOLATE_HTTP.indexOf('{'))) as { Comment: string; IsolationType: string };
const MACHINE = ISOLATE_URL.pathname.split('/')[3] ?? '';

type MachineAction = Record<string, unknown> & { id: string; type: string; status: string; machineId: string; creationDateTimeUtc: string };
const ACTION_JSON = fixture('identity_containment/mde_docs_machineAction_json_representation.json');
/** The machineAction fixture, with the fields a test needs changed (each call site says which). */
const action = (changes: Partial<MachineAction> = {}): MachineAction => ({ ...(JSON.parse(ACTION_JSON) as MachineAction), ...changes });
const FIXTURE_ACTION = action();

const BASE = `${ISOLATE_URL.protocol}//${ISOLATE_URL.host}`;
const LOGIN = 'https://login.microsoftonline.com';
const TENANT = '11111111-2222-3333-4444-555555555555';
const SECRET = 'mde-client-secret-0a1b2c3d';
const KEY = 'run_42:isolate';
const mde = () => new DefenderClient({ tenantId: TENANT, clientId: 'app-id', clientSecret: SECRET });

function stageToken(): void {
  // RFC 6749 §5.1 token answer; no Entra token response is among the fixtures.
  nock(LOGIN)
    .post(`/${TENANT}/oauth2/v2.0/token`, (b: Record<string, string>) => b.scope === 'https://api.securitycenter.microsoft.com/.default')
    .reply(200, { token_type: 'Bearer', expires_in: 3599, access_token: 'mde-token' });
}
const api = () => nock(BASE, { reqheaders: { authorization: 'Bearer mde-token' } });
/** `GET /api/machineactions?$filter=machineId eq '<id>'` answering an OData list of `actions`. */
function stageActions(machineId: string, actions: MachineAction[]): void {
  api()
    .get('/api/machineactions')
    .query({ $filter: `machineId eq '${machineId}'` })
    .reply(200, { '@odata.context': `${BASE}/api/$metadata#MachineActions`, value: actions });
}


useStrictNock();

describe('DefenderClient.isolate', () => {
  it('posts the documented isolate body, with the idempotency key in the Comment', async () => {
    let sent: unknown;
    stageToken();
    stageActions(MACHINE, []);
    api()
      .matchHeader('content-type', 'application/json')
      .post(ISOLATE_URL.pathname, (b: unknown) => {
        sent = b;
        return true;
      })
      // The fixture answer as isolate returns it at first: status changed from Succeeded to Pending.
      .reply(201, action({ machineId: MACHINE, status: 'Pending' }));

    const r = await mde().isolate(MACHINE, { idempotencyKey: KEY, comment: ISOLATE_BODY.Comment });

    expect(sent).toEqual({ ...ISOLATE_BODY, Comment: `${ISOLATE_BODY.Comment} [SENTreflex ${KEY}]` });
    expect(r).toMatchObject({ vendor: 'defender', target: MACHINE, state: 'pending', alreadyInState: false, reference: FIXTURE_ACTION.id });
  });

  it('reports done when the action comes back Succeeded (the fixture as published)', async () => {
    stageToken();
    stageActions(MACHINE, []);
    api().post(ISOLATE_URL.pathname).reply(201, ACTION_JSON);
    const r = await mde().isolate(MACHINE, { idempotencyKey: KEY });
    expect([r.state, r.reference]).toEqual(['done', '5382f7ea-7557-4ab7-9782-d50480024a4e']);
  });

  it('sends nothing when the latest isolation action already isolates the machine', async () => {
    stageToken();
    // Older release first, then the fixture's Isolate (Succeeded): the machine is isolated.
    stageActions(FIXTURE_ACTION.machineId, [
      action({ id: 'older-release', type: 'Unisolate', creationDateTimeUtc: '2018-12-30T10:00:00.0000000Z' }),
      FIXTURE_ACTION,
    ]);
    const r = await mde().isolate(FIXTURE_ACTION.machineId, { idempotencyKey: KEY });
    expect(r).toMatchObject({ alreadyInState: true, state: 'done', reference: FIXTURE_ACTION.id });
  });

  it('isolates again when a newer release follows the isolation, ignoring failed and cancelled actions', async () => {
    stageToken();
    stageActions(FIXTURE_ACTION.machineId, [
      FIXTURE_ACTION,
      action({ id: 'release', type: 'Unisolate', creationDateTimeUtc: '2019-01-03T08:00:00Z' }),
      action({ id: 'failed-isolate', status: 'Failed', creationDateTimeUtc: '2019-01-04T08:00:00Z' }),
      action({ id: 'cancelled-isolate', status: 'Cancelled', creationDateTimeUtc: '2019-01-05T08:00:00Z' }),
    ]);
    api().post(`/api/machines/${FIXTURE_ACTION.machineId}/isolate`).reply(201, action({ id: 'new', status: 'Pending' }));
    const r = await mde().isolate(FIXTURE_ACTION.machineId, { idempotencyKey: KEY });
    expect([r.alreadyInState, r.reference]).toEqual([false, 'new']);
  });

  it('treats 400 "Action is already in progress" as a pending success', async () => {
    stageToken();
    stageActions(MACHINE, []);
    // Defender's error envelope; the message is the one reported in MicrosoftDocs/microsoft-365-docs#5903.
    api()
      .post(ISOLATE_URL.pathname)
      .reply(400, { error: { code: 'ActiveRequestAlreadyExists', message: 'Action is already in progress', target: 'x' } });
    const r = await mde().isolate(MACHINE, { idempotencyKey: KEY });
    expect([r.state, r.alreadyInState]).toEqual(['pending', true]);
  });

  it('does not mistake other 400s for success', async () => {
    stageToken();
    stageActions(MACHINE, []);
    api()
      .post(ISOLATE_URL.pathname)
      .reply(400, { error: { code: 'InvalidRequestBody', message: 'Request body is incorrect' } });
    const err = await failure(mde().isolate(MACHINE, { idempotencyKey: KEY }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(err.message).toContain('InvalidRequestBody');
  });

  it('uses the configured isolation type', async () => {
    stageToken();
    stageActions(MACHINE, []);
    api()
      .post(ISOLATE_URL.pathname, (b: { IsolationType?: string }) => b.IsolationType === 'Selective')
      .reply(201, ACTION_JSON);
    await new DefenderClient({ tenantId: TENANT, clientId: 'app-id', clientSecret: SECRET, isolationType: 'Selective' }).isolate(MACHINE, {
      idempotencyKey: KEY,
    });
  });
});

describe('DefenderClient.release and status', () => {
  it('releases an isolated machine with POST /unisolate {Comment}', async () => {
    let sent: unknown;
    stageToken();
    stageActions(FIXTURE_ACTION.machineId, [FIXTURE_ACTION]);
    api()
      .post(`/api/machines/${FIXTURE_ACTION.machineId}/unisolate`, (b: unknown) => {
        sent = b;
        return true;
      })
      // The fixture, as an Unisolate just queued.
      .reply(201, action({ id: 'release-1', type: 'Unisolate', status: 'Pending' }));
    const r = await mde().release(FIXTURE_ACTION.machineId, { idempotencyKey: 'run_42:release' });
    expect(sent).toEqual({ Comment: 'Released by SENTreflex [SENTreflex run_42:release]' });
    expect(r).toMatchObject({ state: 'pending', alreadyInState: false, reference: 'release-1' });
  });

  it('reads the state from the latest effective isolation action', async () => {
    stageToken();
    stageActions(FIXTURE_ACTION.machineId, [FIXTURE_ACTION]);
    stageActions(FIXTURE_ACTION.machineId, [FIXTURE_ACTION, action({ type: 'Unisolate', status: 'InProgress', creationDateTimeUtc: '2019-01-03T00:00:00Z' })]);
    stageActions(FIXTURE_ACTION.machineId, []);
    const c = mde();
    expect((await c.status(FIXTURE_ACTION.machineId)).state).toBe('isolated');
    expect((await c.status(FIXTURE_ACTION.machineId)).state).toBe('releasing');
    expect((await c.status(FIXTURE_ACTION.machineId)).state).toBe('unknown');
  });
});

describe('DefenderClient host resolution and errors', () => {
  // GET /api/machines answers Machine entities; only id and computerDnsName are read, taken from
  // the machineAction fixture (no Machine fixture exists).
  const machine = { id: FIXTURE_ACTION.machineId, computerDnsName: FIXTURE_ACTION.computerDnsName };

  it('resolves a hostname through computerDnsName', async () => {
    stageToken();
    api()
      .get('/api/machines')
      .query({ $filter: "computerDnsName eq 'desktop-test'" })
      .reply(200, { value: [machine] });
    stageActions(FIXTURE_ACTION.machineId, [FIXTURE_ACTION]);
    const r = await mde().isolate('DESKTOP-TEST', { idempotencyKey: KEY });
    expect([r.target, r.alreadyInState]).toEqual([FIXTURE_ACTION.machineId, true]);
  });

  it('refuses to guess between two machines with one name, and reports an unknown one as not_found', async () => {
    stageToken();
    api()
      .get('/api/machines')
      .query(true)
      .reply(200, { value: [machine, { ...machine, id: MACHINE }] })
      .get('/api/machines')
      .query(true)
      .reply(200, { value: [] });
    const c = mde();
    const twice = await failure(c.isolate('desktop-test', { idempotencyKey: KEY }));
    expect([twice.code, twice.retryable]).toEqual(['conflict', false]);
    expect(twice.details?.machineIds).toEqual([FIXTURE_ACTION.machineId, MACHINE]);
    const none = await failure(c.isolate('desktop-test', { idempotencyKey: KEY }));
    expect([none.code, none.retryable]).toEqual(['not_found', false]);
  });

  it('refuses input that is neither a machine id nor a hostname, without calling Defender', async () => {
    const err = await failure(mde().isolate("x' or 1 eq 1", { idempotencyKey: KEY }));
    expect(err.code).toBe('input.invalid');
  });

  it('maps 404 on the action to not_found and 429 to a rate limit with Retry-After', async () => {
    stageToken();
    stageActions(MACHINE, []);
    api().post(ISOLATE_URL.pathname).reply(404, { error: { code: 'ResourceNotFound', message: `Machine ${MACHINE} was not found` } });
    stageActions(MACHINE, []);
    api().post(ISOLATE_URL.pathname).reply(429, undefined, { 'Retry-After': '42' });
    const c = mde();
    const e404 = await failure(c.isolate(MACHINE, { idempotencyKey: KEY }));
    expect([e404.code, e404.retryable]).toEqual(['not_found', false]);
    const e429 = await failure(c.isolate(MACHINE, { idempotencyKey: KEY }));
    expect([e429.code, e429.retryable, e429.retryAfterMs]).toEqual(['upstream.rate_limited', true, 42_000]);
  });
});
