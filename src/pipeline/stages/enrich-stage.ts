import { sql, type Kysely } from 'kysely';
import type { IntelLookup, IntelOutcome } from '../../commands/ports.ts';
import { toReflexError } from '../../errors.ts';
import { CortexClient } from '../../integrations/cortex/cortex-client.ts';
import type { IntelObservable, IntelVerdict } from '../../integrations/ports.ts';
import { lockAlertRows } from '../../store/alert-rows.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { fileIntelReports, type StoredVerdict } from '../../store/intel-reports.ts';
import type { Database } from '../../store/schema.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../../store/secrets-vault.ts';
import type { SentinelEvent } from '../event.ts';
import type { AlertBatch } from '../jobs.ts';
import type { TenantPipelineConfig } from '../tenant-config.ts';
import { alertsTarget, eachLimited, loadBatchAlerts, type AlertRow, type BatchOutcome } from './alert-batch.ts';
import type { TenantDirectory } from '../tenant-directory.ts';

/** Observables looked up per alert, at most: a storm of IPs in one alert must not burn vendor quota. */
const MAX_OBSERVABLES = 10;

export interface EnrichmentRecord {
  status: 'enriched' | 'partial' | 'not_enriched' | 'nothing_to_enrich';
  deep: boolean;
  /** Each names the vendor's answer in intel_reports (`report`); records from before migration 0009 carry `raw`. */
  verdicts: StoredVerdict[];
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
  /** Vendor lookups (distinct observables of a batch) in flight at once; default 8. */
  concurrency?: number;
}

function observablesOf(e: SentinelEvent): IntelObservable[] {
  const out: IntelObservable[] = [];
  for (const kind of ['ip', 'hash', 'domain', 'url'] as const) {
    for (const value of e.observables[kind]) out.push({ kind, value });
  }
  return out.slice(0, MAX_OBSERVABLES);
}

/** Observable key within a batch: the same IP in twenty alerts is looked up once. */
const keyOf = (o: IntelObservable) => `${o.kind}\u0000${o.value}`;

/** What the providers said about one observable: from the cache, or fresh (`raw` until filed) with the gaps. */
interface ObservableIntel<V = StoredVerdict> {
  verdicts: V[];
  gaps: EnrichmentRecord['gaps'];
}

/** Fresh answers, by observable key (fast providers) or by alert id (Cortex), before they are filed. */
type Looked = Map<string, ObservableIntel<IntelVerdict>>;

/**
 * enrich: observables through the IntelProvider port, for a batch of alerts at once. Fast
 * providers first, each distinct observable of the batch once: answers cached per observable for
 * the tenant's TTL (one read and one write for the batch); Cortex analyzers only for alerts at or
 * above the tenant's deep threshold, or already in an incident. A provider that is down or
 * rate-limiting leaves a gap on the record ("not enriched" / "partial"), never a stuck alert.
 * The records are written in one audited statement, with one audit entry for the batch.
 */
