#!/usr/bin/env -S node --no-node-snapshot --max-semi-space-size=4
// The `reflex` CLI and `npm start`. --max-semi-space-size=4 (MB) keeps V8's young generation
// small: idle RSS drops from ~135 MB to ~108 MB (bench/boot); a server's garbage is short-lived.
// Runs the compiled build in dist/ when it is up to date with
// the sources (fast start, less memory), and the TypeScript sources through tsx otherwise, so a
// fresh edit never runs stale code. `npm install` builds dist/ (the `prepare` script).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = path.join(root, 'dist/src/app/main.js');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const fresh =
  existsSync(built) &&
  statSync(built).mtimeMs >= Math.max(newestSource(path.join(root, 'src')), newestSource(path.join(root, 'migrations')));

if (fresh) {
  await import(pathToFileURL(built).href);
} else {
  if (process.env.REFLEX_QUIET_LAUNCH !== '1') {
    process.stderr.write('sentreflex: running from TypeScript sources (dist/ is missing or older than src/; `npm run build` for a faster start)\n');
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(root, 'src/app/main.ts')).href);
}
