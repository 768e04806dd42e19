import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { CrowdStrikeClient } from '../../../src/integrations/crowdstrike/crowdstrike-client.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

const ENVELOPE_JSON = readFileSync(
  path.resolve(process.cwd(), '../shared/fixtures', 'identity_containment/crowdstrike_envelope__demisto_online_states_response.json'),
  'utf8',
);
interface Envelope {
  meta: Record<string, unknown>;
  resources: Record<string, unknown>[];
  errors: unknown[];
}
const ENVELOPE = JSON.parse(ENVELOPE_JSON) as Envelope;
/**
 * The Falcon envelope fixture with `resources`/`errors` replaced by what the endpoint under test
 * answers (meta kept). devices-actions/v2 resources are `[{id, path}]` per the fixture's notes;
 * error entries are `{code, message}` as CrowdStrike's Ansible `host_contain` module reads them.
 */
const envelope = (resources: unknown[], errors: unknown[] = []): string => JSON.stringify({ meta: ENVELOPE.meta, resources, errors });

const AID = String(ENVELOPE.resources[0]?.id);
const OTHER_AID = String(ENVELOPE.resources[1]?.id);
const BASE = 'https://api.crowdstrike.com';
const SECRET = 'falcon-client-secret-77aa';
const KEY = 'run_42:isolate';
const falcon = (extra: Partial<ConstructorParameters<typeof CrowdStrikeClient>[0]> = {}) =>
  new CrowdStrikeClient({ clientId: 'falcon-client-id', clientSecret: SECRET, now: () => Date.parse('2025-03-01T12:00:00Z'), ...extra });

function stageToken(base = BASE, extraForm: Record<string, string> = {}): void {
  // POST /oauth2/token answers 201 {access_token, token_type, expires_in}; no token fixture exists.
  nock(base)
    .post('/oauth2/token', (b: Record<string, string>) => {
      expect(b).toEqual({ grant_type: 'client_credentials', client_id: 'falcon-client-id', client_secret: SECRET, ...extraForm });
      return true;
    })
    .reply(201, { access_token: 'falcon-token', token_type: 'bearer', expires_in: 1799 });
}
const api = (base = BASE) => nock(base, { reqheaders: { authorization: 'Bearer falcon-token' } });


useStrictNock();

describe('CrowdStrikeClient containment', () => {
  it('contains with devices-actions/v2?action_name=contain {ids:[aid]} and reports it pending', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2', { ids: [AID] })
      .query({ action_name: 'contain' })
      .reply(202, envelope([{ id: AID, path: '' }]));
    const r = await falcon().isolate(AID, { idempotencyKey: KEY });
    expect(r).toMatchObject({ vendor: 'crowdstrike', target: AID, state: 'pending', alreadyInState: false, failures: [] });
    expect((r.raw as Envelope).meta).toEqual(ENVELOPE.meta);
  });

  it('lifts containment with action_name=lift_containment', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2', { ids: [AID] })
      .query({ action_name: 'lift_containment' })
      .reply(202, envelope([{ id: AID, path: '' }]));
    expect((await falcon().release(AID, { idempotencyKey: 'run_42:release' })).state).toBe('pending');
  });

  it('treats error code 409 (already in that state) as success, so repeating is safe', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(409, envelope([], [{ code: 409, message: `Device ${AID} is already contained` }]));
    const r = await falcon().isolate(AID, { idempotencyKey: KEY });
    expect([r.alreadyInState, r.state]).toEqual([true, 'done']);
  });

  it('maps a 404 error entry to not_found and other entries to a non-retryable rejection', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(404, envelope([], [{ code: 404, message: `Device ${AID} not found` }]))
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(400, envelope([], [{ code: 400, message: `Device ${AID} is a mobile device and cannot be contained` }]));
    const c = falcon();
    const e404 = await failure(c.isolate(AID, { idempotencyKey: KEY }));
    expect([e404.code, e404.retryable]).toEqual(['not_found', false]);
    const e400 = await failure(c.isolate(AID, { idempotencyKey: KEY }));
    expect([e400.code, e400.retryable]).toEqual(['upstream.rejected', false]);
    expect(e400.details?.failures).toEqual([{ target: AID, code: '400', reason: `Device ${AID} is a mobile device and cannot be contained`, retryable: false }]);
  });

  it('does not take an error about another host, or an empty 2xx, as success', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(
        409,
        envelope([], [
          { code: 409, message: `Device ${OTHER_AID} is already contained` },
          { code: 500, message: 'internal error, try again' },
        ]),
      )
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(202, envelope([]));
    const c = falcon();
    const other = await failure(c.isolate(AID, { idempotencyKey: KEY }));
    expect(other.code).toBe('upstream.rejected');
    const empty = await failure(c.isolate(AID, { idempotencyKey: KEY }));
    expect([empty.code, empty.retryable]).toEqual(['upstream.unavailable', true]);
  });

  it('reads X-RateLimit-RetryAfter (epoch seconds) on 429', async () => {
    stageToken();
    api()
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(429, envelope([], [{ code: 429, message: 'API rate limit exceeded.' }]), {
        'X-RateLimit-Limit': '6000',
        'X-RateLimit-Remaining': '0',
        'X-RateLimit-RetryAfter': String(Date.parse('2025-03-01T12:00:30Z') / 1000),
      });
    const err = await failure(falcon().isolate(AID, { idempotencyKey: KEY }));
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual(['upstream.rate_limited', true, 30_000]);
  });
});

