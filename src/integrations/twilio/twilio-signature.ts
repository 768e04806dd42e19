import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Twilio's request signature (`X-Twilio-Signature`), as twilio.com/docs/usage/webhooks/webhooks-security
 * ("Authenticate with signatures") and the helper libraries' RequestValidator compute it: take the
 * full URL Twilio requested (scheme, host, path and query string), append every POST parameter
 * sorted by name as `name + value` with no separators, HMAC-SHA1 that with the account's auth
 * token as the key, and base64 the digest.
 *
 * Pure, no clock: Twilio signs no timestamp, so the signature proves who sent a request, not
 * when. Replays are the caller's to refuse (a one-time claim).
 *
 * @example
 * twilioSignature('12345', 'https://mycompany.com/myapp.php?foo=1&bar=2', [['Digits', '1234'], ['CallSid', 'CA1234567890ABCDE']])
 */
export function twilioSignature(authToken: string, url: string, params: readonly (readonly [string, string])[]): string {
  const sorted = [...params].sort(([a, av], [b, bv]) => compare(a, b) || compare(av, bv));
  let data = url;
  for (const [name, value] of sorted) data += name + value;
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

export interface TwilioSignatureCheck {
  authToken: string;
  /** The URL as Twilio requested it (our public URL, not what a proxy rewrote it to). */
  url: string;
  /** The form parameters as received, duplicates included. */
  params: readonly (readonly [string, string])[];
  /** The `X-Twilio-Signature` header; missing or empty never verifies. */
  signature: string | undefined;
}

/**
 * Whether the signature is Twilio's for this URL and body. Like Twilio's own validators, the
 * URL is tried as given and with the scheme's default port added or removed, since Twilio may
 * sign either form.
 */
export function verifyTwilioSignature(check: TwilioSignatureCheck): boolean {
  const given = Buffer.from(check.signature ?? '', 'utf8');
  if (given.length === 0 || !check.authToken) return false;
  return urlForms(check.url).some((url) => {
    const expected = Buffer.from(twilioSignature(check.authToken, url, check.params), 'utf8');
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}

function urlForms(raw: string): string[] {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return [raw];
  }
  const defaultPort = url.protocol === 'https:' ? '443' : url.protocol === 'http:' ? '80' : undefined;
  // URL drops a default port it is given, so an empty `port` means "default or none".
  if (defaultPort === undefined || url.port !== '' || url.username !== '') return [raw];
  const tail = `${url.pathname}${url.search}`;
  return [...new Set([raw, `${url.protocol}//${url.host}${tail}`, `${url.protocol}//${url.host}:${defaultPort}${tail}`])];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
