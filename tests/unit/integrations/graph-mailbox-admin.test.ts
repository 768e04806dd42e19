import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { GraphMailboxAdmin, internetMessageIdFilter, normalizeInternetMessageId } from '../../../src/integrations/msgraph/graph-mailbox-admin.ts';
import { graphRequestId } from '../../../src/integrations/msgraph/msgraph-client.ts';
import { GRAPH_HOST, NO_MAILBOX, THROTTLED, folder, graphError, messagesPage, moved, phishMime, usersPage } from '../../helpers/graph-mail.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * The Graph mailbox adapter against nock: the OData filter and its quoting, the MIME read, paging
 * through the directory, soft (move to Recoverable Items\Deletions) against hard
 * (permanentDelete), 429 waited out in place, one mailbox failing while the others are cleaned,
 * and a repeat finding nothing to do. Answers follow the Graph reference pages named in
 * tests/helpers/graph-mail.ts (there is no Graph mail fixture).
 */

useStrictNock();

const TENANT = 'contoso.onmicrosoft.com';
const LOGIN = 'https://login.microsoftonline.com';
const MSG = "<o'brien+1@mailer.evil.example>";
const FILTER = "internetMessageId eq '<o''brien+1@mailer.evil.example>'";
const KEY = 'reflex-run-7-delete_everywhere';
const DELETIONS_ID = 'AAMkADeletions==';

function stageToken(): nock.Scope {
  return nock(LOGIN).post(`/${TENANT}/oauth2/v2.0/token`).reply(200, { token_type: 'Bearer', expires_in: 3599, access_token: 'mail-token-1' });
}

function admin(extra: Partial<ConstructorParameters<typeof GraphMailboxAdmin>[0]> = {}, waits: number[] = []): GraphMailboxAdmin {
  return new GraphMailboxAdmin({
    tenantId: TENANT,
    clientId: 'sentreflex-app',
    clientSecret: 'graph-secret-0123456789',
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...extra,
  });
}

const api = () => nock(GRAPH_HOST, { reqheaders: { authorization: 'Bearer mail-token-1' } });
const search = (user: string) => api().get(`/v1.0/users/${user}/messages`).query({ $filter: FILTER, $select: 'id,parentFolderId' });

describe('Message-IDs in an OData filter', () => {
  it('doubles single quotes and keeps the angle brackets; adds them when a report dropped them', () => {
    expect(internetMessageIdFilter("<o'brien@x>")).toBe("internetMessageId eq '<o''brien@x>'");
    expect(internetMessageIdFilter("<a''b@x>")).toBe("internetMessageId eq '<a''''b@x>'");
    expect(normalizeInternetMessageId(' 1234@mailer.evil.example ')).toBe('<1234@mailer.evil.example>');
    expect(normalizeInternetMessageId('<1234@mailer.evil.example>')).toBe('<1234@mailer.evil.example>');
  });

  it('refuses line breaks, control characters and nested brackets before any request', async () => {
    for (const bad of ['<a@x>\r\nBcc: x@y', 'a\u0000@x', '<>', '', '<a<b>@x>']) {
      const err = await failure(admin().getMessage('ana@contoso.example', bad));
      expect([err.code, err.retryable]).toEqual(['input.invalid', false]);
    }
    const err = await failure(admin().getMessage('ana@contoso.example/../../users', '<a@x>'));
    expect(err.code).toBe('input.invalid');
  });
});

