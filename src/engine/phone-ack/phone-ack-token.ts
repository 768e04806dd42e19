import { createHmac } from 'node:crypto';
import { openToken, signToken } from '../../store/signed-token.ts';
import { z } from 'zod';

/**
 * The signed reference in the URL of a phone call's "press 1 to acknowledge"
 * (`/api/v1/phone/ack/<token>`): which tenant, run, step and callee the keypress acknowledges,
 * and until when. Only Twilio and the callee ever see it (it is inside the call's TwiML).
 *
 * A token is `pa1.<payload>.<signature>`: the payload is base64url of the JSON array
 * `[tenant, run id, step id, principal id or "", expiry in epoch seconds]`, the signature
 * HMAC-SHA256 over `pa1.<payload>` with a key derived from the server's link secret (the secret
 * of the approval links, domain-separated so neither kind of token can stand in for the other).
 * Verification is a pure function with an injectable clock, like the approval links; "once" is
 * the acknowledgement's claim in the database, not the token.
 *
 * @example
 * const token = signPhoneAck(linkSecret, { tenantId: 'acme', runId, stepId: 'call_oncall', principalId, expiresAtMs: Date.now() + 3_600_000 });
 * const v = verifyPhoneAck({ secret: linkSecret, token, nowMilliseconds: Date.now() });
 */
export interface PhoneAckClaims {
  tenantId: string;
  runId: string;
  stepId: string;
  /** The on-call who was called, or null for a call to a number given in the playbook. */
  principalId: string | null;
  expiresAtMs: number;
}

export type PhoneAckVerification =
  | { ok: true; claims: PhoneAckClaims }
  /** `expired` still carries the claims: the signature was good, so the tenant is known. */
  | { ok: false; reason: 'expired'; claims: PhoneAckClaims }
  | { ok: false; reason: 'malformed' | 'bad_signature' };

const PREFIX = 'pa1';
const MAX_TOKEN = 1024;

const claimsTuple = z.tuple([
  z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/),
  z.uuid(),
  z.string().min(1).max(100),
  z.string().max(100),
  z.number().int().positive(),
]);

function keyFor(secret: Buffer): Buffer {
  return createHmac('sha256', secret).update('sentreflex.phone-ack.v1').digest();
}

export function signPhoneAck(secret: Buffer, claims: PhoneAckClaims): string {
  const tuple = [claims.tenantId, claims.runId, claims.stepId, claims.principalId ?? '', Math.floor(claims.expiresAtMs / 1000)];
  return signToken(keyFor(secret), PREFIX, Buffer.from(JSON.stringify(claimsTuple.parse(tuple)), 'utf8').toString('base64url'));
}

export function verifyPhoneAck(input: { secret: Buffer; token: string; nowMilliseconds: number }): PhoneAckVerification {
  // Signature first: nothing of an unsigned payload is parsed.
  const body = openToken(keyFor(input.secret), PREFIX, input.token, MAX_TOKEN);
  if (typeof body !== 'string') return { ok: false, reason: body.reason };
  let tuple: z.infer<typeof claimsTuple>;
  try {
    tuple = claimsTuple.parse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const [tenantId, runId, stepId, principal, expiresAt] = tuple;
  const claims: PhoneAckClaims = { tenantId, runId, stepId, principalId: principal === '' ? null : principal, expiresAtMs: expiresAt * 1000 };
  if (claims.expiresAtMs <= input.nowMilliseconds) return { ok: false, reason: 'expired', claims };
  return { ok: true, claims };
}
