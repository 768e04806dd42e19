import { ReflexError, toReflexError } from '../../errors.ts';
import { isRecord, unexpectedAnswer } from '../http.ts';
import type { VendorFailure, VendorRequest, VendorResponse } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { MailboxAdmin, MailboxDeleteResult, MailboxMessage, MailDeleteOptions, MailDeleteReceipt } from '../containment-ports.ts';
import { graphApi, graphFailure, graphRequestId, VENDOR, type MicrosoftGraphClientOptions } from './msgraph-client.ts';
import type { BearerHttp } from './oauth-client-credentials.ts';

/** The same app registration as the identity client (vault: `msgraph.client_secret`), plus the mailbox tuning. */
export interface GraphMailboxAdminOptions extends Omit<MicrosoftGraphClientOptions, 'revokeSessionsOnDisable'> {
  /** Mailboxes searched at once when deleting. Default 4 (Graph allows 4 concurrent requests per mailbox and app). */
  concurrency?: number;
  /** 429 answers absorbed per request by waiting out `Retry-After`. Default 3. */
  throttleRetries?: number;
  /** The longest `Retry-After` waited in place; a longer one fails that request (retryable). Default 10 s. */
  maxThrottleWaitMs?: number;
  /** Largest message source `getMessage` hands on. Default 10 MiB. */
  maxMessageBytes?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** Graph's well-known folder for soft-deleted items ("Recoverable Items\Deletions"). */
const DELETIONS = 'recoverableitemsdeletions';
/** The largest page `GET /users` serves. */
const USERS_PAGE = 999;
/** A directory of a million mailboxes is 1002 pages; anything beyond is a paging loop. */
const MAX_PAGES = 2000;
/** Graph nearly always sends Retry-After with a 429; when it does not, wait this long. */
const DEFAULT_THROTTLE_WAIT_MS = 1000;
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Exchange Online mailboxes through Microsoft Graph v1.0, as a `MailboxAdmin`.
 *
 * - Find: `GET /v1.0/users/{mailbox}/messages?$filter=internetMessageId eq '<id>'` (the id's
 *   single quotes doubled, as OData string literals need; the whole query percent-encoded).
 * - Read: `GET …/messages/{id}/$value`, the MIME source as text.
 * - Every mailbox: `GET /v1.0/users?$select=id,mail,userPrincipalName&$top=999`, following
 *   `@odata.nextLink`; users without `mail` have no mailbox and are not searched.
 * - Soft delete: `POST …/messages/{id}/move {"destinationId":"recoverableitemsdeletions"}`, the
 *   folder Exchange itself soft-deletes into (what Outlook's Shift+Delete and a compliance purge
 *   with `SoftDelete` do). The message leaves every folder the user sees, including Deleted
 *   Items (where a plain DELETE or a move to `deleteditems` would leave it one click away from
 *   being opened again), and an administrator can still recover it for the retention period.
 * - Hard delete: `POST …/messages/{id}/permanentDelete` (204): into the Purges folder, out of
 *   every client's reach; removed for good after the retention period unless a hold applies. Not
 *   available in the US Government and China clouds.
 *
 * A 429 is waited out in place (up to `throttleRetries` times, each at most `maxThrottleWaitMs`)
 * so one throttled mailbox does not abort a sweep of thousands; beyond that the mailbox is
 * reported as failed with a retryable error. Copies already in the deletions folder are not
 * counted as found, so a repeat of a soft delete finds nothing to do.
 *
 * App permissions (application): `Mail.ReadWrite` (find, read, move, purge) and `User.Read.All`
 * (list the directory). An Exchange application access policy that scopes the app to a group
 * makes other mailboxes answer 403: they are reported as failed, never skipped.
 *
 * @example
 * const mail = new GraphMailboxAdmin({ tenantId, clientId, clientSecret });
 * const r = await mail.deleteMessage('<1234@mailer.evil.example>', 'all', { idempotencyKey: 'reflex-run-delete', mode: 'soft' });
 */
export class GraphMailboxAdmin implements MailboxAdmin {
  readonly name = 'msgraph';
  private readonly api: BearerHttp;
  private readonly base: URL;
  private readonly concurrency: number;
  private readonly throttleRetries: number;
  private readonly maxThrottleWaitMs: number;
  private readonly maxMessageBytes: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(opts: GraphMailboxAdminOptions) {
    ({ api: this.api, base: this.base } = graphApi(opts, mapMailboxError));
    this.concurrency = Math.max(1, Math.min(opts.concurrency ?? 4, 16));
    this.throttleRetries = Math.max(0, opts.throttleRetries ?? 3);
    this.maxThrottleWaitMs = opts.maxThrottleWaitMs ?? 10_000;
    this.maxMessageBytes = opts.maxMessageBytes ?? 10 * 1024 * 1024;
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async getMessage(mailbox: string, internetMessageId: string): Promise<MailboxMessage> {
    const user = mailboxPath(mailbox);
    const messageId = normalizeInternetMessageId(internetMessageId);
    const copies = await this.findCopies(user, messageId, {});
    const first = copies[0];
    if (!first) {
      throw new ReflexError('not_found', `Microsoft Graph: mailbox ${mailbox.trim()} holds no message ${messageId}`, {
        details: { vendor: VENDOR, mailbox: mailbox.trim() },
        safeMessage: `The mailbox ${mailbox.trim()} holds no message with that Message-ID (deleted already, or never delivered there).`,
      });
    }
    const res = await this.send({
      method: 'GET',
      path: `/v1.0/users/${user}/messages/${encodeURIComponent(first.id)}/$value`,
      headers: { Accept: 'message/rfc822, text/plain;q=0.9, */*;q=0.1' },
    });
    if (typeof res.body !== 'string' || res.body.trim() === '') throw unexpectedAnswer(VENDOR, 'the message source ($value) is empty');
    const bytes = Buffer.byteLength(res.body, 'utf8');
    if (bytes > this.maxMessageBytes) {
      throw new ReflexError('input.too_large', `Microsoft Graph: message ${messageId} is ${bytes} bytes, over the ${this.maxMessageBytes}-byte limit`, {
        details: { vendor: VENDOR, bytes },
        safeMessage: `The message is larger than ${Math.round(this.maxMessageBytes / 1024 / 1024)} MiB; inspect it by hand.`,
      });
    }
    return { vendor: this.name, mailbox: mailbox.trim(), messageId, source: res.body, reference: first.id };
  }

  async deleteMessage(internetMessageId: string, mailboxes: 'all' | readonly string[], opts: MailDeleteOptions): Promise<MailDeleteReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const messageId = normalizeInternetMessageId(internetMessageId);
    if (opts.mode !== 'soft' && opts.mode !== 'hard') {
      throw new ReflexError('input.invalid', `Microsoft Graph: delete mode must be soft or hard, got ${JSON.stringify(String(opts.mode).slice(0, 20))}`, {
        safeMessage: 'The delete mode must be soft or hard.',
      });
    }
    const scope = mailboxes === 'all' ? 'all' : 'list';
    const targets =
      mailboxes === 'all'
        ? await this.directoryMailboxes()
        : uniqueMailboxes(mailboxes);
    if (scope === 'list' && targets.length === 0) {
      throw new ReflexError('input.invalid', 'Microsoft Graph: no mailbox to delete from', { safeMessage: 'Name at least one mailbox, or "all".' });
    }

    const results: (MailboxDeleteResult | 'no-mailbox' | undefined)[] = new Array(targets.length);
    await eachLimited(targets.length, this.concurrency, opts.signal, async (i) => {
      const target = targets[i]!;
      results[i] = await this.cleanMailbox(target, messageId, opts.mode, scope, traceHeaders(`${key}:${target.path}`));
    });

    const reached = results.filter((r): r is MailboxDeleteResult | 'no-mailbox' => r !== undefined);
    const searched = reached.filter((r): r is MailboxDeleteResult => r !== 'no-mailbox');
    const listed = scope === 'list' ? searched : searched.filter((r) => r.found > 0 || r.deleted > 0 || r.error);
    return {
      vendor: this.name,
      messageId,
      mode: opts.mode,
      scope,
      mailboxes: listed,
      totals: {
        searched: searched.length,
        found: sum(searched, (r) => r.found),
        deleted: sum(searched, (r) => r.deleted),
        failed: searched.filter((r) => r.error).length,
        withoutMailbox: reached.length - searched.length,
      },
    };
  }