describe('GraphMailboxAdmin.getMessage', () => {
  it('finds the copy by internetMessageId (quoted, percent-encoded) and reads its MIME source', async () => {
    const paths: string[] = [];
    stageToken();
    search('ana%40contoso.example').reply(function () {
      paths.push(this.req.path);
      return [200, messagesPage('ana@contoso.example', [{ id: 'AAMkAGI2TG93AAA=', parentFolderId: 'AQMkInbox' }])];
    });
    api()
      .get('/v1.0/users/ana%40contoso.example/messages/AAMkAGI2TG93AAA%3D/$value')
      .reply(200, phishMime(MSG), { 'Content-Type': 'text/plain' });

    const m = await admin().getMessage('ana@contoso.example', MSG);

    expect(m).toEqual({ vendor: 'msgraph', mailbox: 'ana@contoso.example', messageId: MSG, source: phishMime(MSG), reference: 'AAMkAGI2TG93AAA=' });
    // The literal's quotes (its own doubled), '+' as %2B (a bare + reads as a space in a query), brackets encoded.
    expect(paths[0]).toContain('%24filter=internetMessageId%20eq%20%27%3Co%27%27brien%2B1%40mailer.evil.example%3E%27&');
  });

  it('a mailbox without the message is not_found, not retried; an oversized source is refused', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana@contoso.example', []));
    const err = await failure(admin().getMessage('ana@contoso.example', MSG));
    expect([err.code, err.retryable]).toEqual(['not_found', false]);
    expect(err.safeMessage).toContain('ana@contoso.example');

    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana@contoso.example', [{ id: 'big', parentFolderId: 'inbox' }]));
    api().get('/v1.0/users/ana%40contoso.example/messages/big/$value').reply(200, phishMime(MSG));
    const big = await failure(admin({ maxMessageBytes: 100 }).getMessage('ana@contoso.example', MSG));
    expect([big.code, big.retryable]).toEqual(['input.too_large', false]);
  });
});

