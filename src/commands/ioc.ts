import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { z } from 'zod';
import type { IntelObservable } from '../integrations/ports.ts';

/**
 * Indicators of compromise as analysts paste them: an IPv4/IPv6 address, a domain, an http(s)
 * or ftp URL, or an MD5/SHA-1/SHA-256 file hash. Defanged forms (`hxxp://evil[.]com`,
 * `198.51.100[.]7`) are refanged first, because that is how IOCs travel in tickets and chat.
 *
 * Anything else is refused before any vendor is asked, so `"; rm -rf /` or a typo never reaches a
 * third party (or a shell, a URL path or a log line downstream) as if it were an indicator.
 */
const HASH = /^(?:[a-f0-9]{32}|[a-f0-9]{40}|[a-f0-9]{64})$/i;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const TLD = /^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/;

export function refang(value: string): string {
  return value
    .trim()
    .replace(/^hxxp(s?):/i, 'http$1:')
    .replace(/^fxp:/i, 'ftp:')
    .replace(/[[({]\.[\])}]/g, '.')
    .replace(/\[:\]/g, ':')
    .replace(/\[\/\/\]/g, '//')
    .replace(/\[dot\]/gi, '.');
}

export function isDomainName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  const labels = value.split('.');
  if (labels.length < 2) return false;
  return labels.every((l) => LABEL.test(l)) && TLD.test(labels[labels.length - 1]!);
}

function asDomain(value: string): string | undefined {
  const trimmed = value.replace(/\.$/, '');
  // Letters, digits, dot, hyphen, underscore only: domainToASCII would happily cut `evil.test/x` to a host.
  if (/[^\p{L}\p{M}\p{N}._-]/u.test(trimmed)) return undefined;
  // Internationalised names become punycode: vendors index the ASCII form.
  const ascii = domainToASCII(trimmed.toLowerCase());
  return ascii && isDomainName(ascii) ? ascii : undefined;
}

function asUrl(value: string): string | undefined {
  if (value.length > 2048 || /\s/.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (!['http:', 'https:', 'ftp:'].includes(url.protocol)) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0 && !isDomainName(host)) return undefined;
  // Vendors key URLs on the text as seen; keep the analyst's form, only refanged.
  return value;
}

/** The observable `value` denotes, or undefined when it is none of the kinds we look up. */
export function parseObservable(raw: string): IntelObservable | undefined {
  const value = refang(raw);
  if (value === '' || value.length > 2048) return undefined;
  if (HASH.test(value)) return { kind: 'hash', value: value.toLowerCase() };
  const bare = value.replace(/^\[(.*)\]$/, '$1');
  // Zone ids (fe80::1%eth0) name an interface on the sender's machine, not an address to look up.
  if (!bare.includes('%') && isIP(bare) !== 0) return { kind: 'ip', value: bare.toLowerCase() };
  if (value.includes('://')) {
    const url = asUrl(value);
    return url === undefined ? undefined : { kind: 'url', value: url };
  }
  const domain = asDomain(value);
  return domain === undefined ? undefined : { kind: 'domain', value: domain };
}

/** zod form of `parseObservable`, with the message analysts see. */
export const observableSchema = z.string({ error: 'missing <ioc>' }).transform((raw, ctx) => {
  const o = parseObservable(raw);
  if (!o) {
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(raw.slice(0, 80))} is not an IP address, domain, URL or file hash (MD5, SHA-1, SHA-256)`,
    });
    return z.NEVER;
  }
  return o;
});
