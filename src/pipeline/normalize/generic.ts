/**
 * The generic source (`/hooks/generic/:name`): a sender that already speaks (nearly) SentinelNet
 * Event v1, such as the seed document's example. The sender chooses event_type and severity, so
 * both are validated against the taxonomy; observables may be one value or a list, and each
 * value must parse (a bad IOC is the sender's bug and should come back to them as a 400).
 *
 * `client_id`, `source` and `version` in the body are ignored: the tenant comes from the hook's
 * credentials and the source from its name, so one tenant can never file events as another.
 *
 * @example
 * normalizeGeneric({ event_type: 'auth.bruteforce', severity: 2, timestamp: '2026-02-14T19:22:11Z' },
 *   { clientId: 'acme-co', genericName: 'suricata' })[0].source; // 'generic:suricata'
 */
import { z } from 'zod';
import {
  EVENT_SCHEMA_VERSION,
  EVENT_TYPES,
  ObservableSet,
  decodeJsonRecords,
  domainSchema,
  finalizeEvent,
  hashSchema,
  invalidInput,
  ipSchema,
  parseSourcePayload,
  severitySchema,
  toUtcTimestamp,
  rawFor,
  urlSchema,
} from '../event.ts';
import type { NormalizeContext, SentinelEvent } from '../event.ts';

const SOURCE = 'generic';
const MAX_OBSERVABLES_PER_KIND = 100;

function oneOrMany<T extends z.ZodType>(item: T) {
  return z
    .union([item, z.array(item).max(MAX_OBSERVABLES_PER_KIND)])
    .nullish()
    .transform((v): z.output<T>[] => (v == null ? [] : Array.isArray(v) ? v : [v]));
}

const optString = (max: number) => z.string().trim().min(1).max(max).nullish().transform((v) => v ?? null);

const genericEventSchema = z.looseObject({
  event_type: z.enum(EVENT_TYPES),
  severity: severitySchema,
  timestamp: z.string(),
  source_event_id: z.union([z.string().trim().min(1).max(256), z.int()]).nullish().transform((v) => (v == null ? null : String(v))),
  rule: z
    .object({
      id: z.union([z.string().trim().min(1).max(256), z.int()]).transform(String),
      name: optString(1024),
      level: z.number().nullish().transform((v) => v ?? null),
    })
    .nullish()
    .transform((v) => v ?? null),
  host: z
    .object({ name: optString(255), ip: ipSchema.nullish().transform((v) => v ?? null) })
    .nullish()
    .transform((v) => v ?? { name: null, ip: null }),
  principal: z
    .object({ user: optString(256) })
    .nullish()
    .transform((v) => v ?? { user: null }),
  process: z
    .object({ name: optString(1024), pid: z.int().nonnegative().nullish().transform((v) => v ?? null) })
    .nullish()
    .transform((v) => v ?? null),
  file: z
    .object({ path: z.string().min(1).max(4096) })
    .nullish()
    .transform((v) => v ?? null),
  vulnerability: z
    .object({
      cve: oneOrMany(z.string().regex(/^CVE-\d{4}-\d{4,}$/)),
      cvss: z.number().min(0).max(10).nullish().transform((v) => v ?? null),
      package: z
        .object({ name: z.string().min(1), version: optString(256) })
        .nullish()
        .transform((v) => v ?? null),
    })
    .nullish()
    .transform((v) => v ?? null),
  observables: z
    .object({
      ip: oneOrMany(ipSchema),
      // Lower-cased before the check: DNS names are case-insensitive, hashes are hex either way.
      domain: oneOrMany(z.string().transform((s) => s.trim().toLowerCase().replace(/\.$/, '')).pipe(domainSchema)),
      url: oneOrMany(urlSchema),
      hash: oneOrMany(z.string().transform((s) => s.trim().toLowerCase()).pipe(hashSchema)),
    })
    .nullish(),
});

function sourceName(ctx: NormalizeContext): string {
  if (ctx.genericName === undefined) return SOURCE;
  const name = ctx.genericName.toLowerCase();
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) throw invalidInput(SOURCE, 'name', 'must be 1-64 characters of a-z, 0-9, _ or -');
  return `${SOURCE}:${name}`;
}

/** One event per object; `payload` may be one object, an array, or NDJSON. */
export function normalizeGeneric(payload: unknown, ctx: NormalizeContext): SentinelEvent[] {
  const source = sourceName(ctx);
  const records = decodeJsonRecords(payload, SOURCE);
  return records.map((record, index) => {
    const event = parseSourcePayload(genericEventSchema, record, SOURCE, records.length > 1 ? { index } : {});
    const observables = new ObservableSet();
    for (const ip of event.observables?.ip ?? []) observables.addIp(ip);
    for (const domain of event.observables?.domain ?? []) observables.addDomain(domain);
    for (const url of event.observables?.url ?? []) observables.addUrl(url);
    for (const hash of event.observables?.hash ?? []) observables.addHash(hash);
    return finalizeEvent(ctx, {
      version: EVENT_SCHEMA_VERSION,
      client_id: ctx.clientId,
      source,
      source_event_id: event.source_event_id,
      event_type: event.event_type,
      severity: event.severity,
      timestamp: toUtcTimestamp(event.timestamp, SOURCE, 'timestamp'),
      rule: event.rule,
      host: event.host,
      principal: event.principal,
      process: event.process,
      file: event.file,
      vulnerability: event.vulnerability ? { ...event.vulnerability, cve: [...new Set(event.vulnerability.cve)] } : null,
      observables: observables.toJSON(),
      raw: rawFor(ctx, record),
    });
  });
}
