import { ReflexError } from '../../errors.ts';
import { VendorHttpClient, isRecord, describePlayError, unexpectedAnswer } from '../http.ts';
import type { VendorResponse } from '../http.ts';
import type {
  CaseAlertInput,
  CaseInput,
  CaseObservable,
  CaseRef,
  CaseSystem,
  CaseSystemRef,
  CaseTarget,
  ExistingAlert,
  Severity,
  Tlp,
} from '../ports.ts';

export interface TheHiveClientOptions {
  /** e.g. https://thehive.example.org (the `/api/v1` prefix is added here). */
  baseUrl: string;
  apiKey: string;
  /** Sent as `X-Organisation` when the key's user belongs to several organisations. */
  organisation?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

// TheHive 5 numbers: 0 clear, 1 green, 2 amber, 3 red, 4 amber+strict (added after red).
const THEHIVE_TLP: Record<Tlp, number> = { clear: 0, green: 1, amber: 2, red: 3, 'amber+strict': 4 };

// InputCreateAlert limits from the v5.7.3 OpenAPI; longer values are a 400 for the whole alert.
const LIMITS = { type: 32, source: 32, sourceRef: 128, title: 512, tag: 128 } as const;

/**
 * TheHive 5 (`/api/v1`) as a `CaseSystem`.
 *
 * TheHive dedupes alerts on (type, source, sourceRef) and answers a duplicate with
 * `400 {"type":"CreateError","message":"Alert … already exist …"}`, not 409; `createAlert` turns
 * that into the existing alert with `created: false`.
 *
 * @example
 * const hive = new TheHiveClient({ baseUrl: 'https://thehive.example.org', apiKey, organisation: 'acme' });
 * const { id, created } = await hive.createAlert({ type: 'wazuh', source: 'sentinelnet', sourceRef: fp,
 *   title: 'sshd: brute force on web-01', description: '…', severity: 2 });
 */
export class TheHiveClient implements CaseSystem {
  readonly name = 'thehive';
  private readonly http: VendorHttpClient;

