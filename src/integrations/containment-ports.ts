/**
 * Ports the playbook engine's containment, paging and messaging steps talk to (DESIGN.md §4).
 *
 * Containment ports come in pairs (disable/enable, isolate/release, block/unblock) so every
 * containment can be reverted by a scheduled step or a button. Every method that changes
 * something takes an `idempotencyKey` derived from run and step (`<runId>:<stepId>`) and is safe
 * to call twice with the same key: a queue job may run again after a crash or a timeout, and the
 * second call must not undo, double or fail the first. Each adapter documents how its vendor makes
 * that true (docs/INTEGRATIONS.md has the table).
 *
 * Failures are `ReflexError`s whose `retryable` the queue trusts: 429 is `upstream.rate_limited`
 * with `retryAfterMs`, 5xx and network failures are retryable, 401/403 and bad input are not, and a
 * user or host the vendor does not know is `not_found` (not retryable).
 */
import { ReflexError } from '../errors.ts';

/** What every mutating call carries. */
export interface MutationOptions {
  /** `<runId>:<stepId>` (or any stable id of the intent). The same key on a retry means "the same action". */
  idempotencyKey: string;
  /** Audit text; written into the vendor's comment field where it has one. */
  comment?: string;
}

/** One target of a fanned-out call that did not take the action (a Wazuh agent that is offline). */
export interface ContainmentFailure {
  target: string;
  /** The vendor's code as a string (`"1707"`, `"409"`, `"ActiveRequestAlreadyExists"`). */
  code: string;
  reason: string;
  /** Whether trying again later may succeed for this target (an offline agent may come back). */
  retryable: boolean;
}

/**
 * What a containment call did. A call that throws did nothing useful; a call that returns did
 * the action for `target`, possibly with some fanned-out targets in `failures`.
 */
