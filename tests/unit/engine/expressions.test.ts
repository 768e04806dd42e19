import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import {
  compileBareExpression,
  compileTemplate,
  evaluateCondition,
  Expression,
  resolveTemplate,
  resolveValue,
  rootReferences,
} from '../../../src/engine/expressions.ts';
import type { ExpressionContext } from '../../../src/engine/expressions.ts';

const context: ExpressionContext = {
  event: {
    event_type: 'ssh.brute_force',
    severity: 2,
    host: { name: 'web-01' },
    observables: { ip: ['198.51.100.7', '203.0.113.9'], domain: ['evil.example'], url: [], hash: [] },
    raw: { note: 'attacker wrote ${{ tenant.vault_key }} here' },
  },
  inputs: { source_ip: '203.0.113.9', threshold: 70 },
  steps: {
    enrich_ip: { status: 'succeeded', output: { score: 91, sources: ['abuseipdb', 'virustotal'] } },
  },
  tenant: { id: 't-1', name: 'Acme', vault_key: 'must-not-leak' },
};

async function failure(promise: Promise<unknown>): Promise<ReflexError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

function compileFailure(fn: () => unknown): ReflexError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ReflexError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

describe('expressions over the run context', () => {
  it('read event, inputs, steps and tenant, as root paths and as $variables', async () => {
    expect(await Expression.compile('event.observables.ip[1]', 'f').evaluate(context)).toBe('203.0.113.9');
    expect(await Expression.compile('steps.enrich_ip.output.score >= inputs.threshold', 'f').evaluate(context)).toBe(true);
    expect(await Expression.compile('tenant.name', 'f').evaluate(context)).toBe('Acme');
    // Inside a predicate the context item is the observable; $inputs still reaches the run's inputs.
    expect(await Expression.compile('event.observables.ip[$ != $inputs.source_ip]', 'f').evaluate(context)).toBe('198.51.100.7');
    expect(await Expression.compile('$inputs.source_ip in event.observables.ip', 'f').evaluate(context)).toBe(true);
  });

  it('returns plain JSON: sequences become arrays, functions disappear', async () => {
    const list = await Expression.compile('steps.enrich_ip.output.sources', 'f').evaluate(context);
    expect(list).toEqual(['abuseipdb', 'virustotal']);
    expect(Array.isArray(list)).toBe(true);
    expect(await Expression.compile('{"f": function($x){ $x }, "n": 1}', 'f').evaluate(context)).toEqual({ n: 1 });
    expect(await Expression.compile('event.nothing.here', 'f').evaluate(context)).toBeUndefined();
  });

  it('tests conditions with JSONata truthiness', async () => {
    expect(await evaluateCondition('steps.enrich_ip.output.score > 90', context, 'if')).toBe(true);
    expect(await evaluateCondition('steps.missing.output.score > 90', context, 'if')).toBe(false);
    expect(await evaluateCondition('[]', context, 'if')).toBe(false);
    expect(await evaluateCondition('""', context, 'if')).toBe(false);
    expect(await evaluateCondition('event.host', context, 'if')).toBe(true);
    // Authors used to GitHub Actions wrap conditions; both spellings mean the same.
    expect(await evaluateCondition('${{ inputs.threshold = 70 }}', context, 'if')).toBe(true);
  });
});

describe('the ${{ }} convention for with: values', () => {
  it('keeps strings without ${{ }} literal, even when they look like paths', async () => {
    expect(await resolveTemplate('203.0.113.9', context, 'with.ip')).toBe('203.0.113.9');
    expect(await resolveTemplate('event.host.name', context, 'with.x')).toBe('event.host.name');
    expect(await resolveTemplate('$count(1)', context, 'with.x')).toBe('$count(1)');
    expect(await resolveValue({ ttl: '24h', n: 3, ok: true, none: null }, context, 'with')).toEqual({ ttl: '24h', n: 3, ok: true, none: null });
  });

  it('gives a whole ${{ expr }} its value with its type', async () => {
    expect(await resolveTemplate('${{ steps.enrich_ip.output.score }}', context, 'with.score')).toBe(91);
    expect(await resolveTemplate('  ${{ steps.enrich_ip.output.sources }} ', context, 'with.s')).toEqual(['abuseipdb', 'virustotal']);
    expect(await resolveTemplate('${{ {"a": {"b": inputs.threshold}} }}', context, 'with.o')).toEqual({ a: { b: 70 } });
  });

  it('renders mixed text and expressions as a string', async () => {
    expect(await resolveTemplate('Blocked ${{ inputs.source_ip }} (score ${{ steps.enrich_ip.output.score }})', context, 'text')).toBe(
      'Blocked 203.0.113.9 (score 91)',
    );
    expect(await resolveTemplate('sources: ${{ steps.enrich_ip.output.sources }}; missing: [${{ nope }}]', context, 't')).toBe(
      'sources: ["abuseipdb","virustotal"]; missing: []',
    );
    expect(await resolveTemplate('${{ "}}" }} and ${{ \'${{\' }}', context, 't')).toBe('}} and ${{');
  });

  it('walks maps and lists, dropping keys whose expression found nothing', async () => {
    const resolved = await resolveValue(
      { ip: '${{ inputs.source_ip }}', reason: 'score ${{ steps.enrich_ip.output.score }}', extra: '${{ inputs.nope }}', list: ['${{ tenant.id }}', 'x'] },
      context,
      'with',
    );
    expect(resolved).toEqual({ ip: '203.0.113.9', reason: 'score 91', list: ['t-1', 'x'] });
  });

  it('treats values that come from data as data: a ${{ }} inside an event is never evaluated', async () => {
    const note = await resolveTemplate('${{ event.raw.note }}', context, 'with.note');
    expect(note).toBe('attacker wrote ${{ tenant.vault_key }} here');
    expect(JSON.stringify(await resolveValue({ a: '${{ event.raw }}' }, context, 'with'))).not.toContain('must-not-leak');
  });
});

