import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one app instance (a registry per instance, so tests can run several).
 * Queue depths and DLQ sizes are read from the backend at scrape time, not tracked in memory,
 * so they are right across many worker processes.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly jobsCompleted: Counter<'queue'>;
  readonly jobsFailed: Counter<'queue'>;
  readonly jobsDeadLettered: Counter<'queue'>;

  constructor(opts: { queueNames: () => string[]; counts: (queue: string) => Promise<{ backlog: number; delayed: number }> }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'reflex_' });
    this.httpDuration = new Histogram({
      name: 'reflex_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.jobsCompleted = new Counter({ name: 'reflex_jobs_completed_total', help: 'Jobs completed by this process', labelNames: ['queue'], registers: [this.registry] });
    this.jobsFailed = new Counter({ name: 'reflex_jobs_failed_total', help: 'Job attempts that failed in this process', labelNames: ['queue'], registers: [this.registry] });
    this.jobsDeadLettered = new Counter({ name: 'reflex_jobs_dead_lettered_total', help: 'Jobs moved to a dead-letter queue by this process', labelNames: ['queue'], registers: [this.registry] });
    const depthGauge = (name: string, help: string, pick: (q: string) => string | undefined, read: (c: { backlog: number; delayed: number }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['queue'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const q of opts.queueNames()) {
            const target = pick(q);
            if (target === undefined) continue;
            try {
              this.set({ queue: target }, read(await opts.counts(q)));
            } catch {
              // A scrape must not fail because one queue is unreachable; /readyz reports that.
            }
          }
        },
      });
    const live = (q: string) => (q.endsWith('.dlq') ? undefined : q);
    depthGauge('reflex_queue_depth', 'Waiting, prioritized and active jobs per queue (the backlog)', live, (c) => c.backlog);
    depthGauge('reflex_queue_delayed', 'Jobs scheduled for later per queue (retry backoff, waits, repeat updates)', live, (c) => c.delayed);
    depthGauge('reflex_dlq_size', 'Jobs in each dead-letter queue', (q) => (q.endsWith('.dlq') ? q.slice(0, -4) : undefined), (c) => c.backlog + c.delayed);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
