import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { QueueSystem } from '../src/app/queue.ts';
import { buildStorm, postStorm, type StormAlert } from '../tests/helpers/alert-storm.ts';
import { QUEUE_BACKENDS } from '../tests/helpers/queue-backends.ts';
import { perBackend, printBackend, processCpuSeconds, runCli, startReflex, treeCpuSeconds, vendorStandIn, type Child } from './harness.ts';
import { hasWrk, wrkPost } from './wrk.ts';
import { fmt, percentile } from './stats.ts';

/**
 * SentinelNet pipeline figures, per queue backend (Redis, and BullMQ's PostgreSQL backend), each
 * on the embedded PostgreSQL, the server in a process of its own (`reflex start`) and the load
 * generated from this one:
 * - ingest alerts/s for single POSTs and for NDJSON batches (workers off: the hook path alone);
 * - end-to-end alerts/s through every stage, vendors (VirusTotal, AbuseIPDB) answered by a local
 *   stand-in serving the fixture payloads;
 * - p50/p95/p99 from the webhook POST to the incident row, for SEV1 alerts in that storm;
 * - raw BullMQ no-op jobs/s on the same backend, measured in the same run, as the ceiling.
 */
const SINGLE_POSTS = Number(process.env.BENCH_SINGLE_POSTS ?? 5000);
/** Single POSTs are sent by wrk for this long when it is installed (BENCH_INGEST_CLIENT=node forces Node's fetch). */
const SINGLE_SECONDS = Number(process.env.BENCH_SINGLE_SECONDS ?? 10);
const BATCH_ALERTS = Number(process.env.BENCH_BATCH_ALERTS ?? 50_000);
const E2E_ALERTS = Number(process.env.BENCH_E2E_ALERTS ?? 20_000);
/** BENCH_PIPELINE_STORM_ONLY=1: only the end-to-end storm, into a fresh server (about 40 s a backend, for A/B runs). */
const STORM_ONLY = process.env.BENCH_PIPELINE_STORM_ONLY === '1';
const SEV1_SHARE = 0.02;
/**
 * BENCH_PIPELINE_WORKER_PROCESSES=N: the stages run in N `reflex worker` processes beside an API
 * process that runs none (the scale-out layout), for the drain and the storm. Default 0: one
 * `reflex start` process does everything, as `npm start` does.
 */
const WORKER_PROCESSES = Number(process.env.BENCH_PIPELINE_WORKER_PROCESSES ?? 0);

/** CPU seconds so far: the server's node process, its embedded PostgreSQL, worker processes, Redis. */
interface CpuSample {
  node: number;
  postgres: number;
  workers: number;
  redis: number;
}

