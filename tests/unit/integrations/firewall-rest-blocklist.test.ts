import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import { normaliseBlockAddress } from '../../../src/integrations/firewall/block-address.ts';
import { RestBlocklistFirewall } from '../../../src/integrations/firewall/rest-blocklist-firewall.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * The REST blocklist is SENTreflex's own contract for SENTgrid and stand-ins (docs/INTEGRATIONS.md),
 * so there is no third-party fixture: answers are status codes, with an optional `expires_at`.
 */
const BASE = 'https://sentgrid.example.test';
const TOKEN = 'sentgrid-api-token-5566';
const NOW = Date.parse('2025-03-01T12:00:00.000Z');
const fw = (extra: Partial<ConstructorParameters<typeof RestBlocklistFirewall>[0]> = {}) =>
  new RestBlocklistFirewall({ baseUrl: `${BASE}/api`, apiToken: TOKEN, now: () => NOW, ...extra });
const api = (key: string) => nock(BASE, { reqheaders: { authorization: `Bearer ${TOKEN}`, 'idempotency-key': key } });


useStrictNock();

describe('RestBlocklistFirewall.block', () => {
  it('POSTs the address with TTL, comment and Idempotency-Key; 201 is a new block expiring after the TTL', async () => {
    api('run_42:block_ip').post('/api/blocklist/198.51.100.7', { ttl_seconds: 86_400, comment: 'sshd brute force' }).reply(201);
    const r = await fw().block(' 198.51.100.7 ', { idempotencyKey: 'run_42:block_ip', ttlSeconds: 86_400, comment: 'sshd brute force' });
    expect(r).toEqual({
      vendor: 'firewall',
      target: '198.51.100.7',
      address: '198.51.100.7',
      state: 'done',
      alreadyInState: false,
      failures: [],
      expiresAt: '2025-03-02T12:00:00.000Z',
    });
  });

  it('reads 200 and 409 as "already blocked" and prefers the expiry the firewall reports', async () => {
    api('k')
      .post('/api/blocklist/198.51.100.7')
      .reply(200, { address: '198.51.100.7', expires_at: '2025-03-01T18:00:00Z' })
      .post('/api/blocklist/198.51.100.7')
      .reply(409);
    const c = fw();
    const again = await c.block('198.51.100.7', { idempotencyKey: 'k', ttlSeconds: 60 });
    expect([again.alreadyInState, again.expiresAt]).toEqual([true, '2025-03-01T18:00:00Z']);
    expect((await c.block('198.51.100.7', { idempotencyKey: 'k' })).alreadyInState).toBe(true);
  });

  it('percent-encodes a CIDR so its slash stays in one path segment, and lower-cases IPv6', async () => {
    api('k').post('/api/blocklist/198.51.100.0%2F24').reply(201).post('/api/blocklist/2001%3Adb8%3A%3A1').reply(201);
    expect((await fw().block('198.51.100.0/24', { idempotencyKey: 'k' })).address).toBe('198.51.100.0/24');
    expect((await fw().block('2001:DB8::1', { idempotencyKey: 'k' })).address).toBe('2001:db8::1');
  });

  it('caps the TTL at the configured maximum and refuses a nonsensical one', async () => {
    api('k').post('/api/blocklist/198.51.100.7', { ttl_seconds: 3600 }).reply(201);
    const r = await fw({ maxTtlSeconds: 3600 }).block('198.51.100.7', { idempotencyKey: 'k', ttlSeconds: 999_999 });
    expect(r.expiresAt).toBe('2025-03-01T13:00:00.000Z');
    expect((await failure(fw().block('198.51.100.7', { idempotencyKey: 'k', ttlSeconds: -5 }))).code).toBe('input.invalid');
  });

  it('refuses bad addresses and networks wider than /8 (/32 for IPv6) without calling the firewall', async () => {
    for (const bad of ['', 'example.org', '198.51.100.7/33', '0.0.0.0/0', '10.0.0.0/7', '2001:db8::/16', '1.2.3.4/24/1']) {
      expect((await failure(fw().block(bad, { idempotencyKey: 'k' }))).code, bad).toBe('input.invalid');
    }
    expect(normaliseBlockAddress('x', '10.0.0.0/8')).toBe('10.0.0.0/8');
  });
});

describe('RestBlocklistFirewall.unblock', () => {
  it('DELETEs the entry; 404 means it was already gone', async () => {
    api('run_42:unblock').delete('/api/blocklist/198.51.100.7').reply(204).delete('/api/blocklist/198.51.100.7').reply(404);
    const c = fw();
    expect((await c.unblock('198.51.100.7', { idempotencyKey: 'run_42:unblock' })).alreadyInState).toBe(false);
    expect((await c.unblock('198.51.100.7', { idempotencyKey: 'run_42:unblock' })).alreadyInState).toBe(true);
  });

  it('never shows the API token in an error', async () => {
    api('k').delete('/api/blocklist/198.51.100.7').reply(401, { error: { message: `token ${TOKEN} is not valid` } });
    const err = await failure(fw().unblock('198.51.100.7', { idempotencyKey: 'k' }));
    expect([err.code, err.retryable]).toEqual(['upstream.rejected', false]);
    expect(`${err.message}${err.safeMessage}`).not.toContain(TOKEN);
  });
});
