/**
 * What each playbook input type accepts. Used to check manifest defaults at load time and, by the
 * engine, the values extracted from an event or typed by an analyst before a run starts, so a
 * `firewall.block` never receives "N/A" as an IP address.
 */
import { isIP } from 'node:net';
import { parseDuration } from './duration.ts';
import type { InputType } from './types.ts';

const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i;
const EMAIL = /^[^\s@<>()[\],;:"]+@[^\s@<>()[\],;:"]+\.[^\s@<>()[\],;:"]+$/;
// md5, sha1, sha256, sha512: the lengths intel providers accept.
const HASH = /^(?:[a-f0-9]{32}|[a-f0-9]{40}|[a-f0-9]{64}|[a-f0-9]{128})$/i;
const NAME = /^[^\s\u0000-\u001f]{1,256}$/;

function checkOne(type: InputType, value: unknown): string | undefined {
  switch (type) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? undefined : 'expected a number';
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'expected true or false';
    default:
      break;
  }
  if (typeof value !== 'string') return `expected ${type === 'ip' ? 'an' : 'a'} ${type} as a string`;
  switch (type) {
    case 'ip': {
      const [address, prefix, ...rest] = value.split('/');
      const version = isIP(address ?? '');
      if (version === 0 || rest.length > 0) return 'expected an IPv4 or IPv6 address';
      if (prefix !== undefined) {
        const bits = Number(prefix);
        if (!/^\d{1,3}$/.test(prefix) || bits > (version === 4 ? 32 : 128)) return 'expected a CIDR prefix length';
      }
      return undefined;
    }
    case 'domain':
      return DOMAIN.test(value) ? undefined : 'expected a domain name';
    case 'url': {
      try {
        const url = new URL(value);
        return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'expected an http(s) URL';
      } catch {
        return 'expected an http(s) URL';
      }
    }
    case 'email':
      return EMAIL.test(value) ? undefined : 'expected an e-mail address';
    case 'hash':
      return HASH.test(value) ? undefined : 'expected an MD5, SHA-1, SHA-256 or SHA-512 hex digest';
    case 'user':
    case 'host':
      return NAME.test(value) ? undefined : `expected a ${type} name without spaces`;
    case 'duration':
      return parseDuration(value) === undefined ? 'expected a duration such as 30s, 15m, 24h or 7d' : undefined;
    case 'string':
      return undefined;
    default:
      return undefined;
  }
}

/**
 * `undefined` when `value` is acceptable for an input of `type` (a list of them when `list`),
 * otherwise a short reason.
 *
 * @example
 * checkInputValue('ip', false, '203.0.113.7'); // undefined
 * checkInputValue('ip', false, 'N/A');         // 'expected an IPv4 or IPv6 address'
 */
export function checkInputValue(type: InputType, list: boolean, value: unknown): string | undefined {
  if (!list) return checkOne(type, value);
  if (!Array.isArray(value)) return `expected a list of ${type} values`;
  for (const [i, item] of value.entries()) {
    const problem = checkOne(type, item);
    if (problem) return `item ${i}: ${problem}`;
  }
  return undefined;
}