  constructor(opts: TheHiveClientOptions) {
    if (!opts.apiKey) throw new ReflexError('config.invalid', 'TheHive API key is empty');
    this.http = new VendorHttpClient({
      vendor: 'TheHive',
      baseUrl: opts.baseUrl,
      headers: {
        Authorization: `Bearer ${opts.apiKey}`,
        ...(opts.organisation ? { 'X-Organisation': opts.organisation } : {}),
      },
      secretHeaders: ['Authorization'],
      describeError: describePlayError,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  }

  async createAlert(input: CaseAlertInput): Promise<CaseSystemRef> {
    const type = bounded('type', input.type, LIMITS.type);
    const source = bounded('source', input.source, LIMITS.source);
    const sourceRef = bounded('sourceRef', input.sourceRef, LIMITS.sourceRef);
    const res = await this.http.request({
      method: 'POST',
      path: '/api/v1/alert',
      json: {
        type,
        source,
        sourceRef,
        title: truncate(input.title, LIMITS.title),
        description: input.description,
        severity: toTheHiveSeverity(input.severity),
        tags: cleanTags(input.tags),
        ...(input.tlp ? { tlp: THEHIVE_TLP[input.tlp] } : {}),
        ...(input.date ? { date: input.date.getTime() } : {}),
        ...(input.externalLink ? { externalLink: input.externalLink } : {}),
        ...(input.observables?.length ? { observables: input.observables.map(toObservableBody) } : {}),
      },
      accept: [400],
    });
    if (res.status !== 400) return { id: entityId(res.body, 'alert'), created: true };

    if (!isDuplicate(res.body)) throw this.rejected(res, 'POST /api/v1/alert');
    const existing = await this.findAlertBySourceRef(sourceRef, { source, type });
    if (!existing) {
      // TheHive says it exists but we cannot see it: another organisation, or a key without read access.
      throw new ReflexError('conflict', `TheHive reports alert ${type}/${source}/${sourceRef} exists but the query finds none`, {
        details: { vendor: 'TheHive', sourceRef },
        safeMessage: 'TheHive already has this alert but SENTreflex cannot see it; check the organisation and API key.',
      });
    }
    return { id: existing.id, created: false };
  }

  async findAlertBySourceRef(sourceRef: string, scope: { source?: string; type?: string } = {}): Promise<ExistingAlert | null> {
    const res = await this.http.request({
      method: 'POST',
      path: '/api/v1/query',
      json: {
        query: [
          { _name: 'listAlert' },
          // The OpenAPI's discriminator says `_filter`; TheHive's own examples and clients send `filter`.
          { _name: 'filter', _eq: { _field: 'sourceRef', _value: sourceRef } },
          { _name: 'page', from: 0, to: 50 },
        ],
      },
    });
    if (!Array.isArray(res.body)) throw unexpectedAnswer('TheHive', 'query result is not an array');
    // source and type are compared here, case-insensitively: TheHive may store `type` lower-cased
    // (its v4 docs show "MISP Event" come back as "misp event").
    const same = (a: unknown, b: string | undefined) => b === undefined || String(a ?? '').toLowerCase() === b.toLowerCase();
    const match = res.body
      .filter(isRecord)
      .find((a) => a.sourceRef === sourceRef && same(a.source, scope.source) && same(a.type, scope.type));
    if (!match) return null;
    const caseId = linkedCaseId(match);
    return { id: entityId(match, 'alert'), ...(caseId ? { caseId } : {}) };
  }

  async createCase(input: CaseInput): Promise<CaseRef> {
    const res = await this.http.request({
      method: 'POST',
      path: '/api/v1/case',
      json: {
        title: truncate(input.title, LIMITS.title),
        description: input.description,
        severity: toTheHiveSeverity(input.severity),
        tags: cleanTags(input.tags),
        ...(input.tlp ? { tlp: THEHIVE_TLP[input.tlp] } : {}),
        ...(input.tasks?.length
          ? { tasks: input.tasks.map((t) => ({ title: truncate(t.title, 128), ...(t.description ? { description: t.description } : {}) })) }
          : {}),
      },
    });
    return toCaseRef(res.body, true);
  }

  async promoteAlertToCase(alertId: string, options: { caseTemplate?: string } = {}): Promise<CaseRef> {
    const path = `/api/v1/alert/${encodeURIComponent(alertId)}/case`;
    const res = await this.http.request({
      method: 'POST',
      path,
      json: options.caseTemplate ? { caseTemplate: options.caseTemplate } : {},
      accept: [400],
    });
    if (res.status !== 400) return toCaseRef(res.body, true);

    // A retried job promotes twice. Whatever TheHive's wording, an alert that already has a case
    // answers the question; anything else is the original rejection.
    const alert = await this.http.request({ method: 'GET', path: `/api/v1/alert/${encodeURIComponent(alertId)}` });
    const caseId = isRecord(alert.body) ? linkedCaseId(alert.body) : undefined;
    if (caseId) return { id: caseId, created: false };
    throw this.rejected(res, `POST ${path}`);
  }

  async addObservable(target: CaseTarget, observable: CaseObservable): Promise<{ ids: string[] }> {
    const path = `/api/v1/${target.kind}/${encodeURIComponent(target.id)}/observable`;
    const res = await this.http.request({ method: 'POST', path, json: toObservableBody(observable), accept: [400] });
    if (res.status === 400) {
      // Same duplicate answer as for alerts: the observable is there, which is what we wanted.
      if (isDuplicate(res.body)) return { ids: [] };
      throw this.rejected(res, `POST ${path}`);
    }
    const created = Array.isArray(res.body) ? res.body : [res.body];
    return { ids: created.filter(isRecord).map((o) => entityId(o, 'observable')) };
  }

  async addComment(target: CaseTarget, message: string): Promise<void> {
    if (message.trim() === '') throw new ReflexError('input.invalid', 'empty TheHive comment', { safeMessage: 'The comment is empty.' });
    await this.http.request({
      method: 'POST',
      path: `/api/v1/${target.kind}/${encodeURIComponent(target.id)}/comment`,
      json: { message },
    });
  }

  /** Appends a log entry to a case task (the playbook's step-by-step record). */
  async addTaskLog(taskId: string, message: string): Promise<void> {
    if (message.trim() === '') throw new ReflexError('input.invalid', 'empty TheHive task log', { safeMessage: 'The log entry is empty.' });
    await this.http.request({ method: 'POST', path: `/api/v1/task/${encodeURIComponent(taskId)}/log`, json: { message } });
  }

  private rejected(res: VendorResponse, where: string): ReflexError {
    const detail = this.http.redact(describePlayError(res.body) ?? `status ${res.status}`);
    return new ReflexError('upstream.rejected', `TheHive answered ${res.status} to ${where}: ${detail}`, {
      retryable: false,
      details: { vendor: 'TheHive', status: res.status },
      safeMessage: 'TheHive rejected the request.',
    });
  }
}

/** SentinelNet 1 = critical … 4 = info; TheHive 1 = low … 4 = critical. */
export function toTheHiveSeverity(severity: Severity): 1 | 2 | 3 | 4 {
  return (5 - severity) as 1 | 2 | 3 | 4;
}

function toObservableBody(o: CaseObservable): Record<string, unknown> {
  return {
    dataType: o.kind,
    data: o.value,
    ...(o.ioc === undefined ? {} : { ioc: o.ioc }),
    ...(o.tags?.length ? { tags: cleanTags(o.tags) } : {}),
    ...(o.message ? { message: o.message } : {}),
    ...(o.tlp ? { tlp: THEHIVE_TLP[o.tlp] } : {}),
  };
}

function isDuplicate(body: unknown): boolean {
  return isRecord(body) && body.type === 'CreateError' && /already exist/i.test(String(body.message ?? ''));
}

/** v5 answers `_id` only; v4 answers both `_id` and `id`. */
function entityId(body: unknown, what: string): string {
  const id = isRecord(body) ? (body._id ?? body.id) : undefined;
  if (typeof id !== 'string' || id === '') throw unexpectedAnswer('TheHive', `${what} without an _id`);
  return id;
}

/** v5 alerts carry `caseId` (the case's _id); v4 alerts carry `case`. */
function linkedCaseId(alert: Record<string, unknown>): string | undefined {
  const id = alert.caseId ?? alert.case;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function toCaseRef(body: unknown, created: boolean): CaseRef {
  const id = entityId(body, 'case');
  // The human number is `number` in v5 and `caseId` (a number, not an id) in v4.
  const n = isRecord(body) ? (body.number ?? body.caseId) : undefined;
  return typeof n === 'number' ? { id, number: n, created } : { id, created };
}

function bounded(field: string, value: string, max: number): string {
  const v = value.trim();
  if (v.length === 0 || v.length > max) {
    throw new ReflexError('input.invalid', `TheHive alert ${field} must be 1..${max} characters, got ${v.length}`, {
      safeMessage: `The alert ${field} must be 1 to ${max} characters.`,
    });
  }
  return v;
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function cleanTags(tags: readonly string[] | undefined): string[] {
  // TheHive's tags are a set (uniqueItems) of 1..128 characters; a violation rejects the whole alert.
  return [...new Set((tags ?? []).map((t) => truncate(t.trim(), LIMITS.tag)).filter((t) => t !== ''))];
}

