import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineFeature } from '../../../src/pipeline/pipeline-feature.ts';
import { buildStorm, postStorm } from '../../helpers/alert-storm.ts';
import { settle } from '../../helpers/pipeline.ts';
import { startTestServer, type TestServer } from '../../helpers/test-server.ts';

const TOTAL = 20_000;

/**
 * 20,000 alerts (Wazuh, Cowrie, generic; most of them repeats) posted concurrently, part as single
 * POSTs and part as NDJSON batches. Afterwards every alert is accounted for:
 * new + deduplicated + suppressed + dead_lettered = posted, with nothing left in flight.
 */
describe.each(['postgres', 'redis'] as const)('alert storm on the %s queue backend', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ queue: backend, features: [pipelineFeature] });
    await s.store.db
      .insertInto('suppression_rules')
      .values({ tenant_id: 'default', name: 'lab range', match: `$substringBefore(event.observables.ip[0], '.') = '198' and $number($split(event.observables.ip[0], '.')[3]) < 8`, owner: 'soc-lead', reason: 'lab scanners', expires_at: new Date(Date.now() + 3_600_000) })
      .execute();
  });
  afterAll(() => s.stop());

  it(`accounts for every one of ${TOTAL.toLocaleString('en-US')} alerts`, async () => {
    const storm = buildStorm(TOTAL);
    const result = await postStorm(s.url, s.store.local.ingestToken, storm, { concurrency: 32, batchSize: 200, singleShare: 0.3 });
    expect(result.posted).toBe(TOTAL);
    const st = await settle(s, { timeout: 240_000 });
    expect(st.accepted).toBe(TOTAL);
    expect(st.new + st.deduplicated + st.suppressed + st.dead_lettered).toBe(TOTAL);
    expect(st.in_flight).toBe(0);
    // Many repeats, some suppressed, and the stored rows agree with the counters.
    expect(st.deduplicated).toBeGreaterThan(st.new);
    expect(st.suppressed).toBeGreaterThan(0);
    const alerts = await s.store.db.selectFrom('alerts').select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.sum<string>('occurrences').as('occ')]).executeTakeFirstOrThrow();
    expect(Number(alerts.n)).toBe(st.new);
    expect(Number(alerts.occ)).toBe(st.new + st.deduplicated);
    const events = await s.store.db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(Number(events.n)).toBe(TOTAL - st.dead_lettered);
  }, 300_000);
});
