import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * `<prefix>.<body>.<signature>` tokens: the signature is HMAC-SHA256 over `<prefix>.<body>`,
 * base64url. The approval links and the phone acknowledgements share this format, each with its
 * own prefix (and key); what the body holds is theirs.
 *
 * @example
 * const token = signToken(key, 'v1', body);
 * const opened = openToken(key, 'v1', token, 200);
 * if (typeof opened !== 'string') refuse(opened.reason);
 */
export function signToken(key: Buffer, prefix: string, body: string): string {
  return `${prefix}.${body}.${mac(key, `${prefix}.${body}`).toString('base64url')}`;
}

/**
 * The body of a token signed with `key` under `prefix`, or why not. The signature is compared in
 * constant time before anything of the body is looked at.
 */
export function openToken(key: Buffer, prefix: string, token: string, maxLength: number): string | { reason: 'malformed' | 'bad_signature' } {
  if (typeof token !== 'string' || token.length > maxLength) return { reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== prefix) return { reason: 'malformed' };
  const [, body, sig] = parts as [string, string, string];
  const expected = mac(key, `${prefix}.${body}`);
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { reason: 'bad_signature' };
  return body;
}

export function mac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
