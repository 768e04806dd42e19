import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../../src/errors.ts';
import type { AlertBatch } from '../../../src/pipeline/jobs.ts';
import type { BatchOutcome } from '../../../src/pipeline/stages/alert-batch.ts';
import { coalesce } from '../../../src/pipeline/stages/stage-coalescer.ts';

/** A handler that records each call's batch and answers every alert with its id's length. */
function recorder(opts: { hold?: Promise<void>; holdOnly?: string; poison?: string } = {}) {
  const calls: AlertBatch[] = [];
  const perBatch = async (batch: AlertBatch): Promise<BatchOutcome<number>> => {
    calls.push({ ...batch, alertIds: [...batch.alertIds] });
    if (!opts.holdOnly || batch.alertIds.includes(opts.holdOnly)) await opts.hold;
    if (opts.poison && batch.alertIds.includes(opts.poison)) throw new ReflexError('internal', 'invalid input syntax for type json');
    return { results: new Map(batch.alertIds.map((id) => [id, id.length])), failed: new Map() };
  };
  return { calls, perBatch };
}

describe('stage coalescer', () => {
  it('handles a lone job at once, and merges the jobs that arrive meanwhile into one call per tenant', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const r = recorder({ hold });
    const merged = coalesce(r.perBatch, { name: 'test', maxConcurrent: 1 });
    const first = merged({ tenantId: 'acme', alertIds: ['a1'] });
    // While the first call is in flight, five jobs of two tenants queue up.
    const later = [
      merged({ tenantId: 'acme', alertIds: ['a2', 'a3'] }),
      merged({ tenantId: 'acme', alertIds: ['a4'] }),
      merged({ tenantId: 'globex', alertIds: ['g1'] }),
      merged({ tenantId: 'acme', alertIds: ['a5'] }),
      merged({ tenantId: 'globex', alertIds: ['g2', 'g3'] }),
    ];
    release();
    const outs = await Promise.all([first, ...later]);
    expect(r.calls.map((c) => [c.tenantId, c.alertIds])).toEqual([
      ['acme', ['a1']],
      ['acme', ['a2', 'a3', 'a4', 'a5']],
      ['globex', ['g1', 'g2', 'g3']],
    ]);
    // Each job gets exactly its own alerts' results back.
    expect(outs.map((o) => [...o.results.keys()])).toEqual([['a1'], ['a2', 'a3'], ['a4'], ['g1'], ['a5'], ['g2', 'g3']]);
    expect(outs.every((o) => o.failed.size === 0)).toBe(true);
  });

  it('isolates a poison alert: a merged call that throws is redone alert by alert, and only that alert fails', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const r = recorder({ hold, poison: 'bad' });
    const merged = coalesce(r.perBatch, { name: 'test', maxConcurrent: 1 });
    const warmup = merged({ tenantId: 'acme', alertIds: ['w1'] });
    const a = merged({ tenantId: 'acme', alertIds: ['ok1', 'bad'] });
    const b = merged({ tenantId: 'acme', alertIds: ['ok2'] });
    release();
    const [, outA, outB] = await Promise.all([warmup, a, b]);
    expect([...outA.results.keys()]).toEqual(['ok1']);
    expect([...outA.failed.keys()]).toEqual(['bad']);
    expect(String(outA.failed.get('bad'))).toMatch(/invalid input syntax/);
    expect([...outB.results.keys()]).toEqual(['ok2']);
    // The merged call, then one call per alert of it.
    expect(r.calls.map((c) => c.alertIds)).toEqual([['w1'], ['ok1', 'bad', 'ok2'], ['ok1'], ['bad'], ['ok2']]);
  });

  it('keeps urgent jobs out of a routine merge, in a lane of their own', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const r = recorder({ hold, holdOnly: 'r1' });
    const merged = coalesce(r.perBatch, { name: 'test', maxConcurrent: 1 });
    const routine = merged({ tenantId: 'acme', alertIds: ['r1'] });
    // The routine lane is busy; the urgent job does not wait for it.
    const urgent = await merged({ tenantId: 'acme', alertIds: ['u1'], urgent: true }).then((o) => [...o.results.keys()]);
    expect(urgent).toEqual(['u1']);
    release();
    await routine;
    expect(r.calls.map((c) => c.alertIds)).toEqual([['r1'], ['u1']]);
  });
});