export async function runEnrichStage(batch: AlertBatch, deps: EnrichDeps): Promise<BatchOutcome<EnrichmentRecord>> {
  const { rows, missing } = await loadBatchAlerts(deps.db, batch);
  const config = await deps.tenants.config(batch.tenantId);
  const wanted = rows.map((alert) => ({ alert, observables: observablesOf(alert.event as SentinelEvent), deep: alert.severity <= config.deep_enrichment_threshold || alert.incident_id !== null }));

  const distinct = new Map<string, IntelObservable>();
  for (const w of wanted) for (const o of w.observables) distinct.set(keyOf(o), o);
  const intel = await readCache(deps.db, [...distinct.values()]);
  const misses = [...distinct].filter(([k]) => !intel.has(k));
  const looked: Looked = new Map();
  await eachLimited(misses, deps.concurrency ?? 8, async ([key, observable]) => {
    looked.set(key, await lookup(deps, batch.tenantId, observable));
  });
  const deepLooked = await deepLookup(deps, batch.tenantId, config, wanted.filter((w) => w.deep));
  // Every fresh answer stored once, in one statement; the cache and the records name it.
  const [fetched, cortex] = await fileAll(deps.db, looked, deepLooked);
  for (const [key, got] of fetched) intel.set(key, got);
  const fresh = [...fetched].filter(([, got]) => got.verdicts.length > 0).map(([key, got]) => ({ observable: distinct.get(key)!, verdicts: got.verdicts }));
  await writeCache(deps.db, fresh, config.intel_cache_ttl_seconds);

  const records = new Map<string, EnrichmentRecord>();
  const at = new Date().toISOString();
  for (const { alert, observables, deep } of wanted) {
    const verdicts: StoredVerdict[] = [];
    const gaps: EnrichmentRecord['gaps'] = [];
    for (const o of observables) {
      const got = intel.get(keyOf(o))!;
      verdicts.push(...got.verdicts);
      gaps.push(...got.gaps);
    }
    const deeper = cortex.get(alert.id);
    if (deeper) {
      verdicts.push(...deeper.verdicts);
      gaps.push(...deeper.gaps);
    }
    const status: EnrichmentRecord['status'] =
      observables.length === 0 ? 'nothing_to_enrich' : verdicts.length === 0 ? 'not_enriched' : gaps.some((g) => g.status !== 'not_configured' && g.status !== 'unsupported') ? 'partial' : 'enriched';
    records.set(alert.id, { status, deep, verdicts, gaps, at });
  }
  if (records.size > 0) {
    await auditedWrite(deps.db, 'pipeline', async (trx, audit) => {
      // One jsonb document for the batch, not a bind parameter pair per alert (see dedupe-stage.ts).
      const rows = JSON.stringify([...records].map(([id, record]) => ({ id, record })));
      await lockAlertRows(trx, [...records.keys()]);
      await sql`update alerts set enrichment = v.record from jsonb_to_recordset(${rows}::jsonb) as v(id uuid, record jsonb) where alerts.id = v.id`.execute(trx);
      const alerts = Object.fromEntries(
        [...records].map(([id, r]) => [id, { status: r.status, deep: r.deep, verdicts: r.verdicts.map((v) => `${v.provider}:${v.observable.value}:${v.verdict}`), gaps: r.gaps.length }]),
      );
      audit({ tenantId: batch.tenantId, action: 'alert.enrich', target: alertsTarget([...records.keys()]), delta: { alerts } });
    });
  }
  return { results: records, failed: missing };
}

/** Cortex analyzers for the deep alerts, per alert (a job run each); failures become gaps. */
async function deepLookup(deps: EnrichDeps, tenantId: string, config: TenantPipelineConfig, deep: { alert: AlertRow; observables: IntelObservable[] }[]): Promise<Looked> {
  const out: Looked = new Map();
  if (deep.length === 0 || !config.cortex || config.cortex.analyzers.length === 0) return out;
  const apiKey = (await deps.vault.get(tenantId, 'cortex.api_key')) ?? (await deps.vault.get(GLOBAL_TENANT, 'cortex.api_key'));
  if (!apiKey) {
    for (const { alert } of deep) out.set(alert.id, { verdicts: [], gaps: [{ provider: 'cortex', observable: '*', status: 'not_configured' }] });
    return out;
  }
  const cortex = new CortexClient({ baseUrl: config.cortex.url, apiKey, analyzers: config.cortex.analyzers, waitMs: 30_000 });
  await eachLimited(deep, deps.concurrency ?? 8, async ({ alert, observables }) => {
    const got: ObservableIntel<IntelVerdict> = { verdicts: [], gaps: [] };
    for (const observable of observables.filter((o) => cortex.supports(o.kind))) {
      try {
        got.verdicts.push(await cortex.lookup(observable));
      } catch (err) {
        got.gaps.push({ provider: 'cortex', observable: observable.value, status: 'unavailable', reason: toReflexError(err).safeMessage });
      }
    }
    out.set(alert.id, got);
  });
  return out;
}

