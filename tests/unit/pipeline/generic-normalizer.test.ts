import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { sentinelEventV1 } from '../../../src/pipeline/event.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';

// The seed document's own example of a canonical event is what a "generic" sender will copy.
const SEED = readFileSync(path.resolve(process.cwd(), '../shared/seeds/004_ed0f98a0f153efd2.txt'), 'utf8');
// The document ends inside the fence, so the block runs to the closing fence or to the end.
const SEED_EXAMPLE = JSON.parse(/```json\n([\s\S]*?)(?:\n```|$)/.exec(SEED)![1]!) as Record<string, unknown>;
const TENANT = 'tenant-b';

function seed(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...structuredClone(SEED_EXAMPLE), ...overrides };
}

function expectInvalid(fn: () => unknown, field: string): ReflexError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ReflexError);
    const e = err as ReflexError;
    expect(e.code).toBe('input.invalid');
    expect(e.details).toMatchObject({ source: 'generic', field });
    expect(e.message).toContain(field);
    return e;
  }
  throw new Error(`expected input.invalid naming ${field}`);
}

describe('generic source', () => {
  it("normalizes the seed document's example event", () => {
    const events = normalize('generic', SEED_EXAMPLE, { tenantId: TENANT, genericName: 'sentinelnet' });
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({
      version: '1.0',
      // The hook's tenant, not the body's "acme-co": a sender cannot file events for another tenant.
      client_id: TENANT,
      source: 'generic:sentinelnet',
      source_event_id: null,
      event_type: 'auth.bruteforce',
      severity: 2,
      timestamp: '2026-02-14T19:22:11.000Z',
      rule: null,
      host: { name: 'srv-1', ip: '10.0.2.10' },
      principal: { user: 'admin' },
      process: null,
      file: null,
      vulnerability: null,
      // The seed's single values (and nulls) become lists.
      observables: { ip: ['1.2.3.4'], domain: [], url: [], hash: [] },
      raw: SEED_EXAMPLE,
    });
    expect(SEED_EXAMPLE['client_id']).toBe('acme-co');
    expect(sentinelEventV1.parse(events[0])).toEqual(events[0]);
  });

  it('records plain `generic` as the source when the hook has no name', () => {
    expect(normalize('generic', SEED_EXAMPLE, { tenantId: TENANT })[0]?.source).toBe('generic');
  });

  it('accepts observable lists, lower-cases domains and hashes, and adds a URL host', () => {
    const [event] = normalize(
      'generic',
      seed({
        observables: {
          ip: ['1.2.3.4', '2001:db8::1'],
          domain: 'Evil.Example.COM.',
          url: ['https://evil.example.net/payload.sh'],
          hash: 'C959321244BDCEC824FF0A32CAD6D4F1246F53E9',
        },
        rule: { id: 5715, name: 'sshd: authentication success.', level: 3 },
        source_event_id: 'evt-1',
      }),
      { tenantId: TENANT },
    );
    expect(event?.observables).toEqual({
      ip: ['1.2.3.4', '2001:db8::1'],
      domain: ['evil.example.com', 'evil.example.net'],
      url: ['https://evil.example.net/payload.sh'],
      hash: ['c959321244bdcec824ff0a32cad6d4f1246f53e9'],
    });
    expect(event?.rule).toEqual({ id: '5715', name: 'sshd: authentication success.', level: 3 });
    expect(event?.source_event_id).toBe('evt-1');
  });

  it('ignores unknown fields', () => {
    const [plain] = normalize('generic', SEED_EXAMPLE, { tenantId: TENANT });
    const [extended] = normalize('generic', seed({ tags: ['x'], vendor_extra: { a: 1 } }), { tenantId: TENANT });
    expect({ ...extended, raw: null }).toEqual({ ...plain, raw: null });
  });

  it('names event_type when it is outside the taxonomy', () => {
    expectInvalid(() => normalize('generic', seed({ event_type: 'auth.brute' }), { tenantId: TENANT }), 'event_type');
  });

  it('names severity when it is outside 1..4', () => {
    expectInvalid(() => normalize('generic', seed({ severity: 5 }), { tenantId: TENANT }), 'severity');
  });

  it('names timestamp when it is missing', () => {
    const { timestamp: _t, ...rest } = SEED_EXAMPLE;
    const e = expectInvalid(() => normalize('generic', rest, { tenantId: TENANT }), 'timestamp');
    expect(e.message).toContain('required');
  });

  it('names the observable that does not parse', () => {
    expectInvalid(
      () => normalize('generic', seed({ observables: { ip: '1.2.3.999', domain: null, hash: null } }), { tenantId: TENANT }),
      'observables.ip',
    );
    expectInvalid(() => normalize('generic', seed({ observables: { hash: 'not-a-hash' } }), { tenantId: TENANT }), 'observables.hash');
  });

  it('refuses a Wazuh alert posted to the generic hook, naming event_type', () => {
    const alert = JSON.parse(
      readFileSync(path.resolve(process.cwd(), '../shared/fixtures/wazuh/docs_alert_5716_sshd_auth_failed.json'), 'utf8'),
    ) as unknown;
    expectInvalid(() => normalize('generic', alert, { tenantId: TENANT }), 'event_type');
  });

  it('refuses a hook name that could not be a source name', () => {
    expectInvalid(() => normalize('generic', SEED_EXAMPLE, { tenantId: TENANT, genericName: '../wazuh' }), 'name');
  });
});
