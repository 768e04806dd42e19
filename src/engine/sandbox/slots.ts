/**
 * A counting semaphore: at most `size` callers inside `run` at once, the rest wait in arrival
 * order. The engine runs hundreds of steps at once because most of them wait on a vendor; a
 * script step holds an isolate or a child process for its whole run, so those take a slot.
 *
 * @example
 * const slots = new Slots(8);
 * const out = await slots.run(() => runJavaScript(code, input));
 */
export class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`Slots: size must be a positive integer, got ${size}`);
  }

  /** Callers inside `run` now, and callers waiting for a slot. */
  get usage(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /** Runs `fn` in a slot; aborting `signal` while still waiting leaves the queue and rejects. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.active >= this.size) {
      await new Promise<void>((resolve, reject) => {
        const take = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.waiting.indexOf(take);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal!.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(take);
      });
    } else this.active += 1;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter (active stays the same), or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
