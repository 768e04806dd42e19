import { readFileSync } from 'node:fs';
import path from 'node:path';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { MicrosoftGraphClient, graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { ClientCredentialsTokenSource } from '../../../src/integrations/msgraph/oauth-client-credentials.ts';
import { failure } from '../../helpers/vendor-http.ts';

const fixture = (rel: string): string => readFileSync(path.resolve(process.cwd(), '../shared/fixtures', rel), 'utf8');

interface HttpExchange {
  method: string;
  url: string;
  requestBody: string;
  status: number;
  responseBody: string;
}

/** Reads a docs `.http` example: request line, headers, body, then `HTTP/1.1 <status>`, headers, body. */
function parseHttpFixture(text: string): HttpExchange {
  const lines = text.split(/\r?\n/);
  const statusAt = lines.findIndex((l) => /^HTTP\/1\.1 \d{3}/.test(l));
  const [method = '', url = ''] = (lines[0] ?? '').split(' ');
  const afterHeaders = (part: string[]): string => part.slice(part.findIndex((l) => l.trim() === '') + 1).join('\n').trim();
  const req = lines.slice(0, statusAt);
  const res = lines.slice(statusAt);
  return {
    method,
    url,
    requestBody: req.some((l) => l.trim() === '') ? afterHeaders(req.slice(1)) : '',
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[statusAt] ?? '')?.[1]),
    responseBody: res.some((l) => l.trim() === '') ? afterHeaders(res.slice(1)) : '',
  };
}

const PATCH = parseHttpFixture(fixture('identity_containment/msgraph_docs_user_update_PATCH_204.http'));
const REVOKE = parseHttpFixture(fixture('identity_containment/msgraph_docs_user_revokeSignInSessions_response.http'));

const TENANT = 'contoso.onmicrosoft.com';
const CLIENT_ID = '00000000-aaaa-bbbb-cccc-000000000001';
const SECRET = 'graph-client-secret-value-9f8e7d';
const GRAPH = 'https://graph.microsoft.com';
const LOGIN = 'https://login.microsoftonline.com';
const TOKEN_PATH = `/${TENANT}/oauth2/v2.0/token`;
const USER = 'alice@contoso.example';
const USER_PATH = '/v1.0/users/alice%40contoso.example';
const KEY = 'run_42:disable_user';

let clock = Date.parse('2025-03-01T12:00:00.000Z');
const graph = (extra: Partial<ConstructorParameters<typeof MicrosoftGraphClient>[0]> = {}) =>
  new MicrosoftGraphClient({ tenantId: TENANT, clientId: CLIENT_ID, clientSecret: SECRET, now: () => clock, ...extra });

/**
 * Entra ID's token answer (RFC 6749 §5.1 shape; no token response is among the fixtures). v1
 * endpoints send expires_in as a string, which the second token here does.
 */
function stageToken(accessToken = 'graph-token-1', expiresIn: number | string = 3599, times = 1): void {
  nock(LOGIN)
    .post(TOKEN_PATH, (body: Record<string, string>) => {
      expect(body).toEqual({
        grant_type: 'client_credentials',
        client_id: CLIENT_ID,
        client_secret: SECRET,
        scope: 'https://graph.microsoft.com/.default',
      });
      return true;
    })
    .times(times)
    .reply(200, { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: accessToken });
}
const api = (token = 'graph-token-1') => nock(GRAPH, { reqheaders: { authorization: `Bearer ${token}` } });


beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
  clock = Date.parse('2025-03-01T12:00:00.000Z');
});

