import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/env.ts';
import { embeddedEnv, processesMatching, runReflex, waitForHttp } from '../../helpers/processes.ts';

/**
 * What a new user does: `npm start` with nothing configured, on the embedded default.
 */
describe('npm start on the embedded default', () => {
  let dataDir: string;
  let port: number;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'reflex-start-'));
    port = await freePort();
    env = embeddedEnv({ REFLEX_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' });
  });
  afterAll(() => {
    for (const pid of processesMatching(`-D ${dataDir}/pg`)) process.kill(pid, 'SIGINT');
    rmSync(dataDir, { recursive: true, force: true });
  });

  function npmStart(): { child: ChildProcess; output: () => string } {
    const child = spawn('npm', ['start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return { child, output: () => out };
  }

  it('starts, becomes ready, prints where to go next, and stops cleanly on SIGTERM leaving no PostgreSQL', async () => {
    const { child, output } = npmStart();
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, child);
    const token = readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim();
    expect(output()).toContain(`http://localhost:${port}/`);
    expect(output()).toContain(token);
    expect(output()).toMatch(/curl .*Authorization: Bearer/);
    // The key and token files are private; PostgreSQL listens on loopback only, never 5432.
    expect(statSync(path.join(dataDir, 'master.key')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dataDir, 'api-token')).mode & 0o777).toBe(0o600);
    const pgState = JSON.parse(readFileSync(path.join(dataDir, 'pg.json'), 'utf8')) as { port: number };
    expect(pgState.port).not.toBe(5432);
    const pgPids = processesMatching(`-D ${dataDir}/pg`);
    expect(pgPids.length).toBe(1);
    const cmdline = readFileSync(`/proc/${pgPids[0]}/cmdline`, 'utf8');
    expect(cmdline).toContain('listen_addresses=127.0.0.1');

    const tenants = await fetch(`http://127.0.0.1:${port}/api/v1/tenants`, { headers: { authorization: `Bearer ${token}` } });
    expect(await tenants.json()).toMatchObject({ items: [{ id: 'default' }] });

    // A CLI command with the same data dir uses the running cluster and leaves it running.
    const list = await runReflex(['secrets', 'list'], env);
    expect(list.code).toBe(0);
    expect(processesMatching(`-D ${dataDir}/pg`)).toEqual(pgPids);

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(processesMatching(`-D ${dataDir}/pg`)).toEqual([]);
  }, 120_000);

  it('with the server stopped, a CLI command starts the cluster for itself and stops it after', async () => {
    const set = await runReflex(['secrets', 'set', 'virustotal.api_key', '--tenant', 'default'], env, 'vt-secret-value\n');
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    const list = await runReflex(['secrets', 'list'], env);
    expect(list.stdout).toContain('virustotal.api_key');
    expect(list.stdout).not.toContain('vt-secret-value');
    expect(processesMatching(`-D ${dataDir}/pg`)).toEqual([]);
  }, 60_000);

  it('a second start reuses the data: same token, same tenant, the secret still readable', async () => {
    const tokenBefore = readFileSync(path.join(dataDir, 'api-token'), 'utf8');
    const { child } = npmStart();
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, child);
    expect(readFileSync(path.join(dataDir, 'api-token'), 'utf8')).toBe(tokenBefore);
    const audit = await fetch(`http://127.0.0.1:${port}/api/v1/audit`, { headers: { authorization: `Bearer ${tokenBefore.trim()}` } });
    const actions = ((await audit.json()) as { items: { action: string }[] }).items.map((i) => i.action);
    expect(actions).toEqual(['tenant.create', 'ingest.token.create', 'secret.set']);
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(processesMatching(`-D ${dataDir}/pg`)).toEqual([]);
    const verify = await runReflex(['audit', 'verify'], env);
    expect(verify.stdout).toMatch(/audit chain OK: 3 rows/);
  }, 120_000);
});
