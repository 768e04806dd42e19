import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { sentinelEventV1 } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';

const GVM = path.resolve(process.cwd(), '../shared/fixtures/openvas_gvm');
const TENANT = 'acme-co';
const ONE_XML = readFileSync(path.join(GVM, 'defectdojo_openvas_one_vuln.xml'), 'utf8');
const NONE_XML = readFileSync(path.join(GVM, 'defectdojo_openvas_no_vuln.xml'), 'utf8');
const ONE_CSV = readFileSync(path.join(GVM, 'defectdojo_openvas_one_vuln.csv'), 'utf8');

const FIREFOX_CVES = [
  'CVE-2023-4573',
  'CVE-2023-4574',
  'CVE-2023-4575',
  'CVE-2023-4576',
  'CVE-2023-4577',
  'CVE-2023-4578',
  'CVE-2023-4579',
  'CVE-2023-4580',
  'CVE-2023-4581',
  'CVE-2023-4585',
  'CVE-2023-4583',
  'CVE-2023-4584',
];

function expectInvalid(fn: () => unknown, field: string): ReflexError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ReflexError);
    const e = err as ReflexError;
    expect(e.code).toBe('input.invalid');
    expect(e.details).toMatchObject({ source: 'openvas', field });
    expect(e.message).toContain(field);
    return e;
  }
  throw new Error(`expected input.invalid naming ${field}`);
}

describe('OpenVAS GMP XML report', () => {
  it('yields one vuln.detected event for the one-result report', () => {
    const events = normalize('openvas', ONE_XML, { tenantId: TENANT });
    expect(events).toHaveLength(1);
    const { raw, ...event } = events[0]!;
    expect(event).toEqual({
      version: '1.0',
      client_id: TENANT,
      source: 'openvas',
      source_event_id: 'b87d3a32-8ff8-4010-aada-4b4f578b084d',
      event_type: 'vuln.detected',
      // GVM calls 10.0 "High" on its NVD scale; on ours a CVSS of 9+ is critical.
      severity: 1,
      timestamp: '2023-10-04T21:40:07.211Z',
      rule: { id: '1.3.6.1.4.1.25623.1.0.832260', name: 'Mozilla Firefox Security Update (mfsa_2023-32_2023-36) - Windows', level: 10 },
      host: { name: null, ip: '10.0.101.2' },
      principal: { user: null },
      process: null,
      file: null,
      vulnerability: { cve: FIREFOX_CVES, cvss: 10, package: null },
      // The scanned host is the asset at risk, not an indicator; advisory URLs are not IOCs either.
      observables: { ip: [], domain: [], url: [], hash: [] },
    });
    expect(raw['report_id']).toBe('27748e67-fa00-462d-8a05-8479a07988a0');
    const result = raw['result'] as Record<string, unknown>;
    expect(result['port']).toBe('general/tcp');
    expect(result['threat']).toBe('High');
    expect(Buffer.byteLength(JSON.stringify(raw))).toBeLessThanOrEqual(8192);
    expect(sentinelEventV1.parse(events[0])).toEqual(events[0]);
  });

  it('yields no event for the report with no results', () => {
    expect(normalize('openvas', NONE_XML, { tenantId: TENANT })).toEqual([]);
  });

  it('accepts the report as bytes', () => {
    const events = normalize('openvas', readFileSync(path.join(GVM, 'defectdojo_openvas_one_vuln.xml')), { tenantId: TENANT });
    expect(events.map((e) => e.source_event_id)).toEqual(['b87d3a32-8ff8-4010-aada-4b4f578b084d']);
  });

  it('accepts the bare inner report without the get_reports envelope', () => {
    const inner = /<report id="27748e67[\s\S]*<\/report>(?=<\/report>$)/.exec(ONE_XML.trim())![0];
    const events = normalize('openvas', inner, { tenantId: TENANT });
    expect(events.map((e) => [e.rule?.id, e.host.ip, e.severity])).toEqual([['1.3.6.1.4.1.25623.1.0.832260', '10.0.101.2', 1]]);
  });

  it('drops Log-level results (severity 0): they are detections of services, not findings', () => {
    const logOnly = ONE_XML.replace('<threat>High</threat><severity>10.0</severity>', '<threat>Log</threat><severity>0.0</severity>');
    expect(logOnly).not.toBe(ONE_XML);
    expect(normalize('openvas', logOnly, { tenantId: TENANT })).toEqual([]);
  });

  it('falls back to the threat level when the severity score is absent', () => {
    const noScore = ONE_XML.replace('<severity>10.0</severity><qod>', '<qod>');
    expect(noScore).not.toBe(ONE_XML);
    const [event] = normalize('openvas', noScore, { tenantId: TENANT });
    expect(event?.severity).toBe(2);
    expect(event?.rule?.level).toBeNull();
    expect(event?.vulnerability?.cvss).toBeNull();
  });

  it('ignores unknown elements and attributes', () => {
    const extended = ONE_XML.replace('<port>general/tcp</port>', '<port>general/tcp</port><future_element kind="x">1</future_element>');
    expect(extended).not.toBe(ONE_XML);
    const [a] = normalize('openvas', ONE_XML, { tenantId: TENANT });
    const [b] = normalize('openvas', extended, { tenantId: TENANT });
    expect({ ...b, raw: null }).toEqual({ ...a, raw: null });
  });

  it('names the NVT OID when a result lacks it', () => {
    const broken = ONE_XML.replace('<nvt oid="1.3.6.1.4.1.25623.1.0.832260">', '<nvt>');
    expectInvalid(() => normalize('openvas', broken, { tenantId: TENANT }), 'results.result[0].nvt.@_oid');
  });

  it('names the host when a result lacks it', () => {
    const broken = ONE_XML.replace('<host>10.0.101.2<asset/><hostname></hostname></host><port>', '<port>');
    expect(broken).not.toBe(ONE_XML);
    expectInvalid(() => normalize('openvas', broken, { tenantId: TENANT }), 'results.result[0].host');
  });

  it('refuses XML that is not well formed', () => {
    expectInvalid(() => normalize('openvas', ONE_XML.slice(0, 2000), { tenantId: TENANT }), '(payload)');
  });

  it('refuses XML that is not a GMP report', () => {
    const gvmd = NONE_XML.replaceAll('<report', '<rapport').replaceAll('</report', '</rapport');
    expectInvalid(() => normalize('openvas', gvmd, { tenantId: TENANT }), 'report');
  });

  it('refuses an already-parsed object: the report is text', () => {
    expectInvalid(() => normalize('openvas', { report: {} }, { tenantId: TENANT }), '(payload)');
  });
});