  /** One mailbox: find the copies, delete each; every failure ends up in the result, never thrown. */
  private async cleanMailbox(
    target: { path: string; label: string },
    messageId: string,
    mode: 'soft' | 'hard',
    scope: 'all' | 'list',
    headers: Record<string, string>,
  ): Promise<MailboxDeleteResult | 'no-mailbox'> {
    const result: MailboxDeleteResult = { mailbox: target.label, found: 0, deleted: 0 };
    let searched = false;
    try {
      let copies = await this.findCopies(target.path, messageId, headers);
      searched = true;
      if (mode === 'soft' && copies.length > 0) {
        const deletions = await this.deletionsFolderId(target.path, headers);
        copies = copies.filter((c) => deletions === undefined || c.parentFolderId !== deletions);
      }
      result.found = copies.length;
      for (const copy of copies) {
        const path = `/v1.0/users/${target.path}/messages/${encodeURIComponent(copy.id)}/${mode === 'soft' ? 'move' : 'permanentDelete'}`;
        const res = await this.send({ method: 'POST', path, headers, accept: [404], ...(mode === 'soft' ? { json: { destinationId: DELETIONS } } : {}) });
        // 404: the copy went between the search and the delete (the user, or a parallel attempt).
        if (res.status === 404) result.found -= 1;
        else result.deleted += 1;
      }
    } catch (err) {
      const e = toReflexError(err);
      // A directory user whose mailbox Graph cannot reach (unlicensed, on-premises, inactive)
      // answers 404 to the search: nothing to delete there. A mailbox named in a list is an error.
      if (scope === 'all' && !searched && e.code === 'not_found') return 'no-mailbox';
      result.error = { code: e.code, message: e.message.slice(0, 500), retryable: e.retryable, ...(e.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }) };
    }
    return result;
  }

