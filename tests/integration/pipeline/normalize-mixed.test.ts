import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueSystem } from '../../../src/app/queue.ts';
import { IngestWriter } from '../../../src/pipeline/ingest/ingest-writer.ts';
import { normalizeJob, PIPELINE_QUEUES, type DedupeJob, type NormalizeJob } from '../../../src/pipeline/jobs.ts';
import { runNormalizeStage } from '../../../src/pipeline/stages/normalize-stage.ts';
import { fixtureLines, fixtureText } from '../../helpers/fixtures.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

const sshd = JSON.parse(fixtureText('wazuh/docs_alert_5716_sshd_auth_failed.json')) as Record<string, unknown>;
const noLevel = { ...sshd, rule: Object.fromEntries(Object.entries(sshd.rule as Record<string, unknown>).filter(([k]) => k !== 'level')) };
const cowrieLogin = fixtureLines('cowrie/cowrie_events_from_test_ocsf.jsonl').find((e) => e.eventid === 'cowrie.login.success')!;
const kiosk = { event_type: 'auth.failed', severity: 3, timestamp: '2026-11-21T10:00:00Z', host: { name: 'kiosk-3' }, observables: { ip: '203.0.113.40' } };

describe('normalize jobs that mix sources', () => {
  const backend = QUEUE_BACKENDS.find((b) => b.name === 'redis')!;
  const config = backend.fresh();
  let t: TestDatabase;
  let queues: QueueSystem;
  beforeAll(async () => {
    t = await createTestDatabase();
    queues = new QueueSystem(config);
  });
  afterAll(async () => {
    await queues.close();
    await backend.cleanup(config);
    await t.drop();
  });

  it('writes one job per tenant and urgency for a flush from several hooks, each item with its normalizer', async () => {
    const writer = new IngestWriter(queues, t.db);
    await Promise.all([
      writer.submit({ tenantId: 'mix', source: 'wazuh', genericName: undefined, items: [sshd], counts: [1] }),
      writer.submit({ tenantId: 'mix', source: 'cowrie', genericName: undefined, items: [cowrieLogin], counts: [1] }),
      writer.submit({ tenantId: 'mix', source: 'generic', genericName: 'kiosk', items: [kiosk], counts: [1] }),
      writer.submit({ tenantId: 'mix', source: 'wazuh', genericName: undefined, items: [sshd], counts: [1] }),
    ]);
    const jobs = await queues.queue(PIPELINE_QUEUES.normalize).getJobs(['waiting', 'prioritized']);
    expect(jobs).toHaveLength(1);
    const data = normalizeJob.parse(jobs[0]!.data);
    expect(jobs[0]!.name).toBe('mixed');
    expect(data.sources).toEqual([{ source: 'wazuh' }, { source: 'cowrie' }, { source: 'generic', genericName: 'kiosk' }, { source: 'wazuh' }]);
    expect(data.counts).toEqual([1, 1, 1, 1]);

    // One source only: no per-item list, as before.
    await writer.submit({ tenantId: 'solo', source: 'wazuh', genericName: undefined, items: [sshd, sshd], counts: [1, 1] });
    const solo = (await queues.queue(PIPELINE_QUEUES.normalize).getJobs(['waiting', 'prioritized'])).find((j) => (j.data as NormalizeJob).tenantId === 'solo')!;
    expect(solo.name).toBe('wazuh');
    expect((solo.data as NormalizeJob).sources).toBeUndefined();
  });

  it('refuses a job whose per-item list does not match its items', () => {
    const bad = { batchId: 'b', tenantId: 'mix', source: 'wazuh', sources: [{ source: 'wazuh' }], receivedAt: '2026-11-21T10:00:00Z', items: [sshd, sshd], counts: [1, 1] };
    const r = normalizeJob.safeParse(bad);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['sources']);
  });

  it('normalizes each item with its own normalizer, and dead-letters a bad one as a job of its own source', async () => {
    const job: NormalizeJob = {
      batchId: '5b1f0f7e-0000-4000-8000-00000000mix1',
      tenantId: 'mix',
      source: 'generic',
      genericName: 'kiosk',
      sources: [{ source: 'generic', genericName: 'kiosk' }, { source: 'wazuh' }, { source: 'cowrie' }, { source: 'wazuh' }],
      receivedAt: '2026-11-21T10:00:01Z',
      items: [kiosk, sshd, cowrieLogin, noLevel],
      counts: [1, 1, 1, 1],
    };
    const out = await runNormalizeStage(normalizeJob.parse(job), { db: t.db, queues });
    expect(out).toEqual({ events: 3, deadLettered: 1 });
    const [next] = await queues.queue(PIPELINE_QUEUES.dedupe).getJobs(['waiting', 'prioritized']);
    const events = (next!.data as DedupeJob).events;
    expect(events.map((e) => e.source)).toEqual(['generic:kiosk', 'wazuh', 'cowrie']);
    expect(events[0]!.host.name).toBe('kiosk-3');

    const dead = await t.db.selectFrom('dead_letters').selectAll().where('tenant_id', '=', 'mix').execute();
    expect(dead).toHaveLength(1);
    expect(dead[0]!.job_id).toBe(`normalize-${job.batchId}#3`);
    expect(dead[0]!.error).toContain('rule.level');
    const replayable = normalizeJob.parse(dead[0]!.data);
    expect(replayable).toMatchObject({ source: 'wazuh', items: [noLevel], counts: [1] });
    expect(replayable.sources).toBeUndefined();
    expect(replayable.genericName).toBeUndefined();
  });
});
