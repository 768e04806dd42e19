/**
 * SentinelNet Event v1: the one shape every alert source is normalized into before dedupe,
 * enrichment, case sync and notification (see docs/EVENT-SCHEMA.md for the field reference,
 * the taxonomy table and the severity bands).
 *
 * This module also holds the small builders the per-source normalizers share (timestamp
 * parsing, observable collection, raw trimming, input errors) so that every source produces
 * values the schema accepts in exactly the same way.
 *
 * @example
 * const event = sentinelEventV1.parse(candidate); // throws on a normalizer bug
 * if (event.severity <= 2) enrichDeeply(event);
 */
import { z } from 'zod';
import { ReflexError } from '../errors.ts';

export const EVENT_SCHEMA_VERSION = '1.0';

/**
 * The event_type taxonomy. A type names what happened in the security domain, not which tool saw
 * it, so playbook triggers and dedupe keys stay the same when a source is swapped. The two
 * catch-alls (`wazuh.alert`, `generic.alert`) exist so an unmapped rule still reaches an analyst.
 */
export const EVENT_TYPES = [
  'auth.failed',
  'auth.bruteforce',
  'auth.success',
  'fim.change',
  'rootcheck.anomaly',
  'vuln.detected',
  'vuln.resolved',
  'malware.detected',
  'honeypot.connect',
  'honeypot.session',
  'honeypot.login',
  'honeypot.login_failed',
  'honeypot.command',
  'honeypot.download',
  'honeypot.upload',
  'honeypot.activity',
  'wazuh.alert',
  'generic.alert',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** 1 = critical, 2 = high, 3 = medium, 4 = info/low. Lower is worse, as in the seed document. */
export const severitySchema = z.literal([1, 2, 3, 4]);
export type Severity = z.infer<typeof severitySchema>;

/** Cap on the serialized size of `raw`; the rest of the original lives in the stored job body. */
export const RAW_MAX_BYTES = 8 * 1024;
const RAW_STRING_CAPS = [1024, 256, 64] as const;
const RAW_MAX_ARRAY = 50;
const RAW_MAX_DEPTH = 8;

export const ipSchema = z.union([z.ipv4(), z.ipv6()]);
export const hashSchema = z
  .string()
  .regex(/^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$/, 'expected an md5, sha1 or sha256 hex digest');
// Only schemes an analyst or an intel provider can act on; a bare file name is not a URL.
export const urlSchema = z.url({ protocol: /^(?:https?|ftp)$/ }).max(2048);
export const domainSchema = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/, 'expected a lower-case domain name');
const cveSchema = z.string().regex(/^CVE-\d{4}-\d{4,}$/);

const SOURCE_RE = /^[a-z][a-z0-9-]{0,31}(?::[a-z0-9][a-z0-9_-]{0,63})?$/;

export const observablesSchema = z.object({
  ip: z.array(ipSchema),
  domain: z.array(domainSchema),
  url: z.array(urlSchema),
  hash: z.array(hashSchema),
});
export type Observables = z.infer<typeof observablesSchema>;

export const sentinelEventV1 = z.strictObject({
  version: z.literal(EVENT_SCHEMA_VERSION),
  /** The tenant. Always taken from the authenticated hook, never from the payload. */
  client_id: z.string().min(1).max(128),
  /** `wazuh`, `cowrie`, `openvas`, `generic` or `generic:<hook name>`. */
  source: z.string().regex(SOURCE_RE),
  /** The source's own id for this event (Wazuh alert id, OpenVAS result id, Cowrie session/eventid/time). */
  source_event_id: z.string().min(1).max(256).nullable(),
  event_type: z.enum(EVENT_TYPES),
  severity: severitySchema,
  /** ISO 8601 in UTC with a `Z`, whatever offset the source wrote. */
  timestamp: z.iso.datetime(),
  /** The rule or check that fired; `level` is the source's own scale (Wazuh 0-15, CVSS for OpenVAS). */
  rule: z
    .object({ id: z.string().min(1).max(256), name: z.string().max(1024).nullable(), level: z.number().nullable() })
    .nullable(),
  host: z.object({ name: z.string().min(1).max(255).nullable(), ip: ipSchema.nullable() }),
  principal: z.object({ user: z.string().min(1).max(256).nullable() }),
  process: z.object({ name: z.string().min(1).max(1024).nullable(), pid: z.int().nonnegative().nullable() }).nullable(),
  file: z.object({ path: z.string().min(1).max(4096) }).nullable(),
  vulnerability: z
    .object({
      cve: z.array(cveSchema),
      cvss: z.number().min(0).max(10).nullable(),
      package: z.object({ name: z.string().min(1), version: z.string().nullable() }).nullable(),
    })
    .nullable(),
  observables: observablesSchema,
  raw: z.record(z.string(), z.unknown()),
});
export type SentinelEvent = z.infer<typeof sentinelEventV1>;