  private async findCopies(user: string, messageId: string, headers: Record<string, string>): Promise<{ id: string; parentFolderId: string | undefined }[]> {
    const copies: { id: string; parentFolderId: string | undefined }[] = [];
    const first: VendorRequest = {
      method: 'GET',
      path: `/v1.0/users/${user}/messages`,
      query: { $filter: internetMessageIdFilter(messageId), $select: 'id,parentFolderId' },
      headers,
    };
    for await (const page of this.pages(first)) {
      for (const m of page) {
        if (isRecord(m) && typeof m.id === 'string' && m.id !== '') copies.push({ id: m.id, parentFolderId: typeof m.parentFolderId === 'string' ? m.parentFolderId : undefined });
      }
    }
    return copies;
  }

  private async deletionsFolderId(user: string, headers: Record<string, string>): Promise<string | undefined> {
    const res = await this.send({ method: 'GET', path: `/v1.0/users/${user}/mailFolders/${DELETIONS}`, query: { $select: 'id' }, headers, accept: [404] });
    return res.status !== 404 && isRecord(res.body) && typeof res.body.id === 'string' ? res.body.id : undefined;
  }

  private async directoryMailboxes(): Promise<{ path: string; label: string }[]> {
    const out: { path: string; label: string }[] = [];
    const first: VendorRequest = { method: 'GET', path: '/v1.0/users', query: { $select: 'id,mail,userPrincipalName', $top: USERS_PAGE } };
    for await (const page of this.pages(first)) {
      for (const u of page) {
        if (!isRecord(u) || typeof u.id !== 'string' || u.id === '' || typeof u.mail !== 'string' || u.mail.trim() === '') continue;
        out.push({ path: encodeURIComponent(u.id), label: u.mail.trim() });
      }
    }
    return out;
  }

  /** The `value` lists of a collection, following `@odata.nextLink` on the same host. */
  private async *pages(first: VendorRequest): AsyncGenerator<unknown[]> {
    let req: VendorRequest | undefined = first;
    for (let n = 0; req !== undefined; n++) {
      if (n >= MAX_PAGES) throw unexpectedAnswer(VENDOR, `${first.path} has more than ${MAX_PAGES} pages`);
      const res: VendorResponse = await this.send(req);
      if (!isRecord(res.body) || !Array.isArray(res.body.value)) throw unexpectedAnswer(VENDOR, `${first.path} answered without a value list`);
      yield res.body.value;
      const next = res.body['@odata.nextLink'];
      req = typeof next === 'string' && next !== '' ? { ...this.nextPage(next, first.path), ...(first.headers ? { headers: first.headers } : {}) } : undefined;
    }
  }

  /** `@odata.nextLink` is absolute; it may only point back at the Graph host this client talks to. */
  private nextPage(link: string, what: string): VendorRequest {
    let url: URL;
    try {
      url = new URL(link);
    } catch {
      throw unexpectedAnswer(VENDOR, `${what}: @odata.nextLink is not a URL`);
    }
    const basePath = this.base.pathname.replace(/\/+$/, '');
    if (url.origin !== this.base.origin || !url.pathname.startsWith(`${basePath}/`)) {
      throw unexpectedAnswer(VENDOR, `${what}: @odata.nextLink points at another host`);
    }
    // Not URLSearchParams: it reads a literal '+' (which skip tokens may hold) as a space.
    const query: Record<string, string> = {};
    for (const part of url.search.replace(/^\?/, '').split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      query[decodePart(eq < 0 ? part : part.slice(0, eq))] = eq < 0 ? '' : decodePart(part.slice(eq + 1));
    }
    return { method: 'GET', path: url.pathname.slice(basePath.length), query };
  }

