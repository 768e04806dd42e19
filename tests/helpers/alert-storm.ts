import http from 'node:http';
import { fixtureJson, fixtureLines } from './fixtures.ts';

/**
 * A mixed alert storm built from the real fixtures: Wazuh sshd failures from a pool of attacker
 * IPs (so most are repeats), every Cowrie event type across sessions, and generic kiosk alerts.
 * Shared by the storm test and bench/pipeline so both measure the same traffic.
 */
export interface StormAlert {
  source: 'wazuh' | 'cowrie' | 'generic';
  body: Record<string, unknown>;
}

export function buildStorm(total: number, opts: { distinctIps?: number; seed?: number } = {}): StormAlert[] {
  const sshd = fixtureJson('wazuh/docs_alert_5716_sshd_auth_failed.json');
  const cowrie = fixtureLines('cowrie/cowrie_events_from_test_ocsf.jsonl');
  const distinct = opts.distinctIps ?? 250;
  let state = opts.seed ?? 42;
  const rand = () => {
    // xorshift: the same storm every run, so runs compare.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x100000000;
  };
  const ip = (i: number) => `198.51.${100 + (i >> 8)}.${i & 255}`;
  const out: StormAlert[] = [];
  for (let i = 0; i < total; i++) {
    const r = rand();
    const k = Math.floor(rand() * distinct);
    if (r < 0.6) {
      out.push({
        source: 'wazuh',
        body: { ...sshd, agent: { ...(sshd.agent as object), name: `web-${k % 20}` }, data: { ...(sshd.data as object), srcip: ip(k) } },
      });
    } else if (r < 0.85) {
      const base = cowrie[Math.floor(rand() * cowrie.length)]!;
      out.push({ source: 'cowrie', body: { ...base, src_ip: ip(k), session: `s${(k % 50).toString(16).padStart(12, '0')}` } });
    } else {
      out.push({
        source: 'generic',
        body: {
          event_type: 'generic.alert',
          severity: 3,
          timestamp: new Date(Date.UTC(2026, 10, 21, 3, 0, k % 60)).toISOString(),
          host: { name: `kiosk-${k % 30}` },
          observables: { ip: ip(k) },
          rule: { id: `kiosk-${k % 5}`, name: 'Kiosk tamper switch' },
        },
      });
    }
  }
  return out;
}

/**
 * Posts a storm: `singleShare` of it (plus every alert `single` picks) as one POST per alert, the
 * rest as NDJSON batches per source. Single POSTs are spread evenly between the batches, so the
 * mix stays the same from the first request to the last. `onSend` sees each request's alerts just
 * before its first attempt.
 */
export async function postStorm(
  baseUrl: string,
  token: string,
  alerts: StormAlert[],
  opts: {
    concurrency: number;
    batchSize: number;
    singleShare: number;
    single?: (a: StormAlert) => boolean;
    onLatency?: (ms: number, alerts: number) => void;
    onSend?: (alerts: StormAlert[]) => void;
  },
): Promise<{ posted: number; requests: number; refused: number }> {
  const forced = new Set(opts.single ? alerts.filter(opts.single) : []);
  const others = forced.size ? alerts.filter((a) => !forced.has(a)) : alerts;
  const cut = Math.floor(others.length * opts.singleShare);
  const alone = new Set([...forced, ...others.slice(0, cut)]);
  const rest = others.slice(cut);
  type Request = { source: string; body: string; alerts: StormAlert[] };
  const singles: Request[] = [];
  // Forced singles keep their place in the storm relative to the others.
  for (const a of alerts) if (alone.has(a)) singles.push({ source: a.source, body: JSON.stringify(a.body), alerts: [a] });
  const batches: Request[] = [];
  for (const source of ['wazuh', 'cowrie', 'generic'] as const) {
    const of = rest.filter((a) => a.source === source);
    for (let i = 0; i < of.length; i += opts.batchSize) {
      const chunk = of.slice(i, i + opts.batchSize);
      batches.push({ source, body: chunk.map((a) => JSON.stringify(a.body)).join('\n'), alerts: chunk });
    }
  }
  const requests: Request[] = [];
  const perBatch = batches.length ? singles.length / batches.length : 0;
  let s = 0;
  batches.forEach((b, i) => {
    for (const end = Math.round(perBatch * (i + 1)); s < end; s += 1) requests.push(singles[s]!);
    requests.push(b);
  });
  for (; s < singles.length; s += 1) requests.push(singles[s]!);
  let next = 0;
  let posted = 0;
  let refused = 0;
  // node:http on kept-alive sockets rather than fetch: on a 2-core machine the sender shares the
  // cores with the server it measures, and fetch spent about three times the CPU per request.
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const url = new URL(baseUrl);
  const post = (path: string, contentType: string, body: string) =>
    new Promise<{ status: number; retryAfter: string | undefined; text: string }>((resolve, reject) => {
      const req = http.request(
        { agent, host: url.hostname, port: url.port, path, method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': contentType, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const worker = async () => {
    while (next < requests.length) {
      const r = requests[next++]!;
      const path = r.source === 'generic' ? '/hooks/generic/kiosk' : `/hooks/${r.source}`;
      opts.onSend?.(r.alerts);
      for (;;) {
        const t0 = performance.now();
        const res = await post(path, r.alerts.length > 1 ? 'application/x-ndjson' : 'application/json', r.body);
        if (res.status === 202) {
          opts.onLatency?.(performance.now() - t0, r.alerts.length);
          posted += r.alerts.length;
          break;
        }
        if (res.status === 429) {
          // What a well-behaved sender does: wait as told, then send the same request again.
          refused += 1;
          await new Promise((resolve) => setTimeout(resolve, Number(res.retryAfter ?? 1) * 1000));
          continue;
        }
        throw new Error(`hook answered ${res.status}: ${res.text}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return { posted, requests: requests.length, refused };
}