async function redisPid(url: string): Promise<number | undefined> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    const m = /process_id:(\d+)/.exec(await r.info('server'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

function cpuSample(c: Child, redis: number | undefined): CpuSample {
  const [server, ...workers] = c.pids();
  const node = processCpuSeconds(server!);
  return {
    node,
    postgres: treeCpuSeconds(server!) - node,
    workers: workers.reduce((n, pid) => n + treeCpuSeconds(pid), 0),
    redis: redis === undefined ? 0 : processCpuSeconds(redis),
  };
}

/** `node 0.41 + PostgreSQL 0.30 + Redis 0.05 = 0.76 ms per alert`, from two samples. */
function cpuPerAlert(a: CpuSample, b: CpuSample, alerts: number, wallSeconds: number): string {
  const ms = (k: keyof CpuSample) => ((b[k] - a[k]) * 1000) / alerts;
  const parts: [string, number][] = [['server node', ms('node')], ['embedded PostgreSQL', ms('postgres')]];
  if (WORKER_PROCESSES > 0) parts.push([`${WORKER_PROCESSES} worker process${WORKER_PROCESSES > 1 ? 'es' : ''}`, ms('workers')]);
  if (b.redis > 0) parts.push(['Redis', ms('redis')]);
  const total = parts.reduce((n, [, v]) => n + v, 0);
  const cores = (total * alerts) / 1000 / wallSeconds;
  return `CPU per alert in the storm: ${parts.map(([k, v]) => `${k} ${fmt(v, 2)}`).join(' + ')} = ${fmt(total, 2)} ms (${fmt(cores, 2)} of ${os.cpus().length} cores busy on average)`;
}

/** Resolves once nothing is in flight and every queue is empty, polling every `pollMs`. */
async function settled(c: Child, apiToken: string, pollMs: number): Promise<void> {
  while ((await stats(c, apiToken)).in_flight !== 0 || (await queueDepths(c)) !== 0) await new Promise((r) => setTimeout(r, pollMs));
}

async function stats(c: Child, apiToken: string): Promise<{ accepted: number; in_flight: number; new: number; deduplicated: number; suppressed: number; dead_lettered: number }> {
  return (await (await fetch(`${c.url}/api/v1/pipeline/stats`, { headers: { authorization: `Bearer ${apiToken}` } })).json()) as never;
}

type QueueMetric = 'reflex_queue_depth' | 'reflex_jobs_failed_total' | 'reflex_jobs_completed_total';

/** A server metric per pipeline queue (`<name>{queue="pipeline.…"} <n>` lines). */
async function pipelineMetrics(c: Child, name: QueueMetric): Promise<Map<string, number>> {
  const text = await (await fetch(`${c.url}/metrics`)).text();
  const line = new RegExp(`^${name}\\{queue="pipeline\\.([a-z]+)"\\} (\\d+)`);
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The sum of a server metric over the pipeline's queues. */
async function pipelineMetric(c: Child, name: QueueMetric): Promise<number> {
  let total = 0;
  for (const n of (await pipelineMetrics(c, name)).values()) total += n;
  return total;
}

const queueDepths = (c: Child) => pipelineMetric(c, 'reflex_queue_depth');

/** No-op jobs through a QueueSystem on the same backend: what BullMQ itself can do here. */
async function rawCeiling(config: ConstructorParameters<typeof QueueSystem>[0], jobs = 20_000): Promise<number> {
  const qs = new QueueSystem(config);
  const name = `bench-noop-${randomBytes(4).toString('hex')}`;
  for (let i = 0; i < jobs; i += 1000) {
    await qs.addBulk(name, Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ name: 'noop', data: { i: i + j } })));
  }
  let done = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    qs.createWorker({ name, concurrency: 32, processor: async () => { if (++done === jobs) resolve(); } });
  });
  const rate = jobs / ((performance.now() - t0) / 1000);
  await qs.queue(name).obliterate({ force: true }).catch(() => undefined);
  await qs.close();
  return rate;
}

