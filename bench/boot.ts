import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fmt, median } from './stats.ts';

/**
 * Time from `npm start` to `/readyz` 200 on the embedded default, cold (empty data dir: initdb,
 * migrations) and warm (restart on the same data), and the idle RSS of the server process
 * (the node process only; embedded PostgreSQL's own memory is reported beside it).
 */
const COLD_RUNS = 3;
const WARM_RUNS = 5;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address() as net.AddressInfo;
      srv.close(() => resolve(a.port));
    });
  });
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return Number(readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

async function startOnce(dataDir: string, measureRss: boolean): Promise<{ ms: number; rss?: number; pgRss?: number }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, REFLEX_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  const t0 = performance.now();
  const child: ChildProcess = spawn('npm', ['start'], { env, stdio: 'ignore' });
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      // not yet
    }
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const ms = performance.now() - t0;
  let rss: number | undefined;
  let pgRss: number | undefined;
  if (measureRss) {
    await new Promise((r) => setTimeout(r, 5000)); // let start-up garbage be collected; idle
    const node = childrenOf(child.pid!)[0]!;
    rss = rssMb(node);
    const pg = childrenOf(node).concat(readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dataDir}/pg`);
      } catch {
        return false;
      }
    }));
    const postmaster = [...new Set(pg)][0];
    pgRss = postmaster ? [postmaster, ...childrenOf(postmaster)].reduce((a, p) => a + rssMb(p), 0) : undefined;
  }
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`npm start exited with ${code} after SIGTERM`);
  return { ms, rss, pgRss };
}

export async function run(): Promise<void> {
  const cold: number[] = [];
  const warm: number[] = [];
  let rss = 0;
  let pgRss = 0;
  for (let i = 0; i < COLD_RUNS; i++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'reflex-bench-boot-'));
    try {
      cold.push((await startOnce(dir, false)).ms);
      if (i === 0) {
        for (let j = 0; j < WARM_RUNS; j++) {
          const r = await startOnce(dir, j === WARM_RUNS - 1);
          warm.push(r.ms);
          if (r.rss) rss = r.rss;
          if (r.pgRss) pgRss = r.pgRss;
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`cold start (npm start -> /readyz 200, empty data dir), median of ${COLD_RUNS}: ${fmt(median(cold))} ms  [${cold.map((v) => fmt(v)).join(', ')}]`);
  console.log(`warm start (same data dir), median of ${WARM_RUNS}: ${fmt(median(warm))} ms  [${warm.map((v) => fmt(v)).join(', ')}]`);
  console.log(`idle RSS of the server process after 5 s: ${fmt(rss, 1)} MB`);
  console.log(`embedded PostgreSQL (postmaster + backends) RSS: ${fmt(pgRss, 1)} MB`);
}
