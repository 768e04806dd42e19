import { ReflexError } from '../../errors.ts';
import { parseDuration } from '../manifest/duration.ts';

/**
 * Reading an action's resolved `with:` at run time. The validator checked the manifest's shape at
 * load time, but a whole `${{ expression }}` only has a type once it runs (an event field may be a
 * number, a list or missing), so each executor checks what it got and refuses with the field's
 * name before any vendor is called.
 *
 * @example
 * const ip = requiredString(input, 'firewall.block', 'ip');
 * const ttlSeconds = optionalDurationSeconds(input, 'firewall.block', 'ttl'); // '24h' -> 86400
 */
function invalid(action: string, field: string, expected: string, value: unknown): ReflexError {
  const got = value === undefined ? 'nothing' : Array.isArray(value) ? 'a list' : typeof value;
  return new ReflexError('input.invalid', `${action}: with.${field} must be ${expected}, got ${got}`, {
    retryable: false,
    safeMessage: `${action}: ${field} must be ${expected}.`,
    details: { field },
  });
}

export function requiredString(input: Record<string, unknown>, action: string, field: string): string {
  const v = input[field];
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string' || v.trim() === '') throw invalid(action, field, 'a non-empty string', v);
  return v.trim();
}

export function optionalString(input: Record<string, unknown>, action: string, field: string): string | undefined {
  const v = input[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw invalid(action, field, 'a string', v);
  return v.trim() === '' ? undefined : v.trim();
}

export function optionalBoolean(input: Record<string, unknown>, action: string, field: string): boolean | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(action, field, 'true or false', v);
  return v;
}

/** One string or a list of strings (`string_list` in the catalogue). */
export function stringList(input: Record<string, unknown>, action: string, field: string, required: boolean): string[] | undefined {
  const v = input[field];
  if (v === undefined || v === null) {
    if (required) throw invalid(action, field, 'a string or a list of strings', v);
    return undefined;
  }
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))) throw invalid(action, field, 'a string or a list of strings', v);
  const out = list.map((x) => String(x).trim()).filter((x) => x !== '');
  if (required && out.length === 0) throw invalid(action, field, 'a string or a list of strings', v);
  return out;
}

export function optionalObject(input: Record<string, unknown>, action: string, field: string): Record<string, unknown> | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(action, field, 'a map', v);
  return v as Record<string, unknown>;
}

/** A manifest duration (`30s`, `24h`, `1h30m`) as whole seconds, rounded up. */
export function optionalDurationSeconds(input: Record<string, unknown>, action: string, field: string): number | undefined {
  const v = input[field];
  if (v === undefined || v === null || v === '') return undefined;
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  if (ms === undefined) throw invalid(action, field, 'a duration such as 30m or 24h', v);
  return Math.ceil(ms / 1000);
}
