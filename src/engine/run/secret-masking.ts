/**
 * What the execution log, the timeline and the audit chain may show of a step's input and output.
 *
 * Two rules: values of a key that names a credential (`authorization`, `token`, `password`,
 * `api_key`, …) are replaced whole, and every occurrence of a sensitive value (a playbook input
 * marked `sensitive`, a secret the step read from the vault) is cut out of any string, wherever
 * it ended up (a URL, a message, a vendor's echo of our request).
 *
 * @example
 * maskSecrets({ url: 'https://x/hook?t=s3cr3t-token', headers: { Authorization: 'Bearer abc' } }, ['s3cr3t-token']);
 * // { url: 'https://x/hook?t=[masked]', headers: { Authorization: '[masked]' } }
 */
export const MASK = '[masked]';

// `secret` alone is not here on purpose: http.request's `secret` holds a vault secret's *name*.
const SECRET_KEY =
  /^(?:authorization|proxy-authorization|cookie|set-cookie|password|passwd|api[_-]?key|apikey|x-api-key|token|private[_-]?key)$|[_-](?:token|password|secret|api[_-]?key)$/i;

/** Values shorter than this are not masked inside strings: they would shred ordinary words. */
const MIN_SECRET_LENGTH = 4;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function maskSecrets(value: unknown, sensitive: readonly string[] = [], depth = 0): unknown {
  const needles = sensitive.filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  return mask(value, needles, depth);
}

function mask(value: unknown, needles: readonly string[], depth: number): unknown {
  if (depth > 50) return MASK;
  if (typeof value === 'string') {
    let out = value;
    for (const n of needles) if (out.includes(n)) out = out.split(n).join(MASK);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => mask(v, needles, depth + 1));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = isSecretKey(k) && v !== null && v !== undefined ? MASK : mask(v, needles, depth + 1);
    return out;
  }
  return value;
}
