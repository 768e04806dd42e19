import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { sentinelEventV1 } from '../../../src/pipeline/event.ts';
import type { SentinelEvent } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';

const FILE = path.resolve(process.cwd(), '../shared/fixtures/cowrie/cowrie_events_from_test_ocsf.jsonl');
const TENANT = 'acme-co';
const TEXT = readFileSync(FILE, 'utf8');
const LINES = TEXT.split('\n').filter((l) => l.trim() !== '');
const EVENTS = LINES.map((l) => JSON.parse(l) as Record<string, unknown>);

function byId(eventid: string): Record<string, unknown> {
  const found = EVENTS.find((e) => e['eventid'] === eventid);
  if (!found) throw new Error(`fixture has no ${eventid}`);
  return found;
}

const TTY_SHA256 = '2638f1c1c2018567a46a4cae049dd90db2d468e1538d60d328f2707d071f73c5';
const NO_OBSERVABLES_BUT_ATTACKER = { ip: ['127.0.0.1'], domain: [], url: [], hash: [] };

type Expected = Pick<SentinelEvent, 'event_type' | 'severity' | 'timestamp' | 'host' | 'principal' | 'observables' | 'source_event_id'> & {
  ruleName: string;
};

/** Every event id in the fixture, with what it must become. */
const EXPECTED: Record<string, Expected> = {
  'cowrie.session.connect': {
    event_type: 'honeypot.connect',
    severity: 4,
    timestamp: '2026-06-23T14:15:26.253Z',
    host: { name: 'honeypot-01', ip: '127.0.0.1' },
    principal: { user: null },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.session.connect/2026-06-23T14:15:26.253618Z',
    ruleName: 'New connection',
  },
  'cowrie.session.closed': {
    event_type: 'honeypot.session',
    severity: 4,
    timestamp: '2026-06-23T14:15:30.727Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.session.closed/2026-06-23T14:15:30.727510Z',
    ruleName: 'Connection lost after 4.5 seconds',
  },
  'cowrie.client.version': {
    event_type: 'honeypot.session',
    severity: 4,
    timestamp: '2026-06-23T14:15:26.254Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.client.version/2026-06-23T14:15:26.254213Z',
    ruleName: 'Remote SSH version: SSH-2.0-OpenSSH_9.6p1',
  },
  'cowrie.client.kex': {
    event_type: 'honeypot.session',
    severity: 4,
    timestamp: '2026-06-23T14:15:26.254Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    // The hassh is an md5-shaped fingerprint of the client, not a file hash: not an observable.
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.client.kex/2026-06-23T14:15:26.254692Z',
    ruleName: 'SSH client hassh fingerprint',
  },
  'cowrie.login.success': {
    event_type: 'honeypot.login',
    severity: 2,
    timestamp: '2026-06-23T14:15:29.620Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: 'admin' },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.login.success/2026-06-23T14:15:29.620070Z',
    ruleName: 'login attempt [admin/lol] succeeded',
  },
  'cowrie.login.failed': {
    event_type: 'honeypot.login_failed',
    severity: 4,
    timestamp: '2026-06-23T15:08:24.195Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: 'root' },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000002/cowrie.login.failed/2026-06-23T15:08:24.195892Z',
    ruleName: 'login attempt [root/root] failed',
  },
  'cowrie.command.input': {
    event_type: 'honeypot.command',
    severity: 3,
    timestamp: '2026-06-23T14:15:30.726Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.command.input/2026-06-23T14:15:30.726107Z',
    ruleName: 'CMD: uname -a',
  },
  'cowrie.command.failed': {
    event_type: 'honeypot.command',
    severity: 3,
    timestamp: '2026-06-23T15:41:31.033Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000003/cowrie.command.failed/2026-06-23T15:41:31.033255Z',
    ruleName: 'Command not found: xxxx',
  },
  'cowrie.log.closed': {
    event_type: 'honeypot.session',
    severity: 4,
    timestamp: '2026-06-23T14:15:30.726Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    // shasum here is the TTY recording's hash, not an attacker payload.
    observables: NO_OBSERVABLES_BUT_ATTACKER,
    source_event_id: '0000000000000001/cowrie.log.closed/2026-06-23T14:15:30.726777Z',
    ruleName: 'Closing TTY Log',
  },
  'cowrie.session.file_download': {
    event_type: 'honeypot.download',
    severity: 2,
    timestamp: '2026-06-23T14:15:30.000Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: { ip: ['127.0.0.1', '198.51.100.5'], domain: [], url: ['http://198.51.100.5/x.sh'], hash: [TTY_SHA256] },
    source_event_id: '0000000000000001/cowrie.session.file_download/2026-06-23T14:15:30.000000Z',
    ruleName: 'Downloaded URL',
  },
  'cowrie.session.file_upload': {
    event_type: 'honeypot.upload',
    severity: 2,
    timestamp: '2026-06-23T14:15:31.000Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    // url is the bare file name "evil.sh": not a URL, so only the hash is an indicator.
    observables: { ip: ['127.0.0.1'], domain: [], url: [], hash: [TTY_SHA256] },
    source_event_id: '0000000000000001/cowrie.session.file_upload/2026-06-23T14:15:31.000000Z',
    ruleName: 'SCP Uploaded file',
  },
  'cowrie.session.file_download.failed': {
    event_type: 'honeypot.download',
    severity: 3,
    timestamp: '2026-06-23T14:15:30.000Z',
    host: { name: 'honeypot-01', ip: null },
    principal: { user: null },
    observables: { ip: ['127.0.0.1', '198.51.100.5'], domain: [], url: ['http://198.51.100.5/x.sh'], hash: [] },
    source_event_id: '0000000000000001/cowrie.session.file_download.failed/2026-06-23T14:15:30.000000Z',
    ruleName: 'Attempt to download file(s) from URL failed',
  },
};

