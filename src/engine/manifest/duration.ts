/**
 * Durations in manifests are written the way on-call engineers say them: `30s`, `15m`, `24h`,
 * `7d`, or compounds such as `1h30m`. Bare numbers are refused on purpose: `ttl: 86400` reads as
 * seconds to one person and milliseconds to the next, and a block that lasts 1000 times longer
 * than intended is a real incident.
 *
 * @example
 * parseDuration('1h30m'); // 5_400_000
 */
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 } as const;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Milliseconds for a duration literal, or `undefined` when the text is not one. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const match = DURATION.exec(trimmed);
  if (!match) return undefined;
  const [, d, h, m, s] = match;
  const ms =
    Number(d ?? 0) * UNIT_MS.d + Number(h ?? 0) * UNIT_MS.h + Number(m ?? 0) * UNIT_MS.m + Number(s ?? 0) * UNIT_MS.s;
  // `0s` would mean "no timeout" to some readers and "expire at once" to others; neither is wanted.
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

/** Renders milliseconds back into the manifest notation, largest units first (`90m` -> `1h30m`). */
export function formatDuration(ms: number): string {
  let rest = Math.round(ms / 1000) * 1000;
  let out = '';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * UNIT_MS[unit];
  }
  return out === '' ? '0s' : out;
}
