import type { Kysely } from 'kysely';
import type { IntelLookup, IntelOutcome } from '../../commands/ports.ts';
import { toReflexError } from '../../errors.ts';
import { CortexClient } from '../../integrations/cortex/cortex-client.ts';
import type { IntelObservable, IntelVerdict } from '../../integrations/ports.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../../store/secrets-vault.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertRef } from '../jobs.ts';
import type { TenantDirectory } from '../tenant-directory.ts';

/** Observables looked up per alert, at most: a storm of IPs in one alert must not burn vendor quota. */
const MAX_OBSERVABLES = 10;

export interface EnrichmentRecord {
  status: 'enriched' | 'partial' | 'not_enriched' | 'nothing_to_enrich';
  deep: boolean;
  verdicts: IntelVerdict[];
  /** Providers that could not answer, and why (rate limited, down, not configured). */
  gaps: { provider: string; observable: string; status: string; reason?: string }[];
  at: string;
}

export interface EnrichDeps {
  db: Kysely<Database>;
  tenants: TenantDirectory;
  vault: Pick<SecretsVault, 'get'>;
  /** Fast lookups (VirusTotal, AbuseIPDB): the same function the `enrich` chat command uses. */
  lookupIntel: IntelLookup;
}

function observablesOf(e: SentinelEvent): IntelObservable[] {
  const out: IntelObservable[] = [];
  for (const kind of ['ip', 'hash', 'domain', 'url'] as const) {
    for (const value of e.observables[kind]) out.push({ kind, value });
  }
  return out.slice(0, MAX_OBSERVABLES);
}

/**
 * enrich: observables through the IntelProvider port. Fast providers first, answers cached per
 * observable for the tenant's TTL; Cortex analyzers only for severity at or above the tenant's
 * deep threshold, or when the alert already belongs to an incident. A provider that is down or
 * rate-limiting leaves a gap on the record ("not enriched" / "partial"), never a stuck alert.
 */
export async function runEnrichStage(job: AlertRef, deps: EnrichDeps): Promise<EnrichmentRecord> {
  const alert = await deps.db.selectFrom('alerts').select(['id', 'tenant_id', 'severity', 'event', 'incident_id', 'enrichment']).where('id', '=', job.alertId).executeTakeFirst();
  if (!alert) throw toReflexError(new Error(`alert ${job.alertId} vanished`));
  const config = await deps.tenants.config(job.tenantId);
  const event = alert.event as SentinelEvent;
  const observables = observablesOf(event);
  const deep = alert.severity <= config.deep_enrichment_threshold || alert.incident_id !== null;
  const verdicts: IntelVerdict[] = [];
  const gaps: EnrichmentRecord['gaps'] = [];

  for (const observable of observables) {
    const cached = await readCache(deps.db, observable);
    const fresh = cached.length > 0 ? cached : await lookupAndCache(deps, job.tenantId, observable, config.intel_cache_ttl_seconds, gaps);
    verdicts.push(...fresh);
  }
  if (deep && config.cortex && config.cortex.analyzers.length > 0) {
    const apiKey = (await deps.vault.get(job.tenantId, 'cortex.api_key')) ?? (await deps.vault.get(GLOBAL_TENANT, 'cortex.api_key'));
    if (!apiKey) gaps.push({ provider: 'cortex', observable: '*', status: 'not_configured' });
    else {
      const cortex = new CortexClient({ baseUrl: config.cortex.url, apiKey, analyzers: config.cortex.analyzers, waitMs: 30_000 });
      for (const observable of observables.filter((o) => cortex.supports(o.kind))) {
        try {
          verdicts.push(await cortex.lookup(observable));
        } catch (err) {
          gaps.push({ provider: 'cortex', observable: observable.value, status: 'unavailable', reason: toReflexError(err).safeMessage });
        }
      }
    }
  }
  const status: EnrichmentRecord['status'] =
    observables.length === 0 ? 'nothing_to_enrich' : verdicts.length === 0 ? 'not_enriched' : gaps.some((g) => g.status !== 'not_configured' && g.status !== 'unsupported') ? 'partial' : 'enriched';
  const record: EnrichmentRecord = { status, deep, verdicts, gaps, at: new Date().toISOString() };
  await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
    await trx.updateTable('alerts').set({ enrichment: JSON.stringify(record) }).where('id', '=', alert.id).execute();
    audit({
      tenantId: job.tenantId,
      action: 'alert.enrich',
      target: `alert:${alert.id}`,
      delta: { status, deep, verdicts: verdicts.map((v) => `${v.provider}:${v.observable.value}:${v.verdict}`), gaps: gaps.length },
    });
  });
  return record;
}

async function readCache(db: Kysely<Database>, o: IntelObservable): Promise<IntelVerdict[]> {
  const rows = await db
    .selectFrom('intel_cache')
    .select('verdict')
    .where('kind', '=', o.kind)
    .where('value', '=', o.value)
    .where('expires_at', '>', new Date())
    .execute();
  return rows.map((r) => r.verdict as IntelVerdict);
}

async function lookupAndCache(deps: EnrichDeps, tenantId: string, o: IntelObservable, ttlSeconds: number, gaps: EnrichmentRecord['gaps']): Promise<IntelVerdict[]> {
  let outcomes: IntelOutcome[];
  try {
    outcomes = await deps.lookupIntel(tenantId, o);
  } catch (err) {
    gaps.push({ provider: '*', observable: o.value, status: 'unavailable', reason: toReflexError(err).safeMessage });
    return [];
  }
  const verdicts: IntelVerdict[] = [];
  for (const out of outcomes) {
    if (out.status === 'ok' && out.verdict) verdicts.push(out.verdict);
    else gaps.push({ provider: out.provider, observable: o.value, status: out.status, ...('reason' in out && out.reason ? { reason: out.reason } : {}) });
  }
  if (verdicts.length && ttlSeconds > 0) {
    const expires = new Date(Date.now() + ttlSeconds * 1000);
    await deps.db
      .insertInto('intel_cache')
      .values(verdicts.map((v) => ({ kind: o.kind, value: o.value, provider: v.provider, verdict: JSON.stringify(v), fetched_at: new Date(), expires_at: expires })))
      .onConflict((oc) => oc.columns(['kind', 'value', 'provider']).doUpdateSet((eb) => ({ verdict: eb.ref('excluded.verdict'), fetched_at: eb.ref('excluded.fetched_at'), expires_at: eb.ref('excluded.expires_at') })))
      .execute();
  }
  return verdicts;
}
