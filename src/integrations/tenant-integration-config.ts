import { z } from 'zod';

/**
 * The per-tenant settings of the containment, paging and phone integrations, as they live in
 * `tenants.config` (nested objects: `firewall.provider` is `{ "firewall": { "provider": … } }`).
 * Credentials are never here: they are vault secrets (`reflex secrets set <name> --tenant <id>`).
 *
 * One schema serves both ends: `reflex tenant config` validates a change against it before
 * writing (it is part of the tenant config schema), and the engine's executors read a tenant's
 * section through it at call time, so a value that slipped in another way is refused with the
 * key's name instead of half-working.
 *
 * Which adapter serves a port is chosen per tenant:
 *
 * | key | values | port |
 * |---|---|---|
 * | `firewall.provider` | `rest` (SENTgrid blocklist) \| `wazuh` (firewall-drop) | Firewall |
 * | `identity.provider` | `msgraph` (Entra ID) \| `ldap` (Active Directory, client pending) | IdentityProvider |
 * | `edr.provider` | `defender` \| `crowdstrike` | HostContainment |
 * | `pager.provider` | `pagerduty` (the default: the only adapter) | Pager |
 * | `phone.provider` | `twilio` (the default: the only adapter) | PhoneCaller, SmsSender |
 * | `mailbox.provider` | `msgraph` (Exchange Online, with the `msgraph.*` app) | MailboxAdmin |
 * | `vault.provider` | `hashicorp` (HashiCorp Vault) | CredentialVault |
 *
 * @example
 * reflex tenant config acme --set firewall.provider=rest --set firewall.base_url=https://sentgrid.acme.example/api
 * reflex secrets set firewall.api_token --tenant acme     # the token on stdin
 */
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const name = z.string().trim().min(1).max(200);
/** Wazuh agent ids as the API spells them ("001"); numbers are accepted and padded by the client. */
const agentId = z.union([z.string().regex(/^\d{1,6}$/, 'must be a Wazuh agent id such as "001"'), z.number().int().min(0).max(999_999)]);
const arCommand = z.string().regex(/^!?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be an ar.conf command name (firewall-drop600) or !script-name');

export const FIREWALL_PROVIDERS = ['rest', 'wazuh'] as const;
export const IDENTITY_PROVIDERS = ['msgraph', 'ldap'] as const;
export const EDR_PROVIDERS = ['defender', 'crowdstrike'] as const;
export const PAGER_PROVIDERS = ['pagerduty'] as const;
export const PHONE_PROVIDERS = ['twilio'] as const;
export const MAILBOX_PROVIDERS = ['msgraph'] as const;
export const VAULT_PROVIDERS = ['hashicorp'] as const;

export const firewallSettings = z.object({
  provider: z.enum(FIREWALL_PROVIDERS).optional(),
  /** REST blocklist: e.g. https://sentgrid.acme.example/api (the list is at <base_url>/blocklist). */
  base_url: httpUrl.optional(),
  /** REST blocklist: the name shown in messages. */
  vendor: name.optional(),
  max_ttl_seconds: z.number().int().min(60).max(365 * 86_400).optional(),
});

export const identitySettings = z.object({ provider: z.enum(IDENTITY_PROVIDERS).optional() });
export const edrSettings = z.object({ provider: z.enum(EDR_PROVIDERS).optional() });
export const pagerSettings = z.object({ provider: z.enum(PAGER_PROVIDERS).optional() });
export const phoneSettings = z.object({ provider: z.enum(PHONE_PROVIDERS).optional() });
export const mailboxSettings = z.object({ provider: z.enum(MAILBOX_PROVIDERS).optional() });
export const vaultSettings = z.object({ provider: z.enum(VAULT_PROVIDERS).optional() });

/** Entra ID directory ids and app ids are GUIDs or verified domains. */
const entraId = z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a directory (tenant) id or verified domain');

export const msgraphSettings = z.object({
  tenant_id: entraId.optional(),
  client_id: name.optional(),
  graph_url: httpUrl.optional(),
  login_url: httpUrl.optional(),
  scope: name.optional(),
  revoke_sessions_on_disable: z.boolean().optional(),
});

export const defenderSettings = z.object({
  tenant_id: entraId.optional(),
  client_id: name.optional(),
  base_url: httpUrl.optional(),
  login_url: httpUrl.optional(),
  scope: name.optional(),
  isolation_type: z.enum(['Full', 'Selective']).optional(),
});

export const crowdstrikeSettings = z.object({
  client_id: name.optional(),
  base_url: httpUrl.optional(),
  member_cid: z.string().regex(/^[0-9A-Fa-f]{32}(-[0-9A-Fa-f]{2})?$/, 'must be a CrowdStrike CID').optional(),
});

export const wazuhSettings = z.object({
  base_url: httpUrl.optional(),
  api_user: name.optional(),
  firewall: z
    .object({
      agents: z.array(agentId).min(1, 'must name at least one agent (an empty list would mean every agent)').max(500).optional(),
      block_command: arCommand.optional(),
      block_timeout_seconds: z.number().int().min(1).max(365 * 86_400).optional(),
      unblock_command: arCommand.optional(),
    })
    .optional(),
});

export const pagerdutySettings = z.object({
  base_url: httpUrl.optional(),
  client_url: httpUrl.optional(),
});

export const twilioSettings = z.object({
  account_sid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be AC followed by 32 hex characters').optional(),
  from: z.string().regex(/^\+[1-9]\d{1,14}$/, 'must be an E.164 number such as +15017122661').optional(),
  messaging_service_sid: z.string().regex(/^MG[0-9a-fA-F]{32}$/, 'must be MG followed by 32 hex characters').optional(),
  voice: name.optional(),
  language: z.string().regex(/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/, 'must be a language tag such as en-US').optional(),
});

/** A Vault mount path (`database`, `prod/database`): segments without `..`, no leading or trailing slash. */
const vaultMount = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/, 'must be a Vault mount path such as database or prod/database');

export const hashicorpVaultSettings = z.object({
  /** e.g. https://vault.acme.example:8200 (requests go to <url>/v1/…). */
  url: httpUrl.optional(),
  /** Vault Enterprise / HCP namespace, sent as X-Vault-Namespace. */
  namespace: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*\/?$/, 'must be a Vault namespace such as admin or admin/acme')
    .optional(),
  /** Mount of the database secrets engine (default database). */
  database_mount: vaultMount.optional(),
  /** Mount of the LDAP secrets engine (default ldap). */
  ldap_mount: vaultMount.optional(),
});

/** Spread into the tenant config schema (src/pipeline/tenant-config.ts), so the CLI knows these keys. */
export const tenantIntegrationConfigShape = {
  firewall: firewallSettings.optional(),
  identity: identitySettings.optional(),
  edr: edrSettings.optional(),
  pager: pagerSettings.optional(),
  phone: phoneSettings.optional(),
  mailbox: mailboxSettings.optional(),
  msgraph: msgraphSettings.optional(),
  defender: defenderSettings.optional(),
  crowdstrike: crowdstrikeSettings.optional(),
  wazuh: wazuhSettings.optional(),
  pagerduty: pagerdutySettings.optional(),
  twilio: twilioSettings.optional(),
  vault: vaultSettings.optional(),
  hashicorp_vault: hashicorpVaultSettings.optional(),
};

export type TenantIntegrationSection = keyof typeof tenantIntegrationConfigShape;