describe('expression errors name the expression and the field', () => {
  it('on syntax errors, at compile time', () => {
    const err = compileFailure(() => Expression.compile('steps.enrich_ip.output.score >', 'steps[1].if'));
    expect(err.code).toBe('input.invalid');
    expect(err.retryable).toBe(false);
    expect(err.message).toBe('steps[1].if: expression `steps.enrich_ip.output.score >` does not compile: Unexpected end of expression (at character 30)');
    expect(err.details).toMatchObject({ expression: 'steps.enrich_ip.output.score >', field: 'steps[1].if', jsonataCode: 'S0207' });
  });

  it('refuses $eval, which would turn event data into code', () => {
    for (const source of ['$eval(event.raw.note)', '( $run := $eval; $run("1") )']) {
      const err = compileFailure(() => Expression.compile(source, 'steps[0].with.x'));
      expect(err.code).toBe('input.invalid');
      expect(err.message).toContain('uses $eval, which would run data as code');
    }
  });

  it('on an unterminated or empty ${{', () => {
    expect(compileFailure(() => compileTemplate('block ${{ inputs.ip', 'with.ip')).message).toBe(
      'with.ip: expression `block ${{ inputs.ip` has a `${{` without a closing `}}`',
    );
    expect(compileFailure(() => compileTemplate('x ${{   }}', 'with.ip')).message).toContain('has an empty `${{ }}`');
    expect(compileFailure(() => compileBareExpression('a ${{ b }}', 'if')).message).toContain('must be a single expression');
  });

  it('on runtime errors', async () => {
    const err = await failure(Expression.compile('$number(event.host.name)', 'steps[0].with.n').evaluate(context));
    expect(err.code).toBe('input.invalid');
    expect(err.message).toBe('steps[0].with.n: expression `$number(event.host.name)` failed: Unable to cast value to a number: "web-01"');
  });

  it('stops an endless loop at the time limit', async () => {
    const started = Date.now();
    const err = await failure(
      Expression.compile('( $spin := function($x){ $spin($x) }; $spin(1) )', 'if', { timeoutMs: 100, maxDepth: 500, maxSequence: 1000 }).evaluate({}),
    );
    expect(err.message).toBe('if: expression `( $spin := function($x){ $spin($x) }; $spin(1) )` timed out after 100 ms');
    expect(err.details?.['reason']).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('stops runaway recursion and huge sequences', async () => {
    const deep = await failure(Expression.compile('( $f := function($x){ 1 + $f($x) }; $f(1) )', 'if').evaluate({}));
    expect(deep.details?.['reason']).toBe('depth');
    const huge = await failure(Expression.compile('$count([1..5000000])', 'if').evaluate({}));
    expect(huge.details?.['reason']).toBe('sequence');
  });
});

describe('rootReferences', () => {
  it('finds root reads of steps and inputs, not relative paths inside predicates', () => {
    const refs = rootReferences(
      Expression.compile("steps.enrich.output.score > inputs.limit and $steps.parse.status = 'ok' and event.items[steps = 1]", 'x'),
    );
    const pairs = refs.filter((r) => r.root === 'steps' || r.root === 'inputs').map((r) => `${r.root}.${r.name ?? ''}`);
    expect(pairs).toEqual(['steps.enrich', 'inputs.limit', 'steps.parse']);
  });
});
