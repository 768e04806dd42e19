import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueSystem, type QueueBackendConfig } from '../../../src/app/queue.ts';
import { readCounters } from '../../../src/pipeline/counters.ts';
import type { SentinelEvent } from '../../../src/pipeline/event.ts';
import { PIPELINE_QUEUES, type AlertJob, type DedupeJob } from '../../../src/pipeline/jobs.ts';
import { normalize } from '../../../src/pipeline/normalize/index.ts';
import { createDedupeStage, type DedupeResult } from '../../../src/pipeline/stages/dedupe-stage.ts';
import { TenantDirectory } from '../../../src/pipeline/tenant-directory.ts';
import { auditedWrite } from '../../../src/store/audit-log.ts';
import { QUEUE_BACKENDS } from '../../helpers/queue-backends.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

const redis = QUEUE_BACKENDS.find((b) => b.name === 'redis')!;

/** A kiosk alert from one IP, as the generic normalizer makes it. */
function kiosk(ip: string, severity = 3): SentinelEvent {
  const [event] = normalize('generic', { event_type: 'generic.alert', severity, timestamp: '2026-11-21T03:00:00Z', host: { name: 'kiosk-1' }, observables: { ip } }, { tenantId: 'acme', genericName: 'kiosk' });
  return event!;
}

const job = (events: SentinelEvent[], urgent = false): DedupeJob => ({ batchId: randomUUID(), tenantId: 'acme', receivedAt: new Date().toISOString(), events, ...(urgent ? { urgent } : {}) });

describe('dedupe merges concurrent jobs into one transaction', () => {
  let t: TestDatabase;
  let config: QueueBackendConfig;
  let queues: QueueSystem;
  const added: { queue: string; ids: string[] }[] = [];
  beforeAll(async () => {
    t = await createTestDatabase();
    await auditedWrite(t.db, 'test', async (trx, audit) => {
      await trx.insertInto('tenants').values({ id: 'acme', name: 'Acme', config: JSON.stringify({}) }).execute();
      audit({ tenantId: 'acme', action: 'tenant.create', target: 'acme', delta: {} });
    });
    config = redis.fresh();
    queues = new QueueSystem(config);
    const addBulk = queues.addBulk.bind(queues);
    queues.addBulk = (async (queue: string, jobs: { opts?: { jobId?: string } }[]) => {
      added.push({ queue, ids: jobs.map((j) => j.opts?.jobId ?? '') });
      return addBulk(queue, jobs as never);
    }) as typeof queues.addBulk;
  });
  afterAll(async () => {
    await queues.close();
    await redis.cleanup(config);
    await t.drop();
  });

  it('gives each job its own result and marker, counts every event once, and hands the merge on in one job', async () => {
    const dedupe = createDedupeStage({ db: t.db, queues, tenants: new TenantDirectory(t.db) }, { maxConcurrent: 1 });
    const first = job([kiosk('192.0.2.1')]);
    const a = job([kiosk('192.0.2.10'), kiosk('192.0.2.11')]);
    const b = job([kiosk('192.0.2.10'), kiosk('192.0.2.12')]);
    const c = job([kiosk('192.0.2.13')]);
    // The first job is written alone; a, b and c arrive meanwhile and share the next transaction.
    const [r0, ra, rb, rc] = await Promise.all([dedupe(first), dedupe(a), dedupe(b), dedupe(c)]);
    expect(r0!.newAlertIds).toHaveLength(1);
    expect(ra!.newAlertIds).toHaveLength(2);
    // b repeats a's first alert (same fingerprint, same merge): deduplicated onto it, not a new one.
    expect(rb!.newAlertIds).toHaveLength(1);
    expect(rb!.deduplicated).toBe(1);
    expect(rb!.repeatAlertIds).toEqual([ra!.newAlertIds[0]]);
    expect(rc!.newAlertIds).toHaveLength(1);

    const alerts = await t.db.selectFrom('alerts').select(['id', 'occurrences']).where('tenant_id', '=', 'acme').execute();
    expect(alerts).toHaveLength(5);
    expect(alerts.find((x) => x.id === ra!.newAlertIds[0])!.occurrences).toBe(2);
    const counters = await readCounters(t.db, 'acme');
    expect([counters.new, counters.deduplicated]).toEqual([5, 1]);
    const markers = await t.db.selectFrom('pipeline_batches').select('batch_id').where('stage', '=', 'dedupe').execute();
    expect(markers.map((m) => m.batch_id).sort()).toEqual([first, a, b, c].map((j) => j.batchId).sort());

    // Two enrich jobs: the lone first one, and one for the merge's four new alerts.
    const enrich = await queues.queue(PIPELINE_QUEUES.enrich).getJobs(['waiting', 'prioritized']);
    const byId = new Map(enrich.map((j) => [j.id, (j.data as AlertJob).alertIds]));
    expect([...byId.keys()].sort()).toEqual([`enrich-${first.batchId}-r0`, `enrich-${a.batchId}-r0`].sort());
    expect(byId.get(`enrich-${a.batchId}-r0`)!.sort()).toEqual([...ra!.newAlertIds, ...rb!.newAlertIds, ...rc!.newAlertIds].sort());
    // b's repeat of a's alert gets its delayed "2nd occurrence" update.
    const repeats = await queues.queue(PIPELINE_QUEUES.notify).getJobs(['delayed']);
    expect(repeats.map((j) => (j.data as AlertJob).alertIds)).toEqual([[ra!.newAlertIds[0]]]);
  });

  it('replays a job whose marker exists (a retry) without counting or creating anything again', async () => {
    const dedupe = createDedupeStage({ db: t.db, queues, tenants: new TenantDirectory(t.db) });
    const once = job([kiosk('192.0.2.20'), kiosk('192.0.2.20')]);
    const r1 = await dedupe(once);
    const before = await readCounters(t.db, 'acme');
    const r2: DedupeResult = await dedupe(once);
    expect(r2).toEqual(r1);
    expect(await readCounters(t.db, 'acme')).toEqual(before);
    const events = await t.db.selectFrom('events').select('id').where('fingerprint', '=', (await t.db.selectFrom('alerts').select('fingerprint').where('id', '=', r1.newAlertIds[0]!).executeTakeFirstOrThrow()).fingerprint).execute();
    expect(events).toHaveLength(2);
  });

  it('asks the queue for a repeat update once per alert and interval, however many batches repeat it', async () => {
    const dedupe = createDedupeStage({ db: t.db, queues, tenants: new TenantDirectory(t.db) });
    const seed = await dedupe(job([kiosk('192.0.2.30')]));
    added.length = 0;
    for (let i = 0; i < 3; i++) await dedupe(job([kiosk('192.0.2.30')]));
    const notifyAdds = added.filter((x) => x.queue === PIPELINE_QUEUES.notify).flatMap((x) => x.ids);
    expect(notifyAdds).toHaveLength(1);
    expect(notifyAdds[0]).toMatch(new RegExp(`^notify-${seed.newAlertIds[0]}-repeat-\\d+$`));
  });

  it('schedules no repeat updates for a tenant nobody is notified for', async () => {
    const dedupe = createDedupeStage({ db: t.db, queues, tenants: new TenantDirectory(t.db), notifies: () => false });
    await dedupe(job([kiosk('192.0.2.40')]));
    const r = await dedupe(job([kiosk('192.0.2.40')]));
    expect(r.deduplicated).toBe(1);
    expect(r.repeatAlertIds).toEqual([]);
  });
});
