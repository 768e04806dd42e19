import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { createMailboxExecutors } from '../../../src/engine/actions/mailbox-actions.ts';
import type { ActionContext } from '../../../src/engine/actions/registry.ts';
import { missingSecret, TenantIntegrations } from '../../../src/engine/actions/tenant-integrations.ts';
import { GRAPH_HOST, graphError, messagesPage, phishMime } from '../../helpers/graph-mail.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * `mail.get_message` / `mail.delete_message` as the engine calls them: the tenant's
 * `mailbox.provider` and `msgraph.*` settings pick and build the Graph adapter, `with:` is checked
 * before any request, and a mailbox that fails fails the step (retryably while the failure is
 * transient) with every mailbox's outcome in the step log.
 */

useStrictNock();

const ENTRA = 'contoso.onmicrosoft.com';
const CONFIG = { mailbox: { provider: 'msgraph' }, msgraph: { tenant_id: ENTRA, client_id: 'sentreflex-app' } };
const SECRETS: Record<string, string> = { 'msgraph.client_secret': 'graph-secret-0123456789' };
const MSG = '<1234@mailer.evil.example>';
const FILTER = `internetMessageId eq '${MSG}'`;

function run(action: 'mail.get_message' | 'mail.delete_message', input: Record<string, unknown>, config: Record<string, unknown> = CONFIG) {
  const logs: string[] = [];
  const integrations = new TenantIntegrations({ idempotencyStore: () => ({ get: async () => undefined, set: async () => {} }), mailer: () => undefined, mailboxOptions: { sleep: async () => {} } });
  const ctx: ActionContext = {
    tenantId: 'acme',
    runId: 'run-1',
    stepId: 'delete_everywhere',
    idempotencyKey: 'reflex-run-1-delete_everywhere',
    attempt: 1,
    secrets: {
      get: async (n) => SECRETS[n],
      require: async (n) => {
        const v = SECRETS[n];
        if (v === undefined) throw missingSecret('acme', n);
        return v;
      },
    },
    config: { id: 'acme', name: 'ACME', ...config },
    signal: new AbortController().signal,
    timeoutMs: 30_000,
    expressionContext: {},
    log: (l) => logs.push(l),
  };
  const executor = createMailboxExecutors(integrations)[action]!;
  return { logs, result: executor(input, ctx) };
}

function stageToken(): void {
  nock('https://login.microsoftonline.com').post(`/${ENTRA}/oauth2/v2.0/token`).reply(200, { token_type: 'Bearer', expires_in: 3599, access_token: 'mail-token-1' });
}
const search = (user: string) => nock(GRAPH_HOST).get(`/v1.0/users/${user}/messages`).query({ $filter: FILTER, $select: 'id,parentFolderId' });

describe('mail.get_message', () => {
  it('answers { source, mailbox, message_id } from the reporter mailbox', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'm1', parentFolderId: 'inbox' }]));
    nock(GRAPH_HOST).get('/v1.0/users/ana%40contoso.example/messages/m1/$value').reply(200, phishMime(MSG));
    const { result, logs } = run('mail.get_message', { message_id: MSG, mailbox: 'ana@contoso.example' });
    expect(await result).toEqual({ source: phishMime(MSG), mailbox: 'ana@contoso.example', message_id: MSG, vendor: 'msgraph', bytes: Buffer.byteLength(phishMime(MSG)) });
    expect(logs).toEqual([`msgraph: read ${MSG} from ana@contoso.example (${Buffer.byteLength(phishMime(MSG))} bytes)`]);
  });

  it('a tenant without mailbox.provider gets config.invalid naming the key; bad with: fails before any request', async () => {
    const noProvider = await failure(run('mail.get_message', { message_id: MSG, mailbox: 'ana@contoso.example' }, { msgraph: CONFIG.msgraph }).result);
    expect([noProvider.code, noProvider.retryable, noProvider.message]).toEqual(['config.invalid', false, 'tenant acme: config key mailbox.provider is not set, so no mailbox is configured']);
    const noApp = await failure(run('mail.get_message', { message_id: MSG, mailbox: 'ana@contoso.example' }, { mailbox: { provider: 'msgraph' } }).result);
    expect(noApp.message).toContain('msgraph.tenant_id');
    const noMailbox = await failure(run('mail.get_message', { message_id: MSG }).result);
    expect([noMailbox.code, noMailbox.details]).toEqual(['input.invalid', { field: 'mailbox' }]);
  });
});

describe('mail.delete_message', () => {
  it('reports every mailbox; a transient failure fails the step retryably, with the others already cleaned and logged', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1', parentFolderId: 'inbox' }]));
    nock(GRAPH_HOST).post('/v1.0/users/ana%40contoso.example/messages/a1/permanentDelete').reply(204);
    search('bob%40contoso.example').reply(503, graphError('ServiceUnavailable', 'Service is unavailable.'), { 'Retry-After': '30' });
    const { result, logs } = run('mail.delete_message', { message_id: MSG, mailboxes: ['ana@contoso.example', 'bob@contoso.example'], mode: 'hard' });
    const err = await failure(result);
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual(['upstream.unavailable', true, 30_000]);
    expect(err.message).toContain('1 of 2 mailbox(es) failed: bob@contoso.example (upstream.unavailable); deleted 1 of 1');
    expect(logs).toEqual([
      'ana@contoso.example: found 1, deleted 1',
      expect.stringMatching(/^bob@contoso\.example: found 0, deleted 0; FAILED \(upstream\.unavailable, will retry\): Microsoft Graph answered 503/),
      `msgraph: hard delete of ${MSG} from 2 named mailbox(es): searched 2, found 1, deleted 1, failed 1`,
    ]);
  });

  it('only permanent failures: not retried', async () => {
    stageToken();
    search('ceo%40contoso.example').reply(403, graphError('ErrorAccessDenied', 'Access is denied.'));
    const err = await failure(run('mail.delete_message', { message_id: MSG, mailboxes: 'ceo@contoso.example' }).result);
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
  });

  it('succeeds with the receipt as output (soft by default)', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', []));
    const { result } = run('mail.delete_message', { message_id: MSG, mailboxes: ['ana@contoso.example'] });
    expect(await result).toEqual({
      vendor: 'msgraph',
      message_id: MSG,
      mode: 'soft',
      scope: 'list',
      mailboxes: [{ mailbox: 'ana@contoso.example', found: 0, deleted: 0 }],
      totals: { searched: 1, found: 0, deleted: 0, failed: 0, withoutMailbox: 0 },
    });
  });

  it('refuses an unknown mode, an empty list and "all" mixed with addresses', async () => {
    for (const input of [
      { message_id: MSG, mode: 'shred' },
      { message_id: MSG, mailboxes: [] },
      { message_id: MSG, mailboxes: ['all', 'ana@contoso.example'] },
      { message_id: MSG, mailboxes: [42] },
    ]) {
      const err = await failure(run('mail.delete_message', input).result);
      expect([err.code, err.retryable]).toEqual(['input.invalid', false]);
    }
  });
});
