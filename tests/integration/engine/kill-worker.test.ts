import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../../helpers/env.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';
import { createHarness, playbook, type Harness } from './engine-harness.ts';

/**
 * A worker SIGKILLed in the middle of a side effect leaves a run another worker finishes, with
 * every side effect applied once. nock only intercepts in its own process, so the side effects go
 * to a tiny HTTP server of this test that counts requests per Idempotency-Key and applies each
 * key once (as a vendor honouring idempotency keys does). Its second step holds the first request
 * open until the test has killed the worker that sent it.
 */
function yamlFor(port: number): string {
  const call = (id: string) => `  - id: ${id}
    action: http.request
    with: { method: POST, url: "http://127.0.0.1:${port}/${id}", body: { step: ${id} } }
    retry: { max_attempts: 3, delay: 1s }
`;
  return `id: kill-test
name: Three side effects
version: 1
trigger: { manual: true }
steps:
${call('block_ip')}${call('isolate_host')}${call('notify_vendor')}`;
}

interface Vendor {
  port: number;
  requests: Map<string, number>;
  applied: Map<string, number>;
  /** Resolves when the first request of `isolate_host` arrived (and is being held). */
  held: Promise<string>;
  close(): Promise<void>;
}

async function startVendor(): Promise<Vendor> {
  const requests = new Map<string, number>();
  const applied = new Map<string, number>();
  let heldOnce = false;
  let resolveHeld!: (key: string) => void;
  const held = new Promise<string>((r) => (resolveHeld = r));
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    req.resume();
    const key = String(req.headers['idempotency-key'] ?? '');
    requests.set(key, (requests.get(key) ?? 0) + 1);
    if (req.url === '/isolate_host' && !heldOnce) {
      heldOnce = true;
      open.add(res);
      resolveHeld(key);
      return; // never answered: the worker holding it is killed
    }
    if (!applied.has(key)) applied.set(key, 1);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, key }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    applied,
    held,
    close: async () => {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe.each(QUEUE_BACKENDS)('kill a worker mid-run on $name', (backend) => {
  let h: Harness | undefined;
  let vendor: Vendor | undefined;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await h?.stop();
    await vendor?.close();
    h = undefined;
    vendor = undefined;
    child = undefined;
  });

  it('finishes the run on another worker with each side effect applied once', async () => {
    vendor = await startVendor();
    const yaml = yamlFor(vendor.port);
    h = await createHarness({ playbooks: [playbook(yaml, 'kill.yaml')], backend, workers: false });
    child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', 'tests/integration/engine/helpers/engine-worker-child.ts'], {
      env: { ...process.env, ENGINE_CHILD: JSON.stringify({ url: TEST_DATABASE_URL, schema: h.database.schema, queue: h.queueConfig, playbook: yaml }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      child!.once('exit', (code) => reject(new Error(`worker child exited with ${code}`)));
    });

    const run = await h.engine.runs.start({ tenantId: h.tenantId, playbookId: 'kill-test', inputs: {}, startedBy: 'test', manual: true });
    const heldKey = await vendor.held;
    expect(heldKey).toBe(`reflex-${run.id}-isolate_host`);
    child.kill('SIGKILL');
    await once(child, 'exit');
    // The killed worker left the step running: started, side effect in flight, never settled.
    const inFlight = await h.db.selectFrom('run_steps').select(['status']).where('run_id', '=', run.id).where('step_id', '=', 'isolate_host').executeTakeFirstOrThrow();
    expect(inFlight.status).toBe('running');

    // Another worker (this process) takes the stalled job over and finishes the run.
    h.engine.startWorkers();
    expect(await h.waitForRun(run.id, ['succeeded', 'failed'], 45_000)).toMatchObject({ status: 'succeeded' });

    const names = ['block_ip', 'isolate_host', 'notify_vendor'];
    const keys = names.map((s) => `reflex-${run.id}-${s}`);
    // Completed steps were never repeated; the interrupted one was repeated with the same key,
    // so the vendor applied it once.
    expect(Object.fromEntries(names.map((s, i) => [s, vendor!.requests.get(keys[i]!)]))).toEqual({ block_ip: 1, isolate_host: 2, notify_vendor: 1 });
    expect(keys.map((k) => vendor!.applied.get(k))).toEqual([1, 1, 1]);
    expect([...vendor.requests.keys()].sort()).toEqual([...keys].sort());
    const steps = await h.steps(run.id);
    expect(steps.map((s) => [s.step_id, s.attempt, s.status])).toEqual([
      ['block_ip', 1, 'succeeded'],
      ['isolate_host', 1, 'succeeded'],
      ['notify_vendor', 1, 'succeeded'],
    ]);
    const settled = await h.db.selectFrom('audit_log').select('action').where('target', '=', `run:${run.id}/step:isolate_host`).execute();
    expect(settled.filter((a) => a.action === 'run.step.succeeded')).toHaveLength(1);
  }, 90_000);
});