export interface ContainmentReceipt {
  /** The adapter's `name`. */
  vendor: string;
  /** The user, host or address as the vendor knows it (a resolved machine id, not the hostname given). */
  target: string;
  /** `done`: the vendor confirmed the new state. `pending`: accepted, completes asynchronously. */
  state: 'done' | 'pending';
  /** True when the vendor said the target was already in the requested state, so nothing new was sent. */
  alreadyInState: boolean;
  /** The vendor's id for the action (Defender machineAction id, Twilio call sid …), for the timeline. */
  reference?: string;
  /** Targets of a fanned-out call that failed while others succeeded. Empty when all succeeded. */
  failures: ContainmentFailure[];
  /** The vendor's answer as received, for the incident record. Never holds credentials. */
  raw?: unknown;
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

export interface IdentityReceipt extends ContainmentReceipt {
  /** Set by `disableUser`: whether existing sessions were revoked as part of the disable. */
  sessionsRevoked?: boolean;
}

export interface ResetPasswordOptions extends MutationOptions {
  /** Require a new password at next sign-in. Default true. */
  forceChangeAtLogin?: boolean;
  /**
   * The temporary password to set. When omitted the adapter sets a long random one that nobody
   * sees: the old password is dead and the user must go through the helpdesk or self-service
   * reset. A caller that delivers the temporary password must generate it once, store it with
   * the step and pass the same value on a retry (the last call's password wins).
   */
  newPassword?: string;
}

/**
 * A directory that can lock a user out and let them back in (Entra ID via Microsoft Graph, Active
 * Directory via LDAP).
 *
 * `disableUser` blocks new sign-ins and, where the directory can, ends existing sessions too
 * (`sessionsRevoked` says whether it did). `enableUser` undoes `disableUser`. Both are naturally
 * idempotent: they set a state, they do not toggle it.
 *
 * @example
 * const idp: IdentityProvider = new MicrosoftGraphClient({ tenantId, clientId, clientSecret });
 * const r = await idp.disableUser('alice@contoso.example', { idempotencyKey: 'run_42:disable_user', comment: 'INC-7' });
 * // r.state === 'done', r.sessionsRevoked === true
 * await idp.enableUser('alice@contoso.example', { idempotencyKey: 'run_42:revert_disable_user' });
 */
export interface IdentityProvider {
  readonly name: string;
  disableUser(user: string, opts: MutationOptions): Promise<IdentityReceipt>;
  enableUser(user: string, opts: MutationOptions): Promise<IdentityReceipt>;
  /**
   * Invalidates refresh tokens and session cookies. Not reverted by anything (the user signs in
   * again), and safe to repeat.
   *
   * @example
   * await idp.revokeSessions('alice@contoso.example', { idempotencyKey: 'run_42:revoke' });
   */
  revokeSessions(user: string, opts: MutationOptions): Promise<IdentityReceipt>;
  /**
   * Kills the current password. Repeating it is safe in effect (the old password is dead either
   * way); see `ResetPasswordOptions.newPassword` for callers that hand out the new one.
   *
   * @example
   * await idp.resetPassword('alice@contoso.example', { idempotencyKey: 'run_42:reset', forceChangeAtLogin: true });
   */
  resetPassword(user: string, opts: ResetPasswordOptions): Promise<IdentityReceipt>;
}

// ---------------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------------

/** `unknown` when the vendor cannot tell (no action history, sensor offline). */
export type HostContainmentState = 'isolated' | 'isolating' | 'released' | 'releasing' | 'unknown';

export interface HostContainmentStatus {
  vendor: string;
  target: string;
  state: HostContainmentState;
  raw?: unknown;
}

/**
 * An EDR that can cut a host off the network except for its own management channel
 * (Microsoft Defender for Endpoint, CrowdStrike Falcon).
 *
 * `host` is the vendor's device id or a hostname the adapter resolves (a hostname that matches
 * several devices is refused as `conflict` rather than guessed). Isolation is asynchronous at
 * every EDR: a receipt is usually `pending` until the sensor checks in. Isolating an isolated host
 * (or releasing a released one) returns `alreadyInState: true` and sends nothing new.
 *
 * @example
 * const edr: HostContainment = new DefenderClient({ tenantId, clientId, clientSecret });
 * const r = await edr.isolate('desktop-test', { idempotencyKey: 'run_42:isolate', comment: 'INC-7 ransomware' });
 * // r.state === 'pending', r.reference === '5382f7ea-…' (the machineAction id)
 * await edr.release('desktop-test', { idempotencyKey: 'run_42:release' });
 */
export interface HostContainment {
  readonly name: string;
  isolate(host: string, opts: MutationOptions): Promise<ContainmentReceipt>;
  release(host: string, opts: MutationOptions): Promise<ContainmentReceipt>;
  /**
   * Where the host stands now, for a revert step or a `/reflex host` command.
   *
   * @example
   * (await edr.status?.('desktop-test'))?.state // 'isolated'
   */
  status?(host: string): Promise<HostContainmentStatus>;
}

// ---------------------------------------------------------------------------------------------
// Firewall
// ---------------------------------------------------------------------------------------------

export interface FirewallBlockOptions extends MutationOptions {
  /**
   * How long the firewall itself should keep the block, when it supports expiry. SENTreflex
   * schedules its own revert step as well; the firewall's TTL is the safety net if that step
   * never runs.
   */
  ttlSeconds?: number;
}

export interface FirewallReceipt extends ContainmentReceipt {
  /** The address or CIDR as sent (normalised: trimmed, IPv6 lower-case). */
  address: string;
  /** When the firewall will lift the block by itself (ISO-8601), if it expires blocks. */
  expiresAt?: string;
}

/**
 * Perimeter blocking of an IP address or CIDR (Wazuh `firewall-drop` on chosen agents, or a
 * REST blocklist such as SENTgrid).
 *
 * @example
 * const fw: Firewall = new RestBlocklistFirewall({ baseUrl: 'https://sentgrid.internal/api', apiToken });
 * await fw.block('198.51.100.7', { idempotencyKey: 'run_42:block_ip', ttlSeconds: 86_400, comment: 'sshd brute force' });
 * await fw.unblock('198.51.100.7', { idempotencyKey: 'run_42:unblock_later' });
 */
export interface Firewall {
  readonly name: string;
  block(address: string, opts: FirewallBlockOptions): Promise<FirewallReceipt>;
  unblock(address: string, opts: MutationOptions): Promise<FirewallReceipt>;
}

// ---------------------------------------------------------------------------------------------
// Paging, phone, SMS, mail
// ---------------------------------------------------------------------------------------------

/** PagerDuty's severities; `pagerSeverityFor` maps SentinelNet's 1..4 onto them. */
export type PagerSeverity = 'critical' | 'error' | 'warning' | 'info';

export interface PageRequest {
  /** One line; vendors cap it (PagerDuty: 1024 characters), longer text is truncated. */
  summary: string;
  severity: PagerSeverity;
  /** The affected system (hostname, service). Default `sentreflex`. */
  source?: string;
  /** Groups repeated pages into one incident. Default: the idempotency key. */
  dedupKey?: string;
  /** Which on-call schedule or service to page; default: the tenant's default. */
  schedule?: string;
  /** Shown in the page. */
  details?: Record<string, unknown>;
  links?: { href: string; text?: string }[];
}

export interface PageReceipt {
  vendor: string;
  /** Pass this to `acknowledge`/`resolve`. */
  dedupKey: string;
  raw?: unknown;
}

/**
 * Opens (and closes) pages for an on-call rotation.
 *
 * `page` is idempotent on its dedup key: a repeat with the same key updates the same open
 * incident instead of opening another.
 *
 * @example
 * const pager: Pager = new PagerDutyClient({ routingKeys: { default: routingKey } });
 * const { dedupKey } = await pager.page(
 *   { summary: 'SEV1: ransomware on web-01', severity: 'critical', source: 'web-01' },
 *   { idempotencyKey: 'run_42:page' },
 * );
 * await pager.resolve?.(dedupKey, { idempotencyKey: 'run_42:resolve' });
 */
export interface Pager {
  readonly name: string;
  page(request: PageRequest, opts: MutationOptions): Promise<PageReceipt>;
  acknowledge?(dedupKey: string, opts: MutationOptions & { schedule?: string }): Promise<PageReceipt>;
  resolve?(dedupKey: string, opts: MutationOptions & { schedule?: string }): Promise<PageReceipt>;
}

export interface MessageReceipt {
  vendor: string;
  /** The vendor's id (Twilio `CA…`/`SM…` sid, SMTP Message-ID). */
  sid: string;
  /** The vendor's status when it answered (`queued`, `sent` …). */
  status: string;
  /** True when the idempotency key had already sent this, and nothing new was sent. */
  reused: boolean;
  raw?: unknown;
}

export interface PhoneCallOptions extends MutationOptions {
  /**
   * Where the callee's keypress ("press 1 to acknowledge") is posted. Without it the call reads
   * the message twice and asks for nothing.
   */
  acknowledgeUrl?: string;
}

/**
 * Rings a phone and reads a message.
 *
 * @example
 * const phone: PhoneCaller = new TwilioClient({ accountSid, authToken, from: '+15017122661', store });
 * const { sid } = await phone.call('+14158675309', 'SEV1 incident 42: ransomware on web-01.', { idempotencyKey: 'run_42:call' });
 */
export interface PhoneCaller {
  readonly name: string;
  call(to: string, message: string, opts: PhoneCallOptions): Promise<MessageReceipt>;
}

/**
 * Sends a text message (approval links to an on-call phone).
 *
 * @example
 * await sms.sendSms('+14158675309', `Approve isolation of web-01: ${link}`, { idempotencyKey: `${approvalId}:sms` });
 */
export interface SmsSender {
  readonly name: string;
  sendSms(to: string, body: string, opts: MutationOptions): Promise<MessageReceipt>;
}

export interface MailMessage {
  to: string | string[];
  subject: string;
  text: string;
  html?: string;
}

/**
 * Sends e-mail (notifications, signed approval links): `SmtpMailer` over nodemailer; see
 * docs/INTEGRATIONS.md.
 *
 * @example
 * await mailer.send({ to: 'oncall@acme.example', subject: 'Approve: isolate web-01', text: link }, { idempotencyKey: `${approvalId}:mail` });
 */
export interface Mailer {
  readonly name: string;
  send(message: MailMessage, opts: MutationOptions): Promise<MessageReceipt>;
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/** What happened to one asset of a `CredentialVault.rotate` call. */
export interface CredentialRotationResult {
  /** The asset id as given (`database/static-role/app-ro`). */
  asset: string;
  /**
   * `rotated`: the vault confirmed a new credential now. `already_rotated`: this idempotency key
   * rotated it before (a retried step), so nothing was sent. `failed`: not rotated; see `code`.
   */
  status: 'rotated' | 'already_rotated' | 'failed';
  /** The vault operation, without credentials (`database/rotate-role/app-ro`). */
  operation: string;
  /** When it was rotated (ISO-8601), for `rotated` and `already_rotated`. */
  rotatedAt?: string;
  /** For `failed`: the vendor's status as a string (`"404"`) or our error code. */
  code?: string;
  reason?: string;
  /** For `failed`: whether trying again later may succeed (5xx, 429), or not (4xx). */
  retryable?: boolean;
  retryAfterMs?: number;
}

export interface CredentialRotationReceipt {
  vendor: string;
  /** One entry per distinct asset, in the order given. */
  results: CredentialRotationResult[];
  /** The failed assets, as in every fanned-out receipt. Empty when all were rotated. */
  failures: ContainmentFailure[];
}

/**
 * Rotates credentials a vault holds (database accounts, directory service accounts), so a leaked
 * copy stops working. Assets are the adapter's ids for credentials (HashiCorp Vault:
 * `database/static-role/<role>`, `database/root/<connection>`, `ldap/static-role/<role>`); an id
 * the adapter cannot rotate is refused as `config.invalid` before anything is rotated.
 *
 * Rotation is not naturally idempotent (every call makes a new password), so the adapter records
 * "idempotency key + asset → rotated" and answers a repeat from the record (`already_rotated`).
 * A vendor failure on one asset does not stop the others; it is reported in `results` and
 * `failures`, never thrown away. There is no undo: an old credential is not brought back.
 *
 * @example
 * const vault: CredentialVault = new HashiCorpVaultClient({ baseUrl, token, store });
 * const r = await vault.rotate(['database/static-role/app-ro'], { idempotencyKey: 'run_42:rotate' });
 * // r.results[0].status === 'rotated'
 */
export interface CredentialVault {
  readonly name: string;
  rotate(assets: readonly string[], opts: MutationOptions): Promise<CredentialRotationReceipt>;
}

// ---------------------------------------------------------------------------------------------
// Mailboxes
// ---------------------------------------------------------------------------------------------

/** A message as its mailbox holds it. */
export interface MailboxMessage {
  vendor: string;
  /** The mailbox it was read from, as given. */
  mailbox: string;
  /** The Internet Message-ID header value, with its angle brackets (`<abc@mail.example>`). */
  messageId: string;
  /** The full RFC 822 / MIME source. */
  source: string;
  /** The vendor's id of the copy that was read. */
  reference: string;
}

/** `soft`: recoverable by an administrator for the retention period; `hard`: purged. */
export type MailDeleteMode = 'soft' | 'hard';

export interface MailDeleteOptions extends MutationOptions {
  mode: MailDeleteMode;
  /** Stops starting new mailboxes once aborted (the step's timeout); mailboxes not reached are not reported. */
  signal?: AbortSignal;
}

/** What happened in one mailbox. `found` counts copies not deleted yet; `deleted` those removed now. */
export interface MailboxDeleteResult {
  mailbox: string;
  found: number;
  deleted: number;
  /** Set when the mailbox could not be searched or cleaned; `found`/`deleted` say how far it got. */
  error?: { code: string; message: string; retryable: boolean; retryAfterMs?: number };
}

export interface MailDeleteReceipt {
  vendor: string;
  messageId: string;
  mode: MailDeleteMode;
  /** `all`: every mailbox of the directory; `list`: the mailboxes named. */
  scope: 'all' | 'list';
  /**
   * Every named mailbox (scope `list`); with scope `all`, the mailboxes that held the message or
   * failed. The others are counted in `totals.searched` only, so a 20,000-user directory does not
   * become a 20,000-line step output.
   */
  mailboxes: MailboxDeleteResult[];
  totals: {
    /** Mailboxes searched (including failed ones). */
    searched: number;
    found: number;
    deleted: number;
    failed: number;
    /** Directory users with an address but no mailbox the API can reach (scope `all`). */
    withoutMailbox: number;
  };
}

/**
 * Mailbox administration for phishing response: read a reported message, pull it from every
 * mailbox. Messages are named by their Internet Message-ID (the header every copy shares), never
 * by a vendor id, so one id reaches every recipient's copy.
 *
 * `deleteMessage` never throws for one mailbox: each mailbox's outcome is in the receipt (a
 * mailbox that fails is reported, not skipped), and the caller decides what a failure means. It
 * throws only when it cannot even start (listing the directory fails, bad input). Repeating it is
 * harmless: a message deleted by the first call is not found by the second (`found: 0`).
 *
 * @example
 * const mail: MailboxAdmin = new GraphMailboxAdmin({ tenantId, clientId, clientSecret });
 * const { source } = await mail.getMessage('ana@contoso.example', '<1234@mailer.evil.example>');
 * const r = await mail.deleteMessage('<1234@mailer.evil.example>', 'all', { idempotencyKey: 'run_42:delete', mode: 'soft' });
 * // r.totals => { searched: 812, found: 37, deleted: 37, failed: 0, withoutMailbox: 4 }
 */
export interface MailboxAdmin {
  readonly name: string;
  getMessage(mailbox: string, internetMessageId: string): Promise<MailboxMessage>;
  deleteMessage(internetMessageId: string, mailboxes: 'all' | readonly string[], opts: MailDeleteOptions): Promise<MailDeleteReceipt>;
}

// ---------------------------------------------------------------------------------------------
// Idempotency records for vendors without native idempotency
// ---------------------------------------------------------------------------------------------

/**
 * A short-lived record of "idempotency key → what the vendor answered", for vendors that have no
 * idempotency of their own (Twilio). The engine passes a database-backed store (one row per
 * tenant and key, with an expiry); tests use `InMemoryIdempotencyStore`.
 *
 * @example
 * const earlier = await store.get('twilio:call:run_42:call');
 * if (earlier === undefined) await store.set('twilio:call:run_42:call', JSON.stringify({ sid }), 86_400_000);
 */
export interface IdempotencyStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
}

/** Longest idempotency key the adapters accept (vendors cap theirs: PagerDuty dedup_key at 255). */
export const IDEMPOTENCY_KEY_MAX = 255;

/**
 * Checks an idempotency key at the edge of every adapter, so a missing key fails loudly instead
 * of silently making a call that cannot be deduplicated.
 */
export function requireIdempotencyKey(vendor: string, key: unknown): string {
  if (typeof key !== 'string' || key.trim() === '' || key.length > IDEMPOTENCY_KEY_MAX) {
    throw new ReflexError('input.invalid', `${vendor}: idempotencyKey must be a non-empty string of at most ${IDEMPOTENCY_KEY_MAX} characters`, {
      safeMessage: 'Internal error: the action was called without a valid idempotency key.',
    });
  }
  return key;
}

/** SentinelNet severity (1 = critical … 4 = info) as a pager severity. */
export function pagerSeverityFor(severity: 1 | 2 | 3 | 4): PagerSeverity {
  const map = { 1: 'critical', 2: 'error', 3: 'warning', 4: 'info' } as const;
  return map[severity];
}
