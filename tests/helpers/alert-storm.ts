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

/** Posts a storm: `singleShare` of it as one POST per alert, the rest as NDJSON batches. */
export async function postStorm(
  baseUrl: string,
  token: string,
  alerts: StormAlert[],
  opts: { concurrency: number; batchSize: number; singleShare: number; onLatency?: (ms: number, alerts: number) => void },
): Promise<{ posted: number; requests: number; refused: number }> {
  const singles = alerts.slice(0, Math.floor(alerts.length * opts.singleShare));
  const rest = alerts.slice(singles.length);
  const requests: { source: string; body: string; count: number }[] = singles.map((a) => ({ source: a.source, body: JSON.stringify(a.body), count: 1 }));
  for (const source of ['wazuh', 'cowrie', 'generic'] as const) {
    const of = rest.filter((a) => a.source === source);
    for (let i = 0; i < of.length; i += opts.batchSize) {
      const chunk = of.slice(i, i + opts.batchSize);
      requests.push({ source, body: chunk.map((a) => JSON.stringify(a.body)).join('\n'), count: chunk.length });
    }
  }
  let next = 0;
  let posted = 0;
  let refused = 0;
  const worker = async () => {
    while (next < requests.length) {
      const r = requests[next++]!;
      const path = r.source === 'generic' ? '/hooks/generic/kiosk' : `/hooks/${r.source}`;
      for (;;) {
        const t0 = performance.now();
        const res = await fetch(`${baseUrl}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': r.count > 1 ? 'application/x-ndjson' : 'application/json' },
          body: r.body,
        });
        const text = await res.text();
        if (res.status === 202) {
          opts.onLatency?.(performance.now() - t0, r.count);
          posted += r.count;
          break;
        }
        if (res.status === 429) {
          // What a well-behaved sender does: wait as told, then send the same request again.
          refused += 1;
          await new Promise((resolve) => setTimeout(resolve, Number(res.headers.get('retry-after') ?? 1) * 1000));
          continue;
        }
        throw new Error(`hook answered ${res.status}: ${text}`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return { posted, requests: requests.length, refused };
}