describe('OpenVAS CSV results export', () => {
  it('yields one event for the one-row export', () => {
    const events = normalize('openvas', ONE_CSV, { tenantId: TENANT });
    expect(events).toHaveLength(1);
    const { raw, ...event } = events[0]!;
    expect(event).toEqual({
      version: '1.0',
      client_id: TENANT,
      source: 'openvas',
      source_event_id: 'ad08dbdb-0d0a-4216-9e09-f5d2f44c1cb9',
      event_type: 'vuln.detected',
      severity: 3,
      timestamp: '2021-02-25T20:01:27.000Z',
      rule: { id: '1.3.6.1.4.1.25623.1.0.105611', name: 'SSH Weak Encryption Algorithms Supported', level: 4.3 },
      host: { name: null, ip: '10.0.0.8' },
      principal: { user: null },
      process: null,
      file: null,
      vulnerability: { cve: [], cvss: 4.3, package: null },
      observables: { ip: [], domain: [], url: [], hash: [] },
    });
    // Quoted multi-line cells survive the CSV parse intact.
    expect(raw['Port']).toBe('22');
    expect(raw['Port Protocol']).toBe('tcp');
    expect(raw['Solution']).toBe('Disable the weak encryption algorithms.');
    expect(String(raw['Specific Result'])).toContain('aes128-cbc\naes256-cbc');
    expect(sentinelEventV1.parse(events[0])).toEqual(events[0]);
  });

  it('names the missing CSV column', () => {
    const header = ONE_CSV.split('\n')[0]!;
    const withoutOid = ONE_CSV.replace(header, header.replace('NVT OID', 'NVT Identifier'));
    expectInvalid(() => normalize('openvas', withoutOid, { tenantId: TENANT }), 'NVT OID');
  });

  it('names the row and column of an empty required cell', () => {
    const noIp = ONE_CSV.replace('\n10.0.0.8,', '\n,');
    expect(noIp).not.toBe(ONE_CSV);
    const e = expectInvalid(() => normalize('openvas', noIp, { tenantId: TENANT }), 'rows[0].IP');
    expect(e.details?.['index']).toBe(0);
  });
});
