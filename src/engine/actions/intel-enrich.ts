import { isIP } from 'node:net';
import { ReflexError } from '../../errors.ts';
import type { IntelOutcome } from '../../commands/ports.ts';
import type { IntelObservable, IntelObservableKind } from '../../integrations/ports.ts';
import type { ActionExecutor } from './registry.ts';

/**
 * The `intel.enrich` action over the intel lookup the chat `enrich` command uses (every provider
 * the tenant has a key for, in parallel; src/commands/intel-lookup.ts).
 *
 * Output: `{ score, verdict, observables: [{ value, kind, score, verdict, providers }] }` where
 * `score` is the highest score of any observable (0-100), so `steps.enrich.output.score >= 70`
 * reads naturally. A lookup where no provider answered fails the step (retryable when a provider
 * was only unavailable; not when none is configured).
 *
 * @example
 * registry.register('intel.enrich', createIntelEnrichExecutor(createIntelLookup(vault, providers)));
 */
export type IntelLookupFn = (tenantId: string, observable: IntelObservable) => Promise<IntelOutcome[]>;

const VERDICT_RANK = { unknown: 0, harmless: 1, suspicious: 2, malicious: 3 } as const;
type Verdict = keyof typeof VERDICT_RANK;

/** The kind of an observable from its shape, when the step did not say. */
export function guessObservableKind(value: string): IntelObservableKind {
  if (isIP(value.split('/')[0] ?? '') !== 0) return 'ip';
  if (/^https?:\/\//i.test(value)) return 'url';
  if (/^(?:[a-f0-9]{32}|[a-f0-9]{40}|[a-f0-9]{64})$/i.test(value)) return 'hash';
  return 'domain';
}

export function createIntelEnrichExecutor(lookup: IntelLookupFn): ActionExecutor {
  return async (input, ctx) => {
    const raw = input['observables'];
    const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string' && v.trim() !== '');
    if (values.length === 0) {
      throw new ReflexError('input.invalid', 'intel.enrich: no observable to look up', { retryable: false, safeMessage: 'intel.enrich got no observable.' });
    }
    const given = typeof input['type'] === 'string' ? (input['type'] as IntelObservableKind) : undefined;
    const results = [];
    let anyAnswer = false;
    let anyUnavailable = false;
    for (const value of values.slice(0, 50)) {
      const kind = given ?? guessObservableKind(value);
      const outcomes = await lookup(ctx.tenantId, { kind, value });
      let score = 0;
      let verdict: Verdict = 'unknown';
      const providers: Record<string, unknown> = {};
      for (const o of outcomes) {
        if (o.status === 'ok') {
          anyAnswer = true;
          score = Math.max(score, o.verdict.score);
          if (VERDICT_RANK[o.verdict.verdict] > VERDICT_RANK[verdict]) verdict = o.verdict.verdict;
          providers[o.provider] = { verdict: o.verdict.verdict, score: o.verdict.score, summary: o.verdict.summary };
        } else {
          if (o.status === 'unavailable') anyUnavailable = true;
          providers[o.provider] = { status: o.status };
        }
      }
      results.push({ value, kind, score, verdict, providers });
      ctx.log(`${kind} ${value}: ${verdict} (${score})`);
    }
    if (!anyAnswer) {
      throw new ReflexError(anyUnavailable ? 'upstream.unavailable' : 'config.invalid', `intel.enrich: no intel provider answered for tenant ${ctx.tenantId}`, {
        retryable: anyUnavailable,
        safeMessage: anyUnavailable ? 'The intel providers are unavailable.' : 'No intel provider is configured for this tenant.',
      });
    }
    const top = results.reduce((a, b) => (b.score > a.score ? b : a));
    const verdict = results.reduce<Verdict>((v, r) => (VERDICT_RANK[r.verdict as Verdict] > VERDICT_RANK[v] ? (r.verdict as Verdict) : v), 'unknown');
    return { score: top.score, verdict, observables: results };
  };
}
