#!/usr/bin/env node
// House rules a type checker cannot see (STYLE.md):
// - only src/app/config.ts reads process.env (config is parsed once, at boot);
// - no focused, skipped or todo tests;
// - no shell: true in child processes (untrusted text never reaches a shell).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

const problems = [];
for (const file of walk('src')) {
  const text = readFileSync(file, 'utf8');
  text.split('\n').forEach((line, i) => {
    if (/process\.env\b/.test(line) && file !== path.join('src', 'app', 'config.ts') && !/lint-allow: env/.test(line)) {
      problems.push(`${file}:${i + 1}: reads process.env outside src/app/config.ts`);
    }
    if (/shell:\s*true/.test(line)) problems.push(`${file}:${i + 1}: spawns through a shell`);
  });
}
for (const file of walk('tests')) {
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (/\b(it|test|describe)\.(only|skip|todo)\b|\bx(it|describe)\(/.test(line)) problems.push(`${file}:${i + 1}: focused or skipped test`);
  });
}
for (const p of problems) console.error(p);
console.log(problems.length ? `lint: ${problems.length} problem(s)` : 'lint: ok');
process.exit(problems.length ? 1 : 0);
