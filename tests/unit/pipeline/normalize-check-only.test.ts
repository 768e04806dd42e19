import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalize, type NormalizerSource } from '../../../src/pipeline/normalize/index.ts';
import { FIXTURES_DIR, fixtureLines } from '../../helpers/fixtures.ts';

// The hook validates a body with a check-only pass (no raw copy, no schema re-run of the result):
// it must accept and refuse exactly what the full normalize stage accepts and refuses, and count
// the same events, or a 202 would promise events the stage then drops (or the other way round).
const TENANT = 'acme-co';

const payloads: [string, NormalizerSource, unknown][] = [
  ...['docs_alert_5716_sshd_auth_failed.json', 'docs_alert_550_fim_whodata_linux.json', 'docs_alert_550_fim_whodata_windows.json', 'docs_alert_510_rootcheck_hidden_process.json', 'docs_alert_23505_vulnerability_detector.json', 'docs_alert_550_fim_agent_labels.json'].map(
    (f): [string, NormalizerSource, unknown] => [`wazuh/${f}`, 'wazuh', JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'wazuh', f), 'utf8'))],
  ),
  ...fixtureLines('cowrie/cowrie_events_from_test_ocsf.jsonl').map((l, i): [string, NormalizerSource, unknown] => [`cowrie line ${i + 1}`, 'cowrie', l]),
  ['openvas/defectdojo_openvas_one_vuln.xml', 'openvas', readFileSync(path.join(FIXTURES_DIR, 'openvas_gvm/defectdojo_openvas_one_vuln.xml'), 'utf8')],
  ['openvas/defectdojo_openvas_one_vuln.csv', 'openvas', readFileSync(path.join(FIXTURES_DIR, 'openvas_gvm/defectdojo_openvas_one_vuln.csv'), 'utf8')],
  ['generic', 'generic', { event_type: 'malware.detected', severity: 1, timestamp: '2026-11-21T10:00:00Z', host: { name: 'kiosk-7' }, observables: { ip: '203.0.113.9' } }],
];

function outcome(source: NormalizerSource, payload: unknown, checkOnly: boolean): { events?: unknown[]; error?: string } {
  try {
    return { events: normalize(source, payload, { tenantId: TENANT, genericName: source === 'generic' ? 'kiosk' : undefined, checkOnly }) };
  } catch (err) {
    return { error: `${(err as { code?: string }).code}: ${(err as Error).message}` };
  }
}

describe('normalize check-only (hook validation)', () => {
  it.each(payloads)('%s: same events as the full pass but raw, and the full pass keeps raw', (_name, source, payload) => {
    const full = outcome(source, payload, false);
    const check = outcome(source, payload, true);
    expect(check.error).toBe(full.error);
    expect(full.events?.length ?? 0).toBe(check.events?.length ?? 0);
    for (const [i, e] of (full.events ?? []).entries()) {
      const { raw, ...rest } = e as { raw: Record<string, unknown> };
      expect(Object.keys(raw).length).toBeGreaterThan(0);
      const { raw: checkRaw, ...checkRest } = check.events![i] as { raw: Record<string, unknown> };
      expect(checkRaw).toEqual({});
      // ids and timestamps of ingestion may differ between two passes; everything taken from the payload may not.
      expect(pick(checkRest)).toEqual(pick(rest));
    }
  });

  it.each([
    ['wazuh', { rule: { level: 'high' } }],
    ['cowrie', { eventid: 'cowrie.login.failed', timestamp: 'yesterday' }],
    ['generic', { event_type: 'malware.detected', severity: 9 }],
  ] as [NormalizerSource, unknown][])('%s: refuses a bad payload with the same error in both passes', (source, payload) => {
    const full = outcome(source, payload, false);
    expect(full.error).toMatch(/^input\.invalid/);
    expect(outcome(source, payload, true).error).toBe(full.error);
  });
});

function pick(e: Record<string, unknown>): Record<string, unknown> {
  const { event_id: _id, ingested_at: _at, ...rest } = e;
  return rest;
}
