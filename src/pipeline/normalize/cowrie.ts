/**
 * Cowrie honeypot JSON events (one `cowrie.json` line each) to SentinelNet Event v1.
 *
 * Every Cowrie event is attacker activity by construction, so the attacker's `src_ip` is always
 * an observable. Cowrie's `uuid` identifies the sensor instance, not the event (all events of a
 * sensor share it), so the event id is built from session, event id and time instead.
 *
 * @example
 * normalizeCowrie(line, { clientId: 'acme-co' })[0].event_type; // 'honeypot.command'
 */
import { z } from 'zod';
import {
  EVENT_SCHEMA_VERSION,
  ObservableSet,
  decodeJsonRecords,
  finalizeEvent,
  isIp,
  optionalText,
  parseSourcePayload,
  toUtcTimestamp,
  rawFor,
} from '../event.ts';
import type { EventType, NormalizeContext, SentinelEvent, Severity } from '../event.ts';

const SOURCE = 'cowrie';
const optText = z.unknown().optional().transform(optionalText);

const cowrieEventSchema = z.looseObject({
  eventid: z.string().regex(/^cowrie\.[a-z0-9_.-]+$/i, 'expected a cowrie.* event id'),
  timestamp: z.string(),
  session: z.string().trim().min(1),
  src_ip: optText,
  dst_ip: optText,
  sensor: optText,
  message: optText,
  username: optText,
  url: optText,
  shasum: optText,
});
type CowrieEvent = z.output<typeof cowrieEventSchema>;

/**
 * Cowrie event id -> taxonomy and severity. A successful login or a file landing on the sensor
 * means a live attacker with a payload (2); commands are hands-on-keyboard but contained (3);
 * connections and failed guesses are background internet noise (4).
 */
const COWRIE_EVENTS: Record<string, { type: EventType; severity: Severity }> = {
  'cowrie.session.connect': { type: 'honeypot.connect', severity: 4 },
  'cowrie.session.closed': { type: 'honeypot.session', severity: 4 },
  'cowrie.session.params': { type: 'honeypot.session', severity: 4 },
  'cowrie.client.version': { type: 'honeypot.session', severity: 4 },
  'cowrie.client.kex': { type: 'honeypot.session', severity: 4 },
  'cowrie.client.size': { type: 'honeypot.session', severity: 4 },
  'cowrie.client.var': { type: 'honeypot.session', severity: 4 },
  'cowrie.log.closed': { type: 'honeypot.session', severity: 4 },
  'cowrie.login.success': { type: 'honeypot.login', severity: 2 },
  'cowrie.login.failed': { type: 'honeypot.login_failed', severity: 4 },
  'cowrie.command.input': { type: 'honeypot.command', severity: 3 },
  'cowrie.command.failed': { type: 'honeypot.command', severity: 3 },
  'cowrie.session.file_download': { type: 'honeypot.download', severity: 2 },
  'cowrie.session.file_download.failed': { type: 'honeypot.download', severity: 3 },
  'cowrie.session.file_upload': { type: 'honeypot.upload', severity: 2 },
};
const UNKNOWN_EVENT = { type: 'honeypot.activity', severity: 4 } as const;

// `shasum` on log.closed is the hash of the TTY recording, not of anything the attacker brought.
const PAYLOAD_HASH_EVENTS = new Set(['cowrie.session.file_download', 'cowrie.session.file_upload']);

function normalizeOne(event: CowrieEvent, original: unknown, ctx: NormalizeContext): SentinelEvent {
  const mapping = COWRIE_EVENTS[event.eventid] ?? UNKNOWN_EVENT;
  const observables = new ObservableSet().addIp(event.src_ip).addUrl(event.url);
  if (PAYLOAD_HASH_EVENTS.has(event.eventid)) observables.addHash(event.shasum);

  return finalizeEvent(ctx, {
    version: EVENT_SCHEMA_VERSION,
    client_id: ctx.clientId,
    source: SOURCE,
    source_event_id: `${event.session}/${event.eventid}/${event.timestamp}`,
    event_type: mapping.type,
    severity: mapping.severity,
    timestamp: toUtcTimestamp(event.timestamp, SOURCE, 'timestamp'),
    rule: { id: event.eventid, name: event.message, level: null },
    host: { name: event.sensor, ip: isIp(event.dst_ip) ? event.dst_ip : null },
    principal: { user: event.eventid.startsWith('cowrie.login.') ? event.username : null },
    process: null,
    file: null,
    vulnerability: null,
    observables: observables.toJSON(),
    raw: rawFor(ctx, original),
  });
}

/** One event per Cowrie line; `payload` may be one event, an array, or `cowrie.json` lines. */
export function normalizeCowrie(payload: unknown, ctx: NormalizeContext): SentinelEvent[] {
  const records = decodeJsonRecords(payload, SOURCE);
  return records.map((record, index) =>
    normalizeOne(parseSourcePayload(cowrieEventSchema, record, SOURCE, records.length > 1 ? { index } : {}), record, ctx),
  );
}
