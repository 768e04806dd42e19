import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { sentinelEventV1 } from '../../../src/pipeline/event.ts';
import type { SentinelEvent } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';
import { normalizeWazuh, severityFromWazuhLevel } from '../../../src/pipeline/normalize/wazuh.ts';

const WAZUH = path.resolve(process.cwd(), '../shared/fixtures/wazuh');
const TENANT = 'acme-co';

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(WAZUH, name), 'utf8')) as Record<string, unknown>;
}

function normalizeOne(alert: unknown): SentinelEvent {
  const events = normalize('wazuh', alert, { tenantId: TENANT });
  expect(events).toHaveLength(1);
  return events[0]!;
}

function expectInvalid(fn: () => unknown, field: string): ReflexError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ReflexError);
    const e = err as ReflexError;
    expect(e.code).toBe('input.invalid');
    expect(e.retryable).toBe(false);
    expect(e.details).toMatchObject({ source: 'wazuh', field });
    expect(e.message).toContain(field);
    expect(e.safeMessage).toContain(field);
    return e;
  }
  throw new Error(`expected input.invalid naming ${field}`);
}

/** Expected values per alerts.json fixture; every docs_alert_* file must be listed here. */
const EXPECTED: Record<string, Omit<SentinelEvent, 'version' | 'client_id' | 'source' | 'raw'>> = {
  'docs_alert_5716_sshd_auth_failed.json': {
    source_event_id: null,
    event_type: 'auth.failed',
    severity: 3,
    timestamp: '2020-07-12T15:32:41.756Z',
    rule: { id: '5716', name: 'sshd: authentication failed.', level: 5 },
    host: { name: 'Centos', ip: '10.0.1.175' },
    principal: { user: 'root' },
    process: null,
    file: null,
    vulnerability: null,
    observables: { ip: ['61.177.172.13'], domain: [], url: [], hash: [] },
  },
  'docs_alert_550_fim_agent_labels.json': {
    source_event_id: null,
    event_type: 'fim.change',
    severity: 3,
    timestamp: '2017-03-07T21:31:41.000Z',
    rule: { id: '550', name: 'Integrity checksum changed.', level: 7 },
    host: { name: '92603de31548', ip: '192.168.66.1' },
    principal: { user: null },
    process: null,
    file: { path: '/var/ossec/etc/ossec.conf' },
    vulnerability: null,
    observables: { ip: [], domain: [], url: [], hash: ['7f4f5846dcaa0013a91bd6d3ac4a1915', 'c959321244bdcec824ff0a32cad6d4f1246f53e9'] },
  },
  'docs_alert_550_fim_whodata_linux.json': {
    source_event_id: '1531224328.283446',
    event_type: 'fim.change',
    severity: 3,
    timestamp: '2018-07-10T22:05:28.452Z',
    rule: { id: '550', name: 'Integrity checksum changed.', level: 7 },
    host: { name: 'vpc-agent-debian', ip: '10.0.0.121' },
    // login_user (the human behind sudo), not the effective root.
    principal: { user: 'smith' },
    process: { name: '/bin/nano', pid: 82845 },
    file: { path: '/etc/hosts.allow' },
    vulnerability: null,
    observables: {
      ip: [],
      domain: [],
      url: [],
      hash: [
        'acb2289fba96e77cee0a2c3889b49643',
        'b87a0e558ca67073573861b26e3265fa0ab35d20',
        'bfa1c0ec3ebfaac71378cb62101135577521eb200c64d6ee8650efe75160978c',
      ],
    },
  },
  'docs_alert_550_fim_whodata_windows.json': {
    source_event_id: '1531323832.103575',
    event_type: 'fim.change',
    severity: 3,
    timestamp: '2018-07-11T15:43:52.914Z',
    rule: { id: '550', name: 'Integrity checksum changed.', level: 7 },
    host: { name: 'vpc-agent-win', ip: null },
    principal: { user: 'Administrator' },
    // From syscheck.audit.proccess: the 3.x spelling.
    process: { name: 'C:\\Windows\\System32\\notepad.exe', pid: 1736 },
    file: { path: 'C:\\Windows\\System32\\drivers\\etc\\hosts' },
    vulnerability: null,
    observables: {
      ip: [],
      domain: [],
      url: [],
      hash: [
        'e71b0c5cf0e3a8d1848312f1394e448f',
        '0f89ca73534037c5cf23193d032c93cbf0fc4af4',
        'b9cc339e89fc5d8890cfb8a47249b3b515f5982d8a7348e2e5eb104aec232c9f',
      ],
    },
  },
  'docs_alert_510_rootcheck_hidden_process.json': {
    source_event_id: null,
    event_type: 'rootcheck.anomaly',
    severity: 3,
    timestamp: '2020-07-13T02:07:00.000Z',
    rule: { id: '510', name: 'Host-based anomaly detection event (rootcheck).', level: 7 },
    host: { name: 'diamorphine-POC', ip: '10.0.0.59' },
    principal: { user: null },
    process: null,
    file: null,
    vulnerability: null,
    observables: { ip: [], domain: [], url: [], hash: [] },
  },
  'docs_alert_23505_vulnerability_detector.json': {
    source_event_id: null,
    event_type: 'vuln.detected',
    // CVSS 10 outranks rule level 10 (which alone would be 2).
    severity: 1,
    timestamp: '2020-07-20T00:41:36.302Z',
    rule: { id: '23505', name: 'CVE-2020-12395 affects Mozilla Thunderbird 68.0 (x64 en-US)', level: 10 },
    host: { name: 'Windows', ip: '10.0.1.102' },
    principal: { user: null },
    process: null,
    file: null,
    vulnerability: { cve: ['CVE-2020-12395'], cvss: 10, package: { name: 'Mozilla Thunderbird 68.0 (x64 en-US)', version: '68.0' } },
    observables: { ip: [], domain: [], url: [], hash: [] },
  },
};

