/**
 * OpenVAS / Greenbone (GVM) scan reports to SentinelNet Event v1: one `vuln.detected` event per
 * result, none for an empty report.
 *
 * Accepted: the GMP XML report (`get_reports` envelope `<report><report>…` or the bare inner
 * report) and the CSV "Results" export. Results at severity 0 ("Log": OS and service detection)
 * and below (-1 false positive, -2 debug, -3 error) are not findings and yield no event.
 *
 * @example
 * normalizeOpenvas(xmlText, { clientId: 'acme-co' }).map((e) => e.rule?.id); // NVT OIDs
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { z } from 'zod';
import {
  EVENT_SCHEMA_VERSION,
  finalizeEvent,
  invalidInput,
  isIp,
  observablesSchema,
  optionalNumber,
  optionalText,
  parseSourcePayload,
  severityFromCvss,
  toUtcTimestamp,
  rawFor,
} from '../event.ts';
import type { NormalizeContext, SentinelEvent, Severity } from '../event.ts';

const SOURCE = 'openvas';

/** A result as both formats describe it, before severity and time are resolved. */
interface OpenvasFinding {
  resultId: string | null;
  hostText: string;
  hostname: string | null;
  oid: string;
  nvtName: string | null;
  severity: number | null;
  threat: string | null;
  cves: string[];
  time: string | null;
  raw: Record<string, unknown>;
  field: (name: string) => string;
}

const THREAT_SEVERITY: Record<string, Severity | null> = {
  critical: 1,
  high: 2,
  medium: 3,
  low: 4,
  log: null,
  debug: null,
  'false positive': null,
  error: null,
};

const CVE_RE = /CVE-\d{4}-\d{4,}/g;

function severityOf(finding: OpenvasFinding): Severity | null {
  if (finding.severity !== null) return finding.severity > 0 ? severityFromCvss(finding.severity) : null;
  if (finding.threat !== null) {
    const mapped = THREAT_SEVERITY[finding.threat.toLowerCase()];
    if (mapped !== undefined) return mapped;
  }
  throw invalidInput(SOURCE, finding.field('severity'), 'is required but missing (neither a severity score nor a known threat level)');
}

function toEvent(finding: OpenvasFinding, severity: Severity, ctx: NormalizeContext): SentinelEvent {
  if (!finding.time) throw invalidInput(SOURCE, finding.field('creation_time'), 'is required but missing');
  const hostIsIp = isIp(finding.hostText);
  return finalizeEvent(ctx, {
    version: EVENT_SCHEMA_VERSION,
    client_id: ctx.clientId,
    source: SOURCE,
    source_event_id: finding.resultId,
    event_type: 'vuln.detected',
    severity,
    timestamp: toUtcTimestamp(finding.time, SOURCE, finding.field('creation_time')),
    rule: { id: finding.oid, name: finding.nvtName, level: finding.severity },
    host: { name: finding.hostname ?? (hostIsIp ? null : finding.hostText), ip: hostIsIp ? finding.hostText : null },
    principal: { user: null },
    process: null,
    file: null,
    vulnerability: {
      cve: [...new Set(finding.cves)],
      cvss: finding.severity !== null && finding.severity >= 0 && finding.severity <= 10 ? finding.severity : null,
      package: null,
    },
    // The scanned host is the asset at risk, not an indicator to look up; it lives in `host`.
    observables: observablesSchema.parse({ ip: [], domain: [], url: [], hash: [] }),
    raw: rawFor(ctx, finding.raw),
  });
}

// ---------------------------------------------------------------------------------------------
// GMP XML

const xmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) => name === 'result' || name === 'ref',
  // Reports are data, never a place for entity tricks; keep expansion tightly bounded.
  processEntities: { enabled: true, maxEntityCount: 50, maxEntitySize: 1024, maxExpansionDepth: 2, maxTotalExpansions: 1000, maxExpandedLength: 100_000 },
});

const optText = z.unknown().optional().transform((v) => optionalText(typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['#text'] : v));

const xmlResultSchema = z.looseObject({
  '@_id': optText,
  name: optText,
  creation_time: optText,
  modification_time: optText,
  host: z.union([z.string().trim().min(1), z.looseObject({ '#text': z.string().trim().min(1), hostname: optText })]),
  nvt: z.looseObject({
    '@_oid': z.string().trim().min(1),
    name: optText,
    cve: optText,
    refs: z.looseObject({ ref: z.array(z.looseObject({ '@_id': optText, '@_type': optText })).optional().catch(undefined) }).optional().catch(undefined),
  }),
  severity: optText,
  threat: optText,
});

