import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Feature } from '../app/features.ts';
import { PeriodicTask } from '../periodic-task.ts';
import type { DeadLetterInfo, QueueSystem } from '../app/queue.ts';
import { ensureTenant, DEFAULT_TENANT } from '../app/runtime.ts';
import { createIntelLookup, defaultIntelProviders } from '../commands/intel-lookup.ts';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database } from '../store/schema.ts';
import type { SmtpMailer } from '../integrations/smtp/smtp-mailer.ts';
import { incrementCounters, readCounters } from './counters.ts';
import { runHousekeeping } from './housekeeping.ts';
import { registerHookRoutes } from './ingest/hook-routes.ts';
import { addIngestToken, IngestAuthenticator } from './ingest/ingest-credentials.ts';
import { IngestWriter } from './ingest/ingest-writer.ts';
import { alertJob, dedupeJob, normalizeJob, PIPELINE_QUEUES, type AlertBatch, type DedupeJob, type NormalizeJob, type PipelineStage } from './jobs.ts';
import { runAlertBatch, type AlertBatchOptions, type BatchOutcome } from './stages/alert-batch.ts';
import { coalesce } from './stages/stage-coalescer.ts';
import { runCaseStage } from './stages/case-stage.ts';
import { createDedupeStage } from './stages/dedupe-stage.ts';
import { runEnrichStage } from './stages/enrich-stage.ts';
import { runNormalizeStage } from './stages/normalize-stage.ts';
import { runNotifyStage } from './stages/notify-stage.ts';
import { runTriggerStage } from './stages/trigger-stage.ts';
import { registerRollupMetrics } from './rollup-metrics.ts';
import type { TenantPipelineConfig } from './tenant-config.ts';
import { TenantDirectory } from './tenant-directory.ts';

function parseJob<T>(schema: z.ZodType<T>, data: unknown, queue: string): T {
  const r = schema.safeParse(data);
  if (!r.success) {
    throw new ReflexError('input.invalid', `${queue} job data invalid: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`, { retryable: false });
  }
  return r.data;
}

/**
 * Records a dead letter in the database (what `reflex dlq` reads). For the batch stages the lost
 * events are counted as dead_lettered, once, so the books still balance.
 */
export async function recordDeadLetter(db: Kysely<Database>, info: DeadLetterInfo): Promise<void> {
  const data = info.data as Partial<NormalizeJob & DedupeJob> & { tenantId?: string };
  let lost =
    info.queue === PIPELINE_QUEUES.normalize ? (data.counts ?? []).reduce((a, b) => a + b, 0) : info.queue === PIPELINE_QUEUES.dedupe ? (data.events ?? []).length : 0;
  await auditedWrite(db, 'queue', async (trx, audit) => {
    // Items of this batch already dead-lettered one by one were counted then; count the rest.
    if (info.queue === PIPELINE_QUEUES.normalize && data.batchId) {
      const marker = await trx.selectFrom('pipeline_batches').select('result').where('batch_id', '=', data.batchId).where('stage', '=', 'normalize').executeTakeFirst();
      lost -= (marker?.result as { lost?: number } | undefined)?.lost ?? 0;
    }
    const res = await trx
      .insertInto('dead_letters')
      .values({ queue: info.queue, job_id: info.jobId, tenant_id: data.tenantId ?? null, data: JSON.stringify(info.data), error: info.error, attempts: info.attempts })
      .onConflict((oc) => oc.columns(['queue', 'job_id']).doNothing())
      .executeTakeFirst();
    const inserted = Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
    if (inserted && lost > 0 && data.tenantId) await incrementCounters(trx, [{ tenantId: data.tenantId, delta: { dead_lettered: lost } }]);
    audit({ tenantId: data.tenantId ?? null, action: 'queue.dead_letter', target: `job:${info.queue}/${info.jobId}`, delta: { error: info.error, attempts: info.attempts, lost, first: inserted } });
  });
}

export interface PipelineHandles {
  queues: QueueSystem;
  writer: IngestWriter;
}