describe('Wazuh 4.x alerts.json fixtures', () => {
  it('has an expectation for every docs_alert_*.json fixture', () => {
    const files = readdirSync(WAZUH).filter((f) => /^docs_alert_.*\.json$/.test(f));
    expect(files.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [file, expected] of Object.entries(EXPECTED)) {
    it(`normalizes ${file}`, () => {
      const alert = fixture(file);
      const event = normalizeOne(alert);
      expect(event).toEqual({ version: '1.0', client_id: TENANT, source: 'wazuh', ...expected, raw: alert });
      expect(sentinelEventV1.parse(event)).toEqual(event);
    });
  }

  it('accepts the alert as the raw bytes integratord hands over', () => {
    const bytes = readFileSync(path.join(WAZUH, 'docs_alert_5716_sshd_auth_failed.json'));
    const [event] = normalizeWazuh(bytes, { clientId: TENANT });
    expect(event?.observables.ip).toEqual(['61.177.172.13']);
    expect(event?.rule).toEqual({ id: '5716', name: 'sshd: authentication failed.', level: 5 });
  });

  it('keeps data.srcport a string in raw and does not require it to be a number', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const event = normalizeOne(alert);
    expect((event.raw['data'] as Record<string, unknown>)['srcport']).toBe('61658');
  });

  it('reads the 3.x `proccess` spelling and the current `process` spelling alike', () => {
    const linux = fixture('docs_alert_550_fim_whodata_linux.json');
    const syscheck = linux['syscheck'] as Record<string, unknown>;
    const audit = syscheck['audit'] as Record<string, unknown>;
    const { process: proc, ...rest } = audit;
    const misspelt = { ...linux, syscheck: { ...syscheck, audit: { ...rest, proccess: proc } } };
    expect(normalizeOne(misspelt).process).toEqual({ name: '/bin/nano', pid: 82845 });
    expect(normalizeOne(linux).process).toEqual({ name: '/bin/nano', pid: 82845 });
    expect(normalizeOne(fixture('docs_alert_550_fim_whodata_windows.json')).process).toEqual({
      name: 'C:\\Windows\\System32\\notepad.exe',
      pid: 1736,
    });
  });

  it('ignores unknown fields at any level', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const rule = alert['rule'] as Record<string, unknown>;
    const extended = { ...alert, cluster: { name: 'wazuh-cluster', node: 'master' }, rule: { ...rule, firedtimes: 3, brand_new: { x: 1 } } };
    const { raw: _rawA, ...plain } = normalizeOne(alert);
    const { raw: _rawB, ...withExtras } = normalizeOne(extended);
    expect(withExtras).toEqual(plain);
    expect(withExtras.rule).toEqual({ id: '5716', name: 'sshd: authentication failed.', level: 5 });
  });

  it('treats wrongly typed optional fields as absent rather than failing the alert', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const event = normalizeOne({ ...alert, agent: 'Centos', data: ['not', 'an', 'object'] });
    // Without the agent, the syslog hostname names the machine.
    expect(event.host).toEqual({ name: 'ip-10-0-1-175', ip: null });
    expect(event.principal).toEqual({ user: null });
    expect(event.observables.ip).toEqual([]);
  });

  it('accepts a numeric rule.id (some forwarders re-type it) as the same string id', () => {
    const alert = fixture('docs_alert_510_rootcheck_hidden_process.json');
    const rule = alert['rule'] as Record<string, unknown>;
    expect(normalizeOne({ ...alert, rule: { ...rule, id: 510 } }).rule?.id).toBe('510');
  });

  it('normalizes several alerts.json lines into one event each, in order', () => {
    const lines = ['docs_alert_5716_sshd_auth_failed.json', 'docs_alert_510_rootcheck_hidden_process.json']
      .map((f) => JSON.stringify(fixture(f)))
      .join('\n');
    expect(normalizeWazuh(lines, { clientId: TENANT }).map((e) => e.event_type)).toEqual(['auth.failed', 'rootcheck.anomaly']);
  });

  it('trims a huge full_log so raw stays bounded', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const fullLog = String(alert['full_log']).repeat(200);
    const event = normalizeOne({ ...alert, full_log: fullLog });
    expect(Buffer.byteLength(JSON.stringify(event.raw))).toBeLessThanOrEqual(8192);
    expect(event.raw['_trimmed']).toBe(true);
    expect(String(event.raw['full_log']).startsWith('Jul 12 15:32:41 ip-10-0-1-175 sshd[21746]: Failed password')).toBe(true);
    expect(event.raw['full_log']).toMatch(/…\[\+\d+ chars\]$/);
    expect(event.observables.ip).toEqual(['61.177.172.13']);
  });
});

