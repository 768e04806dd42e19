/**
 * `npm run bench [-- name …]`: runs the named benchmarks (all when none is named) and prints their
 * figures. Benchmarks are kept out of `npm test`: speed is measured here, never asserted in tests.
 */
const BENCHES: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  boot: () => import('./boot.ts'),
  pipeline: () => import('./pipeline.ts'),
  engine: () => import('./engine.ts'),
  chat: () => import('./chat.ts'),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length ? wanted : Object.keys(BENCHES);
for (const name of names) {
  const load = BENCHES[name];
  if (!load) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n# bench/${name}`);
  await (await load()).run();
}
