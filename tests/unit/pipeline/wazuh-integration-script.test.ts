import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const SCRIPT_DIR = path.resolve(process.cwd(), 'integrations/wazuh');
const PY_SCRIPT = path.join(SCRIPT_DIR, 'custom-sentreflex.py');
const WRAPPER = path.join(SCRIPT_DIR, 'custom-sentreflex');
const ALERT_FILE = path.resolve(process.cwd(), '../shared/fixtures/wazuh/docs_alert_5716_sshd_auth_failed.json');
const ALERT_BYTES = readFileSync(ALERT_FILE);

interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}
interface Reply {
  status: number;
  headers?: Record<string, string>;
}

let server: Server;
let hookUrl: string;
let received: Received[] = [];
let replies: Reply[] = [];
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'sentreflex-integration-'));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(chunks) });
      const reply = replies.shift() ?? { status: 202 };
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(JSON.stringify({ status: reply.status }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/wazuh`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => {
  received = [];
  replies = [];
});

/** Runs like integratord does: argv only, no shell; fast backoff through a Wazuh options file. */
function run(args: string[], options: Record<string, unknown> = { backoff_base: 0.01, max_attempts: 4 }, command = 'python3') {
  const optionsFile = path.join(tmp, `custom-sentreflex-${Math.random().toString(36).slice(2)}.options`);
  writeFileSync(optionsFile, JSON.stringify(options));
  const argv = command === 'python3' ? [PY_SCRIPT, ...args, optionsFile] : [...args, optionsFile];
  const env: NodeJS.ProcessEnv = { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
  delete env['http_proxy'];
  delete env['HTTP_PROXY'];
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('integrations/wazuh/custom-sentreflex', () => {
  it('POSTs the alert file unchanged with a bearer token', async () => {
    const { code, stderr } = await run([ALERT_FILE, 'wazuh-hook-token', hookUrl]);
    expect(stderr).toContain('delivered alert');
    expect(code).toBe(0);
    expect(received).toHaveLength(1);
    const [req] = received;
    expect(req!.body.equals(ALERT_BYTES)).toBe(true);
    expect(req!.headers['authorization']).toBe('Bearer wazuh-hook-token');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['x-reflex-signature']).toBeUndefined();
    expect(req!.headers['x-reflex-delivery']).toBe(createHash('sha256').update(ALERT_BYTES).digest('hex'));
    // The token is a secret: it must never reach the log.
    expect(stderr).not.toContain('wazuh-hook-token');
  });

  it('signs "<timestamp>.<body>" with HMAC-SHA256 when the key is hmac:<secret>', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { code } = await run([ALERT_FILE, 'hmac:s3cr3t-signing-key', hookUrl]);
    expect(code).toBe(0);
    expect(received).toHaveLength(1);
    const { headers, body } = received[0]!;
    expect(body.equals(ALERT_BYTES)).toBe(true);
    expect(headers['authorization']).toBeUndefined();
    const timestamp = String(headers['x-reflex-timestamp']);
    expect(timestamp).toMatch(/^\d+$/);
    expect(Number(timestamp)).toBeGreaterThanOrEqual(before);
    expect(Number(timestamp)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    const expected = createHmac('sha256', 's3cr3t-signing-key').update(`${timestamp}.`).update(body).digest('hex');
    expect(headers['x-reflex-signature']).toBe(`sha256=${expected}`);
    const wrongKey = createHmac('sha256', 'other-key').update(`${timestamp}.`).update(body).digest('hex');
    expect(headers['x-reflex-signature']).not.toBe(`sha256=${wrongKey}`);
  });

  it('retries a 503 and succeeds on the following 202', async () => {
    replies = [{ status: 503 }, { status: 202 }];
    const { code, stderr } = await run([ALERT_FILE, 'hmac:s3cr3t-signing-key', hookUrl]);
    expect(code).toBe(0);
    expect(received).toHaveLength(2);
    expect(stderr).toContain('HTTP 503');
    for (const { headers, body } of received) {
      expect(body.equals(ALERT_BYTES)).toBe(true);
      const mac = createHmac('sha256', 's3cr3t-signing-key').update(`${String(headers['x-reflex-timestamp'])}.`).update(body).digest('hex');
      expect(headers['x-reflex-signature']).toBe(`sha256=${mac}`);
    }
    // One delivery id across retries, so the receiver can drop a duplicate.
    expect(received[0]!.headers['x-reflex-delivery']).toBe(received[1]!.headers['x-reflex-delivery']);
  });

  it('honours Retry-After on a 429', async () => {
    replies = [{ status: 429, headers: { 'retry-after': '1' } }, { status: 202 }];
    const { code } = await run([ALERT_FILE, 'wazuh-hook-token', hookUrl]);
    expect(code).toBe(0);
    expect(received).toHaveLength(2);
    expect(received[1]!.at - received[0]!.at).toBeGreaterThanOrEqual(900);
  });

  it('does not retry a 401 and exits non-zero', async () => {
    replies = [{ status: 401 }, { status: 202 }];
    const { code, stderr } = await run([ALERT_FILE, 'wrong-token', hookUrl]);
    expect(code).toBe(1);
    expect(received).toHaveLength(1);
    expect(stderr).toContain('HTTP 401');
  });

  it('gives up after max_attempts of 5xx and exits non-zero', async () => {
    replies = [{ status: 500 }, { status: 502 }, { status: 503 }, { status: 202 }];
    const { code, stderr } = await run([ALERT_FILE, 'wazuh-hook-token', hookUrl], { backoff_base: 0.01, max_attempts: 3 });
    expect(code).toBe(1);
    expect(received).toHaveLength(3);
    expect(stderr).toContain('giving up');
  });

  it('retries network errors and exits non-zero when the hook stays unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { code, stderr } = await run([ALERT_FILE, 'wazuh-hook-token', `http://127.0.0.1:${port}/hooks/wazuh`], {
      backoff_base: 0.01,
      max_attempts: 2,
    });
    expect(code).toBe(1);
    expect(stderr.match(/network error/g)).toHaveLength(2);
  });

  it('refuses an alert file that is not JSON (integration missing <alert_format>json)', async () => {
    const ini = path.resolve(process.cwd(), '../shared/fixtures/wazuh/ruleset_test_sshd.ini');
    const { code, stderr } = await run([ini, 'wazuh-hook-token', hookUrl]);
    expect(code).toBe(2);
    expect(received).toHaveLength(0);
    expect(stderr).toContain('alert_format');
  });

  it('runs through the shell wrapper without letting a hostile file name reach a shell', async () => {
    const hostile = path.join(tmp, 'alert $(touch pwned) `touch pwned2`; x.json');
    copyFileSync(ALERT_FILE, hostile);
    const { code } = await run([WRAPPER, hostile, 'wazuh-hook-token', hookUrl], undefined, 'sh');
    expect(code).toBe(0);
    expect(received).toHaveLength(1);
    expect(received[0]!.body.equals(ALERT_BYTES)).toBe(true);
    expect(existsSync(path.join(process.cwd(), 'pwned'))).toBe(false);
    expect(existsSync(path.join(tmp, 'pwned'))).toBe(false);
    expect(existsSync(path.join(process.cwd(), 'pwned2'))).toBe(false);
  });
});
