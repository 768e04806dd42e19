import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../../src/store/group-commit.ts';

/** A flush the test releases by hand, so batches form exactly as under load. */
function gatedFlush() {
  const batches: string[][] = [];
  const gates: (() => void)[] = [];
  const flush = async (items: readonly string[]): Promise<string[]> => {
    batches.push([...items]);
    await new Promise<void>((release) => gates.push(release));
    if (items.length > 1 && items.includes('bad')) throw new Error('batch refused');
    if (items[0] === 'bad') throw new Error('bad item');
    return items.map((i) => i.toUpperCase());
  };
  const releaseAll = async () => {
    while (gates.length) {
      gates.shift()!();
      await new Promise((r) => setTimeout(r, 0));
    }
  };
  return { batches, flush, releaseAll };
}

describe('GroupCommit', () => {
  it('writes an item at once when idle, and what queued meanwhile as one batch, each caller getting its own result', async () => {
    const f = gatedFlush();
    const g = new GroupCommit<string, string>({ name: 'test', flush: f.flush, maxConcurrent: 1 });
    const first = g.submit('a');
    const rest = ['b', 'c', 'd'].map((i) => g.submit(i));
    expect(f.batches).toEqual([['a']]);
    await f.releaseAll();
    expect(await first).toBe('A');
    expect(await Promise.all(rest)).toEqual(['B', 'C', 'D']);
    expect(f.batches).toEqual([['a'], ['b', 'c', 'd']]);
    expect(g.stats).toMatchObject({ items: 4, batches: 2 });
  });

  it('caps a batch at maxBatch and keeps maxConcurrent flushes in flight', async () => {
    const f = gatedFlush();
    const g = new GroupCommit<string, string>({ name: 'test', flush: f.flush, maxConcurrent: 2, maxBatch: 2 });
    const all = ['a', 'b', 'c', 'd', 'e', 'f'].map((i) => g.submit(i));
    expect(f.batches).toEqual([['a'], ['b']]);
    await f.releaseAll();
    expect(await Promise.all(all)).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    expect(f.batches.slice(2)).toEqual([['c', 'd'], ['e', 'f']]);
  });

  it('retries a failed batch item by item, so only the bad item fails its caller', async () => {
    const f = gatedFlush();
    const g = new GroupCommit<string, string>({ name: 'test', flush: f.flush, maxConcurrent: 1 });
    const first = g.submit('a');
    const good = g.submit('b');
    const bad = g.submit('bad');
    const release = f.releaseAll();
    await expect(bad).rejects.toThrow('bad item');
    await release;
    await f.releaseAll();
    expect(await first).toBe('A');
    expect(await good).toBe('B');
    expect(f.batches).toEqual([['a'], ['b', 'bad'], ['b'], ['bad']]);
  });
});
