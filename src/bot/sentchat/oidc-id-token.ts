import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/**
 * Verifies an OpenID Connect ID token (a JWS) against the issuer's published keys, with
 * node:crypto only. Pure, with an injectable clock, so every refusal has a test.
 *
 * Refused: `alg: none` and HMAC (a public client cannot hold the secret they need), a key whose
 * type or declared `alg` does not match the header, a bad signature, another issuer, an audience
 * without our client id (or, with several audiences, an `azp` that is not us), an expired token or
 * one issued in the future (60 s skew either way), and a nonce other than the one this sign-in sent.
 *
 * @example
 * const r = verifyIdToken({ idToken, keys: jwks.keys, issuer, clientId, nonce, nowMs: Date.now() });
 * if (!r.ok) throw new Error(r.reason);
 */
export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  [k: string]: unknown;
}

export interface IdTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nonce?: string;
  azp?: string;
  name?: string;
  preferred_username?: string;
  email?: string;
}

export type IdTokenCheck = { ok: true; claims: IdTokenClaims } | { ok: false; reason: string };

const ALGS: Record<string, { kty: string; hash: string | null; options: (key: KeyObject) => Parameters<typeof verify>[2] }> = {
  RS256: { kty: 'RSA', hash: 'sha256', options: (key) => key },
  RS384: { kty: 'RSA', hash: 'sha384', options: (key) => key },
  RS512: { kty: 'RSA', hash: 'sha512', options: (key) => key },
  PS256: { kty: 'RSA', hash: 'sha256', options: (key) => ({ key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }) },
  PS384: { kty: 'RSA', hash: 'sha384', options: (key) => ({ key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }) },
  PS512: { kty: 'RSA', hash: 'sha512', options: (key) => ({ key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }) },
  ES256: { kty: 'EC', hash: 'sha256', options: (key) => ({ key, dsaEncoding: 'ieee-p1363' }) },
  ES384: { kty: 'EC', hash: 'sha384', options: (key) => ({ key, dsaEncoding: 'ieee-p1363' }) },
  ES512: { kty: 'EC', hash: 'sha512', options: (key) => ({ key, dsaEncoding: 'ieee-p1363' }) },
  EdDSA: { kty: 'OKP', hash: null, options: (key) => key },
};

const header = z.object({ alg: z.string(), kid: z.string().optional(), typ: z.string().optional() });
const claims = z.looseObject({
  iss: z.string(),
  sub: z.string().min(1).max(255),
  aud: z.union([z.string(), z.array(z.string()).min(1)]),
  exp: z.number(),
  iat: z.number(),
  nonce: z.string().optional(),
  azp: z.string().optional(),
  name: z.string().max(200).optional(),
  preferred_username: z.string().max(200).optional(),
  email: z.string().max(320).optional(),
});

function decodePart(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export function verifyIdToken(input: { idToken: string; keys: readonly Jwk[]; issuer: string; clientId: string; nonce: string; nowMs: number; skewSeconds?: number }): IdTokenCheck {
  const parts = input.idToken.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) return { ok: false, reason: 'not a compact JWS' };
  const h = header.safeParse(decodePart(parts[0]!));
  if (!h.success) return { ok: false, reason: 'unreadable header' };
  const alg = ALGS[h.data.alg];
  if (!alg) return { ok: false, reason: `algorithm ${h.data.alg.slice(0, 20)} is not accepted` };

  const candidates = input.keys.filter((k) => k.kty === alg.kty && (k.use === undefined || k.use === 'sig') && (k.alg === undefined || k.alg === h.data.alg));
  const jwk = h.data.kid !== undefined ? candidates.find((k) => k.kid === h.data.kid) : candidates.length === 1 ? candidates[0] : undefined;
  if (!jwk) return { ok: false, reason: h.data.kid !== undefined ? `no ${alg.kty} signing key with kid ${h.data.kid.slice(0, 64)}` : 'no kid and not exactly one signing key' };
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as never, format: 'jwk' });
  } catch {
    return { ok: false, reason: 'the issuer published an unusable key' };
  }
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');
  const signature = Buffer.from(parts[2]!, 'base64url');
  let good = false;
  try {
    good = verify(alg.hash, signed, alg.options(key), signature);
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: 'bad signature' };

  const c = claims.safeParse(decodePart(parts[1]!));
  if (!c.success) return { ok: false, reason: `unreadable claims: ${c.error.issues[0]!.path.join('.')}` };
  const skew = input.skewSeconds ?? 60;
  const now = input.nowMs / 1000;
  if (c.data.iss !== input.issuer) return { ok: false, reason: 'issued by another issuer' };
  const aud = Array.isArray(c.data.aud) ? c.data.aud : [c.data.aud];
  if (!aud.includes(input.clientId)) return { ok: false, reason: 'not issued for this client' };
  if (aud.length > 1 && c.data.azp !== input.clientId) return { ok: false, reason: 'several audiences and azp is not this client' };
  if (c.data.exp + skew < now) return { ok: false, reason: 'expired' };
  if (c.data.iat - skew > now) return { ok: false, reason: 'issued in the future' };
  if (c.data.nonce !== input.nonce) return { ok: false, reason: 'nonce does not match this sign-in' };
  return { ok: true, claims: c.data as IdTokenClaims };
}