/** Unexpired cached verdicts of these observables, in one query; observables without any are absent. */
async function readCache(db: Kysely<Database>, observables: IntelObservable[]): Promise<Map<string, ObservableIntel>> {
  const out = new Map<string, ObservableIntel>();
  if (observables.length === 0) return out;
  const { rows } = await sql<{ kind: IntelObservable['kind']; value: string; verdict: StoredVerdict }>`
    select c.kind, c.value, c.verdict from intel_cache c
    join unnest(${observables.map((o) => o.kind)}::text[], ${observables.map((o) => o.value)}::text[]) as w(kind, value) on c.kind = w.kind and c.value = w.value
    where c.expires_at > now()`.execute(db);
  for (const r of rows) {
    const k = keyOf({ kind: r.kind, value: r.value });
    const hit = out.get(k) ?? { verdicts: [], gaps: [] };
    hit.verdicts.push(r.verdict);
    out.set(k, hit);
  }
  return out;
}

async function lookup(deps: EnrichDeps, tenantId: string, o: IntelObservable): Promise<ObservableIntel<IntelVerdict>> {
  let outcomes: IntelOutcome[];
  try {
    outcomes = await deps.lookupIntel(tenantId, o);
  } catch (err) {
    return { verdicts: [], gaps: [{ provider: '*', observable: o.value, status: 'unavailable', reason: toReflexError(err).safeMessage }] };
  }
  const got: ObservableIntel<IntelVerdict> = { verdicts: [], gaps: [] };
  for (const out of outcomes) {
    if (out.status === 'ok' && out.verdict) got.verdicts.push(out.verdict);
    else got.gaps.push({ provider: out.provider, observable: o.value, status: out.status, ...('reason' in out && out.reason ? { reason: out.reason } : {}) });
  }
  return got;
}

/**
 * Files the answers of the fast lookups (by observable) and the Cortex ones (by alert) in one
 * statement (fileIntelReports) and returns both, keyed as given, naming their reports.
 */
async function fileAll(db: Kysely<Database>, fast: Looked, deep: Looked): Promise<[Map<string, ObservableIntel>, Map<string, ObservableIntel>]> {
  const stored = await fileIntelReports(db, [...fast.values(), ...deep.values()].flatMap((i) => i.verdicts));
  let next = 0;
  const named = (g: Looked) => new Map([...g].map(([key, i]) => [key, { verdicts: stored.slice(next, (next += i.verdicts.length)), gaps: i.gaps }]));
  return [named(fast), named(deep)];
}

/** Fresh verdicts into the cache, one statement (each observable appears once, so no row is hit twice). */
async function writeCache(db: Kysely<Database>, fresh: { observable: IntelObservable; verdicts: StoredVerdict[] }[], ttlSeconds: number): Promise<void> {
  if (fresh.length === 0 || ttlSeconds <= 0) return;
  const now = new Date();
  const expires = new Date(now.getTime() + ttlSeconds * 1000);
  const rows = new Map<string, { kind: IntelObservable['kind']; value: string; provider: string; verdict: string; fetched_at: Date; expires_at: Date }>();
  for (const { observable: o, verdicts } of fresh) {
    for (const v of verdicts) rows.set(`${keyOf(o)}\u0000${v.provider}`, { kind: o.kind, value: o.value, provider: v.provider, verdict: JSON.stringify(v), fetched_at: now, expires_at: expires });
  }
  await db
    .insertInto('intel_cache')
    .values([...rows.values()])
    .onConflict((oc) => oc.columns(['kind', 'value', 'provider']).doUpdateSet((eb) => ({ verdict: eb.ref('excluded.verdict'), fetched_at: eb.ref('excluded.fetched_at'), expires_at: eb.ref('excluded.expires_at') })))
    .execute();
}
