import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Whether Debian's `wrk` is installed (`apt-get install wrk`); the benches fall back to Node's fetch without it. */
export function hasWrk(): boolean {
  return spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined;
}

export interface WrkResult {
  requests: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  non2xx: number;
  socketErrors: string;
}

/**
 * POSTs `requests` (path and body) in turn to `url` for `seconds` over `connections` keep-alive
 * connections from one wrk thread (a C load generator: it leaves the cores to the server, where
 * a Node client of the same rate would take most of one). Latency is per request, send to answer.
 */
export function wrkPost(opts: { url: string; headers: Record<string, string>; requests: { path: string; body: string }[]; seconds: number; connections: number }): WrkResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reflex-wrk-'));
  const lua = path.join(dir, 'post.lua');
  const headers = Object.entries(opts.headers).map(([k, v]) => `[${luaString(k)}] = ${luaString(v)}`).join(', ');
  writeFileSync(
    lua,
    `local paths = { ${opts.requests.map((r) => luaString(r.path)).join(', ')} }
local bodies = { ${opts.requests.map((r) => luaString(r.body)).join(',\n')} }
local headers = { ${headers} }
local i = 0
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", paths[i], headers, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\\n", summary.requests, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
`,
  );
  try {
    const r = spawnSync('wrk', ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', '-s', lua, opts.url], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
    const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stdout);
    const rate = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
    if (!m || !rate) throw new Error(`unexpected wrk output: ${r.stderr} ${r.stdout}`);
    return {
      requests: Number(m[1]),
      non2xx: Number(m[2]),
      p50: Number(m[3]),
      p95: Number(m[4]),
      p99: Number(m[5]),
      perSecond: Number(rate[1]),
      socketErrors: /Socket errors:.*/.exec(r.stdout)?.[0] ?? 'none',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A Lua string literal holding exactly the UTF-8 bytes of `s`: printable ASCII as is, every other byte as \ddd. */
function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}