/** What a normalizer knows besides the payload. */
export interface NormalizeContext {
  clientId: string;
  /** For the generic source: the `:name` of `/hooks/generic/:name`. */
  genericName?: string;
  /**
   * A hook's validation pass, whose events are counted and dropped: every check on the vendor
   * input runs, but `raw` is left empty and the finished event is not run through the schema
   * again (both are what the normalize stage keeps, and together most of the cost at ingest).
   */
  checkOnly?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Builders shared by the normalizers.

export function invalidInput(source: string, field: string, problem: string, extra: Record<string, unknown> = {}): ReflexError {
  return new ReflexError('input.invalid', `${source} payload: ${field} ${problem}`, {
    safeMessage: `The ${source} payload is not valid: ${field} ${problem}.`,
    details: { source, field, problem, ...extra },
  });
}

function valueAtPath(root: unknown, path: readonly PropertyKey[]): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('') || '(payload)';
}

/**
 * Validates a source payload with its lenient schema and turns the first zod issue into an
 * `input.invalid` error that names the field, so the dead-letter reason is readable on its own.
 */
export function parseSourcePayload<S extends z.ZodType>(
  schema: S,
  payload: unknown,
  source: string,
  extra: Record<string, unknown> = {},
  /** Where `payload` sits inside the body, e.g. `results.result[0].` for one OpenVAS result. */
  fieldPrefix = '',
): z.output<S> {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path ?? [];
  const missing = path.length > 0 && valueAtPath(payload, path) === undefined;
  throw invalidInput(source, `${fieldPrefix}${fieldName(path)}`, missing ? 'is required but missing' : `is invalid (${issue?.message ?? 'unknown problem'})`, extra);
}

/**
 * Accepts what an ingest edge may hand over for a JSON source: an object, an array of objects,
 * a JSON string or NDJSON (Cowrie's and Wazuh's native log formats), as text or bytes.
 */
export function decodeJsonRecords(payload: unknown, source: string): unknown[] {
  if (payload instanceof Uint8Array) payload = Buffer.from(payload).toString('utf8');
  if (typeof payload === 'string') {
    const text = payload.replace(/^\uFEFF/, '').trim();
    if (text === '') throw invalidInput(source, '(payload)', 'is empty');
    try {
      payload = JSON.parse(text);
    } catch {
      const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
      payload = lines.map((line, index) => {
        try {
          return JSON.parse(line) as unknown;
        } catch {
          throw invalidInput(source, '(payload)', 'is not JSON or NDJSON', { line: index + 1 });
        }
      });
    }
  }
  const records = Array.isArray(payload) ? payload : [payload];
  records.forEach((record, index) => {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw invalidInput(source, '(payload)', 'must be a JSON object', { index });
    }
  });
  return records;
}

/**
 * Sources write offsets as `+0000`, `-0800`, `+02:00` or `Z`; downstream wants one UTC form.
 * A timestamp without an offset is refused: guessing a zone would misplace the event on the timeline.
 */
export function toUtcTimestamp(value: string, source: string, field: string): string {
  const text = value.trim();
  const match = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})$/i.exec(text);
  if (!match) throw invalidInput(source, field, `is not an ISO 8601 timestamp with an offset (${JSON.stringify(value.slice(0, 64))})`);
  const offset = match[3]!.toUpperCase() === 'Z' ? 'Z' : match[3]!.replace(/^([+-]\d{2}):?(\d{2})$/, '$1:$2');
  // Millisecond precision is what Date keeps; Cowrie's microseconds stay visible in raw.
  const time = match[2]!.replace(/(\.\d{3})\d+$/, '$1');
  const ms = Date.parse(`${match[1]}T${time}${offset}`);
  if (Number.isNaN(ms)) throw invalidInput(source, field, `is not a real date (${JSON.stringify(value.slice(0, 64))})`);
  return new Date(ms).toISOString();
}

export function isIp(value: unknown): value is string {
  return typeof value === 'string' && ipSchema.safeParse(value).success;
}

/** Gathers observables from a vendor payload: candidates that do not parse are left in `raw` only. */
export class ObservableSet {
  private readonly ip = new Set<string>();
  private readonly domain = new Set<string>();
  private readonly url = new Set<string>();
  private readonly hash = new Set<string>();