describe('Wazuh classification beyond the docs examples', () => {
  it('maps 4.8+ rule 23502 with a Solved status (ruleset test vector) to vuln.resolved at severity 4', () => {
    const ini = readFileSync(path.join(WAZUH, 'ruleset_test_vuln_detector.ini'), 'utf8');
    const data = JSON.parse(/^log 1 pass = (.*)$/m.exec(ini)![1]!) as Record<string, unknown>;
    const ruleId = /^rule = (\d+)$/m.exec(ini)![1]!;
    const level = Number(/^alert = (\d+)$/m.exec(ini)![1]);
    const base = fixture('docs_alert_23505_vulnerability_detector.json');
    const event = normalizeOne({ ...base, data, rule: { id: ruleId, level, description: 'CVE-2019-17594 solved' } });
    expect(event.event_type).toBe('vuln.resolved');
    expect(event.severity).toBe(4);
    expect(event.vulnerability).toEqual({ cve: ['CVE-2019-17594'], cvss: null, package: { name: 'ncurses', version: '5.9-14.20130511.el7_4' } });
  });

  it('maps the authentication_failures group to auth.bruteforce and unknown rules to wazuh.alert', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const rule = alert['rule'] as Record<string, unknown>;
    const brute = normalizeOne({ ...alert, rule: { ...rule, id: '5763', level: 10, groups: ['syslog', 'sshd', 'authentication_failures'] } });
    expect(brute.event_type).toBe('auth.bruteforce');
    expect(brute.severity).toBe(2);
    expect(brute.observables.ip).toEqual(['61.177.172.13']);
    const other = normalizeOne({ ...alert, rule: { ...rule, id: '100200', level: 12, groups: ['local'] } });
    expect(other.event_type).toBe('wazuh.alert');
    expect(other.severity).toBe(1);
  });

  it('bands rule levels 12-15 -> 1, 8-11 -> 2, 5-7 -> 3, 0-4 -> 4', () => {
    expect([0, 4, 5, 7, 8, 11, 12, 15].map(severityFromWazuhLevel)).toEqual([4, 4, 3, 3, 2, 2, 1, 1]);
  });
});