describe('Cowrie events', () => {
  it('has an expectation for every event line of the fixture', () => {
    expect(EVENTS.map((e) => e['eventid']).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [eventid, expected] of Object.entries(EXPECTED)) {
    it(`normalizes ${eventid}`, () => {
      const original = byId(eventid);
      const events = normalize('cowrie', original, { tenantId: TENANT });
      expect(events).toHaveLength(1);
      const event = events[0]!;
      const { ruleName, ...fields } = expected;
      expect(event).toEqual({
        version: '1.0',
        client_id: TENANT,
        source: 'cowrie',
        rule: { id: eventid, name: ruleName, level: null },
        process: null,
        file: null,
        vulnerability: null,
        ...fields,
        raw: original,
      });
      expect(sentinelEventV1.parse(event)).toEqual(event);
    });
  }

  it('normalizes the whole cowrie.json file (NDJSON) into one event per line, in order', () => {
    const events = normalize('cowrie', TEXT, { tenantId: TENANT });
    expect(events.map((e) => e.rule?.id)).toEqual(EVENTS.map((e) => e['eventid']));
    expect(events.map((e) => e.event_type)).toEqual(EVENTS.map((e) => EXPECTED[e['eventid'] as string]!.event_type));
  });

  it('gives events of one sensor distinct ids although Cowrie repeats the sensor uuid on all of them', () => {
    const events = normalize('cowrie', TEXT, { tenantId: TENANT });
    expect(new Set(EVENTS.map((e) => e['uuid'])).size).toBe(1);
    expect(new Set(events.map((e) => e.source_event_id)).size).toBe(events.length);
  });

  it('maps an event id it does not know to honeypot.activity at info severity', () => {
    const original = { ...byId('cowrie.session.connect'), eventid: 'cowrie.direct-tcpip.request', message: 'direct-tcp connection request' };
    const [event] = normalize('cowrie', original, { tenantId: TENANT });
    expect(event?.event_type).toBe('honeypot.activity');
    expect(event?.severity).toBe(4);
    expect(event?.observables.ip).toEqual(['127.0.0.1']);
  });

  it('ignores unknown fields', () => {
    const original = byId('cowrie.login.success');
    const [plain] = normalize('cowrie', original, { tenantId: TENANT });
    const [extended] = normalize('cowrie', { ...original, geoip: { country: 'XX' }, future_field: [1, 2] }, { tenantId: TENANT });
    expect({ ...extended, raw: null }).toEqual({ ...plain, raw: null });
  });

  for (const field of ['eventid', 'timestamp', 'session'] as const) {
    it(`names ${field} when it is missing`, () => {
      const { [field]: _removed, ...rest } = byId('cowrie.command.input');
      try {
        normalize('cowrie', rest, { tenantId: TENANT });
        expect.unreachable('should have thrown');
      } catch (err) {
        expect(err).toBeInstanceOf(ReflexError);
        expect((err as ReflexError).code).toBe('input.invalid');
        expect((err as ReflexError).details).toMatchObject({ source: 'cowrie', field });
        expect((err as ReflexError).message).toContain(`${field} is required but missing`);
      }
    });
  }

  it('names the line of a batch that is broken', () => {
    const lines = [...LINES.slice(0, 3), '{"eventid": "cowrie.session.connect"', ...LINES.slice(3)].join('\n');
    try {
      normalize('cowrie', lines, { tenantId: TENANT });
      expect.unreachable('should have thrown');
    } catch (err) {
      expect((err as ReflexError).details).toMatchObject({ source: 'cowrie', field: '(payload)', line: 4 });
    }
  });
});