function record(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function findReport(doc: Record<string, unknown>): Record<string, unknown> | null {
  let report = record(record(doc['get_reports_response'])?.['report']) ?? record(doc['report']);
  // The export wraps the report in a same-named envelope that carries owner/task metadata.
  const inner = record(report?.['report']);
  if (inner) report = inner;
  return report;
}

function normalizeXml(text: string, ctx: NormalizeContext): SentinelEvent[] {
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw invalidInput(SOURCE, '(payload)', `is not well-formed XML (${valid.err.msg} at line ${valid.err.line})`);
  const report = findReport(xmlParser.parse(text) as Record<string, unknown>);
  if (!report) throw invalidInput(SOURCE, 'report', 'is required but missing (not a GMP report)');

  const fallbackTime = optionalText(report['scan_end']) ?? optionalText(report['timestamp']) ?? optionalText(report['scan_start']);
  const results = record(report['results'])?.['result'];
  const list = Array.isArray(results) ? results : [];

  const events: SentinelEvent[] = [];
  list.forEach((item, index) => {
    const field = (name: string) => `results.result[${index}].${name}`;
    const result = parseSourcePayload(xmlResultSchema, item, SOURCE, { index }, `results.result[${index}].`);
    const refs = result.nvt.refs?.ref ?? [];
    const cves = refs.filter((r) => r['@_type']?.toLowerCase() === 'cve' && r['@_id']).map((r) => r['@_id'] as string);
    // GMP before 9 listed CVEs as text ("CVE-…, CVE-…" or "NOCVE").
    cves.push(...(result.nvt.cve?.match(CVE_RE) ?? []));
    const finding: OpenvasFinding = {
      resultId: result['@_id'],
      hostText: typeof result.host === 'string' ? result.host.trim() : result.host['#text'].trim(),
      hostname: typeof result.host === 'string' ? null : result.host.hostname,
      oid: result.nvt['@_oid'].trim(),
      nvtName: result.nvt.name ?? result.name,
      severity: optionalNumber(result.severity),
      threat: result.threat,
      cves,
      time: result.creation_time ?? fallbackTime,
      raw: { report_id: optionalText(report['@_id']), result: item },
      field,
    };
    const severity = severityOf(finding);
    if (severity !== null) events.push(toEvent(finding, severity, ctx));
  });
  return events;
}

// ---------------------------------------------------------------------------------------------
// CSV "Results" export

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks (GVM's do). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (quoted) throw invalidInput(SOURCE, '(payload)', 'is not valid CSV (unterminated quoted field)');
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => r.some((cell) => cell.trim() !== ''));
}

const REQUIRED_CSV_COLUMNS = ['IP', 'NVT OID', 'Timestamp'] as const;

function normalizeCsv(text: string, ctx: NormalizeContext): SentinelEvent[] {
  const [header, ...rows] = parseCsv(text);
  if (!header) return [];
  const columns = header.map((h) => h.trim());
  for (const name of REQUIRED_CSV_COLUMNS) {
    if (!columns.includes(name)) throw invalidInput(SOURCE, name, 'is required but missing (CSV column)');
  }
  if (!columns.includes('CVSS') && !columns.includes('Severity')) throw invalidInput(SOURCE, 'CVSS', 'is required but missing (CSV column)');

  const events: SentinelEvent[] = [];
  rows.forEach((cells, index) => {
    const row: Record<string, string> = {};
    columns.forEach((name, i) => {
      row[name] = cells[i] ?? '';
    });
    const field = (name: string) => `rows[${index}].${name}`;
    const ip = optionalText(row['IP']);
    const oid = optionalText(row['NVT OID']);
    if (!ip) throw invalidInput(SOURCE, field('IP'), 'is required but missing', { index });
    if (!oid) throw invalidInput(SOURCE, field('NVT OID'), 'is required but missing', { index });
    const finding: OpenvasFinding = {
      resultId: optionalText(row['Result ID']),
      hostText: ip,
      hostname: optionalText(row['Hostname']),
      oid,
      nvtName: optionalText(row['NVT Name']),
      severity: optionalNumber(row['CVSS']),
      threat: optionalText(row['Severity']),
      cves: row['CVEs']?.match(CVE_RE) ?? [],
      time: optionalText(row['Timestamp']),
      raw: row,
      field: (name) => field(name === 'creation_time' ? 'Timestamp' : name === 'severity' ? 'CVSS' : name),
    };
    const severity = severityOf(finding);
    if (severity !== null) events.push(toEvent(finding, severity, ctx));
  });
  return events;
}

/** `payload` is the report body as text or bytes (XML or CSV); a parsed object is refused. */
export function normalizeOpenvas(payload: unknown, ctx: NormalizeContext): SentinelEvent[] {
  const text = payload instanceof Uint8Array ? Buffer.from(payload).toString('utf8') : payload;
  if (typeof text !== 'string') throw invalidInput(SOURCE, '(payload)', 'must be the XML or CSV report text');
  const body = text.replace(/^\uFEFF/, '').trimStart();
  if (body === '') throw invalidInput(SOURCE, '(payload)', 'is empty');
  if (body.startsWith('<')) return normalizeXml(body, ctx);
  return normalizeCsv(body, ctx);
}
