import { createHmac, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createDatabase } from '../src/store/database.ts';
import { grantRole } from '../src/store/principals.ts';
import { perBackend, printBackend, runCli, startReflex, treeCpuSeconds, vendorStandIn } from './harness.ts';
import { fmt, percentile } from './stats.ts';

/**
 * Slack slash commands under load, per queue backend, on the embedded PostgreSQL with the server
 * in a process of its own (`reflex start`, pipeline and engine off):
 * - ack: from sending a signed `/reflex enrich <ip>` to its HTTP answer;
 * - answer: from sending it to its answer arriving at the command's response_url;
 * with BENCH_CHAT_USERS (50) users each sending BENCH_CHAT_COMMANDS (20) commands one after another.
 * VirusTotal and AbuseIPDB are a local stand-in serving the fixture payloads; Slack's
 * response_url host is a local stand-in too (SLACK_RESPONSE_URL_BASE).
 */
const USERS = Number(process.env.BENCH_CHAT_USERS ?? 50);
const COMMANDS = Number(process.env.BENCH_CHAT_COMMANDS ?? 20);
/**
 * Pause of each user between an answer and their next command (BENCH_CHAT_THINK_MS, default 0:
 * every user types again the moment the answer lands, a saturation test). The pause is drawn
 * uniformly from 0.5x to 1.5x so users do not march in step.
 */
const THINK_MS = Number(process.env.BENCH_CHAT_THINK_MS ?? 0);
/** Commands per user sent first and not measured (BENCH_CHAT_WARMUP, default 2). */
const WARMUP = Number(process.env.BENCH_CHAT_WARMUP ?? 2);
const SIGNING_SECRET = `bench-signing-${randomBytes(12).toString('hex')}`;
const TEAM = 'TBENCH01';

