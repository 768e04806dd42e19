import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { EVENT_TYPES, RAW_MAX_BYTES, sentinelEventV1, toUtcTimestamp, trimRaw } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';

const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures');
const sshd = JSON.parse(readFileSync(path.join(FIXTURES, 'wazuh/docs_alert_5716_sshd_auth_failed.json'), 'utf8')) as Record<string, unknown>;

function sshdEvent() {
  return normalize('wazuh', sshd, { tenantId: 'acme-co' })[0]!;
}

describe('SentinelNet Event v1 schema', () => {
  it('refuses an observable IP that is not an IP', () => {
    const event = sshdEvent();
    const bad = { ...event, observables: { ...event.observables, ip: ['61.177.172.999'] } };
    expect(sentinelEventV1.safeParse(bad).success).toBe(false);
  });

  it('refuses a hash that is not md5, sha1 or sha256 hex', () => {
    const event = sshdEvent();
    // 31 hex characters: one short of md5.
    const bad = { ...event, observables: { ...event.observables, hash: ['98b351df146410f174a967d726f9965'] } };
    expect(sentinelEventV1.safeParse(bad).success).toBe(false);
  });

  it('refuses an event_type outside the taxonomy and a severity outside 1..4', () => {
    const event = sshdEvent();
    expect(sentinelEventV1.safeParse({ ...event, event_type: 'auth.maybe' }).success).toBe(false);
    expect(sentinelEventV1.safeParse({ ...event, severity: 0 }).success).toBe(false);
  });

  it('refuses a missing required field and a field it does not define', () => {
    const { client_id: _c, ...rest } = sshdEvent();
    expect(sentinelEventV1.safeParse(rest).success).toBe(false);
    expect(sentinelEventV1.safeParse({ ...sshdEvent(), tenant: 'x' }).success).toBe(false);
  });

  it('lists the taxonomy types the issue names', () => {
    for (const t of ['auth.bruteforce', 'auth.failed', 'fim.change', 'rootcheck.anomaly', 'vuln.detected', 'honeypot.login', 'honeypot.command', 'honeypot.download', 'malware.detected']) {
      expect(EVENT_TYPES).toContain(t);
    }
  });
});

describe('timestamps', () => {
  it('turns the offsets real sources write into UTC', () => {
    expect(toUtcTimestamp(String(sshd['timestamp']), 'wazuh', 'timestamp')).toBe('2020-07-12T15:32:41.756Z');
    // rootcheck fixture: -0800 without a colon.
    expect(toUtcTimestamp('2020-07-12T18:07:00-0800', 'wazuh', 'timestamp')).toBe('2020-07-13T02:07:00.000Z');
    // Cowrie: microseconds and Z.
    expect(toUtcTimestamp('2026-06-23T14:15:26.253618Z', 'cowrie', 'timestamp')).toBe('2026-06-23T14:15:26.253Z');
  });

  it('refuses an impossible date and names the field', () => {
    try {
      toUtcTimestamp('2020-13-45T15:32:41.756+0000', 'wazuh', 'timestamp');
      expect.unreachable('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(ReflexError);
      expect((err as ReflexError).details).toMatchObject({ source: 'wazuh', field: 'timestamp' });
    }
  });
});

describe('raw trimming', () => {
  it('keeps a small payload whole', () => {
    expect(trimRaw(sshd)).toEqual(sshd);
  });

  it('cuts long strings first and marks the cut', () => {
    const big = { ...sshd, full_log: String(sshd['full_log']).repeat(500) };
    const raw = trimRaw(big);
    expect(Buffer.byteLength(JSON.stringify(raw))).toBeLessThanOrEqual(RAW_MAX_BYTES);
    expect(raw['_trimmed']).toBe(true);
    expect(raw['rule']).toEqual(sshd['rule']);
    expect(raw['data']).toEqual(sshd['data']);
  });

  it('falls back to a JSON excerpt when even short strings do not fit', () => {
    const wide: Record<string, unknown> = {};
    for (let i = 0; i < 2000; i++) wide[`field_${i}`] = sshd['full_log'];
    const raw = trimRaw(wide);
    expect(Buffer.byteLength(JSON.stringify(raw))).toBeLessThanOrEqual(RAW_MAX_BYTES);
    expect(raw['_trimmed']).toBe(true);
    expect(raw['_original_bytes']).toBe(Buffer.byteLength(JSON.stringify(wide)));
    expect(String(raw['excerpt']).startsWith('{"field_0":"Jul 12 15:32:41')).toBe(true);
  });
});

describe('normalize dispatcher', () => {
  it('routes each source to its normalizer and stamps the tenant', () => {
    const cowrieLine = readFileSync(path.join(FIXTURES, 'cowrie/cowrie_events_from_test_ocsf.jsonl'), 'utf8').split('\n')[0]!;
    const xml = readFileSync(path.join(FIXTURES, 'openvas_gvm/defectdojo_openvas_one_vuln.xml'), 'utf8');
    expect(normalize('wazuh', sshd, { tenantId: 't-1' }).map((e) => [e.source, e.client_id, e.event_type])).toEqual([['wazuh', 't-1', 'auth.failed']]);
    expect(normalize('cowrie', cowrieLine, { tenantId: 't-2' }).map((e) => [e.source, e.client_id, e.event_type])).toEqual([
      ['cowrie', 't-2', 'honeypot.connect'],
    ]);
    expect(normalize('openvas', xml, { tenantId: 't-3' }).map((e) => [e.source, e.client_id, e.event_type])).toEqual([
      ['openvas', 't-3', 'vuln.detected'],
    ]);
  });

  it('refuses to run without a tenant: that is a wiring bug, not bad input', () => {
    try {
      normalize('wazuh', sshd, { tenantId: ' ' });
      expect.unreachable('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(ReflexError);
      expect((err as ReflexError).code).toBe('internal');
    }
  });
});
