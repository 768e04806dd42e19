import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createLogger } from '../src/app/logger.ts';
import { QueueSystem, type QueueBackendConfig } from '../src/app/queue.ts';
import { ensureTenant } from '../src/app/runtime.ts';
import { ActionRegistry } from '../src/engine/actions/registry.ts';
import { parsePlaybook } from '../src/engine/manifest.ts';
import { PlaybookEngineService } from '../src/engine/playbook-engine-service.ts';
import { PlaybookCatalog } from '../src/engine/run/playbook-catalog.ts';
import { RunEngine } from '../src/engine/run-engine.ts';
import { auditedWrite } from '../src/store/audit-log.ts';
import { createDatabase, migrateToLatest } from '../src/store/database.ts';
import type { Database } from '../src/store/schema.ts';
import { grantRole } from '../src/store/principals.ts';
import { SecretsVault } from '../src/store/secrets-vault.ts';
import { fmt, percentile } from './stats.ts';

/**
 * `npm run bench -- engine`: the playbook engine on each queue backend.
 * - throughput: runs/s and steps/s for a 5-step playbook whose actions are local (an in-process
 *   executor, so the figure is the engine's own cost: queue hops, transitions, audit chain);
 * - p95 from a triggering event (`onAlert`) to its first action starting;
 * - p95 from an approval click (`decide`) to the gated action starting.
 * Targets (Redis): >= 500 runs/s, first action p95 < 25 ms, approval to action p95 < 100 ms.
 * For the throughput phase it also prints socket writes and CPU per step (this process, its
 * PostgreSQL backends, redis-server) and the group commits' batch sizes: docs/ENGINE.md reads them.
 * BENCH_ENGINE_IN_FLIGHT (runs at once) and BENCH_ENGINE_CONCURRENCY (step workers) set the load;
 * batches, and so throughput, grow with them.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUNS = Number(process.env.BENCH_ENGINE_RUNS ?? 5000);
const IN_FLIGHT = Number(process.env.BENCH_ENGINE_IN_FLIGHT ?? 512);
const LATENCY_SAMPLES = Number(process.env.BENCH_ENGINE_SAMPLES ?? 200);
// The app's default step concurrency (REFLEX_ENGINE_CONCURRENCY).
const CONCURRENCY = Number(process.env.BENCH_ENGINE_CONCURRENCY ?? 256);
const PG_PORT = Number(new URL(DATABASE_URL).port || 5432);
const REDIS_PORT = Number(new URL(REDIS_URL).port || 6379);

/** CPU time (user + system, ms) of processes by pid, from /proc (Linux); 0 where unreadable. */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone, or not Linux
    }
  }
  return ticks * 10; // USER_HZ = 100
}

/**
 * Where the CPU of the throughput phase went: this process, the PostgreSQL backends serving its
 * connections, and the Redis server (shared with whatever else uses it). On 2 cores the sum per
 * step is the ceiling: 2,000 ms / (CPU ms per step) steps/s with nothing else running.
 */
async function cpuSnapshot(db: Kysely<Database>): Promise<{ node: number; postgres: Map<number, number>; redis: number }> {
  const ports = [...pgLocalPorts];
  const rows = ports.length
    ? (await sql<{ pid: number }>`select pid from pg_stat_activity where client_port = any(${ports}::int[]) and client_addr in ('127.0.0.1', '::1')`.execute(db)).rows
    : [];
  const pgPids = rows.map((r) => r.pid);
  let redisPid = 0;
  try {
    const redis = new Redis(REDIS_URL);
    const info = await redis.info('server');
    redis.disconnect();
    redisPid = Number(/process_id:(\d+)/.exec(info)?.[1] ?? 0);
  } catch {
    // no figure for Redis
  }
  const usage = process.cpuUsage();
  return { node: (usage.user + usage.system) / 1000, postgres: new Map(pgPids.map((p) => [p, cpuMs([p])])), redis: redisPid ? cpuMs([redisPid]) : 0 };
}

