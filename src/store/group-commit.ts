/**
 * Group commit: callers submit one item each and get their own result back, while the items
 * travel to the database together, one statement (and so one commit) for a whole batch.
 *
 * Batches form on their own, without a timer: an item submitted while `maxConcurrent` flushes are
 * already in flight waits for one of them to finish and then leaves with everything that queued
 * up meanwhile (at most `maxBatch` items). An idle engine therefore writes each item at once (no
 * added latency), and a busy one writes many items per round trip and per commit, which is what
 * bounds a small machine (every statement is a socket write and a wake-up of a PostgreSQL backend).
 *
 * A failed batch is retried item by item, so one bad item fails only its own caller; a failure of
 * a single item rejects that caller's promise (the step job then throws and BullMQ retries it).
 *
 * @example
 * const starts = new GroupCommit<Start, boolean>({ name: 'step.start', flush: (items) => markStarted(db, items) });
 * const started = await starts.submit({ runId, stepId, attempt }); // true when this caller's guard matched
 */
export interface GroupCommitOptions<I, O> {
  /** For errors and diagnostics. */
  name: string;
  /** Writes the items and answers one result per item, in order. */
  flush: (items: readonly I[]) => Promise<readonly O[]>;
  /** Most items per statement (default 128). */
  maxBatch?: number;
  /** Flushes in flight at once, i.e. database connections used (default 2). */
  maxConcurrent?: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private inFlight = 0;
  private readonly maxBatch: number;
  private readonly maxConcurrent: number;
  /** Items, batches and milliseconds spent flushing so far (the benchmark reports them). */
  readonly stats = { items: 0, batches: 0, flushMs: 0 };

  constructor(private readonly options: GroupCommitOptions<I, O>) {
    this.maxBatch = options.maxBatch ?? 128;
    this.maxConcurrent = options.maxConcurrent ?? 2;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight += 1;
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async write(batch: Pending<I, O>[]): Promise<void> {
    this.stats.items += batch.length;
    this.stats.batches += 1;
    const t0 = performance.now();
    try {
      const results = await this.options.flush(batch.map((p) => p.item));
      this.stats.flushMs += performance.now() - t0;
      if (results.length !== batch.length) throw new Error(`${this.options.name}: ${results.length} results for ${batch.length} items`);
      batch.forEach((p, i) => p.resolve(results[i]!));
      return;
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
    }
    // Whatever broke the batch (a deadlock between two batches, one item's bad value), each
    // item gets a statement of its own now, so only the item at fault fails.
    for (const p of batch) {
      try {
        const [result] = await this.options.flush([p.item]);
        p.resolve(result!);
      } catch (err) {
        p.reject(err);
      }
    }
  }
}