  /** A request with Graph's throttling honoured: a 429 waits out its Retry-After, a few times. */
  private async send(req: VendorRequest): Promise<VendorResponse> {
    for (let retry = 0; ; retry++) {
      try {
        return await this.api.request(req);
      } catch (err) {
        if (!(err instanceof ReflexError) || err.code !== 'upstream.rate_limited' || retry >= this.throttleRetries) throw err;
        const wait = err.retryAfterMs ?? DEFAULT_THROTTLE_WAIT_MS;
        if (wait > this.maxThrottleWaitMs) throw err;
        await this.sleep(wait);
      }
    }
  }
}

/**
 * The `$filter` for one Internet Message-ID: an OData string literal, single quotes doubled
 * (`<o'brien@x>` → `internetMessageId eq '<o''brien@x>'`). Percent-encoding is the query
 * builder's job.
 */
export function internetMessageIdFilter(messageId: string): string {
  return `internetMessageId eq '${messageId.replace(/'/g, "''")}'`;
}

/**
 * A Message-ID as Exchange stores it: trimmed, in angle brackets (a report that dropped them still
 * finds the message). Control characters and line breaks are refused: a header value cannot hold
 * them, and they have no business in a query.
 *
 * @example
 * normalizeInternetMessageId('1234@mailer.evil.example') // '<1234@mailer.evil.example>'
 */
export function normalizeInternetMessageId(raw: string): string {
  const v = typeof raw === 'string' ? raw.trim() : '';
  const bracketed = v.startsWith('<') && v.endsWith('>') ? v : `<${v}>`;
  if (v === '' || bracketed.length > 998 || CONTROL.test(v) || bracketed.slice(1, -1).trim() === '' || /[<>]/.test(bracketed.slice(1, -1))) {
    throw new ReflexError('input.invalid', `Microsoft Graph: not an Internet Message-ID: ${JSON.stringify(String(raw).slice(0, 100))}`, {
      safeMessage: 'Give the Message-ID header value, e.g. <1234@mail.example>.',
      details: { field: 'message_id' },
    });
  }
  return bracketed;
}

/** A mailbox is an address (UPN or primary SMTP address) or an object id, percent-encoded for the path. */
function mailboxPath(mailbox: string): string {
  const m = typeof mailbox === 'string' ? mailbox.trim() : '';
  if (m === '' || m.length > 320 || CONTROL.test(m) || /[/\\?\s]/.test(m)) {
    throw new ReflexError('input.invalid', `Microsoft Graph: not a mailbox address or id: ${JSON.stringify(String(mailbox).slice(0, 100))}`, {
      safeMessage: 'Give the mailbox as an address (ana@contoso.example) or a user object id.',
      details: { field: 'mailbox' },
    });
  }
  return encodeURIComponent(m);
}

/** The named mailboxes, each once (addresses compare case-insensitively), in the order given. */
function uniqueMailboxes(mailboxes: readonly string[]): { path: string; label: string }[] {
  const seen = new Map<string, { path: string; label: string }>();
  for (const m of mailboxes) {
    const path = mailboxPath(m);
    const k = m.trim().toLowerCase();
    if (!seen.has(k)) seen.set(k, { path, label: m.trim() });
  }
  return [...seen.values()];
}

function traceHeaders(key: string): Record<string, string> {
  return { 'client-request-id': graphRequestId(key), 'return-client-request-id': 'true' };
}

const mapMailboxError = (f: VendorFailure): ReflexError | undefined =>
  graphFailure(f, {
    notFound: 'Microsoft Graph has no such mailbox or message (or the mailbox is not in Exchange Online).',
    forbidden: 'Microsoft Graph refused: the app lacks Mail.ReadWrite / User.Read.All, or an application access policy keeps it out of this mailbox.',
  });

async function eachLimited(count: number, limit: number, signal: AbortSignal | undefined, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !signal?.aborted) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

function decodePart(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function sum<T>(items: readonly T[], of: (item: T) => number): number {
  return items.reduce((n, item) => n + of(item), 0);
}
