import { expect, vi } from 'vitest';
import type { TestServer } from './test-server.ts';

export interface PipelineStats {
  accepted: number;
  new: number;
  deduplicated: number;
  suppressed: number;
  dead_lettered: number;
  in_flight: number;
}

export async function stats(s: TestServer, tenant?: string): Promise<PipelineStats> {
  const res = await fetch(`${s.url}/api/v1/pipeline/stats${tenant ? `?tenant=${tenant}` : ''}`, { headers: { authorization: `Bearer ${s.apiToken}` } });
  return (await res.json()) as PipelineStats;
}

/** Waits until nothing accepted is still in flight, and the downstream per-alert queues are empty. */
export async function settle(s: TestServer, opts: { tenant?: string; timeout?: number; queues?: string[] } = {}): Promise<PipelineStats> {
  let last!: PipelineStats;
  await vi.waitFor(
    async () => {
      last = await stats(s, opts.tenant);
      expect(last.in_flight).toBe(0);
      // In flow order, so a job cannot slip from a queue not yet read into one already read. A
      // job waiting out a retry backoff is delayed work; a scheduled "Nth occurrence" update is not.
      for (const q of opts.queues ? ['pipeline.normalize', 'pipeline.dedupe', ...opts.queues] : []) {
        const c = await s.queues.queue(q).getJobCounts('waiting', 'active', 'prioritized');
        expect((c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0), q).toBe(0);
        const delayed = await s.queues.queue(q).getJobs(['delayed']);
        expect(delayed.filter((j) => j.name !== 'repeat').length, `${q} delayed`).toBe(0);
      }
    },
    { timeout: opts.timeout ?? 30_000, interval: 100 },
  );
  return last;
}

export function postHook(s: TestServer, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.store.local.ingestToken}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
}
