import { describe, expect, it } from 'vitest';
import { fingerprintOf } from '../../../src/pipeline/fingerprint.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';
import { fixtureJson, fixtureLines, fixtureText } from '../../helpers/fixtures.ts';

const wazuh = (name: string, tenantId = 'acme') => normalize('wazuh', fixtureJson(`wazuh/${name}`), { tenantId })[0]!;

describe('fingerprint', () => {
  it('is stable for the same alert arriving again later', () => {
    const a = fixtureJson('wazuh/docs_alert_5716_sshd_auth_failed.json');
    const later = { ...a, timestamp: '2020-07-12T16:00:00.000+0000', id: '1594567890.1234' };
    expect(fingerprintOf(normalize('wazuh', later, { tenantId: 'acme' })[0]!)).toBe(fingerprintOf(wazuh('docs_alert_5716_sshd_auth_failed.json')));
  });

  it('differs per tenant, per attacking IP, per target user', () => {
    const a = fixtureJson<Record<string, { srcip?: string; dstuser?: string }>>('wazuh/docs_alert_5716_sshd_auth_failed.json');
    const base = fingerprintOf(wazuh('docs_alert_5716_sshd_auth_failed.json'));
    expect(fingerprintOf(wazuh('docs_alert_5716_sshd_auth_failed.json', 'globex'))).not.toBe(base);
    const otherIp = { ...a, data: { ...a.data, srcip: '203.0.113.9' } };
    expect(fingerprintOf(normalize('wazuh', otherIp, { tenantId: 'acme' })[0]!)).not.toBe(base);
    const otherUser = { ...a, data: { ...a.data, dstuser: 'admin' } };
    expect(fingerprintOf(normalize('wazuh', otherUser, { tenantId: 'acme' })[0]!)).not.toBe(base);
  });

  it('tells FIM changes to different files apart', () => {
    const linux = wazuh('docs_alert_550_fim_whodata_linux.json');
    const sameOtherFile = { ...linux, file: { path: '/etc/other' } };
    expect(fingerprintOf(sameOtherFile)).not.toBe(fingerprintOf(linux));
  });

  it('gives different Cowrie event types of one session different keys', () => {
    const events = fixtureLines('cowrie/cowrie_events_from_test_ocsf.jsonl').flatMap((l) => normalize('cowrie', l, { tenantId: 'acme' }));
    const types = new Set(events.map((e) => e.event_type));
    const keys = new Set(events.map((e) => fingerprintOf(e)));
    // One session from one IP: at least one key per event type, never one key for everything.
    expect(keys.size).toBeGreaterThanOrEqual(types.size);
    expect(types.size).toBeGreaterThan(3);
  });

  it('keys OpenVAS results by host and NVT', () => {
    const [result] = normalize('openvas', fixtureText('openvas_gvm/defectdojo_openvas_one_vuln.xml'), { tenantId: 'acme' });
    expect(fingerprintOf(result!)).toMatch(/^[0-9a-f]{40}$/);
    expect(fingerprintOf({ ...result!, rule: { ...result!.rule!, id: '1.3.6.1.4.1.25623.1.0.999999' } })).not.toBe(fingerprintOf(result!));
  });
});
