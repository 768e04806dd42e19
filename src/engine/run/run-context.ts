import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { ExpressionContext, StepResultView } from '../expressions.ts';
import type { Playbook } from '../manifest/types.ts';
import { loadStepViews, type RunRecord } from './run-record.ts';

/**
 * The expression context of a run, `{ event, inputs, steps, tenant }`, read fresh for each step
 * (another worker may have finished a parallel branch a moment ago). `tenant` is the tenant row's
 * `id` and `name` plus its configuration keys (`utc_offset`, `kiosk_api`, …), cached for a few
 * seconds because every step of every run reads it.
 */
const TENANT_TTL_MS = 5_000;

export class TenantInfoCache {
  private readonly cache = new Map<string, { at: number; value: Record<string, unknown> }>();

  constructor(private readonly db: Kysely<Database>) {}

  async get(tenantId: string): Promise<Record<string, unknown>> {
    const hit = this.cache.get(tenantId);
    if (hit && Date.now() - hit.at < TENANT_TTL_MS) return hit.value;
    const row = await this.db.selectFrom('tenants').select(['id', 'name', 'config']).where('id', '=', tenantId).executeTakeFirst();
    const value = row ? { ...(row.config ?? {}), id: row.id, name: row.name } : { id: tenantId };
    this.cache.set(tenantId, { at: Date.now(), value });
    return value;
  }
}

/**
 * A sensitive input is not stored in the run row: the row holds `{ "$vault": "run.<id>.<input>" }`
 * and the value lives in the secrets vault (AES-256-GCM), so no API that shows a run shows it.
 */
export interface VaultRef {
  $vault: string;
}

export function isVaultRef(value: unknown): value is VaultRef {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as VaultRef).$vault === 'string';
}

export function runSecretName(runId: string, input: string): string {
  return `run.${runId}.${input}`;
}

export async function buildRunContext(
  db: Kysely<Database>,
  tenants: TenantInfoCache,
  run: RunRecord,
  inputs: Record<string, unknown>,
): Promise<ExpressionContext> {
  const [steps, tenant] = await Promise.all([loadStepViews(db, run.id), tenants.get(run.tenantId)]);
  return { event: run.event ?? undefined, inputs, steps, tenant };
}

/** The same context from step results already read (the batched job read of steps-system). */
export async function runContextFrom(
  tenants: TenantInfoCache,
  run: RunRecord,
  inputs: Record<string, unknown>,
  steps: Record<string, StepResultView>,
): Promise<ExpressionContext> {
  return { event: run.event ?? undefined, inputs, steps, tenant: await tenants.get(run.tenantId) };
}

/** Values that must never appear in logs: the run's sensitive inputs. */
export function sensitiveValues(playbook: Playbook, inputs: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const input of playbook.inputs) {
    if (!input.sensitive) continue;
    const v = inputs[input.name];
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) for (const item of v) if (typeof item === 'string') out.push(item);
  }
  return out;
}
