import { timingSafeEqual } from 'node:crypto';
import { mac, openToken, signToken } from '../store/signed-token.ts';

/**
 * Signed one-time approval links for phones without the chat app (sent by SMS or e-mail).
 *
 * A token is `v1.<payload>.<signature>`: the payload (base64url of 16 bytes of the link's nonce and
 * 4 bytes of its expiry in epoch seconds) and HMAC-SHA256 over it with the server's link secret.
 * Which approval and which principal the link is for live in the `approval_links` row the nonce
 * names (the token stays short enough for an SMS and a URL path). Verification is a pure function
 * with an injectable clock; the single-use part is that row's `used_at`, claimed in the transaction
 * that records the decision.
 *
 * @example
 * const token = signApprovalLink(secret, { linkId, expiresAtMs: Date.now() + 15 * 60_000 });
 * const v = verifyApprovalLink({ secret, token, nowMilliseconds: Date.now() });
 * if (!v.ok) refuse(v.reason);
 */
export interface ApprovalLinkPayload {
  linkId: string;
  expiresAtMs: number;
}

export type LinkVerification = { ok: true; payload: ApprovalLinkPayload } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' };

export function signApprovalLink(secret: Buffer, payload: ApprovalLinkPayload): string {
  const bytes = Buffer.alloc(20);
  Buffer.from(payload.linkId.replaceAll('-', ''), 'hex').copy(bytes, 0);
  bytes.writeUInt32BE(Math.floor(payload.expiresAtMs / 1000), 16);
  return signToken(secret, 'v1', bytes.toString('base64url'));
}

export function verifyApprovalLink(input: { secret: Buffer; token: string; nowMilliseconds: number }): LinkVerification {
  // Signature before parsing: nothing of an unsigned payload is looked at.
  const body = openToken(input.secret, 'v1', input.token, 200);
  if (typeof body !== 'string') return { ok: false, reason: body.reason };
  const bytes = Buffer.from(body, 'base64url');
  if (bytes.length !== 20) return { ok: false, reason: 'malformed' };
  const hex = bytes.subarray(0, 16).toString('hex');
  const linkId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const expiresAtMs = bytes.readUInt32BE(16) * 1000;
  if (expiresAtMs <= input.nowMilliseconds) return { ok: false, reason: 'expired' };
  return { ok: true, payload: { linkId, expiresAtMs } };
}

/**
 * The CSRF token of a link's page: bound to the link, so a form from one link cannot be replayed
 * against another, and unguessable without the server secret. Sent as a hidden field and a
 * SameSite=Strict cookie; the POST must carry both, equal to this.
 */
export function csrfTokenFor(secret: Buffer, linkId: string): string {
  return mac(secret, `csrf.${linkId}`).toString('base64url');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
