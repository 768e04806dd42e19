import { isIP } from 'node:net';
import { ReflexError } from '../../errors.ts';

export interface BlockAddressRules {
  /** Accept `a.b.c.d/nn` and `v6::/nn`. Default true. */
  allowCidr?: boolean;
  /** Shortest prefix accepted: blocking 0.0.0.0/0 would cut the tenant off the internet. Default /8 and /32. */
  minPrefixV4?: number;
  minPrefixV6?: number;
}

/**
 * Checks and normalises an address a playbook wants blocked: trimmed, IPv6 lower-case, a CIDR
 * prefix within range and not absurdly wide. Anything else is `input.invalid`, before a firewall
 * sees it.
 *
 * @example
 * normaliseBlockAddress(' 2001:DB8::1 ') // '2001:db8::1'
 * normaliseBlockAddress('198.51.100.0/24') // '198.51.100.0/24'
 */
export function normaliseBlockAddress(vendor: string, raw: string, rules: BlockAddressRules = {}): string {
  const text = typeof raw === 'string' ? raw.trim() : '';
  const [ip = '', prefix, ...rest] = text.split('/');
  const version = isIP(ip);
  const bad = (why: string): ReflexError =>
    new ReflexError('input.invalid', `${vendor}: cannot block ${JSON.stringify(text.slice(0, 100))}: ${why}`, {
      safeMessage: `Cannot block ${text.slice(0, 100) || 'an empty address'}: ${why}.`,
    });
  if (version === 0 || rest.length > 0) throw bad('not an IP address or CIDR');
  const address = version === 6 ? ip.toLowerCase() : ip;
  if (prefix === undefined) return address;
  if (rules.allowCidr === false) throw bad(`${vendor} blocks single addresses only, not networks`);
  const max = version === 4 ? 32 : 128;
  const min = version === 4 ? (rules.minPrefixV4 ?? 8) : (rules.minPrefixV6 ?? 32);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) throw bad('the prefix length is out of range');
  if (Number(prefix) < min) throw bad(`a /${prefix} network is wider than the /${min} allowed`);
  return `${address}/${Number(prefix)}`;
}
