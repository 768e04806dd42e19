import { createHmac } from 'node:crypto';
import { secretsEqual } from '../../app/auth.ts';
import { ReflexError } from '../../errors.ts';

/** How far a signed request's timestamp may be from our clock (replay window), as Slack does. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * Verifies `X-Reflex-Signature: sha256=<hex>` = HMAC-SHA256(secret, "<X-Reflex-Timestamp>.<raw body>").
 * Pure, with an injectable clock (bolt-js's verifySlackRequest is the model). Throws
 * `auth.unauthenticated` with the reason; returns nothing on success.
 *
 * @example
 * verifyHookSignature({ secret, body: rawBuffer, timestamp: req.headers['x-reflex-timestamp'],
 *   signature: req.headers['x-reflex-signature'], nowMs: Date.now() });
 */
export function verifyHookSignature(input: {
  secret: string;
  body: Buffer;
  timestamp: string | undefined;
  signature: string | undefined;
  nowMs: number;
}): void {
  const fail = (why: string) =>
    new ReflexError('auth.unauthenticated', `hook signature: ${why}`, { safeMessage: `Signature rejected: ${why}.` });
  if (!input.timestamp || !/^\d{1,12}$/.test(input.timestamp)) throw fail('X-Reflex-Timestamp is missing or not unix seconds');
  const m = /^sha256=([0-9a-f]{64})$/i.exec(input.signature ?? '');
  if (!m) throw fail('X-Reflex-Signature is missing or not sha256=<hex>');
  const skew = Math.abs(input.nowMs / 1000 - Number(input.timestamp));
  if (skew > SIGNATURE_TOLERANCE_SECONDS) throw fail(`timestamp is ${Math.round(skew)} s from our clock (limit ${SIGNATURE_TOLERANCE_SECONDS} s)`);
  const expected = signHookBody(input.secret, input.timestamp, input.body);
  if (!secretsEqual(m[1]!.toLowerCase(), expected)) throw fail('signature does not match the body');
}

/** The hex HMAC a sender puts after `sha256=`. */
export function signHookBody(secret: string, timestamp: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}