describe('CrowdStrikeClient hosts and login', () => {
  it("resolves a hostname with GET /devices/queries/devices/v1?filter=hostname:'…'", async () => {
    stageToken();
    api()
      .get('/devices/queries/devices/v1')
      .query({ filter: "hostname:'web-01'" })
      .reply(200, envelope([AID]))
      .post('/devices/entities/devices-actions/v2', { ids: [AID] })
      .query({ action_name: 'contain' })
      .reply(202, envelope([{ id: AID, path: '' }]));
    expect((await falcon().isolate('web-01', { idempotencyKey: KEY })).target).toBe(AID);
  });

  it('refuses an ambiguous or unknown hostname and malformed input', async () => {
    stageToken();
    api()
      .get('/devices/queries/devices/v1')
      .query(true)
      .reply(200, envelope([AID, OTHER_AID]))
      .get('/devices/queries/devices/v1')
      .query(true)
      .reply(200, envelope([]));
    const c = falcon();
    expect((await failure(c.isolate('web-01', { idempotencyKey: KEY }))).code).toBe('conflict');
    expect((await failure(c.isolate('web-01', { idempotencyKey: KEY }))).code).toBe('not_found');
    expect((await failure(c.isolate("web-01' ,hostname:'*", { idempotencyKey: KEY }))).code).toBe('input.invalid');
  });

  it('reads the containment state of a device', async () => {
    stageToken();
    api()
      .get('/devices/entities/devices/v2')
      .query({ ids: AID })
      // Device entity (only device_id and status are read); no device-details fixture exists.
      .reply(200, envelope([{ device_id: AID, hostname: 'web-01', status: 'containment_pending' }]));
    expect((await falcon().status(AID)).state).toBe('isolating');
  });

  it('logs in to the configured cloud, as an MSSP child CID when configured', async () => {
    const eu = 'https://api.eu-1.crowdstrike.com';
    stageToken(eu, { member_cid: 'child-cid-1' });
    api(eu)
      .post('/devices/entities/devices-actions/v2')
      .query(true)
      .reply(202, envelope([{ id: AID, path: '' }]));
    await falcon({ baseUrl: eu, memberCid: 'child-cid-1' }).isolate(AID, { idempotencyKey: KEY });
  });

  it('maps refused client credentials to a non-retryable rejection without the secret', async () => {
    nock(BASE)
      .post('/oauth2/token')
      .reply(403, envelope([], [{ code: 403, message: 'access denied, invalid credentials' }]));
    const err = await failure(falcon().isolate(AID, { idempotencyKey: KEY }));
    expect([err.code, err.retryable, err.safeMessage]).toEqual(['upstream.rejected', false, 'CrowdStrike rejected the client credentials.']);
    expect(err.message).toContain('invalid credentials');
    expect(err.message).not.toContain(SECRET);
  });
});
