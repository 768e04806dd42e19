import { describe, expect, it } from 'vitest';
import { Slots } from '../../../src/engine/sandbox/slots.ts';

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('Slots (script steps at once)', () => {
  it('lets at most `size` callers in and the rest follow in arrival order', async () => {
    const slots = new Slots(2);
    const gates = [gate(), gate(), gate(), gate()];
    const started: number[] = [];
    const runs = gates.map((g, i) => slots.run(async () => (started.push(i), await g.promise, i)));
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(slots.usage).toEqual({ active: 2, waiting: 2 });
    gates[1]!.open();
    await runs[1];
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.open();
    gates[2]!.open();
    gates[3]!.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(started).toEqual([0, 1, 2, 3]);
    expect(slots.usage).toEqual({ active: 0, waiting: 0 });
  });

  it('gives the slot back when the callback throws', async () => {
    const slots = new Slots(1);
    await expect(slots.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await slots.run(async () => 'next')).toBe('next');
    expect(slots.usage).toEqual({ active: 0, waiting: 0 });
  });

  it('drops a waiter whose step timed out: its script never starts', async () => {
    const slots = new Slots(1);
    const held = gate();
    const first = slots.run(() => held.promise);
    const ac = new AbortController();
    let ran = false;
    const late = slots.run(async () => void (ran = true), ac.signal);
    ac.abort(new Error('step timed out'));
    await expect(late).rejects.toThrow('step timed out');
    expect(slots.usage).toEqual({ active: 1, waiting: 0 });
    held.open();
    await first;
    expect(ran).toBe(false);
    expect(slots.usage).toEqual({ active: 0, waiting: 0 });
  });
});