/** Slack's side: Web API calls answered `ok`, response_url POSTs timed by their command id. */
async function slackStandIn(): Promise<{ url: string; answered: Map<string, number>; waitFor(id: string): Promise<number>; close(): Promise<void> }> {
  const answered = new Map<string, number>();
  const waiters = new Map<string, (t: number) => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/commands\/[A-Z0-9]+\/(\d+)\//.exec(req.url ?? '');
      if (m) {
        const t = performance.now();
        answered.set(m[1]!, t);
        waiters.get(m[1]!)?.(t);
      }
      res.setHeader('content-type', 'application/json');
      res.end(m ? 'ok' : JSON.stringify({ ok: true }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    answered,
    waitFor: (id) => {
      const t = answered.get(id);
      return t !== undefined ? Promise.resolve(t) : new Promise((resolve) => waiters.set(id, resolve));
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function signedSlash(text: string, user: string, id: number): { body: string; headers: Record<string, string> } {
  const body = new URLSearchParams({
    token: 'unused',
    team_id: TEAM,
    team_domain: 'bench',
    channel_id: 'CBENCH01',
    channel_name: 'soc',
    user_id: user,
    user_name: user.toLowerCase(),
    command: '/reflex',
    text,
    api_app_id: 'ABENCH01',
    response_url: `https://hooks.slack.com/commands/${TEAM}/${id}/${randomBytes(8).toString('hex')}`,
    trigger_id: `${id}.${randomBytes(6).toString('hex')}`,
  }).toString();
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = `v0=${createHmac('sha256', SIGNING_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
  return { body, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': ts, 'x-slack-signature': sig } };
}

// Slack's side of the wire: plain keep-alive HTTP/1.1 (fetch cost the load generator, which shares
// the 2 cores with the server, about a third more CPU per command).
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function post(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function benchBackend(backend: 'redis' | 'postgres'): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `reflex-bench-chat-${backend}-`));
  const vendors = await vendorStandIn();
  const slack = await slackStandIn();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REFLEX_DATA_DIR: dataDir,
    REFLEX_API_TOKEN: `bench_${randomBytes(18).toString('hex')}`,
    REFLEX_DISABLED_FEATURES: 'pipeline,engine',
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_BOT_TOKEN: 'xoxb-bench-0000',
    SLACK_API_URL: `${slack.url}/api/`,
    SLACK_RESPONSE_URL_BASE: slack.url,
    VIRUSTOTAL_API_URL: vendors.url,
    ABUSEIPDB_API_URL: vendors.url,
  };
  delete env.DATABASE_URL;
  if (backend === 'redis') {
    env.REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    env.REFLEX_QUEUE_PREFIX = `{benchchat${randomBytes(3).toString('hex')}}`;
  } else delete env.REDIS_URL;
  const c = await startReflex(env);
  const lines: string[] = [];
  try {
    await runCli(c.env, ['secrets', 'set', 'virustotal.api_key'], 'bench-vt-key');
    await runCli(c.env, ['secrets', 'set', 'abuseipdb.api_key'], 'bench-abuse-key');
    const pgState = JSON.parse(readFileSync(path.join(dataDir, 'pg.json'), 'utf8')) as { port: number; user: string; password: string };
    const database = createDatabase({ url: `postgres://${pgState.user}:${encodeURIComponent(pgState.password)}@127.0.0.1:${pgState.port}/postgres`, schema: 'reflex', max: 4 });
    const users = Array.from({ length: USERS }, (_, i) => `UBENCH${String(i).padStart(4, '0')}`);
    for (const u of users) await grantRole(database.db, { identity: { platform: 'slack', workspace: TEAM, userId: u }, tenantId: 'default', role: 'analyst', actor: 'bench' });
    await database.close();

    const acks: number[] = [];
    const answers: number[] = [];
    let failures = 0;
    let next = 0;
    const drive = (commands: number, record: boolean) =>
      Promise.all(
        users.map(async (user) => {
          for (let k = 0; k < commands; k++) {
            const id = next++;
            const ip = `198.51.${100 + (id >> 8) % 100}.${id & 255}`;
            const { body, headers } = signedSlash(`enrich ${ip}`, user, id);
            const sent = performance.now();
            const status = await post(`${c.url}/slack/events`, headers, body);
            const ack = performance.now() - sent;
            if (status !== 200) {
              failures += 1;
              continue;
            }
            const answer = (await slack.waitFor(String(id))) - sent;
            if (record) {
              acks.push(ack);
              answers.push(answer);
            }
            if (THINK_MS > 0) await new Promise((r) => setTimeout(r, THINK_MS * (0.5 + Math.random())));
          }
        }),
      );
    // Warm-up, not measured: the server's pools open their connections and its code gets compiled.
    await drive(WARMUP, false);
    const cpu0 = treeCpuSeconds(c.child.pid!);
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    await drive(COMMANDS, true);
    const seconds = (performance.now() - t0) / 1000;
    const total = USERS * COMMANDS;
    const cpuMs = ((treeCpuSeconds(c.child.pid!) - cpu0) * 1000) / total;
    const own = process.cpuUsage(own0);
    const ownMs = (own.user + own.system) / 1000 / total;
    const pacing = THINK_MS > 0 ? `each pausing ~${fmt(THINK_MS)} ms after an answer` : 'each sending the next the moment an answer lands';
    lines.push(`${fmt(total)} signed /reflex enrich commands from ${USERS} concurrent users (${COMMANDS} each, ${pacing}; ${WARMUP} each before, not measured): ${fmt(total / seconds)} commands/s, ${failures} refused`);
    lines.push(`ack (request -> HTTP 200): p50 ${fmt(percentile(acks, 50), 1)} ms, p95 ${fmt(percentile(acks, 95), 1)} ms, p99 ${fmt(percentile(acks, 99), 1)} ms`);
    lines.push(`answer (request -> response_url POST): p50 ${fmt(percentile(answers, 50), 1)} ms, p95 ${fmt(percentile(answers, 95), 1)} ms, p99 ${fmt(percentile(answers, 99), 1)} ms; vendor calls ${fmt(vendors.calls())}`);
    lines.push(`CPU per command, server process and its embedded PostgreSQL: ${fmt(cpuMs, 2)} ms (Redis and the load generator not counted); the load generator with its stand-ins: ${fmt(ownMs, 2)} ms`);
  } finally {
    await c.stop();
    await vendors.close();
    await slack.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  printBackend(backend, lines);
}

export const run = (): Promise<void> => perBackend(benchBackend);