  addIp(value: unknown): this {
    if (isIp(value)) this.ip.add(value.includes(':') ? value.toLowerCase() : value);
    return this;
  }

  addDomain(value: unknown): this {
    if (typeof value !== 'string') return this;
    const domain = value.trim().toLowerCase().replace(/\.$/, '');
    if (domainSchema.safeParse(domain).success) this.domain.add(domain);
    return this;
  }

  addHash(value: unknown): this {
    if (typeof value !== 'string') return this;
    const hash = value.trim().toLowerCase();
    if (hashSchema.safeParse(hash).success) this.hash.add(hash);
    return this;
  }

  /** Adds the URL and its host: the host is what reputation services score first. */
  addUrl(value: unknown): this {
    if (typeof value !== 'string' || !urlSchema.safeParse(value).success) return this;
    this.url.add(value);
    const host = new URL(value).hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIp(host)) this.addIp(host);
    else this.addDomain(host);
    return this;
  }

  toJSON(): Observables {
    return { ip: [...this.ip], domain: [...this.domain], url: [...this.url], hash: [...this.hash] };
  }
}

function truncateString(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max)}…[+${value.length - max} chars]`;
}

function trimValue(value: unknown, maxString: number, depth: number, cut: { any: boolean }): unknown {
  if (typeof value === 'string') {
    if (value.length > maxString) cut.any = true;
    return truncateString(value, maxString);
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= RAW_MAX_DEPTH) {
    cut.any = true;
    return '[nested too deep]';
  }
  if (Array.isArray(value)) {
    const items = value.slice(0, RAW_MAX_ARRAY).map((item) => trimValue(item, maxString, depth + 1, cut));
    if (value.length > RAW_MAX_ARRAY) {
      cut.any = true;
      items.push(`[+${value.length - RAW_MAX_ARRAY} items]`);
    }
    return items;
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = trimValue(item, maxString, depth + 1, cut);
  return out;
}

/**
 * Bounds the original payload kept on the event to RAW_MAX_BYTES of JSON. Strings are cut first
 * (1024, then 256, then 64 characters, marked `…[+N chars]`), arrays to 50 items, nesting to 8
 * levels; long `full_log` lines and FIM diffs are what usually hit this. A payload still too big
 * after that (thousands of keys) is replaced by a JSON excerpt. `_trimmed: true` marks any cut.
 */
export function trimRaw(payload: unknown): Record<string, unknown> {
  const input: Record<string, unknown> =
    payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as Record<string, unknown>) : { value: payload };
  const json = JSON.stringify(input);
  // The JSON round trip also drops what a queue could not carry anyway (undefined, functions).
  if (Buffer.byteLength(json) <= RAW_MAX_BYTES) return JSON.parse(json) as Record<string, unknown>;
  for (const maxString of RAW_STRING_CAPS) {
    const cut = { any: false };
    const trimmed = trimValue(input, maxString, 0, cut) as Record<string, unknown>;
    const result = cut.any ? { ...trimmed, _trimmed: true } : trimmed;
    if (Buffer.byteLength(JSON.stringify(result)) <= RAW_MAX_BYTES) return result;
  }
  return { _trimmed: true, _original_bytes: Buffer.byteLength(json), excerpt: truncateString(json, RAW_MAX_BYTES / 2) };
}

/** What an event keeps of its payload: trimRaw's copy, or nothing in a check-only pass. */
export function rawFor(ctx: NormalizeContext, payload: unknown): Record<string, unknown> {
  return ctx.checkOnly ? {} : trimRaw(payload);
}

/** Optional string fields: vendors send numbers where they usually send strings; empty means absent. */
export function optionalText(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') return null;
  const text = value.trim();
  return text === '' ? null : text;
}

export function optionalNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string' || value.trim() === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/** Severity from a CVSS base score (Wazuh vulnerability alerts, OpenVAS results, generic). */
export function severityFromCvss(score: number): Severity {
  if (score >= 9) return 1;
  if (score >= 7) return 2;
  if (score >= 4) return 3;
  return 4;
}

/**
 * Runs the finished candidate through the schema. A failure here is a normalizer bug (vendor
 * input was already validated), so it is `internal`, not the sender's fault.
 */
export function finalizeEvent(ctx: NormalizeContext, candidate: SentinelEvent): SentinelEvent {
  if (ctx.checkOnly) return candidate;
  const result = sentinelEventV1.safeParse(candidate);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new ReflexError('internal', `normalizer produced an invalid event: ${fieldName(issue?.path ?? [])} ${issue?.message ?? ''}`, {
    details: { source: candidate.source, field: fieldName(issue?.path ?? []) },
  });
}