describe('MicrosoftGraphClient: disable, enable, revoke', () => {
  it('disables with PATCH {accountEnabled:false} (204, empty body) and then revokes sessions', async () => {
    expect([PATCH.method, PATCH.status, PATCH.responseBody]).toEqual(['PATCH', 204, '']);
    const calls: string[] = [];
    stageToken();
    api()
      .matchHeader('client-request-id', graphRequestId(KEY))
      .patch(USER_PATH, (body: unknown) => {
        calls.push(`patch ${JSON.stringify(body)}`);
        return true;
      })
      .reply(PATCH.status)
      .post(`${USER_PATH}/revokeSignInSessions`)
      .reply(function () {
        calls.push('revoke');
        return [REVOKE.status, REVOKE.responseBody, { 'Content-Type': 'application/json' }];
      });

    const r = await graph().disableUser(USER, { idempotencyKey: KEY, comment: 'INC-7' });

    expect(calls).toEqual(['patch {"accountEnabled":false}', 'revoke']);
    expect(r).toMatchObject({ vendor: 'msgraph', target: USER, state: 'done', alreadyInState: false, sessionsRevoked: true, failures: [] });
    expect(r.raw).toEqual(JSON.parse(REVOKE.responseBody));
  });

  it('can disable without revoking when configured so', async () => {
    stageToken();
    api().patch(USER_PATH, { accountEnabled: false }).reply(204);
    const r = await graph({ revokeSessionsOnDisable: false }).disableUser(USER, { idempotencyKey: KEY });
    expect(r.sessionsRevoked).toBe(false);
  });

  it('enables with the PATCH body the docs example uses for accountEnabled', async () => {
    const docsBody = JSON.parse(PATCH.requestBody) as { accountEnabled: boolean };
    stageToken();
    api().patch(USER_PATH, { accountEnabled: docsBody.accountEnabled }).reply(PATCH.status);
    const r = await graph().enableUser(USER, { idempotencyKey: 'run_42:enable' });
    expect(r.state).toBe('done');
    expect(r.sessionsRevoked).toBeUndefined();
  });

  it('accepts revokeSignInSessions as 200 {"value":true} (what Graph sends) and as 204 (what it documents)', async () => {
    expect(fixture('identity_containment/msgraph_known_issue_revokeSignInSessions.txt')).toMatch(/treat any 2xx return code as success/);
    stageToken();
    api()
      .post(`${USER_PATH}/revokeSignInSessions`)
      .reply(REVOKE.status, REVOKE.responseBody, { 'Content-Type': 'application/json' })
      .post(`${USER_PATH}/revokeSignInSessions`)
      .reply(204);
    const c = graph();
    const first = await c.revokeSessions(USER, { idempotencyKey: 'k1' });
    const second = await c.revokeSessions(USER, { idempotencyKey: 'k1' });
    expect(first.raw).toEqual({ '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean', value: true });
    expect(second.state).toBe('done');
    expect(second.raw).toBeUndefined();
  });

  it('percent-encodes guest UPNs, whose #EXT# would otherwise become a URL fragment', async () => {
    stageToken();
    api().patch('/v1.0/users/bob_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com', { accountEnabled: false }).reply(204);
    await graph({ revokeSessionsOnDisable: false }).disableUser('bob_fabrikam.com#EXT#@contoso.onmicrosoft.com', { idempotencyKey: KEY });
  });

  it('refuses a malformed user or a missing idempotency key without calling Graph', async () => {
    const c = graph();
    expect((await failure(c.disableUser('', { idempotencyKey: KEY }))).code).toBe('input.invalid');
    expect((await failure(c.disableUser('../../me', { idempotencyKey: KEY }))).code).toBe('input.invalid');
    expect((await failure(c.disableUser(USER, { idempotencyKey: '' }))).code).toBe('input.invalid');
  });
});

describe('MicrosoftGraphClient.resetPassword', () => {
  it('sets a long random password with every character class and forces a change at sign-in', async () => {
    let sent: { passwordProfile: { forceChangePasswordNextSignIn: boolean; password: string } } | undefined;
    stageToken();
    api()
      .patch(USER_PATH, (body: typeof sent) => {
        sent = body;
        return true;
      })
      .reply(204);
    const r = await graph().resetPassword(USER, { idempotencyKey: 'run_42:reset' });
    const p = sent?.passwordProfile.password ?? '';
    expect(sent?.passwordProfile.forceChangePasswordNextSignIn).toBe(true);
    expect(p).toHaveLength(32);
    for (const cls of [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/]) expect(p).toMatch(cls);
    expect(JSON.stringify(r)).not.toContain(p);
  });

  it('uses the caller\'s password when given, and refuses one Entra would reject', async () => {
    stageToken();
    api()
      .patch(USER_PATH, { passwordProfile: { forceChangePasswordNextSignIn: false, password: 'Temp-Passw0rd-Once!' } })
      .reply(204);
    const c = graph();
    await c.resetPassword(USER, { idempotencyKey: 'k', newPassword: 'Temp-Passw0rd-Once!', forceChangeAtLogin: false });
    expect((await failure(c.resetPassword(USER, { idempotencyKey: 'k', newPassword: 'short' }))).code).toBe('input.invalid');
  });
});

