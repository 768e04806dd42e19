/**
 * Wazuh alerts to SentinelNet Event v1.
 *
 * Two shapes are accepted: the 4.x `alerts.json` alert (what integratord hands our
 * `custom-sentreflex` script) and the 5.x ECS-like "finding" document (`@timestamp`,
 * `wazuh.rule.level` as a word). Types follow what Wazuh really writes: `rule.id` is a string,
 * `rule.level` a number, `data.*` values strings (even ports), and 3.x who-data spells
 * `syscheck.audit.proccess`.
 *
 * @example
 * normalizeWazuh(JSON.parse(alertFile), { clientId: 'acme-co' })[0].event_type; // 'auth.failed'
 */
import { z } from 'zod';
import {
  EVENT_SCHEMA_VERSION,
  ObservableSet,
  decodeJsonRecords,
  finalizeEvent,
  isIp,
  optionalNumber,
  optionalText,
  parseSourcePayload,
  severityFromCvss,
  toUtcTimestamp,
  rawFor,
} from '../event.ts';
import type { EventType, NormalizeContext, SentinelEvent, Severity } from '../event.ts';

const SOURCE = 'wazuh';

// Optional fields are lenient: a wrong type means "not there", never a rejected alert.
const optText = z.unknown().optional().transform(optionalText);
const optObject = z.record(z.string(), z.unknown()).optional().catch(undefined);
const optStrings = z.array(z.string()).optional().catch(undefined);

const whoSchema = z.looseObject({ id: optText, name: optText }).optional().catch(undefined);

const wazuhAlertSchema = z.looseObject({
  timestamp: z.string(),
  id: optText,
  rule: z.looseObject({
    id: z.union([z.string().trim().min(1), z.int().nonnegative()]).transform(String),
    level: z.int().min(0).max(15),
    description: optText,
    groups: optStrings,
  }),
  agent: z.looseObject({ id: optText, name: optText, ip: optText }).optional().catch(undefined),
  manager: z.looseObject({ name: optText }).optional().catch(undefined),
  predecoder: z.looseObject({ hostname: optText }).optional().catch(undefined),
  decoder: z.looseObject({ name: optText }).optional().catch(undefined),
  location: optText,
  data: optObject,
  syscheck: z
    .looseObject({
      path: optText,
      md5_after: optText,
      sha1_after: optText,
      sha256_after: optText,
      audit: z
        .looseObject({
          user: whoSchema,
          login_user: whoSchema,
          process: whoSchema,
          // Wazuh 3.x who-data alerts misspell the key; both spellings are real.
          proccess: whoSchema,
        })
        .optional()
        .catch(undefined),
    })
    .optional()
    .catch(undefined),
});
type WazuhAlert = z.output<typeof wazuhAlertSchema>;

const FINDING_LEVELS = ['critical', 'high', 'medium', 'low', 'info', 'informational'] as const;

const wazuhFindingSchema = z.looseObject({
  '@timestamp': z.string(),
  event: z.looseObject({ id: optText, category: optStrings, outcome: optText }).optional().catch(undefined),
  host: z.looseObject({ name: optText, ip: z.unknown().optional() }).optional().catch(undefined),
  user: z.looseObject({ name: optText }).optional().catch(undefined),
  source: z.looseObject({ ip: optText }).optional().catch(undefined),
  destination: z.looseObject({ ip: optText }).optional().catch(undefined),
  url: z.looseObject({ full: optText, original: optText }).optional().catch(undefined),
  related: z.looseObject({ ip: optStrings, hash: optStrings }).optional().catch(undefined),
  wazuh: z.looseObject({
    rule: z.looseObject({
      id: z.string().trim().min(1),
      title: optText,
      level: z
        .string()
        .transform((s) => s.toLowerCase())
        .pipe(z.enum(FINDING_LEVELS)),
      tags: optStrings,
    }),
    agent: z
      .looseObject({ name: optText, host: z.looseObject({ hostname: optText, ip: z.unknown().optional() }).optional().catch(undefined) })
      .optional()
      .catch(undefined),
  }),
});
type WazuhFinding = z.output<typeof wazuhFindingSchema>;

// Rule ids from the Wazuh ruleset, for alerts that arrive without `rule.groups` (the docs
// examples in the fixtures are trimmed that way, and so are some forwarders' outputs).
const BRUTEFORCE_RULES = new Set(['5712', '5720', '5763', '5551', '2502', '40111', '60204']);
const AUTH_FAILED_RULES = new Set(['5716', '5710', '5503', '5758', '60122']);
const AUTH_SUCCESS_RULES = new Set(['5715', '60106']);
const FIM_RULES = new Set(['550', '553', '554', '594', '597', '598', '750', '751', '752']);
const ROOTCHECK_RULES = new Set(['510', '511', '512', '513', '514', '515', '516', '517', '518', '519']);
const VULN_RULES = new Set(['23501', '23502', '23503', '23504', '23505', '23506']);
const MALWARE_GROUPS = ['virus', 'malware', 'yara', 'rootkit_malware'];