const action = (id: string) => `  - id: ${id}\n    action: case.comment\n    with: { text: "${id} \${{ inputs.host }}" }\n`;
const FIVE = parsePlaybook(
  `id: five-steps
name: Five local steps
version: 1
trigger: { event_type: malware.detected, manual: true }
inputs:
  host: { type: host, default: web-01, from: event.host.name }
steps:
${['s1', 's2', 's3', 's4', 's5'].map(action).join('')}`,
  'bench.yaml',
);
const GATED = parsePlaybook(
  `id: gated
name: Gate then act
version: 1
trigger: { manual: true }
steps:
  - id: gate
    approval:
      approvers: { roles: [approver] }
      destructive: false
      expires: 1h
  - id: act
    action: case.comment
    with: { text: approved }
`,
  'bench-gated.yaml',
);

/**
 * Socket writes from this process per remote port: every PostgreSQL statement (or pipelined
 * batch) and every Redis command batch is one write, and on this machine the write syscalls are
 * the largest single cost of a step (see docs/ENGINE.md, Performance). Counted for the
 * throughput phase and printed per step.
 */
const socketWrites = new Map<number, number>();
/** Local ports of this process's PostgreSQL connections, to find their backends' pids. */
const pgLocalPorts = new Set<number>();
{
  const proto = net.Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown };
  const write = proto._writeGeneric;
  proto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
    const port = this.remotePort ?? 0;
    if (port === PG_PORT && this.localPort) pgLocalPorts.add(this.localPort);
    socketWrites.set(port, (socketWrites.get(port) ?? 0) + 1);
    return write.apply(this, args);
  };
}

interface Backend {
  name: string;
  config(schema: string): QueueBackendConfig;
  cleanup(config: QueueBackendConfig): Promise<void>;
}

async function dropSchemas(schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`drop schema if exists "${s}" cascade`);
  } finally {
    await client.end();
  }
}

