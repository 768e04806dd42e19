import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signApprovalLink, verifyApprovalLink } from '../../../src/approvals/approval-links.ts';
import { PhoneAcknowledgements, type PhoneAcknowledgementsDeps } from '../../../src/engine/phone-ack/phone-acknowledgements.ts';
import { signPhoneAck, verifyPhoneAck } from '../../../src/engine/phone-ack/phone-ack-token.ts';
import { buildAnswerTwiml } from '../../../src/integrations/twilio/twiml.ts';

const secret = randomBytes(32);
const NOW = Date.parse('2026-11-21T03:00:00Z');
const claims = { tenantId: 'acme', runId: randomUUID(), stepId: 'call_oncall', principalId: randomUUID(), expiresAtMs: NOW + 3_600_000 };

describe('phone acknowledgement tokens', () => {
  it('round-trips tenant, run, step, callee and expiry (to the second)', () => {
    const token = signPhoneAck(secret, claims);
    expect(token).toMatch(/^pa1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(verifyPhoneAck({ secret, token, nowMilliseconds: NOW })).toEqual({ ok: true, claims });
    const anyone = signPhoneAck(secret, { ...claims, principalId: null });
    expect(verifyPhoneAck({ secret, token: anyone, nowMilliseconds: NOW })).toMatchObject({ ok: true, claims: { principalId: null } });
  });

  it('refuses a token signed with another secret, or with its payload or signature changed', () => {
    const token = signPhoneAck(secret, claims);
    expect(verifyPhoneAck({ secret: randomBytes(32), token, nowMilliseconds: NOW })).toEqual({ ok: false, reason: 'bad_signature' });
    const [p, body, sig] = token.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify(['other', claims.runId, claims.stepId, '', Math.floor(claims.expiresAtMs / 1000)])).toString('base64url');
    expect(verifyPhoneAck({ secret, token: `${p}.${forged}.${sig}`, nowMilliseconds: NOW })).toEqual({ ok: false, reason: 'bad_signature' });
    // One bit of the signature flipped (rewriting its last characters could decode to the same bytes).
    const flipped = Buffer.from(sig, 'base64url');
    flipped[0]! ^= 1;
    expect(verifyPhoneAck({ secret, token: `${p}.${body}.${flipped.toString('base64url')}`, nowMilliseconds: NOW }).ok).toBe(false);
    expect(verifyPhoneAck({ secret, token: 'pa1.x', nowMilliseconds: NOW })).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyPhoneAck({ secret, token: `${'a'.repeat(2000)}`, nowMilliseconds: NOW })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('an expired token is refused but still says whose it is (its signature was good)', () => {
    const token = signPhoneAck(secret, claims);
    expect(verifyPhoneAck({ secret, token, nowMilliseconds: claims.expiresAtMs })).toEqual({ ok: false, reason: 'expired', claims });
  });

  it('is not interchangeable with an approval link signed with the same secret', () => {
    const link = signApprovalLink(secret, { linkId: randomUUID(), expiresAtMs: NOW + 60_000 });
    expect(verifyPhoneAck({ secret, token: link, nowMilliseconds: NOW }).ok).toBe(false);
    expect(verifyApprovalLink({ secret, token: signPhoneAck(secret, claims), nowMilliseconds: NOW }).ok).toBe(false);
  });
});

describe('PhoneAcknowledgements.urlFor', () => {
  const deps = (publicUrl: string) => ({ linkSecret: secret, publicUrl: () => publicUrl, now: () => NOW }) as unknown as PhoneAcknowledgementsDeps;

  it('is a signed URL under the https public URL, bound to the call', () => {
    const url = new PhoneAcknowledgements(deps('https://reflex.acme.example/')).urlFor({ tenantId: 'acme', runId: claims.runId, stepId: 'call_oncall', principalId: claims.principalId });
    expect(url).toMatch(/^https:\/\/reflex\.acme\.example\/api\/v1\/phone\/ack\/pa1\./);
    const v = verifyPhoneAck({ secret, token: url!.split('/').pop()!, nowMilliseconds: NOW });
    expect(v).toEqual({ ok: true, claims: { ...claims, expiresAtMs: NOW + 3_600_000 } });
  });

  it('is not offered without an https public URL (Twilio could not reach it, or not safely)', () => {
    expect(new PhoneAcknowledgements(deps('http://localhost:3000')).urlFor({ tenantId: 'acme', runId: claims.runId, stepId: 's' })).toBeUndefined();
  });
});

describe('buildAnswerTwiml', () => {
  it('says the outcome, escaped, optionally asks again, and hangs up', () => {
    expect(buildAnswerTwiml('Acknowledged. Goodbye.')).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Acknowledged. Goodbye.</Say><Hangup/></Response>');
    const again = buildAnswerTwiml('<Nothing> recorded.', { gatherUrl: 'https://r.example/api/v1/phone/ack/pa1.a.b?x=1&y=2', voice: 'Polly.Amy' });
    expect(again).toContain('<Say voice="Polly.Amy">&lt;Nothing&gt; recorded.</Say>');
    expect(again).toContain('<Gather numDigits="1" method="POST" action="https://r.example/api/v1/phone/ack/pa1.a.b?x=1&amp;y=2">');
  });
});
