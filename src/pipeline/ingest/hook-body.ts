import { ReflexError, toReflexError } from '../../errors.ts';
import { isUrgent } from '../jobs.ts';
import { normalize, type NormalizerSource } from '../normalize/index.ts';

/**
 * Splits a hook body into source payloads and checks each one by normalizing it (a pure dry run),
 * so a sender learns at once, with the line and field, what is wrong; a batch with one bad line is
 * refused whole and nothing from it is queued.
 *
 * Bodies: one JSON object, a JSON array of objects, NDJSON (one object per line), or for OpenVAS
 * the GVM XML report / CSV export as one payload.
 */
export interface ParsedHookBody {
  items: unknown[];
  /** Number of events the items normalize to (an OpenVAS report holds many). */
  eventCount: number;
  /** Events per item, in item order. */
  counts: number[];
  /** Per item: whether any of its events is SEV1 or SEV2 (queued ahead of the routine backlog). */
  urgent: boolean[];
}

function badLine(line: number, message: string, field?: string): ReflexError {
  return new ReflexError('input.invalid', `line ${line}: ${message}`, {
    safeMessage: `Line ${line}${field ? `, field ${field}` : ''}: ${message}. Nothing from this request was queued.`,
    details: { line, ...(field ? { field } : {}) },
  });
}

export function parseHookBody(source: NormalizerSource, contentType: string | undefined, body: Buffer, ctx: { tenantId: string; genericName?: string }): ParsedHookBody {
  const text = body.toString('utf8');
  if (text.trim() === '') throw new ReflexError('input.invalid', 'empty body', { safeMessage: 'The request body is empty.' });
  let items: unknown[];
  const ct = (contentType ?? '').toLowerCase();
  const trimmed = text.trimStart();
  if (source === 'openvas' && (ct.includes('xml') || ct.includes('csv') || trimmed.startsWith('<') || !/^[[{]/.test(trimmed))) {
    items = [text];
  } else {
    items = [];
    let whole: unknown;
    let wholeOk = false;
    try {
      whole = JSON.parse(text);
      wholeOk = true;
    } catch {
      // not one JSON document: NDJSON
    }
    if (wholeOk) {
      if (Array.isArray(whole)) items = whole;
      else items = [whole];
    } else {
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!.trim();
        if (line === '') continue;
        try {
          items.push(JSON.parse(line));
        } catch (err) {
          throw badLine(i + 1, `not valid JSON (${(err as Error).message})`);
        }
      }
    }
    items.forEach((item, i) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) throw badLine(i + 1, 'expected a JSON object');
    });
  }
  if (items.length === 0) throw new ReflexError('input.invalid', 'no alerts in body', { safeMessage: 'The request body holds no alerts.' });
  const counts: number[] = [];
  const urgent: boolean[] = [];
  items.forEach((item, i) => {
    try {
      const events = normalize(source, item, { tenantId: ctx.tenantId, checkOnly: true, ...(ctx.genericName ? { genericName: ctx.genericName } : {}) });
      counts.push(events.length);
      urgent.push(events.some((e) => isUrgent(e.severity)));
    } catch (err) {
      const e = toReflexError(err);
      if (e.code !== 'input.invalid') throw e;
      const field = typeof e.details?.field === 'string' ? e.details.field : undefined;
      throw badLine(i + 1, e.safeMessage.replace(/\.$/, ''), field);
    }
  });
  return { items, eventCount: counts.reduce((a, b) => a + b, 0), counts, urgent };
}
