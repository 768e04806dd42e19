import { z } from 'zod';
import { ReflexError } from '../errors.ts';
import { tenantIntegrationConfigShape } from '../integrations/tenant-integration-config.ts';

/**
 * Per-tenant pipeline settings, stored in `tenants.config` (jsonb) and validated here on read and
 * on write. Missing keys take the defaults, so `{}` is a working configuration.
 */
/** The `thehive` section: where the tenant's TheHive is (secret `thehive.api_key`). Read by case.comment too. */
export const thehiveSection = z.object({ url: z.url(), organisation: z.string().optional() });

export const tenantPipelineConfigSchema = z.object({
  /** A repeat of the same fingerprint within this window bumps the existing alert. */
  dedupe_window_seconds: z.number().int().min(1).max(30 * 86400).default(3600),
  /** Alerts sharing an observable or host within this window attach to one incident. */
  correlation_window_seconds: z.number().int().min(1).max(30 * 86400).default(3600),
  /** Severity at or above which (1 = critical) an alert opens an internal incident. */
  incident_threshold: z.number().int().min(1).max(4).default(2),
  /** Severity at or above which enrichment goes deep (Cortex analyzers). */
  deep_enrichment_threshold: z.number().int().min(1).max(4).default(2),
  intel_cache_ttl_seconds: z.number().int().min(0).max(30 * 86400).default(6 * 3600),
  notify: z
    .object({
      /** Outgoing webhook for notifications (chat transports add their own targets). */
      webhook_url: z.url().optional(),
      /**
       * E-mail recipients of notifications (needs SMTP_URL on the server). Plain addresses only:
       * they become SMTP envelope recipients and the To header.
       */
      email_to: z
        .array(z.string().regex(/^[^\r\n]*$/, 'must not contain CR or LF').pipe(z.email('must be a plain e-mail address (soc@example.org)')))
        .max(50, 'may name at most 50 recipients')
        .optional(),
      /**
       * Chat channels for alert notifications, per platform: a Slack channel id (`C…`/`G…`), a
       * Teams conversation id, a SENTchat channel name. Repeats go into the first message's thread.
       */
      chat: z
        .object({
          slack: z.string().regex(/^[CG][A-Z0-9]{2,20}$/, 'must be a Slack channel id such as C0123ABCD (not a #name)').optional(),
          teams: z.string().min(1).max(400).optional(),
          sentchat: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,79}$/, 'must be a SENTchat channel name (lower case, digits, - and _)').optional(),
        })
        .strict()
        .optional(),
      /** Minimum seconds between "Nth occurrence" updates for one alert. */
      repeat_interval_seconds: z.number().int().min(1).max(86400).default(300),
      /** Notify only at or above this severity. */
      min_severity: z.number().int().min(1).max(4).default(3),
    })
    .default({ repeat_interval_seconds: 300, min_severity: 3 }),
  thehive: thehiveSection.optional(),
  cortex: z.object({ url: z.url(), analyzers: z.array(z.string().min(1)).default([]) }).optional(),
  /** Containment, paging and phone integrations: which adapter per port and its settings (docs/INTEGRATIONS.md). */
  ...tenantIntegrationConfigShape,
});
export type TenantPipelineConfig = z.infer<typeof tenantPipelineConfigSchema>;

export function parseTenantConfig(tenantId: string, raw: unknown): TenantPipelineConfig {
  const r = tenantPipelineConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ReflexError('config.invalid', `tenant ${tenantId} config: ${issue.path.join('.')}: ${issue.message}`, {
      safeMessage: `Tenant ${tenantId} has an invalid configuration at "${issue.path.join('.')}": ${issue.message}`,
      retryable: false,
    });
  }
  return r.data;
}