/** Wazuh level bands: 12-15 critical, 8-11 high, 5-7 medium, 0-4 info. */
export function severityFromWazuhLevel(level: number): Severity {
  if (level >= 12) return 1;
  if (level >= 8) return 2;
  if (level >= 5) return 3;
  return 4;
}

function at(root: unknown, path: string): unknown {
  let node = root;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function classifyAlert(alert: WazuhAlert): EventType {
  const id = alert.rule.id;
  const groups = new Set(alert.rule.groups ?? []);
  if (VULN_RULES.has(id) || groups.has('vulnerability-detector') || alert.location === 'vulnerability-detector') {
    return /solved/i.test(optionalText(at(alert.data, 'vulnerability.status')) ?? '') ? 'vuln.resolved' : 'vuln.detected';
  }
  // VirusTotal also alerts "no positives" (87103) in the same group; only a positive is malware.
  const virustotalPositive = groups.has('virustotal') && optionalText(at(alert.data, 'virustotal.malicious')) === '1';
  if (virustotalPositive || MALWARE_GROUPS.some((g) => groups.has(g))) return 'malware.detected';
  if (FIM_RULES.has(id) || groups.has('syscheck')) return 'fim.change';
  if (ROOTCHECK_RULES.has(id) || groups.has('rootcheck') || alert.decoder?.name === 'rootcheck') return 'rootcheck.anomaly';
  if (BRUTEFORCE_RULES.has(id) || groups.has('authentication_failures')) return 'auth.bruteforce';
  if (AUTH_FAILED_RULES.has(id) || groups.has('authentication_failed') || groups.has('invalid_login')) return 'auth.failed';
  if (AUTH_SUCCESS_RULES.has(id) || groups.has('authentication_success')) return 'auth.success';
  return 'wazuh.alert';
}

function vulnerabilityOf(alert: WazuhAlert): SentinelEvent['vulnerability'] {
  const vuln = at(alert.data, 'vulnerability');
  if (vuln === null || typeof vuln !== 'object') return null;
  const cve = optionalText(at(vuln, 'cve'));
  const cvss = optionalNumber(at(vuln, 'cvss.cvss3.base_score')) ?? optionalNumber(at(vuln, 'cvss.cvss2.base_score'));
  const packageName = optionalText(at(vuln, 'package.name'));
  return {
    cve: cve && /^CVE-\d{4}-\d{4,}$/.test(cve) ? [cve] : [],
    cvss: cvss !== null && cvss >= 0 && cvss <= 10 ? cvss : null,
    package: packageName ? { name: packageName, version: optionalText(at(vuln, 'package.version')) } : null,
  };
}

function severityOfAlert(alert: WazuhAlert, eventType: EventType, vulnerability: SentinelEvent['vulnerability']): Severity {
  if (eventType === 'vuln.resolved') return 4;
  // The CVSS score describes the flaw; the rule level only says which bucket the ruleset chose.
  if (eventType === 'vuln.detected' && vulnerability?.cvss != null) return severityFromCvss(vulnerability.cvss);
  return severityFromWazuhLevel(alert.rule.level);
}

function normalizeAlert(alert: WazuhAlert, original: unknown, ctx: NormalizeContext): SentinelEvent {
  const eventType = classifyAlert(alert);
  const vulnerability = vulnerabilityOf(alert);
  const audit = alert.syscheck?.audit;
  const proc = audit?.process ?? audit?.proccess;
  const pid = proc?.id != null && /^\d+$/.test(proc.id) ? Number(proc.id) : null;

  const observables = new ObservableSet()
    .addIp(at(alert.data, 'srcip'))
    .addIp(at(alert.data, 'dstip'))
    .addIp(at(alert.data, 'win.eventdata.ipAddress'))
    .addUrl(at(alert.data, 'url'))
    .addHash(alert.syscheck?.md5_after)
    .addHash(alert.syscheck?.sha1_after)
    .addHash(alert.syscheck?.sha256_after)
    .addHash(at(alert.data, 'virustotal.source.md5'))
    .addHash(at(alert.data, 'virustotal.source.sha1'));

  return finalizeEvent(ctx, {
    version: EVENT_SCHEMA_VERSION,
    client_id: ctx.clientId,
    source: SOURCE,
    source_event_id: alert.id,
    event_type: eventType,
    severity: severityOfAlert(alert, eventType, vulnerability),
    timestamp: toUtcTimestamp(alert.timestamp, SOURCE, 'timestamp'),
    rule: { id: alert.rule.id, name: alert.rule.description, level: alert.rule.level },
    host: {
      // A syslog-only source reports through the manager; predecoder.hostname is the box that logged.
      name: alert.agent?.name ?? alert.predecoder?.hostname ?? alert.manager?.name ?? null,
      ip: isIp(alert.agent?.ip) ? alert.agent.ip : null,
    },
    principal: {
      // For who-data the login user is the person behind a sudo, which is who an analyst calls.
      user:
        optionalText(at(alert.data, 'dstuser')) ??
        optionalText(at(alert.data, 'srcuser')) ??
        optionalText(at(alert.data, 'win.eventdata.targetUserName')) ??
        audit?.login_user?.name ??
        audit?.user?.name ??
        null,
    },
    process: proc && (proc.name ?? pid) !== null ? { name: proc.name, pid } : null,
    file: alert.syscheck?.path ? { path: alert.syscheck.path } : null,
    vulnerability: eventType === 'vuln.detected' || eventType === 'vuln.resolved' ? vulnerability : null,
    observables: observables.toJSON(),
    raw: rawFor(ctx, original),
  });
}

const FINDING_SEVERITY: Record<(typeof FINDING_LEVELS)[number], Severity> = {
  critical: 1,
  high: 2,
  medium: 3,
  low: 4,
  info: 4,
  informational: 4,
};

function firstIp(value: unknown): string | null {
  const list = Array.isArray(value) ? value : [value];
  return list.find(isIp) ?? null;
}

function normalizeFinding(finding: WazuhFinding, original: unknown, ctx: NormalizeContext): SentinelEvent {
  const rule = finding.wazuh.rule;
  const tags = new Set((rule.tags ?? []).map((t) => t.toLowerCase()));
  const category = new Set(finding.event?.category ?? []);
  let eventType: EventType = 'wazuh.alert';
  if (tags.has('malware') || tags.has('ransomware')) eventType = 'malware.detected';
  else if (category.has('authentication') && finding.event?.outcome === 'failure') eventType = 'auth.failed';

  // ECS `host` is the machine the event is about; the agent's own address only describes it
  // when the finding names no other host.
  const agentHost = finding.wazuh.agent?.host;
  const hostName = finding.host?.name ?? agentHost?.hostname ?? finding.wazuh.agent?.name ?? null;
  const hostIp = firstIp(finding.host?.ip) ?? (finding.host?.name ? null : firstIp(agentHost?.ip));

  const observables = new ObservableSet().addIp(finding.source?.ip).addIp(finding.destination?.ip).addUrl(finding.url?.full ?? finding.url?.original);
  for (const ip of finding.related?.ip ?? []) observables.addIp(ip);
  for (const hash of finding.related?.hash ?? []) observables.addHash(hash);

  return finalizeEvent(ctx, {
    version: EVENT_SCHEMA_VERSION,
    client_id: ctx.clientId,
    source: SOURCE,
    source_event_id: finding.event?.id ?? null,
    event_type: eventType,
    severity: FINDING_SEVERITY[rule.level],
    timestamp: toUtcTimestamp(finding['@timestamp'], SOURCE, '@timestamp'),
    rule: { id: rule.id, name: rule.title, level: null },
    host: { name: hostName, ip: hostIp },
    principal: { user: finding.user?.name ?? null },
    process: null,
    file: null,
    vulnerability: null,
    observables: observables.toJSON(),
    raw: rawFor(ctx, original),
  });
}

function isFinding(record: unknown): boolean {
  const r = record as Record<string, unknown>;
  return '@timestamp' in r && r['wazuh'] !== null && typeof r['wazuh'] === 'object' && !('rule' in r);
}

/** One event per alert; `payload` may be one alert, an array, or alerts.json lines. */
export function normalizeWazuh(payload: unknown, ctx: NormalizeContext): SentinelEvent[] {
  const records = decodeJsonRecords(payload, SOURCE);
  return records.map((record, index) => {
    const extra = records.length > 1 ? { index } : {};
    if (isFinding(record)) return normalizeFinding(parseSourcePayload(wazuhFindingSchema, record, SOURCE, extra), record, ctx);
    return normalizeAlert(parseSourcePayload(wazuhAlertSchema, record, SOURCE, extra), record, ctx);
  });
}
