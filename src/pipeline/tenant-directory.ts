import type { Kysely } from 'kysely';
import { ReflexError } from '../errors.ts';
import type { Database } from '../store/schema.ts';
import { parseTenantConfig, type TenantPipelineConfig } from './tenant-config.ts';

export interface ActiveSuppressionRule {
  id: string;
  name: string;
  match: string;
  expiresAt: Date;
}

/**
 * Tenant settings and suppression rules as the stages see them: read from the database and kept
 * for a few seconds, so a storm of batches does not re-read the same rows thousands of times, and
 * an operator's change still takes effect within `ttlMs`.
 */
export class TenantDirectory {
  private readonly configs = new Map<string, { value: TenantPipelineConfig; until: number }>();
  private readonly rules = new Map<string, { value: ActiveSuppressionRule[]; until: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 5000,
  ) {}

  async config(tenantId: string): Promise<TenantPipelineConfig> {
    const hit = this.configs.get(tenantId);
    if (hit && hit.until > Date.now()) return hit.value;
    const row = await this.db.selectFrom('tenants').select('config').where('id', '=', tenantId).executeTakeFirst();
    if (!row) throw new ReflexError('not_found', `tenant ${tenantId} does not exist`, { retryable: false });
    const value = parseTenantConfig(tenantId, row.config);
    this.configs.set(tenantId, { value, until: Date.now() + this.ttlMs });
    return value;
  }

  async suppressionRules(tenantId: string): Promise<ActiveSuppressionRule[]> {
    const hit = this.rules.get(tenantId);
    if (hit && hit.until > Date.now()) return hit.value;
    const rows = await this.db
      .selectFrom('suppression_rules')
      .select(['id', 'name', 'match', 'expires_at'])
      .where('tenant_id', '=', tenantId)
      .where('expires_at', '>', new Date())
      .orderBy('created_at')
      .execute();
    const value = rows.map((r) => ({ id: r.id, name: r.name, match: r.match, expiresAt: r.expires_at }));
    this.rules.set(tenantId, { value, until: Date.now() + this.ttlMs });
    return value;
  }

  /** Forget cached values (after an operator edit in this process). */
  invalidate(tenantId: string): void {
    this.configs.delete(tenantId);
    this.rules.delete(tenantId);
  }
}
