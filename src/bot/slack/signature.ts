import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack refuses requests older than five minutes; so do we (replay protection). */
export const SLACK_TIMESTAMP_TOLERANCE_SECONDS = 300;

export type SlackSignatureCheck = { ok: true } | { ok: false; reason: 'missing_headers' | 'stale_timestamp' | 'bad_signature' };

/**
 * Slack request signing v0: `v0=` + hex HMAC-SHA256(signing secret, `v0:<timestamp>:<raw body>`),
 * over the body's bytes exactly as received (re-serialising a parsed body breaks it), with the
 * timestamp within 300 s of now either way. A pure function with an injectable clock, as bolt-js's
 * `verifySlackRequest`, but over bytes rather than a decoded string.
 *
 * @example
 * const check = verifySlackSignature({ signingSecret, rawBody, timestamp: req.headers['x-slack-request-timestamp'],
 *   signature: req.headers['x-slack-signature'], nowMs: Date.now() });
 * if (!check.ok) return reply.status(401).send();
 */
export function verifySlackSignature(input: {
  signingSecret: string;
  rawBody: Buffer;
  timestamp: string | undefined;
  signature: string | undefined;
  nowMs: number;
}): SlackSignatureCheck {
  const { timestamp, signature } = input;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp) || !/^v0=[0-9a-f]{64}$/.test(signature)) {
    return { ok: false, reason: 'missing_headers' };
  }
  if (Math.abs(Math.floor(input.nowMs / 1000) - Number(timestamp)) > SLACK_TIMESTAMP_TOLERANCE_SECONDS) {
    return { ok: false, reason: 'stale_timestamp' };
  }
  const expected = Buffer.from(slackSignature(input.signingSecret, timestamp, input.rawBody), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: 'bad_signature' };
}

/** The `X-Slack-Signature` value for a body; what Slack computes on its side. */
export function slackSignature(signingSecret: string, timestamp: string, rawBody: Buffer): string {
  const mac = createHmac('sha256', signingSecret);
  mac.update(`v0:${timestamp}:`, 'utf8');
  mac.update(rawBody);
  return `v0=${mac.digest('hex')}`;
}
