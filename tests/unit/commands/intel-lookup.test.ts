import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIntelLookup, defaultIntelProviders } from '../../../src/commands/intel-lookup.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';

const vault = { get: async (_tenant: string, name: string) => (name === 'abuseipdb.api_key' ? 'abuse-key' : undefined) };
const providers = defaultIntelProviders({ virustotal: 'https://vt.test', abuseipdb: 'https://abuse.test' });

describe('intel lookup', () => {
  beforeAll(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());

  it('skips providers without a key and answers with the configured one', async () => {
    const abuse = fixtureJson<{ data: object }>('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json');
    nock('https://abuse.test').get('/api/v2/check').query(true).reply(200, abuse);
    const out = await createIntelLookup(vault, providers)('acme', { kind: 'ip', value: '198.51.100.100' });
    expect(out.map((o) => [o.provider, o.status])).toEqual([
      ['virustotal', 'not_configured'],
      ['abuseipdb', 'ok'],
    ]);
  });

  it('honours Retry-After: no request to a rate-limiting vendor until it has passed', async () => {
    let clock = Date.UTC(2026, 10, 21, 12, 0, 0);
    const lookup = createIntelLookup(vault, providers, () => clock);
    const limited = nock('https://abuse.test').get('/api/v2/check').query(true).reply(429, '', { 'retry-after': '120' });
    const first = await lookup('acme', { kind: 'ip', value: '198.51.100.100' });
    expect(limited.isDone()).toBe(true);
    expect(first[1]).toMatchObject({ provider: 'abuseipdb', status: 'unavailable' });
    // Within the window: answered at once, and nock would throw on any request.
    clock += 119_000;
    const second = await lookup('acme', { kind: 'ip', value: '198.51.100.101' });
    expect(second[1]).toMatchObject({ status: 'unavailable', reason: expect.stringContaining('rate limiting') });
    // Another tenant (its own key and quota) is not held back.
    const abuse = fixtureJson<{ data: object }>('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json');
    nock('https://abuse.test').get('/api/v2/check').query(true).reply(200, abuse);
    expect((await lookup('globex', { kind: 'ip', value: '198.51.100.100' }))[1]!.status).toBe('ok');
    // After the window: asked again.
    clock += 2_000;
    nock('https://abuse.test').get('/api/v2/check').query(true).reply(200, abuse);
    expect((await lookup('acme', { kind: 'ip', value: '198.51.100.100' }))[1]!.status).toBe('ok');
  });
});
