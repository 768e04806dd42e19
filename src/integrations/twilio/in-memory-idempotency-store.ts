import type { IdempotencyStore } from '../containment-ports.ts';

/**
 * An `IdempotencyStore` in a Map, with expiry. For tests and single-process tools only: it
 * forgets everything on restart and is not shared between workers, which is exactly when a
 * retried job needs it. The engine passes a database-backed store.
 *
 * @example
 * const store = new InMemoryIdempotencyStore();
 * await store.set('twilio:call:run_42:call', '{"sid":"CA…"}', 86_400_000);
 */
export class InMemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  async get(key: string): Promise<string | undefined> {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.now() >= entry.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
  }
}
