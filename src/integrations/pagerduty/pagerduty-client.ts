import { createHash } from 'node:crypto';
import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord } from '../http.ts';
import { requireIdempotencyKey } from '../containment-ports.ts';
import type { MutationOptions, PageReceipt, PageRequest, Pager, PagerSeverity } from '../containment-ports.ts';

export interface PagerDutyClientOptions {
  /**
   * Events API v2 integration ("routing") keys by schedule name; `default` serves pages without
   * a schedule. Vault: `pagerduty.routing_key` (default) and `pagerduty.routing_key.<schedule>`.
   */
  routingKeys: Record<string, string>;
  /** Default https://events.pagerduty.com (EU service region: https://events.eu.pagerduty.com). */
  baseUrl?: string;
  /** Shown as the event's client. Default `SENTreflex`. */
  client?: string;
  /** Link back to SENTreflex (the console URL). */
  clientUrl?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
}

/** Events API v2 limits (summary is truncated by PagerDuty at 1024; dedup_key is at most 255). */
const SUMMARY_MAX = 1024;
const DEDUP_MAX = 255;
const SEVERITIES: readonly PagerSeverity[] = ['critical', 'error', 'warning', 'info'];
const VENDOR = 'PagerDuty';

/**
 * PagerDuty Events API v2 (`POST /v2/enqueue`), as a `Pager`.
 *
 * No auth header: the routing key in the body is the credential, so it is never put in a
 * message or a receipt. A trigger answers `202 {status:"success", message:"Event processed",
 * dedup_key}`; a malformed event `400 {status, message, errors[]}`; throttling `429`.
 *
 * Idempotency: `dedup_key` is the step's idempotency key (or the caller's `dedupKey`). PagerDuty
 * folds every trigger with an open alert's dedup_key into that alert, so a retried page never
 * opens a second incident; acknowledge and resolve address the alert by the same key.
 *
 * @example
 * const pd = new PagerDutyClient({ routingKeys: { default: await vault.get(t, 'pagerduty.routing_key') } });
 * const { dedupKey } = await pd.page({ summary: 'SEV1: ransomware on web-01', severity: 'critical', source: 'web-01' },
 *   { idempotencyKey: 'run_42:page' });
 * await pd.resolve(dedupKey, { idempotencyKey: 'run_42:resolve' });
 */
export class PagerDutyClient implements Pager {
  readonly name = 'pagerduty';
  private readonly http: VendorHttpClient;
  private readonly routingKeys: Record<string, string>;
  private readonly clientName: string;
  private readonly clientUrl: string | undefined;
  private readonly now: () => Date;

  constructor(opts: PagerDutyClientOptions) {
    const keys = Object.entries(opts.routingKeys ?? {}).filter(([, v]) => typeof v === 'string' && v.trim() !== '');
    if (keys.length === 0) throw new ReflexError('config.invalid', 'PagerDuty: no routing key configured', { safeMessage: 'PagerDuty is not configured (routing key).' });
    this.routingKeys = Object.fromEntries(keys);
    this.clientName = opts.client ?? 'SENTreflex';
    this.clientUrl = opts.clientUrl;
    this.now = opts.now ?? (() => new Date());
    this.http = new VendorHttpClient({
      vendor: VENDOR,
      baseUrl: opts.baseUrl ?? 'https://events.pagerduty.com',
      describeError: describePagerDutyError,
      now: () => this.now().getTime(),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  async page(request: PageRequest, opts: MutationOptions): Promise<PageReceipt> {
    const key = requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    const summary = typeof request.summary === 'string' ? request.summary.trim() : '';
    if (summary === '') throw new ReflexError('input.invalid', 'PagerDuty: a page needs a summary', { safeMessage: 'A page needs a summary.' });
    if (!SEVERITIES.includes(request.severity)) {
      throw new ReflexError('input.invalid', `PagerDuty: unknown severity ${JSON.stringify(request.severity)}`, {
        safeMessage: 'Page severity must be critical, error, warning or info.',
      });
    }
    const links = (request.links ?? []).filter((l) => /^https?:\/\//i.test(l.href));
    return this.enqueue(request.schedule, {
      event_action: 'trigger',
      dedup_key: dedupKey(request.dedupKey ?? key),
      payload: {
        summary: summary.length > SUMMARY_MAX ? `${summary.slice(0, SUMMARY_MAX - 1)}…` : summary,
        severity: request.severity,
        source: request.source?.trim() || 'sentreflex',
        timestamp: this.now().toISOString(),
        ...(request.details ? { custom_details: request.details } : {}),
      },
      client: this.clientName,
      ...(this.clientUrl ? { client_url: this.clientUrl } : {}),
      ...(links.length > 0 ? { links } : {}),
    });
  }

  async acknowledge(dedup: string, opts: MutationOptions & { schedule?: string }): Promise<PageReceipt> {
    requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    return this.enqueue(opts.schedule, { event_action: 'acknowledge', dedup_key: dedupKey(dedup) });
  }

  async resolve(dedup: string, opts: MutationOptions & { schedule?: string }): Promise<PageReceipt> {
    requireIdempotencyKey(VENDOR, opts.idempotencyKey);
    return this.enqueue(opts.schedule, { event_action: 'resolve', dedup_key: dedupKey(dedup) });
  }

  private async enqueue(schedule: string | undefined, event: Record<string, unknown> & { dedup_key: string }): Promise<PageReceipt> {
    const res = await this.http.request({
      method: 'POST',
      path: '/v2/enqueue',
      json: { routing_key: this.routingKeyFor(schedule), ...event },
    });
    const body = isRecord(res.body) ? res.body : {};
    if (body.status !== undefined && body.status !== 'success') {
      throw new ReflexError('upstream.rejected', `PagerDuty answered ${res.status} with status ${String(body.status)}`, {
        retryable: false,
        details: { vendor: VENDOR, status: res.status },
        safeMessage: 'PagerDuty did not accept the page.',
      });
    }
    // PagerDuty answers with the dedup_key it filed the event under; trust it over ours.
    const filed = typeof body.dedup_key === 'string' && body.dedup_key !== '' ? body.dedup_key : event.dedup_key;
    return { vendor: this.name, dedupKey: filed, raw: res.body };
  }

  private routingKeyFor(schedule: string | undefined): string {
    const name = schedule?.trim() || 'default';
    const key = this.routingKeys[name];
    if (key === undefined) {
      throw new ReflexError('input.invalid', `PagerDuty: no routing key for schedule ${JSON.stringify(name)}`, {
        safeMessage: `PagerDuty has no routing key for schedule "${name}".`,
        details: { schedules: Object.keys(this.routingKeys) },
      });
    }
    return key;
  }
}

/** The key as sent; one longer than PagerDuty's 255 is replaced by its sha-256 (same input, same key). */
function dedupKey(key: string): string {
  const k = key.trim();
  if (k === '') throw new ReflexError('input.invalid', 'PagerDuty: empty dedup key', { safeMessage: 'The page has no dedup key.' });
  return k.length <= DEDUP_MAX ? k : `sha256:${createHash('sha256').update(k).digest('hex')}`;
}

/** `{"status":"Unrecognized object","message":"Event object format is unrecognized","errors":["JSON parse error"]}`. */
function describePagerDutyError(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const errors = Array.isArray(body.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
  const head = typeof body.message === 'string' ? body.message : typeof body.status === 'string' ? body.status : undefined;
  if (head === undefined && errors.length === 0) return undefined;
  return [head, errors.join('; ')].filter((s) => s !== undefined && s !== '').join(': ');
}

