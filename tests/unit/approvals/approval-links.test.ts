import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { csrfTokenFor, signApprovalLink, verifyApprovalLink } from '../../../src/approvals/approval-links.ts';

const secret = randomBytes(32);
const linkId = '6f1c2a7e-9b3d-4c5e-8f00-112233445566';
const t0 = Date.parse('2026-11-21T10:00:00Z');

describe('approval links', () => {
  it('round-trips a signed link until it expires', () => {
    const token = signApprovalLink(secret, { linkId, expiresAtMs: t0 + 15 * 60_000 });
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]{27}\.[A-Za-z0-9_-]{43}$/);
    // Short enough for an SMS and a URL path segment.
    expect(token.length).toBeLessThan(100);
    expect(verifyApprovalLink({ secret, token, nowMilliseconds: t0 })).toEqual({ ok: true, payload: { linkId, expiresAtMs: t0 + 15 * 60_000 } });
    expect(verifyApprovalLink({ secret, token, nowMilliseconds: t0 + 15 * 60_000 })).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses a token signed with another secret, or whose payload or signature was changed', () => {
    const token = signApprovalLink(secret, { linkId, expiresAtMs: t0 + 60_000 });
    expect(verifyApprovalLink({ secret: randomBytes(32), token, nowMilliseconds: t0 })).toEqual({ ok: false, reason: 'bad_signature' });
    const [v, body, sig] = token.split('.') as [string, string, string];
    // A later expiry in the payload does not verify under the old signature.
    const longer = signApprovalLink(randomBytes(32), { linkId, expiresAtMs: t0 + 3_600_000 }).split('.')[1];
    expect(verifyApprovalLink({ secret, token: `${v}.${longer}.${sig}`, nowMilliseconds: t0 })).toEqual({ ok: false, reason: 'bad_signature' });
    // One bit of the signature flipped (rewriting its last characters could decode to the same bytes).
    const flipped = Buffer.from(sig, 'base64url');
    flipped[0]! ^= 1;
    expect(verifyApprovalLink({ secret, token: `${v}.${body}.${flipped.toString('base64url')}`, nowMilliseconds: t0 })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifyApprovalLink({ secret, token: 'v2.a.b', nowMilliseconds: t0 })).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyApprovalLink({ secret, token: 'nonsense', nowMilliseconds: t0 })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('binds the CSRF token to the link and the secret', () => {
    expect(csrfTokenFor(secret, linkId)).toBe(csrfTokenFor(secret, linkId));
    expect(csrfTokenFor(secret, linkId)).not.toBe(csrfTokenFor(secret, '00000000-0000-4000-8000-000000000000'));
    expect(csrfTokenFor(secret, linkId)).not.toBe(csrfTokenFor(randomBytes(32), linkId));
  });
});
