import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { QueueSystem } from '../../app/queue.ts';
import type { Database } from '../../store/schema.ts';
import { incrementCounters } from '../counters.ts';
import { PIPELINE_QUEUES, alertJobPriority, type NormalizeJob, type NormalizerRef } from '../jobs.ts';
import type { NormalizerSource } from '../normalize/index.ts';

interface Pending {
  tenantId: string;
  source: NormalizerSource;
  genericName: string | undefined;
  items: unknown[];
  /** Events per item (what `accepted` counts). */
  counts: number[];
  /** Per item: holds a SEV1/SEV2 event. Urgent items travel in jobs of their own. */
  urgent?: boolean[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for hooks: requests arriving within `maxDelayMs` of each other are written as a few
 * normalize jobs (one per tenant and urgency, at most `maxItemsPerJob` payloads each) in one
 * `addBulk`, and their `accepted` counts in one statement. Each request's promise resolves only
 * after both are stored, so a 202 always means durable; at webhook rates this turns thousands of
 * queue round trips a second into tens.
 */
export class IngestWriter {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pendingItems = 0;

  constructor(
    private readonly queues: QueueSystem,
    private readonly db: Kysely<Database>,
    private readonly opts: { maxDelayMs: number; maxItemsPerJob: number } = { maxDelayMs: 2, maxItemsPerJob: 500 },
  ) {}

  submit(p: Omit<Pending, 'resolve' | 'reject'>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ ...p, resolve, reject });
      this.pendingItems += p.items.length;
      if (this.pendingItems >= this.opts.maxItemsPerJob * 4) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.opts.maxDelayMs);
    });
  }

  private async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.pendingItems = 0;
    if (batch.length === 0) return;
    const receivedAt = new Date().toISOString();
    // One group per tenant and urgency: items from every source and generic hook travel together,
    // each with its normalizer (see normalizeJob).
    const groups = new Map<string, { tenantId: string; urgent: boolean; items: unknown[]; counts: number[]; refs: NormalizerRef[] }>();
    const accepted = new Map<string, number>();
    for (const p of batch) {
      const ref: NormalizerRef = { source: p.source, ...(p.genericName ? { genericName: p.genericName } : {}) };
      p.items.forEach((item, i) => {
        const urgent = p.urgent?.[i] ?? false;
        const key = `${p.tenantId}\u0000${urgent ? 'u' : 'r'}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { tenantId: p.tenantId, urgent, items: [], counts: [], refs: [] }));
        g.items.push(item);
        g.counts.push(p.counts[i] ?? 1);
        g.refs.push(ref);
      });
      accepted.set(p.tenantId, (accepted.get(p.tenantId) ?? 0) + p.counts.reduce((a, b) => a + b, 0));
    }
    const jobs: { name: string; data: NormalizeJob; opts: { jobId: string; priority?: number } }[] = [];
    for (const g of groups.values()) {
      for (let i = 0; i < g.items.length; i += this.opts.maxItemsPerJob) {
        const batchId = randomUUID();
        const refs = g.refs.slice(i, i + this.opts.maxItemsPerJob);
        const first = refs[0]!;
        const mixed = refs.some((r) => r.source !== first.source || r.genericName !== first.genericName);
        jobs.push({
          name: mixed ? 'mixed' : first.source,
          data: {
            batchId,
            tenantId: g.tenantId,
            ...first,
            ...(mixed ? { sources: refs } : {}),
            receivedAt,
            items: g.items.slice(i, i + this.opts.maxItemsPerJob),
            counts: g.counts.slice(i, i + this.opts.maxItemsPerJob),
            ...(g.urgent ? { urgent: true } : {}),
          },
          // SEV1/SEV2 payloads overtake a routine backlog from the first stage on.
          opts: { jobId: `normalize-${batchId}`, ...alertJobPriority(g.urgent) },
        });
      }
    }
    try {
      await this.queues.addBulk(PIPELINE_QUEUES.normalize, jobs);
      await incrementCounters(this.db, [...accepted].map(([tenantId, n]) => ({ tenantId, delta: { accepted: n } })));
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
