import { createHash, timingSafeEqual } from 'node:crypto';
import { ReflexError } from '../errors.ts';

/** Compares a presented secret with the expected one in constant time (hashing equalises length). */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Throws `auth.unauthenticated` unless the Authorization header is `Bearer <token>`. */
export function requireBearer(header: string | undefined, token: string): void {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m || !secretsEqual(m[1]!, token)) {
    throw new ReflexError('auth.unauthenticated', 'missing or wrong bearer token', {
      safeMessage: 'Send Authorization: Bearer <REFLEX_API_TOKEN>.',
    });
  }
}
