import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

/**
 * What the benchmarks share: a free port, the server as a child process (`reflex start`), the
 * `reflex` CLI, and VirusTotal/AbuseIPDB stand-ins answering with the fixture payloads.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address() as net.AddressInfo;
      srv.close(() => resolve(a.port));
    });
  });
}

/** VirusTotal and AbuseIPDB on 127.0.0.1, answering every lookup with the fixture payloads. */
export async function vendorStandIn(): Promise<{ url: string; close(): Promise<void>; calls: () => number }> {
  const fixtures = path.resolve(process.cwd(), '../shared/fixtures/intel');
  const vt = JSON.parse(readFileSync(path.join(fixtures, 'virustotal_v3_domains__demisto_VirusTotalV3_domain.json'), 'utf8')) as { data: object };
  const abuse = JSON.parse(readFileSync(path.join(fixtures, 'abuseipdb_v2_check_verbose__rapid7_check_ip_data.json'), 'utf8')) as { data: object };
  let calls = 0;
  const server = http.createServer((req, res) => {
    calls += 1;
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/api/v3/')) res.end(JSON.stringify({ data: { ...vt.data, type: 'ip_address', id: req.url.split('/').pop() } }));
    else if (req.url?.startsWith('/api/v2/check')) res.end(JSON.stringify(abuse));
    else res.writeHead(404).end('{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())), calls: () => calls };
}

/** The node flags of bin/reflex.mjs's shebang (spawning `node` directly bypasses it). */
const REFLEX_NODE_FLAGS = ['--no-node-snapshot', '--max-semi-space-size=4'];

export interface Child {
  url: string;
  env: NodeJS.ProcessEnv;
  child: ChildProcess;
  /** The server's pid, then the worker processes' ones. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * `reflex start` on a free port, up when /readyz answers. With `workerProcesses`, the stages run
 * in that many `reflex worker` processes beside it instead (the scale-out layout: the API
 * process with REFLEX_RUN_WORKERS=false), all on the same embedded PostgreSQL.
 */
export async function startReflex(env: NodeJS.ProcessEnv, opts: { workerProcesses?: number } = {}): Promise<Child> {
  const port = await freePort();
  const split = (opts.workerProcesses ?? 0) > 0;
  const full: NodeJS.ProcessEnv = { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...(split ? { REFLEX_RUN_WORKERS: 'false' } : {}) };
  // BENCH_SERVER_NODE_ARGS adds node flags to the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // (node refuses --cpu-prof in NODE_OPTIONS).
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...REFLEX_NODE_FLAGS, ...extra, 'bin/reflex.mjs', 'start'], { env: full, stdio: ['ignore', process.env.BENCH_SERVER_STDOUT ? 'inherit' : 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await ready(child, url);
  const workers: ChildProcess[] = [];
  for (let i = 0; i < (opts.workerProcesses ?? 0); i++) {
    // After the server: it started the embedded PostgreSQL the workers connect to.
    const wport = await freePort();
    const w = spawn(process.execPath, [...REFLEX_NODE_FLAGS, 'bin/reflex.mjs', 'worker'], { env: { ...env, PORT: String(wport), HOST: '127.0.0.1', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
    workers.push(w);
    await ready(w, `http://127.0.0.1:${wport}`);
  }
  return {
    url,
    env: full,
    child,
    pids: () => [child.pid!, ...workers.map((w) => w.pid!)],
    stop: async () => {
      for (const w of workers) {
        w.kill('SIGTERM');
        await once(w, 'exit');
      }
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function ready(child: ChildProcess, url: string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`reflex ${child.spawnargs.at(-1)} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function runCli(env: NodeJS.ProcessEnv, args: string[], stdin: string): Promise<void> {
  const c = spawn(process.execPath, ['--no-node-snapshot', 'bin/reflex.mjs', ...args], { env: { ...env, REFLEX_QUIET_LAUNCH: '1' }, stdio: ['pipe', 'ignore', 'inherit'] });
  c.stdin!.end(stdin);
  const [code] = (await once(c, 'exit')) as [number];
  if (code !== 0) throw new Error(`reflex ${args.join(' ')} exited ${code}`);
}


export type Backend = 'redis' | 'postgres';

/** Runs a benchmark on each queue backend, or only on BENCH_BACKEND when set. */
export async function perBackend(bench: (backend: Backend) => Promise<void>): Promise<void> {
  for (const backend of ['redis', 'postgres'] as const) {
    if (process.env.BENCH_BACKEND && process.env.BENCH_BACKEND !== backend) continue;
    await bench(backend);
  }
}

export function printBackend(backend: Backend, lines: readonly string[]): void {
  console.log(`\n## ${backend === 'redis' ? 'Redis' : 'PostgreSQL (embedded)'} queue backend`);
  for (const l of lines) console.log(`- ${l}`);
}

const USER_HZ = 100;

/**
 * CPU seconds (user + system) spent so far by a process and its descendants, read from /proc:
 * live processes' own times plus what their exited children left in cutime/cstime. For the server
 * that is the node process and the embedded PostgreSQL it started. Unlike wall-clock figures it
 * hardly moves when something else shares the cores, so it shows whether a change made the work
 * itself cheaper. Linux only; 0 elsewhere.
 */
export function treeCpuSeconds(pid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const s = procStat(Number(e));
    // Its own time plus what its exited children left (cutime, cstime).
    if (s) stats.set(Number(e), { ppid: s.ppid, ticks: s.utime + s.stime + s.cutime + s.cstime });
  }
  let total = 0;
  const walk = (p: number): void => {
    total += stats.get(p)?.ticks ?? 0;
    for (const [child, s] of stats) if (s.ppid === p) walk(child);
  };
  walk(pid);
  return total / USER_HZ;
}

/** CPU seconds (user + system) spent so far by this one process; 0 when it is gone or off Linux. */
export function processCpuSeconds(pid: number): number {
  const s = procStat(pid);
  return s ? (s.utime + s.stime) / USER_HZ : 0;
}

/** The fields of /proc/<pid>/stat these figures need (in clock ticks), or undefined when it is gone. */
function procStat(pid: number): { ppid: number; utime: number; stime: number; cutime: number; cstime: number } | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state ppid … utime(14) stime(15) cutime(16) cstime(17), 1-based.
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
  } catch {
    return undefined;
  }
}
