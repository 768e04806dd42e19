import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { createPrincipalToken } from '../../../src/approvals/principal-tokens.ts';
import { engineDb } from '../../../src/engine/engine-schema.ts';
import { graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { grantRole } from '../../../src/store/principals.ts';
import { GRAPH_HOST, NO_MAILBOX, folder, messagesPage, moved, phishMime, usersPage } from '../../helpers/graph-mail.ts';
import { parseMail } from '../../helpers/mail.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';
import { stageAbuseIpdb, startTestSmtp, type TestSmtp } from './helpers/vendor-stubs.ts';

/**
 * The shipped phishing-triage playbook end to end through the running app: the engine registers
 * the mailbox executors at start, the tenant's `mailbox.provider: msgraph` and its `msgraph.*`
 * app pick the Graph adapter, Graph is answered by nock (no real network), the message is fetched
 * from the reporter's mailbox, parsed by parse-mail-headers.py, scored malicious from AbuseIPDB's
 * fixture, and after a responder approves over the API it is moved out of every mailbox of the
 * directory (paged) into Recoverable Items. Every Graph call happens exactly once.
 */

const TENANT = 'acme';
const ENTRA = 'contoso.onmicrosoft.com';
const REPORTER = 'ana@contoso.example';
const MSG = '<7f3c1e2a.4471@mailer.evil.example>';
const FILTER = `internetMessageId eq '${MSG}'`;
const SECRET = 'graph-secret-0123456789';
const ABUSE_KEY = 'abuse-key-0123456789';
const DELETIONS = { ana: 'AAMkAna-Deletions', bob: 'AAMkBob-Deletions' };

let server: TestServer;
let smtp: TestSmtp;
let approverToken: string;

function api(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  return fetch(`${server.url}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${server.apiToken}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

type RunView = { status: string; error: string | null; steps: { step_id: string; status: string; error: string | null; attempt: number; output: unknown }[] };

async function waitFor(id: string, statuses: string[]): Promise<RunView> {
  let view: RunView | undefined;
  await vi.waitFor(
    async () => {
      view = (await (await api(`/api/v1/runs/${id}`)).json()) as RunView;
      if (!statuses.includes(view.status)) throw new Error(`run is ${view.status}: ${JSON.stringify(view.steps.map((s) => [s.step_id, s.status, s.error]))}`);
    },
    { timeout: 30_000, interval: 50 },
  );
  return view!;
}

/** Every Graph request, by method and decoded path, with its body and client-request-id. */
const graphCalls: { call: string; body: unknown; requestId: string | undefined }[] = [];
function graph(method: 'get' | 'post', path: string, query: Record<string, string> | undefined, status: number, body: unknown, headers: Record<string, string> = {}): nock.Scope {
  const scope = nock(GRAPH_HOST, { reqheaders: { authorization: /^Bearer entra-mail-token$/ } });
  const interceptor = scope[method](path);
  if (query) interceptor.query(query);
  interceptor.reply(function (_uri, reqBody) {
    graphCalls.push({ call: `${method.toUpperCase()} ${decodeURIComponent(this.req.path)}`, body: reqBody === '' ? undefined : reqBody, requestId: this.req.headers['client-request-id'] as string | undefined });
    return [status, typeof body === 'string' ? body : JSON.stringify(body), { 'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers }];
  });
  return scope;
}

beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  smtp = await startTestSmtp();
  server = await startTestServer({ queue: 'redis', env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, SMTP_FROM: 'sentreflex@example.test' } });
  await ensureTenant(server.store.db, TENANT, 'ACME Corp');
  const config = { mailbox: { provider: 'msgraph' }, msgraph: { tenant_id: ENTRA, client_id: 'sentreflex-app' }, utc_offset: '+0000' };
  await server.store.db.updateTable('tenants').set({ config: JSON.stringify(config) }).where('id', '=', TENANT).execute();
  await server.store.vault.set(TENANT, 'msgraph.client_secret', SECRET, 'test');
  await server.store.vault.set(TENANT, 'abuseipdb.api_key', ABUSE_KEY, 'test');
  const rita = await grantRole(server.store.db, { identity: { platform: 'sentchat', workspace: 'W1', userId: 'U-rita' }, tenantId: TENANT, role: 'responder', actor: 'test', displayName: 'Rita Responder', email: 'rita@acme.example' });
  approverToken = (await createPrincipalToken(server.store.db, { principalId: rita.principalId, label: 'test', actor: 'test' })).token;
});
afterAll(async () => {
  await server?.stop();
  await smtp?.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

describe('phishing-triage against Microsoft Graph (nock)', () => {
  it('fetches, parses, scores, waits for approval, then soft-deletes from every mailbox, each Graph call once', async () => {
    const token = nock('https://login.microsoftonline.com')
      .post(`/${ENTRA}/oauth2/v2.0/token`)
      .reply(200, { token_type: 'Bearer', expires_in: 3599, access_token: 'entra-mail-token' });
    const search = { $filter: FILTER, $select: 'id,parentFolderId' };
    const fetchScopes = [
      graph('get', `/v1.0/users/${encodeURIComponent(REPORTER)}/messages`, search, 200, messagesPage(REPORTER, [{ id: 'ana-inbox-1', parentFolderId: 'ana-inbox' }])),
      graph('get', `/v1.0/users/${encodeURIComponent(REPORTER)}/messages/ana-inbox-1/$value`, undefined, 200, phishMime(MSG)),
    ];
    const intel = stageAbuseIpdb();

    const started = await api('/api/v1/runs', { method: 'POST', body: { playbook: 'phishing-triage', tenant: TENANT, inputs: { message_id: MSG, reporter: REPORTER } } });
    expect(started.status).toBe(201);
    const id = ((await started.json()) as { id: string }).id;

    const waiting = await waitFor(id, ['waiting', 'failed', 'succeeded']);
    expect(waiting.status).toBe('waiting');
    expect(token.isDone() && intel.isDone() && fetchScopes.every((s) => s.isDone())).toBe(true);
    const step = (sid: string) => waiting.steps.find((s) => s.step_id === sid);
    expect(step('fetch')).toMatchObject({ status: 'succeeded', attempt: 1, output: { mailbox: REPORTER, message_id: MSG, vendor: 'msgraph', source: phishMime(MSG) } });
    expect(step('parse')?.output).toMatchObject({ message_id: MSG, subject: 'Urgent: verify your account', origin_ip: '198.51.100.100' });
    expect(step('verdict')?.output).toMatchObject({ malicious: true });
    expect(step('approve_delete')?.status).toBe('waiting');

    // Deleting everywhere: two pages of users; one without an address, one whose mailbox is on-premises.
    const users = [
      graph('get', '/v1.0/users', { $select: 'id,mail,userPrincipalName', $top: '999' }, 200,
        usersPage([
          { id: 'u-ana', mail: REPORTER, userPrincipalName: REPORTER },
          { id: 'u-svc', mail: null, userPrincipalName: 'svc-backup@contoso.onmicrosoft.com' },
          { id: 'u-bob', mail: 'bob@contoso.example', userPrincipalName: 'bob@contoso.example' },
        ], 'X%27skip%2Btoken')),
      graph('get', '/v1.0/users', { $select: 'id,mail,userPrincipalName', $top: '999', $skiptoken: "X'skip+token" }, 200,
        usersPage([
          { id: 'u-carl', mail: 'carl@contoso.example', userPrincipalName: 'carl@contoso.example' },
          { id: 'u-dee', mail: 'dee@contoso.example', userPrincipalName: 'dee@contoso.example' },
        ])),
    ];
    const cleanup = [
      graph('get', '/v1.0/users/u-ana/messages', search, 200, messagesPage('u-ana', [{ id: 'ana-inbox-1', parentFolderId: 'ana-inbox' }])),
      graph('get', '/v1.0/users/u-ana/mailFolders/recoverableitemsdeletions', { $select: 'id' }, 200, folder('u-ana', DELETIONS.ana)),
      graph('post', '/v1.0/users/u-ana/messages/ana-inbox-1/move', undefined, 201, moved('ana-inbox-1', DELETIONS.ana)),
      graph('get', '/v1.0/users/u-bob/messages', search, 200, messagesPage('u-bob', [{ id: 'bob-junk-1', parentFolderId: 'bob-junk' }])),
      graph('get', '/v1.0/users/u-bob/mailFolders/recoverableitemsdeletions', { $select: 'id' }, 200, folder('u-bob', DELETIONS.bob)),
      graph('post', '/v1.0/users/u-bob/messages/bob-junk-1/move', undefined, 201, moved('bob-junk-1', DELETIONS.bob)),
      graph('get', '/v1.0/users/u-carl/messages', search, 404, NO_MAILBOX),
      graph('get', '/v1.0/users/u-dee/messages', search, 200, messagesPage('u-dee', [])),
    ];
    const mailsBefore = smtp.received.length;

    const gate = await engineDb(server.store.db).selectFrom('approvals').select('id').where('run_id', '=', id).executeTakeFirstOrThrow();
    const decided = await api(`/api/v1/approvals/${gate.id}/decision`, { method: 'POST', body: { decision: 'approve' }, headers: { 'x-reflex-principal-token': approverToken } });
    expect(decided.status).toBe(200);

    const done = await waitFor(id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect([...users, ...cleanup].every((s) => s.isDone())).toBe(true);
    expect(nock.pendingMocks()).toEqual([]);

    // Exactly once each: 2 fetch calls, 2 directory pages, 8 mailbox calls; the moves carry the step's key.
    const calls = graphCalls.map((c) => c.call);
    expect(calls).toHaveLength(12);
    expect(new Set(calls).size).toBe(12);
    const moves = graphCalls.filter((c) => c.call.endsWith('/move'));
    expect(moves.map((m) => m.body)).toEqual([{ destinationId: 'recoverableitemsdeletions' }, { destinationId: 'recoverableitemsdeletions' }]);
    const key = `reflex-${id}-delete_everywhere`;
    expect(moves.map((m) => m.requestId).sort()).toEqual([graphRequestId(`${key}:u-ana`), graphRequestId(`${key}:u-bob`)].sort());

    const del = done.steps.find((s) => s.step_id === 'delete_everywhere');
    expect(del).toMatchObject({ status: 'succeeded', attempt: 1 });
    expect(del?.output).toEqual({
      vendor: 'msgraph',
      message_id: MSG,
      mode: 'soft',
      scope: 'all',
      mailboxes: [
        { mailbox: REPORTER, found: 1, deleted: 1 },
        { mailbox: 'bob@contoso.example', found: 1, deleted: 1 },
      ],
      totals: { searched: 3, found: 2, deleted: 2, failed: 0, withoutMailbox: 1 },
    });
    expect(done.steps.find((s) => s.step_id === 'fetch')?.attempt).toBe(1);

    // The reporter hears back by e-mail.
    await vi.waitFor(() => expect(smtp.received.slice(mailsBefore).some((m) => m.envelopeTo.includes(REPORTER))).toBe(true), { timeout: 10_000, interval: 25 });
    const thanks = smtp.received.slice(mailsBefore).find((m) => m.envelopeTo.includes(REPORTER))!;
    expect(parseMail(thanks.raw).text).toContain('has been removed from every mailbox');

    // The run log says what happened per mailbox and holds no credential.
    const log = JSON.stringify(await (await api(`/api/v1/runs/${id}/log`)).json());
    expect(log).toContain(`${REPORTER}: found 1, deleted 1`);
    expect(log).toContain('searched 3, found 2, deleted 2, failed 0, 1 user(s) without a reachable mailbox');
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(ABUSE_KEY);
    expect(log).not.toContain('entra-mail-token');
  });
});