describe('MicrosoftGraphClient tokens', () => {
  it('caches the client-credentials token until shortly before it expires', async () => {
    stageToken('graph-token-1', '3599');
    api('graph-token-1').patch(USER_PATH).times(2).reply(204);
    const c = graph();
    await c.enableUser(USER, { idempotencyKey: 'a' });
    clock += 3_000_000; // 50 min: still inside the 2-minute refresh margin
    await c.enableUser(USER, { idempotencyKey: 'b' });

    clock += 500_000; // past expiry minus margin: a new login
    stageToken('graph-token-2');
    api('graph-token-2').patch(USER_PATH).reply(204);
    await c.enableUser(USER, { idempotencyKey: 'c' });
  });

  it('shares one login between concurrent calls', async () => {
    stageToken();
    api().patch(USER_PATH).times(3).reply(204);
    const c = graph();
    await Promise.all(['a', 'b', 'c'].map((k) => c.enableUser(USER, { idempotencyKey: k })));
  });

  it('logs in again and retries once when Graph answers 401 to a cached token', async () => {
    stageToken('stale-token');
    api('stale-token').patch(USER_PATH).reply(401);
    stageToken('fresh-token');
    api('fresh-token').patch(USER_PATH).reply(204);
    const r = await graph().enableUser(USER, { idempotencyKey: 'k' });
    expect(r.state).toBe('done');
  });

  it('maps a refused client secret to a non-retryable rejection that never shows the secret', async () => {
    // Entra's error shape (RFC 6749 §5.2 plus its AADSTS description); not among the fixtures.
    nock(LOGIN)
      .post(TOKEN_PATH)
      .reply(401, {
        error: 'invalid_client',
        error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the client secret value, not the client secret ID.\r\nTrace ID: 1\r\nCorrelation ID: 2`,
      });
    const err = await failure(graph().enableUser(USER, { idempotencyKey: 'k' }));
    expect([err.code, err.retryable, err.safeMessage]).toEqual(['upstream.rejected', false, 'Microsoft Entra ID rejected the client credentials.']);
    expect(err.message).toContain('AADSTS7000215');
    expect(err.message).not.toContain('Trace ID');
    expect(`${err.message}${err.safeMessage}${JSON.stringify(err.details)}`).not.toContain(SECRET);
  });

  it('retries later when Entra says temporarily_unavailable', async () => {
    nock(LOGIN).post(TOKEN_PATH).reply(400, { error: 'temporarily_unavailable', error_description: 'AADSTS50196: busy' });
    const err = await failure(graph().enableUser(USER, { idempotencyKey: 'k' }));
    expect([err.code, err.retryable]).toEqual(['upstream.unavailable', true]);
  });

  it('takes the login URL, Graph URL and scope from config (national clouds, local stand-ins)', async () => {
    const tokens = new ClientCredentialsTokenSource({
      vendor: 'Microsoft Entra ID',
      tokenUrl: 'https://login.microsoftonline.us/gov-tenant/oauth2/v2.0/token',
      clientId: CLIENT_ID,
      clientSecret: SECRET,
      scope: 'https://graph.microsoft.us/.default',
    });
    nock('https://login.microsoftonline.us')
      .post('/gov-tenant/oauth2/v2.0/token', (b: Record<string, string>) => b.scope === 'https://graph.microsoft.us/.default')
      .reply(200, { access_token: 'us-token', expires_in: 3599 });
    nock('https://graph.microsoft.us', { reqheaders: { authorization: 'Bearer us-token' } }).patch(USER_PATH).reply(204);
    await new MicrosoftGraphClient({ tenantId: 'gov-tenant', clientId: CLIENT_ID, clientSecret: SECRET, graphUrl: 'https://graph.microsoft.us', tokens }).enableUser(
      USER,
      { idempotencyKey: 'k' },
    );

    nock('http://127.0.0.1:9911')
      .post('/t1/oauth2/v2.0/token', (b: Record<string, string>) => b.scope === 'http://127.0.0.1:9910/.default')
      .reply(200, { access_token: 'local', expires_in: 60 });
    nock('http://127.0.0.1:9910').patch(USER_PATH).reply(204);
    await new MicrosoftGraphClient({
      tenantId: 't1',
      clientId: CLIENT_ID,
      clientSecret: SECRET,
      graphUrl: 'http://127.0.0.1:9910',
      loginUrl: 'http://127.0.0.1:9911/',
    }).enableUser(USER, { idempotencyKey: 'k' });
  });
});

describe('MicrosoftGraphClient errors and request ids', () => {
  it('maps 404 to not_found, 403 to a non-retryable rejection naming the permission, 429 to a rate limit', async () => {
    stageToken();
    // Graph's error envelope; no Graph error body is among the fixtures.
    api()
      .patch(USER_PATH)
      .reply(404, { error: { code: 'Request_ResourceNotFound', message: "Resource 'alice@contoso.example' does not exist." } })
      .patch(USER_PATH)
      .reply(403, { error: { code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' } })
      .patch(USER_PATH)
      .reply(429, undefined, { 'Retry-After': '7' });
    const c = graph();
    const e404 = await failure(c.enableUser(USER, { idempotencyKey: 'k' }));
    expect([e404.code, e404.retryable, e404.safeMessage]).toEqual(['not_found', false, 'Microsoft Entra ID has no such user.']);
    expect(e404.message).toContain('Request_ResourceNotFound');
    const e403 = await failure(c.enableUser(USER, { idempotencyKey: 'k' }));
    expect([e403.code, e403.retryable]).toEqual(['upstream.rejected', false]);
    expect(e403.safeMessage).toMatch(/permission/);
    const e429 = await failure(c.enableUser(USER, { idempotencyKey: 'k' }));
    expect([e429.code, e429.retryable, e429.retryAfterMs]).toEqual(['upstream.rate_limited', true, 7000]);
  });

  it('derives one stable GUID-shaped client-request-id per idempotency key', () => {
    const a = graphRequestId('run_42:disable_user');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(graphRequestId('run_42:disable_user')).toBe(a);
    expect(graphRequestId('run_42:enable_user')).not.toBe(a);
  });
});