function withSev1(storm: StormAlert[]): { alerts: StormAlert[]; sev1Hosts: string[] } {
  const hosts: string[] = [];
  const every = Math.round(1 / SEV1_SHARE);
  const alerts = storm.map((a, i) => {
    if (i % every !== 0) return a;
    const host = `bench-sev1-${i}`;
    hosts.push(host);
    // Its own host and IP: nothing to correlate with, so each opens an incident of its own.
    const ip = `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
    return { source: 'generic' as const, body: { event_type: 'malware.detected', severity: 1, timestamp: new Date().toISOString(), host: { name: host }, observables: { ip } } };
  });
  return { alerts, sev1Hosts: hosts };
}

async function benchBackend(backend: 'redis' | 'postgres'): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `reflex-bench-${backend}-`));
  const vendors = await vendorStandIn();
  const apiToken = `bench_${randomBytes(18).toString('hex')}`;
  const ingestToken = `rfi_${randomBytes(18).toString('hex')}`;
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    REFLEX_DATA_DIR: dataDir,
    REFLEX_API_TOKEN: apiToken,
    REFLEX_INGEST_TOKEN: ingestToken,
    REFLEX_INGEST_HIGH_WATER: '1000000',
    REFLEX_DISABLED_FEATURES: 'chat,engine',
    VIRUSTOTAL_API_URL: vendors.url,
    ABUSEIPDB_API_URL: vendors.url,
  };
  delete base.DATABASE_URL;
  if (backend === 'redis') {
    base.REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    base.REFLEX_QUEUE_PREFIX = `{bench${randomBytes(3).toString('hex')}}`;
  } else delete base.REDIS_URL;
  const lines: string[] = [];
  try {
    // 1. Hook path alone: workers off, so this measures validation + durable enqueue (skipped,
    // with the drain, under BENCH_PIPELINE_STORM_ONLY: the server starts with its workers on).
    let c = STORM_ONLY ? await startReflex(base, { workerProcesses: WORKER_PROCESSES }) : await startReflex({ ...base, REFLEX_RUN_WORKERS: 'false' });
    await runCli(c.env, ['secrets', 'set', 'virustotal.api_key'], 'bench-vt-key');
    await runCli(c.env, ['secrets', 'set', 'abuseipdb.api_key'], 'bench-abuse-key');
    let t0: number;
    if (!STORM_ONLY) {
      let singlesPosted: number;
      if (process.env.BENCH_INGEST_CLIENT !== 'node' && hasWrk()) {
        const storm = buildStorm(2000, { seed: 7 });
        const w = wrkPost({
          url: c.url,
          headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/json' },
          requests: storm.map((a) => ({ path: a.source === 'generic' ? '/hooks/generic/kiosk' : `/hooks/${a.source}`, body: JSON.stringify(a.body) })),
          seconds: SINGLE_SECONDS,
          connections: 64,
        });
        if (w.non2xx > 0) throw new Error(`${w.non2xx} single POSTs were not accepted`);
        singlesPosted = w.requests;
        lines.push(
          `ingest, single POSTs (wrk, 1 thread, 64 connections, ${SINGLE_SECONDS} s, ${fmt(w.requests)} alerts): ${fmt(w.perSecond)} alerts/s; latency p50 ${fmt(w.p50, 1)} ms, p95 ${fmt(w.p95, 1)} ms, p99 ${fmt(w.p99, 1)} ms; socket errors: ${w.socketErrors}`,
        );
      } else {
        const latencies: number[] = [];
        const t = performance.now();
        await postStorm(c.url, ingestToken, buildStorm(SINGLE_POSTS, { seed: 7 }), { concurrency: 64, batchSize: 1, singleShare: 1, onLatency: (ms) => latencies.push(ms) });
        const singleRate = SINGLE_POSTS / ((performance.now() - t) / 1000);
        singlesPosted = SINGLE_POSTS;
        lines.push(
          `ingest, single POSTs (Node fetch, ${fmt(SINGLE_POSTS)} alerts, 64 concurrent; install wrk for a client that leaves the cores to the server): ${fmt(singleRate)} alerts/s; latency p50 ${fmt(percentile(latencies, 50), 1)} ms, p95 ${fmt(percentile(latencies, 95), 1)} ms, p99 ${fmt(percentile(latencies, 99), 1)} ms`,
        );
      }
      t0 = performance.now();
      await postStorm(c.url, ingestToken, buildStorm(BATCH_ALERTS, { seed: 8 }), { concurrency: 8, batchSize: 1000, singleShare: 0 });
      const batchRate = BATCH_ALERTS / ((performance.now() - t0) / 1000);
      await c.stop();
      lines.push(`ingest, NDJSON batches of 1,000 (${fmt(BATCH_ALERTS)} alerts, 8 concurrent): ${fmt(batchRate)} alerts/s`);

      // 2. Drain what phase 1 queued with the workers on (a backlog drain), then a live storm.
      c = await startReflex(base, { workerProcesses: WORKER_PROCESSES });
      t0 = performance.now();
      await settled(c, apiToken, 200);
      const backlog = singlesPosted + BATCH_ALERTS;
      const drainRate = backlog / ((performance.now() - t0) / 1000);
      lines.push(`backlog drain through every stage (${fmt(backlog)} queued alerts): ${fmt(drainRate)} alerts/s`);
    }

    const { alerts, sev1Hosts } = withSev1(buildStorm(E2E_ALERTS, { seed: 9, distinctIps: 2000 }));
    const sentAt = new Map<string, number>();
    for (const h of sev1Hosts) sentAt.set(h, 0);
    const jobsBefore = await pipelineMetrics(c, 'reflex_jobs_completed_total');
    const redis = backend === 'redis' ? await redisPid(base.REDIS_URL!) : undefined;
    const cpu0 = cpuSample(c, redis);
    const wall0 = Date.now();
    t0 = performance.now();
    // SEV1 alerts go as single POSTs spread through the storm, sent by the same 16 clients as the
    // rest; each one's send time is recorded.
    const isSev1 = (a: StormAlert) => a.source === 'generic' && (a.body as { severity?: number }).severity === 1;
    await postStorm(c.url, ingestToken, alerts, {
      concurrency: 16,
      batchSize: 200,
      singleShare: 0.2,
      single: isSev1,
      onSend: (sent) => {
        if (sent.length === 1 && isSev1(sent[0]!)) sentAt.set((sent[0]!.body as { host: { name: string } }).host.name, Date.now());
      },
    });
    const postedIn = (performance.now() - t0) / 1000;
    await settled(c, apiToken, 100);
    const e2eSeconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuSample(c, redis);
    const e2eRate = E2E_ALERTS / e2eSeconds;
    const jobsAfter = await pipelineMetrics(c, 'reflex_jobs_completed_total');
    const jobCounts = [...jobsAfter].map(([q, n]) => `${q} ${fmt(n - (jobsBefore.get(q) ?? 0))}`).join(', ');
    const pgState = JSON.parse(readFileSync(path.join(dataDir, 'pg.json'), 'utf8')) as { port: number; user: string; password: string };
    const dbUrl = `postgres://${pgState.user}:${encodeURIComponent(pgState.password)}@127.0.0.1:${pgState.port}/postgres`;
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    const rows = await client.query<{ host: string; created: Date; alerted: Date }>(
      `select a.event->'host'->>'name' as host, i.created_at as created, a.created_at as alerted from reflex.alerts a join reflex.incidents i on i.id = a.incident_id
       where a.event->'host'->>'name' like 'bench-sev1-%' and a.created_at >= $1`,
      [new Date(wall0)],
    );
    await client.end();
    const toIncident = rows.rows.map((r) => r.created.getTime() - (sentAt.get(r.host) ?? 0)).filter((ms) => ms >= 0);
    // Where that time goes: hook + normalize + dedupe (to the alert row), then enrich + case.
    const toAlert = rows.rows.map((r) => r.alerted.getTime() - (sentAt.get(r.host) ?? 0)).filter((ms) => ms >= 0);
    const alertToIncident = rows.rows.map((r) => r.created.getTime() - r.alerted.getTime());
    const layout = WORKER_PROCESSES > 0 ? `, stages in ${WORKER_PROCESSES} worker process${WORKER_PROCESSES > 1 ? 'es' : ''}` : '';
    lines.push(`end to end through every stage (${fmt(E2E_ALERTS)} alerts, 20% single POSTs, vendors local${layout}): ${fmt(e2eRate)} alerts/s; vendor calls ${fmt(vendors.calls())}`);
    lines.push(`  of which posting the storm: ${fmt(postedIn, 1)} s (${fmt(E2E_ALERTS / postedIn)} alerts/s), the stages' tail after the last POST: ${fmt(e2eSeconds - postedIn, 1)} s`);
    lines.push(`  jobs completed in the storm, per stage: ${jobCounts}`);
    lines.push(`  ${cpuPerAlert(cpu0, cpu1, E2E_ALERTS, e2eSeconds)}`);
    lines.push(`webhook -> incident for SEV1 during that storm (${toIncident.length} of ${sev1Hosts.length}): p50 ${fmt(percentile(toIncident, 50))} ms, p95 ${fmt(percentile(toIncident, 95))} ms, p99 ${fmt(percentile(toIncident, 99))} ms`);
    lines.push(`  of which webhook -> alert row (hook, normalize, dedupe): p50 ${fmt(percentile(toAlert, 50))} ms, p95 ${fmt(percentile(toAlert, 95))} ms; alert row -> incident (enrich, case): p50 ${fmt(percentile(alertToIncident, 50))} ms, p95 ${fmt(percentile(alertToIncident, 95))} ms`);
    const final = await stats(c, apiToken);
    lines.push(`books: accepted ${fmt(final.accepted)} = new ${fmt(final.new)} + deduplicated ${fmt(final.deduplicated)} + suppressed ${fmt(final.suppressed)} + dead-lettered ${fmt(final.dead_lettered)} (+ in flight ${final.in_flight})`);
    lines.push(`failed job attempts (retried) in ${STORM_ONLY ? 'the storm' : 'the drain and the storm'}: ${fmt(await pipelineMetric(c, 'reflex_jobs_failed_total'))}`);
    // The ceiling, while the server (and its embedded cluster) is up but idle.
    const ceiling = await rawCeiling(
      backend === 'redis' ? { backend: 'redis', url: base.REDIS_URL!, prefix: `{benchraw${randomBytes(3).toString('hex')}}` } : { backend: 'postgres', url: dbUrl, schema: 'bench_raw' },
    );
    lines.push(`raw BullMQ no-op jobs/s on this backend (ceiling, 32 concurrent): ${fmt(ceiling)}`);
    await c.stop();
  } finally {
    await vendors.close();
    rmSync(dataDir, { recursive: true, force: true });
    // The run's queues (a few hundred MB of job data in Redis); the PostgreSQL backend's went with the data dir.
    if (backend === 'redis') await QUEUE_BACKENDS.find((b) => b.name === 'redis')!.cleanup({ backend: 'redis', url: base.REDIS_URL!, prefix: base.REFLEX_QUEUE_PREFIX! });
  }
  printBackend(backend, lines);
}

export const run = (): Promise<void> => perBackend(benchBackend);
