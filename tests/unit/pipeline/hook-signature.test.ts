import { describe, expect, it } from 'vitest';
import { signHookBody, verifyHookSignature } from '../../../src/pipeline/ingest/hook-signature.ts';

describe('hook signature', () => {
  const secret = 'test-secret-of-reasonable-length';
  const body = Buffer.from('{"rule":{"id":"5716"}}');
  const now = 1_795_000_000_000;
  const ts = String(now / 1000);
  const good = `sha256=${signHookBody(secret, ts, body)}`;

  it('accepts the HMAC of "<timestamp>.<body>"', () => {
    expect(() => verifyHookSignature({ secret, body, timestamp: ts, signature: good, nowMs: now })).not.toThrow();
    expect(() => verifyHookSignature({ secret, body, timestamp: ts, signature: good.toUpperCase().replace('SHA256', 'sha256'), nowMs: now })).not.toThrow();
  });

  it.each([
    ['a changed body', { body: Buffer.from('{"rule":{"id":"5717"}}') }, /does not match/],
    ['another secret', { secret: 'another-secret-of-reasonable-len' }, /does not match/],
    ['a timestamp 301 s old', { nowMs: now + 301_000 }, /301 s from our clock/],
    ['a timestamp 301 s ahead', { nowMs: now - 301_000 }, /301 s from our clock/],
    ['no timestamp', { timestamp: undefined }, /X-Reflex-Timestamp/],
    ['a malformed signature', { signature: 'md5=abc' }, /sha256=<hex>/],
    ['the signature of another timestamp', { signature: `sha256=${signHookBody(secret, String(now / 1000 - 1), body)}` }, /does not match/],
  ])('rejects %s', (_name, change, reason) => {
    let err: unknown;
    try {
      verifyHookSignature({ secret, body, timestamp: ts, signature: good, nowMs: now, ...change });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'auth.unauthenticated' });
    expect((err as Error).message).toMatch(reason);
  });

  it('accepts a timestamp 299 s old', () => {
    expect(() => verifyHookSignature({ secret, body, timestamp: ts, signature: good, nowMs: now + 299_000 })).not.toThrow();
  });
});