const BACKENDS: Backend[] = [
  {
    name: 'redis',
    config: (schema) => ({ backend: 'redis', url: REDIS_URL, prefix: `{${schema}}` }),
    cleanup: async (c) => {
      if (c.backend !== 'redis') return;
      const redis = new Redis(c.url);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${c.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    },
  },
  {
    name: 'postgres',
    config: (schema) => ({ backend: 'postgres', url: DATABASE_URL, schema: `${schema}_queue` }),
    cleanup: async (c) => {
      if (c.backend === 'postgres') await dropSchemas([c.schema]);
    },
  },
];

async function benchBackend(backend: Backend): Promise<void> {
  const schema = `bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  // The batched hot path needs few connections (two per group commit); locked transitions take one
  // each. Capped, as the machine's PostgreSQL is shared.
  const database = createDatabase({ url: DATABASE_URL, schema, max: Math.min(CONCURRENCY + 4, 40) });
  await migrateToLatest(database.db, schema);
  await ensureTenant(database.db, 'acme', 'ACME');
  const queueConfig = backend.config(schema);
  const queues = new QueueSystem(queueConfig);
  // The moment each run's action starts, by run and step (the executor is the "local integration").
  const started = new Map<string, number>();
  const actions = new ActionRegistry().register('case.comment', async (_input, ctx) => {
    started.set(`${ctx.runId}/${ctx.stepId}`, performance.now());
    return { ok: true };
  });
  const engine = new RunEngine({
    db: database.db,
    pool: database.pool,
    queues,
    vault: new SecretsVault(database.db, randomBytes(32)),
    catalog: new PlaybookCatalog([FIVE, GATED]),
    actions,
    chat: () => undefined,
    pager: () => undefined,
    linkSender: () => undefined,
    linkSecret: randomBytes(32),
    publicUrl: () => 'http://bench',
    scriptsDir: 'manifests/scripts',
    logger: createLogger('error'),
    concurrency: CONCURRENCY,
  });
  engine.startWorkers();
  const service = new PlaybookEngineService(engine);
  // Runs that finished before anyone waited for them (a fast run can end before start() returns).
  const finished = new Map<string, () => void>();
  const finishedEarly = new Set<string>();
  engine.onRunFinished((runId) => {
    const resolve = finished.get(runId);
    if (resolve) resolve();
    else finishedEarly.add(runId);
  });
  const awaitRun = (runId: string) =>
    new Promise<void>((resolve) => {
      if (finishedEarly.delete(runId)) resolve();
      else finished.set(runId, resolve);
    });

  try {
    // Warm-up: JIT, connection pools, BullMQ scripts.
    for (let i = 0; i < 20; i++) {
      const r = await engine.runs.start({ tenantId: 'acme', playbookId: 'five-steps', inputs: {}, startedBy: 'bench', manual: true });
      await awaitRun(r.id);
    }

    // 1. Throughput: RUNS runs, at most IN_FLIGHT at a time.
    socketWrites.clear();
    const cpu0 = await cpuSnapshot(database.db);
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < RUNS) {
        next += 1;
        const r = await engine.runs.start({ tenantId: 'acme', playbookId: 'five-steps', inputs: {}, startedBy: 'bench', manual: true });
        await awaitRun(r.id);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const writes = new Map(socketWrites);
    const cpu1 = await cpuSnapshot(database.db);
    let pgMs = 0;
    for (const [pid, ms] of cpu1.postgres) pgMs += ms - (cpu0.postgres.get(pid) ?? 0);
    const cpuPerStep = (ms: number) => fmt(ms / (RUNS * 5), 2);
    const batches = Object.entries({ 'run start': engine.writes.runStarts, 'step read': engine.writes.reads, 'step start': engine.writes.stepStarts, 'step settle': engine.writes.stepSucceeded, enqueue: engine.steps.adds })
      .map(([name, g]) => `${name} ${fmt(g.stats.items / Math.max(1, g.stats.batches), 1)} items/${fmt(g.stats.flushMs / Math.max(1, g.stats.batches), 1)} ms`)
      .join(', ');
    // Where the time goes, from the rows: queued -> started (queue hop + start transition) and
    // started -> finished (executor + settle transition), averaged over the throughput runs' steps.
    const split = await sql<{ queue_ms: number; run_ms: number; n: number }>`
      select avg(extract(epoch from (started_at - queued_at)) * 1000)::float as queue_ms,
             avg(extract(epoch from (finished_at - started_at)) * 1000)::float as run_ms, count(*)::int as n
      from run_steps where status = 'succeeded'`.execute(database.db);
    const failed = await database.db.selectFrom('playbook_runs').select((eb) => eb.fn.countAll<string>().as('n')).where('status', '!=', 'succeeded').executeTakeFirstOrThrow();

    // 2. Event -> first action, one event at a time.
    const firstAction: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const ts = performance.now();
      const { runIds } = await service.onAlert({
        tenantId: 'acme',
        alertId: randomUUID(),
        incidentId: null,
        event: { event_type: 'malware.detected', severity: 2, host: { name: 'web-02', ip: null } } as never,
      });
      const runId = runIds[0]!;
      await waitFor(() => started.has(`${runId}/s1`));
      firstAction.push(started.get(`${runId}/s1`)! - ts);
      await awaitRun(runId);
    }

    // 3. Approval click -> gated action.
    const approver = await grantRole(database.db, { identity: { platform: 'sentchat', workspace: 'B', userId: 'U1' }, tenantId: 'acme', role: 'approver', actor: 'bench', displayName: 'Bench' });
    const approvalToAction: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const r = await engine.runs.start({ tenantId: 'acme', playbookId: 'gated', inputs: {}, startedBy: 'bench', manual: true });
      let gateId: string | undefined;
      await waitFor(async () => {
        gateId = (await database.db.selectFrom('approvals').select('id').where('run_id', '=', r.id).executeTakeFirst())?.id;
        return gateId !== undefined;
      });
      const ts = performance.now();
      await engine.gates.decide({ tenantId: 'acme', approvalRef: gateId!, principal: { principalId: approver.principalId, displayName: 'Bench' }, decision: 'approve', via: 'bench' });
      await waitFor(() => started.has(`${r.id}/act`));
      approvalToAction.push(started.get(`${r.id}/act`)! - ts);
    }

    console.log(`## queue backend: ${backend.name}  (worker concurrency ${CONCURRENCY}, ${os.cpus().length} CPUs)`);
    console.log(`throughput: ${RUNS} runs of 5 action steps, ${IN_FLIGHT} in flight: ${fmt(seconds, 2)} s -> ${fmt(RUNS / seconds)} runs/s, ${fmt((RUNS * 5) / seconds)} steps/s (${failed.n} not succeeded)`);
    console.log(`  per step (averages): queued -> started ${fmt(split.rows[0]!.queue_ms, 1)} ms, started -> settled ${fmt(split.rows[0]!.run_ms, 1)} ms`);
    const perStep = (port: number) => fmt((writes.get(port) ?? 0) / (RUNS * 5), 2);
    console.log(`  socket writes per step (run start included): PostgreSQL ${perStep(PG_PORT)}, Redis ${perStep(REDIS_PORT)}`);
    console.log(`  CPU ms per step: node ${cpuPerStep(cpu1.node - cpu0.node)}, its PostgreSQL backends ${cpuPerStep(pgMs)}, redis-server ${cpuPerStep(cpu1.redis - cpu0.redis)} (throughput phase)`);
    console.log(`  group commits (average batch / flush time): ${batches}`);
    console.log(`event -> first action start: p50 ${fmt(percentile(firstAction, 50), 1)} ms, p95 ${fmt(percentile(firstAction, 95), 1)} ms, max ${fmt(Math.max(...firstAction), 1)} ms (${LATENCY_SAMPLES} events, one at a time)`);
    console.log(`approval click -> gated action start: p50 ${fmt(percentile(approvalToAction, 50), 1)} ms, p95 ${fmt(percentile(approvalToAction, 95), 1)} ms, max ${fmt(Math.max(...approvalToAction), 1)} ms (${LATENCY_SAMPLES} gates)`);
  } finally {
    await engine.close();
    await queues.close();
    await database.close();
    await backend.cleanup(queueConfig);
    await dropSchemas([schema]);
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>): Promise<void> {
  for (;;) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 0));
  }
}

/**
 * What an audited transaction costs on this machine (an empty transaction plus one audit row; the
 * chain is sealed after commit, so writers do not wait for each other). Printed first, so the
 * engine's figures can be read against the machine of the moment.
 */
async function auditCeiling(): Promise<void> {
  const schema = `bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const database = createDatabase({ url: DATABASE_URL, schema, max: 16 });
  try {
    await migrateToLatest(database.db, schema);
    for (const conc of [1, 8]) {
      let n = 0;
      const until = performance.now() + 3000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (performance.now() < until) {
            await auditedWrite(database.db, 'bench', async (_trx, audit) => audit({ tenantId: null, action: 'bench', target: 'bench', delta: {} }));
            n += 1;
          }
        }),
      );
      console.log(`audit chain ceiling: ${fmt(n / ((performance.now() - t0) / 1000))} audited writes/s at ${conc} concurrent writer(s) (an empty transaction plus one audit row)`);
    }
  } finally {
    await database.close();
    await dropSchemas([schema]);
  }
}

export async function run(): Promise<void> {
  const only = process.env.BENCH_ENGINE_BACKEND;
  await auditCeiling();
  for (const b of BACKENDS) if (!only || only === b.name) await benchBackend(b);
}