export const pipelineFeature: Feature = {
  name: 'pipeline',
  async register(ctx) {
    const { store, queues, config } = ctx;
    const db = store.db;
    for (const q of Object.values(PIPELINE_QUEUES)) ctx.registerQueue(q);
    // Rollup gauges (alerts, incidents, MTTA/MTTR, pipeline counters), read from the views at scrape time.
    registerRollupMetrics(ctx.metrics.registry, db, { onError: (err) => ctx.logger.warn({ err }, 'rollup metrics: reading the rollup views failed') });
    const tenants = new TenantDirectory(db);
    const writer = new IngestWriter(queues, db);
    // E-mail notifications when SMTP_URL is set; the pool connects on the first send.
    // nodemailer is loaded only when SMTP is configured.
    let mailer: SmtpMailer | undefined;
    if (config.smtp) {
      const [{ SmtpMailer: Mailer }, { EmailNotifier }] = await Promise.all([import('../integrations/smtp/smtp-mailer.ts'), import('./email-notifier.ts')]);
      mailer = new Mailer({ ...config.smtp, logger: ctx.logger });
      ctx.seams.notifiers.push(new EmailNotifier(mailer));
    }

    // The default tenant always exists and accepts the configured (or generated) ingest token.
    await ensureTenant(db, DEFAULT_TENANT, 'Default tenant');
    await addIngestToken(db, { tenantId: DEFAULT_TENANT, source: '*', token: store.local.ingestToken, actor: 'system' });

    if (ctx.role === 'all') {
      registerHookRoutes(ctx.http, {
        auth: new IngestAuthenticator(db, store.vault),
        writer,
        queues,
        maxBytes: config.ingest.maxBytes,
        highWater: config.ingest.highWater,
      });
      ctx.http.get('/api/v1/pipeline/stats', async (req) => {
        const q = z.object({ tenant: z.string().min(1).max(63).optional() }).safeParse(req.query);
        if (!q.success) throw new ReflexError('input.invalid', 'bad tenant', { safeMessage: 'Invalid tenant parameter.', details: { field: 'tenant' } });
        const stats = await readCounters(db, q.data.tenant);
        return { accepted: stats.accepted, new: stats.new, deduplicated: stats.deduplicated, suppressed: stats.suppressed, dead_lettered: stats.dead_lettered, in_flight: stats.in_flight };
      });
      ctx.hint(
        `Send an alert curl -H 'Authorization: Bearer ${store.local.ingestToken}' -H 'content-type: application/json' --data-binary @alert.json ${config.publicUrl ?? `http://localhost:${config.port}`}/hooks/wazuh`,
      );
    }

    let housekeeper: PeriodicTask | undefined;
    if (config.runWorkers) {
      if (config.housekeepingIntervalMs > 0) {
        // A sweep per interval (src/pipeline/housekeeping.ts), never two at once; close waits for one in progress.
        const hkLog = ctx.logger.child({ component: 'housekeeping' });
        housekeeper = new PeriodicTask(async () => {
          const t0 = performance.now();
          try {
            const { skipped, ...r } = await runHousekeeping(db);
            if (r.correlationKeys + r.correlationPending + r.intelCache + r.markers + r.attached > 0) {
              hkLog.info({ ...r, ms: Math.round(performance.now() - t0) }, 'pipeline housekeeping: stale rows deleted, pending alerts attached');
            }
            if (skipped.length > 0) hkLog.warn({ skipped }, 'pipeline housekeeping skipped tenants with an invalid config');
          } catch (err) {
            hkLog.warn({ err }, 'pipeline housekeeping failed; the next sweep tries again');
          }
        }, config.housekeepingIntervalMs).start();
      }
      const onDeadLetter = (info: DeadLetterInfo) => recordDeadLetter(db, info);
      const lookupIntel = createIntelLookup(store.vault, defaultIntelProviders({ virustotal: config.intel.virustotalUrl, abuseipdb: config.intel.abuseipdbUrl }));
      const c = config.workerConcurrency;
      queues.createWorker({ name: PIPELINE_QUEUES.normalize, concurrency: Math.max(2, c >> 2), onDeadLetter, processor: (job) => runNormalizeStage(parseJob(normalizeJob, job.data, job.queueName), { db, queues }) });
      // Dedupe jobs in flight wait for a shared transaction (createDedupeStage): more of them, larger merges.
      // Whether a notifier of this process posts the tenant's alerts: without one, neither first
      // messages (the case stage's hand-on) nor repeat updates (dedupe's) are queued.
      const notifies = (tenantId: string, cfg: TenantPipelineConfig) => ctx.seams.notifiers.some((n) => n.enabledFor(tenantId, cfg));
      const dedupe = createDedupeStage({ db, queues, tenants, notifies });
      queues.createWorker({ name: PIPELINE_QUEUES.dedupe, concurrency: c * 2, onDeadLetter, processor: (job) => dedupe(parseJob(dedupeJob, job.data, job.queueName)) });
      const log = ctx.logger.child({ component: 'pipeline' });
      // Alert-stage jobs mostly wait for their share of a merged batch (stage-coalescer.ts), so
      // more of them in flight means larger batches, not more load.
      const alertStage = <R>(stage: PipelineStage, perBatch: (batch: AlertBatch) => Promise<BatchOutcome<R>>, next: AlertBatchOptions<R>['next']) => {
        const merged = coalesce(perBatch, { name: PIPELINE_QUEUES[stage] });
        queues.createWorker({
          name: PIPELINE_QUEUES[stage],
          concurrency: c * 4,
          onDeadLetter,
          processor: async (job) => {
            const out = await runAlertBatch(parseJob(alertJob, job.data, job.queueName), {
              stage,
              queues,
              perBatch: merged,
              next,
              onAlertFailed: (alertId, err) => log.warn({ err, stage, alertId }, 'alert failed in a batch; retrying it alone'),
            });
            return { handled: out.results.size, split: out.split.length };
          },
        });
      };
      alertStage('enrich', (batch) => runEnrichStage(batch, { db, tenants, vault: store.vault, lookupIntel, concurrency: 16 }), [{ stage: 'case' }]);
      // Seams are read per batch: a chat transport or the engine may register after this.
      alertStage('case', (batch) => runCaseStage(batch, { db, tenants, vault: store.vault, incidentEvents: ctx.seams.incidentEvents, concurrency: 4 }), [
        { stage: 'notify', kind: 'first', when: async (tenantId) => notifies(tenantId, await tenants.config(tenantId)) },
        { stage: 'trigger', when: (tenantId) => ctx.seams.trigger.wants?.(tenantId) ?? true },
      ]);
      alertStage('notify', (batch) => runNotifyStage(batch, { db, tenants, notifiers: ctx.seams.notifiers, concurrency: 8 }), []);
      alertStage('trigger', (batch) => runTriggerStage(batch, { db, trigger: ctx.seams.trigger, concurrency: 4 }), []);
    }
    return async () => {
      await housekeeper?.stop();
      await writer.close();
      await mailer?.close();
    };
  },
};