describe('Wazuh 5.x findings (sample-data jsonl)', () => {
  it('normalizes each finding line, mapping the word level and malware tags', () => {
    const text = readFileSync(path.join(WAZUH, 'wazuh5_findings_windows_sample_first3.jsonl'), 'utf8');
    const originals = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = normalizeWazuh(text, { clientId: TENANT });
    expect(events.map(({ raw: _raw, ...e }) => e)).toEqual([
      {
        version: '1.0',
        client_id: TENANT,
        source: 'wazuh',
        source_event_id: null,
        event_type: 'malware.detected',
        severity: 1,
        timestamp: '2026-07-06T12:45:12.000Z',
        rule: { id: 'sec-003', name: 'Threat indicator: unexpected activity in Windows events', level: null },
        host: { name: 'vagrant', ip: null },
        principal: { user: null },
        process: null,
        file: null,
        vulnerability: null,
        observables: { ip: [], domain: [], url: [], hash: [] },
      },
      {
        version: '1.0',
        client_id: TENANT,
        source: 'wazuh',
        source_event_id: null,
        event_type: 'malware.detected',
        severity: 3,
        timestamp: '2026-07-06T12:45:12.000Z',
        rule: { id: 'mal-001', name: 'Threat indicator: unexpected activity in Windows events', level: null },
        host: { name: 'vagrant', ip: null },
        principal: { user: null },
        process: null,
        file: null,
        vulnerability: null,
        observables: { ip: [], domain: [], url: [], hash: [] },
      },
      {
        version: '1.0',
        client_id: TENANT,
        source: 'wazuh',
        source_event_id: null,
        event_type: 'wazuh.alert',
        severity: 2,
        timestamp: '2026-07-06T12:45:09.000Z',
        rule: { id: 'net-006', name: 'Potentially malicious audit-log-cleared identified in Windows events', level: null },
        host: { name: 'WIN-TEST.testd.local', ip: null },
        principal: { user: 'Administrator' },
        process: null,
        file: null,
        vulnerability: null,
        observables: { ip: [], domain: [], url: [], hash: [] },
      },
    ]);
    // event.original is a multi-KiB Windows XML string: cut, the rest of the finding kept.
    for (const [i, event] of events.entries()) {
      expect(Buffer.byteLength(JSON.stringify(event.raw))).toBeLessThanOrEqual(8192);
      expect((event.raw['wazuh'] as { rule: { id: string } }).rule.id).toBe(
        ((originals[i]!['wazuh'] as Record<string, unknown>)['rule'] as { id: string }).id,
      );
    }
  });

  it('rejects a finding whose wazuh.rule.level is not a known word', () => {
    const line = readFileSync(path.join(WAZUH, 'wazuh5_findings_windows_sample_first3.jsonl'), 'utf8').split('\n')[0]!;
    const finding = JSON.parse(line) as { wazuh: { rule: Record<string, unknown> } };
    finding.wazuh.rule['level'] = 'catastrophic';
    expectInvalid(() => normalizeOne(finding), 'wazuh.rule.level');
  });
});

describe('Wazuh input errors', () => {
  function without(file: string, dotted: string): Record<string, unknown> {
    const alert = fixture(file);
    const keys = dotted.split('.');
    let node = alert;
    for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
    delete node[keys.at(-1)!];
    return alert;
  }

  it('names rule.level when it is missing', () => {
    const e = expectInvalid(() => normalizeOne(without('docs_alert_5716_sshd_auth_failed.json', 'rule.level')), 'rule.level');
    expect(e.message).toContain('missing');
  });

  it('names rule.id when it is missing', () => {
    expectInvalid(() => normalizeOne(without('docs_alert_550_fim_whodata_linux.json', 'rule.id')), 'rule.id');
  });

  it('names timestamp when it is missing', () => {
    expectInvalid(() => normalizeOne(without('docs_alert_510_rootcheck_hidden_process.json', 'timestamp')), 'timestamp');
  });

  it('names rule.level when it has the wrong type', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    const rule = alert['rule'] as Record<string, unknown>;
    const e = expectInvalid(() => normalizeOne({ ...alert, rule: { ...rule, level: 'high' } }), 'rule.level');
    expect(e.message).toContain('invalid');
  });

  it('refuses a timestamp without an offset instead of guessing the zone', () => {
    const alert = fixture('docs_alert_5716_sshd_auth_failed.json');
    expectInvalid(() => normalizeOne({ ...alert, timestamp: '2020-07-12T15:32:41.756' }), 'timestamp');
  });

  it('names the index of the bad alert in a batch', () => {
    const good = fixture('docs_alert_5716_sshd_auth_failed.json');
    const bad = without('docs_alert_510_rootcheck_hidden_process.json', 'rule.level');
    const e = expectInvalid(() => normalizeWazuh([good, bad], { clientId: TENANT }), 'rule.level');
    expect(e.details?.['index']).toBe(1);
  });

  it('refuses a body that is neither JSON nor NDJSON', () => {
    const ini = readFileSync(path.join(WAZUH, 'ruleset_test_sshd.ini'), 'utf8');
    expectInvalid(() => normalizeWazuh(ini, { clientId: TENANT }), '(payload)');
  });
});