describe('GraphMailboxAdmin.deleteMessage', () => {
  it('all, soft: pages through /users, skips users without mail or mailbox, moves each copy to recoverableitemsdeletions', async () => {
    const seen: { path: string; body: unknown; requestId: unknown }[] = [];
    const record = (status: number, body: unknown) =>
      function (this: nock.ReplyFnContext, _uri: string, reqBody: nock.Body) {
        seen.push({ path: decodeURIComponent(this.req.path.split('?')[0]!), body: reqBody, requestId: this.req.headers['client-request-id'] });
        return [status, body] as [number, unknown];
      };
    stageToken();
    api()
      .get('/v1.0/users')
      .query({ $select: 'id,mail,userPrincipalName', $top: '999' })
      .reply(
        200,
        usersPage(
          [
            { id: 'u-ana', mail: 'ana@contoso.example', userPrincipalName: 'ana@contoso.example' },
            { id: 'u-svc', mail: null, userPrincipalName: 'svc-backup@contoso.onmicrosoft.com' },
            { id: 'u-bob', mail: 'bob@contoso.example', userPrincipalName: 'bob@contoso.example' },
          ],
          'RFNwdAIAAQAAACpVc2Vy+XzQ',
        ),
      )
      .get('/v1.0/users')
      .query({ $select: 'id,mail,userPrincipalName', $top: '999', $skiptoken: 'RFNwdAIAAQAAACpVc2Vy+XzQ' })
      .reply(200, usersPage([{ id: 'u-onprem', mail: 'carl@contoso.example', userPrincipalName: 'carl@contoso.example' }]));
    search('u-ana').reply(200, messagesPage('u-ana', [{ id: 'ana-1', parentFolderId: 'inbox-ana' }, { id: 'ana-2', parentFolderId: 'junk-ana' }]));
    search('u-bob').reply(200, messagesPage('u-bob', []));
    search('u-onprem').reply(404, NO_MAILBOX);
    api().get('/v1.0/users/u-ana/mailFolders/recoverableitemsdeletions').query({ $select: 'id' }).reply(200, folder('u-ana', DELETIONS_ID));
    api().post('/v1.0/users/u-ana/messages/ana-1/move').reply(record(201, moved('ana-1', DELETIONS_ID)));
    api().post('/v1.0/users/u-ana/messages/ana-2/move').reply(record(201, moved('ana-2', DELETIONS_ID)));

    const r = await admin().deleteMessage(MSG, 'all', { idempotencyKey: KEY, mode: 'soft' });

    expect(r).toEqual({
      vendor: 'msgraph',
      messageId: MSG,
      mode: 'soft',
      scope: 'all',
      mailboxes: [{ mailbox: 'ana@contoso.example', found: 2, deleted: 2 }],
      totals: { searched: 2, found: 2, deleted: 2, failed: 0, withoutMailbox: 1 },
    });
    expect(seen.map((s) => [s.path, s.body])).toEqual([
      ['/v1.0/users/u-ana/messages/ana-1/move', { destinationId: 'recoverableitemsdeletions' }],
      ['/v1.0/users/u-ana/messages/ana-2/move', { destinationId: 'recoverableitemsdeletions' }],
    ]);
    expect(seen[0]?.requestId).toBe(graphRequestId(`${KEY}:u-ana`));
  });

  it('hard: permanentDelete on every copy of the named mailboxes, no move and no folder lookup', async () => {
    const deleted: string[] = [];
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1', parentFolderId: 'inbox' }, { id: 'a2', parentFolderId: 'deleteditems' }]));
    search('bob%40contoso.example').reply(200, messagesPage('bob', [{ id: 'b1', parentFolderId: 'inbox' }]));
    for (const [user, id] of [['ana%40contoso.example', 'a1'], ['ana%40contoso.example', 'a2'], ['bob%40contoso.example', 'b1']] as const) {
      api()
        .post(`/v1.0/users/${user}/messages/${id}/permanentDelete`)
        .reply(function () {
          deleted.push(id);
          return [204];
        });
    }

    const r = await admin().deleteMessage(MSG, ['ana@contoso.example', 'bob@contoso.example', 'ANA@contoso.example'], { idempotencyKey: KEY, mode: 'hard' });

    expect(deleted.sort()).toEqual(['a1', 'a2', 'b1']);
    expect(r.scope).toBe('list');
    expect(r.mailboxes).toEqual([
      { mailbox: 'ana@contoso.example', found: 2, deleted: 2 },
      { mailbox: 'bob@contoso.example', found: 1, deleted: 1 },
    ]);
    expect(r.totals).toEqual({ searched: 2, found: 3, deleted: 3, failed: 0, withoutMailbox: 0 });
  });

  it('waits out a 429 by its Retry-After, then carries on', async () => {
    const waits: number[] = [];
    stageToken();
    search('ana%40contoso.example').reply(429, THROTTLED, { 'Retry-After': '3' });
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1', parentFolderId: 'inbox' }]));
    api().post('/v1.0/users/ana%40contoso.example/messages/a1/permanentDelete').reply(204);

    const r = await admin({}, waits).deleteMessage(MSG, ['ana@contoso.example'], { idempotencyKey: KEY, mode: 'hard' });

    expect(waits).toEqual([3000]);
    expect(r.mailboxes).toEqual([{ mailbox: 'ana@contoso.example', found: 1, deleted: 1 }]);
  });

  it('a Retry-After longer than it waits in place is reported on that mailbox as retryable, with the hint', async () => {
    const waits: number[] = [];
    stageToken();
    search('ana%40contoso.example').reply(429, THROTTLED, { 'Retry-After': '120' });
    const r = await admin({}, waits).deleteMessage(MSG, ['ana@contoso.example'], { idempotencyKey: KEY, mode: 'soft' });
    expect(waits).toEqual([]);
    expect(r.mailboxes).toEqual([
      { mailbox: 'ana@contoso.example', found: 0, deleted: 0, error: { code: 'upstream.rate_limited', message: expect.stringContaining('429'), retryable: true, retryAfterMs: 120_000 } },
    ]);
    expect(r.totals.failed).toBe(1);
  });

  it('one mailbox failing (503, 403) is reported while the others are cleaned', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1', parentFolderId: 'inbox' }]));
    api().get('/v1.0/users/ana%40contoso.example/mailFolders/recoverableitemsdeletions').query({ $select: 'id' }).reply(200, folder('ana', DELETIONS_ID));
    api().post('/v1.0/users/ana%40contoso.example/messages/a1/move', { destinationId: 'recoverableitemsdeletions' }).reply(201, moved('a1', DELETIONS_ID));
    search('bob%40contoso.example').reply(503, graphError('ServiceUnavailable', 'Service is unavailable.'));
    search('ceo%40contoso.example').reply(403, graphError('ErrorAccessDenied', 'Access is denied. Check credentials and try again.'));

    const r = await admin().deleteMessage(MSG, ['ana@contoso.example', 'bob@contoso.example', 'ceo@contoso.example'], { idempotencyKey: KEY, mode: 'soft' });

    expect(r.mailboxes).toEqual([
      { mailbox: 'ana@contoso.example', found: 1, deleted: 1 },
      { mailbox: 'bob@contoso.example', found: 0, deleted: 0, error: { code: 'upstream.unavailable', message: expect.stringContaining('ServiceUnavailable'), retryable: true } },
      { mailbox: 'ceo@contoso.example', found: 0, deleted: 0, error: { code: 'upstream.rejected', message: expect.stringContaining('ErrorAccessDenied'), retryable: false } },
    ]);
    expect(r.totals).toEqual({ searched: 3, found: 1, deleted: 1, failed: 2, withoutMailbox: 0 });
    expect(JSON.stringify(r)).not.toContain('graph-secret-0123456789');
    expect(JSON.stringify(r)).not.toContain('mail-token-1');
  });

  it('is harmless to repeat: a copy already in the deletions folder, or none left, is found 0 and nothing is sent', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1-moved', parentFolderId: DELETIONS_ID }]));
    api().get('/v1.0/users/ana%40contoso.example/mailFolders/recoverableitemsdeletions').query({ $select: 'id' }).reply(200, folder('ana', DELETIONS_ID));
    search('ana%40contoso.example').reply(200, messagesPage('ana', []));
    const mail = admin();
    const first = await mail.deleteMessage(MSG, ['ana@contoso.example'], { idempotencyKey: KEY, mode: 'soft' });
    const second = await mail.deleteMessage(MSG, ['ana@contoso.example'], { idempotencyKey: KEY, mode: 'soft' });
    for (const r of [first, second]) expect(r.mailboxes).toEqual([{ mailbox: 'ana@contoso.example', found: 0, deleted: 0 }]);
  });

  it('a copy gone between search and delete (404) is not counted, and not an error', async () => {
    stageToken();
    search('ana%40contoso.example').reply(200, messagesPage('ana', [{ id: 'a1', parentFolderId: 'inbox' }]));
    api().post('/v1.0/users/ana%40contoso.example/messages/a1/permanentDelete').reply(404, graphError('ErrorItemNotFound', 'The specified object was not found in the store.'));
    const r = await admin().deleteMessage(MSG, ['ana@contoso.example'], { idempotencyKey: KEY, mode: 'hard' });
    expect(r.mailboxes).toEqual([{ mailbox: 'ana@contoso.example', found: 0, deleted: 0 }]);
  });

  it('a named mailbox Graph cannot reach is a failure (not skipped); listing the directory failing throws', async () => {
    stageToken();
    search('gone%40contoso.example').reply(404, NO_MAILBOX);
    const r = await admin().deleteMessage(MSG, ['gone@contoso.example'], { idempotencyKey: KEY, mode: 'soft' });
    expect(r.mailboxes[0]?.error).toMatchObject({ code: 'not_found', retryable: false });

    stageToken();
    api().get('/v1.0/users').query(true).reply(403, graphError('Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'));
    const err = await failure(admin().deleteMessage(MSG, 'all', { idempotencyKey: KEY, mode: 'soft' }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
  });

  it('refuses a nextLink to another host, a missing key and an unknown mode', async () => {
    stageToken();
    api()
      .get('/v1.0/users')
      .query(true)
      .reply(200, { value: [], '@odata.nextLink': 'https://graph.evil.example/v1.0/users?$skiptoken=x' });
    const err = await failure(admin().deleteMessage(MSG, 'all', { idempotencyKey: KEY, mode: 'soft' }));
    expect(err.code).toBe('upstream.unavailable');
    expect(err.message).toContain('another host');

    expect((await failure(admin().deleteMessage(MSG, 'all', { idempotencyKey: '', mode: 'soft' }))).code).toBe('input.invalid');
    expect((await failure(admin().deleteMessage(MSG, 'all', { idempotencyKey: KEY, mode: 'purge' as never }))).code).toBe('input.invalid');
  });
});
