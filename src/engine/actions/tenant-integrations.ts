import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import type { CredentialVault, Firewall, HostContainment, IdempotencyStore, IdentityProvider, MailboxAdmin, Mailer } from '../../integrations/containment-ports.ts';
import { CrowdStrikeClient } from '../../integrations/crowdstrike/crowdstrike-client.ts';
import { DefenderClient } from '../../integrations/defender/defender-client.ts';
import { HashiCorpVaultClient } from '../../integrations/hashicorp-vault/hashicorp-vault-client.ts';
import { RestBlocklistFirewall } from '../../integrations/firewall/rest-blocklist-firewall.ts';
import { GraphMailboxAdmin, type GraphMailboxAdminOptions } from '../../integrations/msgraph/graph-mailbox-admin.ts';
import { MicrosoftGraphClient } from '../../integrations/msgraph/msgraph-client.ts';
import { PagerDutyClient } from '../../integrations/pagerduty/pagerduty-client.ts';
import { TheHiveClient } from '../../integrations/thehive/thehive-client.ts';
import {
  crowdstrikeSettings,
  defenderSettings,
  edrSettings,
  firewallSettings,
  hashicorpVaultSettings,
  identitySettings,
  mailboxSettings,
  msgraphSettings,
  pagerdutySettings,
  pagerSettings,
  phoneSettings,
  twilioSettings,
  vaultSettings,
  wazuhSettings,
  type TenantIntegrationSection,
} from '../../integrations/tenant-integration-config.ts';
import { TwilioClient } from '../../integrations/twilio/twilio-client.ts';
import { WazuhClient } from '../../integrations/wazuh/wazuh-client.ts';
import { WazuhFirewall } from '../../integrations/wazuh/wazuh-firewall.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../../store/secrets-vault.ts';
import type { SecretReader } from './registry.ts';
import { thehiveSection } from '../../pipeline/tenant-config.ts';

/**
 * What an adapter is built from: the tenant, its configuration (`tenants.config`, read fresh for
 * every step) and its credentials (the vault: the tenant's value first, then the platform-wide one).
 */
export interface TenantSource {
  tenantId: string;
  config: Readonly<Record<string, unknown>>;
  secrets: SecretReader;
}

export interface TenantIntegrationsDeps {
  /** Where Twilio (and the vault adapter) remember what an idempotency key already did (the engine's database). */
  idempotencyStore(tenantId: string): IdempotencyStore;
  /** The deployment's mailer (SMTP_URL), or undefined when this server has none. */
  mailer(): Mailer | undefined;
  logger?: Pick<Logger, 'warn'>;
  /** Most clients kept at once (tenants × ports). Default 500. */
  maxCached?: number;
  /** Tuning of the Graph mailbox client (tests shorten its waits). */
  mailboxOptions?: Pick<GraphMailboxAdminOptions, 'concurrency' | 'throttleRetries' | 'maxThrottleWaitMs' | 'maxMessageBytes' | 'sleep'>;
}

/** Schedule names as on-call rotations spell them; they become part of a vault secret name. */
const SCHEDULE = /^[A-Za-z0-9._-]{1,80}$/;

/**
 * Builds the adapter a tenant configured for each port, with its credentials, and keeps it while
 * neither changes: the OAuth/JWT token sources inside (Graph, Defender, CrowdStrike, Wazuh) are
 * then shared by every step of that tenant, so fifty parallel steps log in once. Every call
 * re-reads the configuration and secrets and compares a fingerprint (a hash, never the values), so
 * a rotated secret or a changed URL takes effect on the next step without a restart.
 *
 * Missing or invalid settings are non-retryable `config.invalid` errors that name the key or the
 * secret and how to set it; retrying cannot fix a configuration.
 *
 * @example
 * const integrations = new TenantIntegrations({ idempotencyStore: (t) => new DatabaseIdempotencyStore(db, t), mailer: () => smtp });
 * const fw = await integrations.firewall({ tenantId: 'acme', config, secrets });
 * await fw.block('198.51.100.7', { idempotencyKey: ctx.idempotencyKey, ttlSeconds: 86_400 });
 */
export class TenantIntegrations {
  private readonly cache = new Map<string, { fingerprint: string; client: unknown }>();
  private readonly maxCached: number;

  constructor(private readonly deps: TenantIntegrationsDeps) {
    this.maxCached = deps.maxCached ?? 500;
  }

  /** The tenant's `Firewall`: `firewall.provider` = `rest` (SENTgrid) or `wazuh` (firewall-drop). */
  async firewall(src: TenantSource): Promise<Firewall> {
    const fw = settings(src, 'firewall', firewallSettings);
    const provider = chooseProvider(src, 'firewall', fw.provider, ['rest', 'wazuh']);
    switch (provider) {
      case 'rest': {
        const baseUrl = need(src, 'firewall.base_url', fw.base_url, 'firewall.provider is rest');
        const apiToken = await src.secrets.require('firewall.api_token');
        return this.cached(src, 'firewall:rest', [baseUrl, fw.vendor, fw.max_ttl_seconds, apiToken], () =>
          new RestBlocklistFirewall({
            baseUrl,
            apiToken,
            ...(fw.vendor ? { vendor: fw.vendor } : {}),
            ...(fw.max_ttl_seconds ? { maxTtlSeconds: fw.max_ttl_seconds } : {}),
          }),
        );
      }
      case 'wazuh': {
        const wz = settings(src, 'wazuh', wazuhSettings);
        const why = 'firewall.provider is wazuh';
        const agents = need(src, 'wazuh.firewall.agents', wz.firewall?.agents, why);
        const blockCommand = need(src, 'wazuh.firewall.block_command', wz.firewall?.block_command, why);
        const login = await this.wazuhLogin(src, why);
        const client = this.wazuhClient(src, login);
        const fwSettings = [agents, blockCommand, wz.firewall?.block_timeout_seconds, wz.firewall?.unblock_command];
        // Keyed on the login too: a rebuilt Wazuh client (rotated password) means a rebuilt firewall.
        return this.cached(src, 'firewall:wazuh', [login, fwSettings], () =>
          new WazuhFirewall({
            client,
            agents: agents.map(String),
            blockCommand,
            ...(wz.firewall?.block_timeout_seconds ? { blockTimeoutSeconds: wz.firewall.block_timeout_seconds } : {}),
            ...(wz.firewall?.unblock_command ? { unblockCommand: wz.firewall.unblock_command } : {}),
          }),
        );
      }
    }
  }

  /** The tenant's `IdentityProvider`: `identity.provider` = `msgraph` (Entra ID) or `ldap` (pending). */
  async identity(src: TenantSource): Promise<IdentityProvider> {
    const provider = chooseProvider(src, 'identity', settings(src, 'identity', identitySettings).provider, ['msgraph', 'ldap']);
    switch (provider) {
      case 'msgraph': {
        const { settings: g, app, clientSecret } = await this.msgraphApp(src, 'identity.provider is msgraph');
        return this.cached(src, 'identity:msgraph', [g, clientSecret], () =>
          new MicrosoftGraphClient({
            ...app,
            ...(g.revoke_sessions_on_disable === undefined ? {} : { revokeSessionsOnDisable: g.revoke_sessions_on_disable }),
          }),
        );
      }
      case 'ldap':
        throw new ReflexError('config.invalid', `tenant ${src.tenantId}: identity.provider ldap has no client on this server yet`, {
          retryable: false,
          safeMessage: 'The Active Directory (LDAP) client is not available yet; set identity.provider to msgraph or act in AD by hand.',
          details: { key: 'identity.provider' },
        });
    }
  }

  /**
   * The tenant's Entra ID app (`msgraph.*`, secret `msgraph.client_secret`), shared by the
   * identity and mailbox clients: the settings, the client options they have in common, and the
   * secret (part of each client's cache key).
   */
  private async msgraphApp(src: TenantSource, why: string) {
    const g = settings(src, 'msgraph', msgraphSettings);
    const tenantId = need(src, 'msgraph.tenant_id', g.tenant_id, why);
    const clientId = need(src, 'msgraph.client_id', g.client_id, why);
    const clientSecret = await src.secrets.require('msgraph.client_secret');
    const app = {
      tenantId,
      clientId,
      clientSecret,
      ...(g.graph_url ? { graphUrl: g.graph_url } : {}),
      ...(g.login_url ? { loginUrl: g.login_url } : {}),
      ...(g.scope ? { scope: g.scope } : {}),
    };
    return { settings: g, app, clientSecret };
  }

  /** The tenant's `HostContainment`: `edr.provider` = `defender` or `crowdstrike`. */
  async hostContainment(src: TenantSource): Promise<HostContainment> {
    const provider = chooseProvider(src, 'edr', settings(src, 'edr', edrSettings).provider, ['defender', 'crowdstrike']);
    switch (provider) {
      case 'defender': {
        const d = settings(src, 'defender', defenderSettings);
        const why = 'edr.provider is defender';
        const tenantId = need(src, 'defender.tenant_id', d.tenant_id, why);
        const clientId = need(src, 'defender.client_id', d.client_id, why);
        const clientSecret = await src.secrets.require('defender.client_secret');
        return this.cached(src, 'edr:defender', [d, clientSecret], () =>
          new DefenderClient({
            tenantId,
            clientId,
            clientSecret,
            ...(d.base_url ? { baseUrl: d.base_url } : {}),
            ...(d.login_url ? { loginUrl: d.login_url } : {}),
            ...(d.scope ? { scope: d.scope } : {}),
            ...(d.isolation_type ? { isolationType: d.isolation_type } : {}),
          }),
        );
      }
      case 'crowdstrike': {
        const c = settings(src, 'crowdstrike', crowdstrikeSettings);
        const clientId = need(src, 'crowdstrike.client_id', c.client_id, 'edr.provider is crowdstrike');
        const clientSecret = await src.secrets.require('crowdstrike.client_secret');
        return this.cached(src, 'edr:crowdstrike', [c, clientSecret], () =>
          new CrowdStrikeClient({
            clientId,
            clientSecret,
            ...(c.base_url ? { baseUrl: c.base_url } : {}),
            ...(c.member_cid ? { memberCid: c.member_cid } : {}),
          }),
        );
      }
    }
  }

  /**
   * The tenant's `MailboxAdmin`: `mailbox.provider` = `msgraph` (Exchange Online), signing in with
   * the tenant's `msgraph.*` app and `msgraph.client_secret` (the app needs Mail.ReadWrite and
   * User.Read.All besides the identity permissions).
   */
  async mailbox(src: TenantSource): Promise<MailboxAdmin> {
    const provider = chooseProvider(src, 'mailbox', settings(src, 'mailbox', mailboxSettings).provider, ['msgraph']);
    switch (provider) {
      case 'msgraph': {
        const { settings: g, app, clientSecret } = await this.msgraphApp(src, 'mailbox.provider is msgraph');
        return this.cached(src, 'mailbox:msgraph', [g, clientSecret], () => new GraphMailboxAdmin({ ...app, ...this.deps.mailboxOptions }));
      }
    }
  }

  /**
   * The tenant's TheHive (`thehive.url`, `thehive.organisation`, secret `thehive.api_key`), the
   * case system the pipeline syncs alerts to; undefined when the tenant has none. A URL without
   * its key is a configuration error, not "no TheHive": comments would silently go nowhere.
   */
  async caseSystem(src: TenantSource): Promise<TheHiveClient | undefined> {
    const raw = src.config['thehive'];
    if (raw === undefined || raw === null) return undefined;
    const parsed = thehiveSection.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const key = ['thehive', ...(issue?.path ?? []).map(String)].join('.');
      throw new ReflexError('config.invalid', `tenant ${src.tenantId}: config key ${key}: ${issue?.message ?? 'invalid'}`, {
        retryable: false,
        safeMessage: `Tenant ${src.tenantId} has an invalid setting ${key} (reflex tenant config ${src.tenantId} --set ${key}=…).`,
        details: { key },
      });
    }
    const apiKey = await src.secrets.require('thehive.api_key');
    // Stateless (an API key, no login): built per call.
    return new TheHiveClient({ baseUrl: parsed.data.url, apiKey, ...(parsed.data.organisation ? { organisation: parsed.data.organisation } : {}) });
  }

  /** The tenant's Wazuh manager API (`wazuh.base_url`, `wazuh.api_user`, secret `wazuh.api_password`). */
  async wazuh(src: TenantSource, why = 'the step runs a Wazuh active response'): Promise<WazuhClient> {
    return this.wazuhClient(src, await this.wazuhLogin(src, why));
  }

  private async wazuhLogin(src: TenantSource, why: string): Promise<{ baseUrl: string; username: string; password: string }> {
    const w = settings(src, 'wazuh', wazuhSettings);
    const baseUrl = need(src, 'wazuh.base_url', w.base_url, why);
    const username = need(src, 'wazuh.api_user', w.api_user, why);
    return { baseUrl, username, password: await src.secrets.require('wazuh.api_password') };
  }

  private wazuhClient(src: TenantSource, login: { baseUrl: string; username: string; password: string }): WazuhClient {
    return this.cached(src, 'wazuh', [login], () => new WazuhClient(login));
  }

  /**
   * The tenant's pager for one schedule: PagerDuty with the routing key of that schedule
   * (`pagerduty.routing_key.<schedule>`), or the default `pagerduty.routing_key` for a page that
   * names none. A schedule without its own key is refused rather than sent to the default
   * service: paging the wrong team at 3 AM is worse than a clear configuration error.
   */
  async pager(src: TenantSource, schedule?: string): Promise<PagerDutyClient> {
    chooseProvider(src, 'pager', settings(src, 'pager', pagerSettings).provider, ['pagerduty'], 'pagerduty');
    const p = settings(src, 'pagerduty', pagerdutySettings);
    const name = schedule?.trim() || undefined;
    if (name !== undefined && !SCHEDULE.test(name)) {
      throw new ReflexError('input.invalid', `pager: not a schedule name: ${JSON.stringify(name.slice(0, 100))}`, {
        retryable: false,
        safeMessage: 'Schedule names use letters, digits and . _ - (at most 80).',
      });
    }
    const routingKey = await src.secrets.require(name ? `pagerduty.routing_key.${name}` : 'pagerduty.routing_key');
    // Stateless (the routing key is the credential, no login): built per call.
    return new PagerDutyClient({
      routingKeys: { [name ?? 'default']: routingKey },
      ...(p.base_url ? { baseUrl: p.base_url } : {}),
      ...(p.client_url ? { clientUrl: p.client_url } : {}),
    });
  }

  /** The tenant's Twilio account (`twilio.account_sid`, `twilio.from`, secret `twilio.auth_token`). */
  async twilio(src: TenantSource): Promise<TwilioClient> {
    chooseProvider(src, 'phone', settings(src, 'phone', phoneSettings).provider, ['twilio'], 'twilio');
    const t = settings(src, 'twilio', twilioSettings);
    const why = 'phone.provider is twilio';
    const accountSid = need(src, 'twilio.account_sid', t.account_sid, why);
    const from = need(src, 'twilio.from', t.from, why);
    const authToken = await src.secrets.require('twilio.auth_token');
    return this.cached(src, 'phone:twilio', [t, authToken], () =>
      new TwilioClient({
        accountSid,
        authToken,
        from,
        store: this.deps.idempotencyStore(src.tenantId),
        ...(t.messaging_service_sid ? { messagingServiceSid: t.messaging_service_sid } : {}),
        ...(t.voice ? { voice: t.voice } : {}),
        ...(t.language ? { language: t.language } : {}),
        ...(this.deps.logger ? { logger: this.deps.logger } : {}),
      }),
    );
  }

  /**
   * The tenant's `CredentialVault`: `vault.provider` = `hashicorp` (`hashicorp_vault.url`, optional
   * `.namespace`, `.database_mount`, `.ldap_mount`; secret `hashicorp_vault.token`). Its records of
   * what a key already rotated live in the engine's idempotency store, like Twilio's.
   */
  async credentialVault(src: TenantSource): Promise<CredentialVault> {
    const provider = chooseProvider(src, 'vault', settings(src, 'vault', vaultSettings).provider, ['hashicorp']);
    switch (provider) {
      case 'hashicorp': {
        const v = settings(src, 'hashicorp_vault', hashicorpVaultSettings);
        const baseUrl = need(src, 'hashicorp_vault.url', v.url, 'vault.provider is hashicorp');
        const token = await src.secrets.require('hashicorp_vault.token');
        return this.cached(src, 'vault:hashicorp', [v, token], () =>
          new HashiCorpVaultClient({
            baseUrl,
            token,
            store: this.deps.idempotencyStore(src.tenantId),
            ...(v.namespace ? { namespace: v.namespace } : {}),
            ...(v.database_mount ? { databaseMount: v.database_mount } : {}),
            ...(v.ldap_mount ? { ldapMount: v.ldap_mount } : {}),
            ...(this.deps.logger ? { logger: this.deps.logger } : {}),
          }),
        );
      }
    }
  }

  /** The deployment's mailer; e-mail is configured per server (SMTP_URL, SMTP_FROM), not per tenant. */
  mailer(): Mailer {
    const mailer = this.deps.mailer();
    if (!mailer) {
      throw new ReflexError('config.invalid', 'mail.send: SMTP_URL and SMTP_FROM are not set on this server', {
        retryable: false,
        safeMessage: 'E-mail is not configured on this server (set SMTP_URL and SMTP_FROM).',
        details: { key: 'SMTP_URL' },
      });
    }
    return mailer;
  }

  /** The deployment's mailer, or undefined when this server has none. */
  optionalMailer(): Mailer | undefined {
    return this.deps.mailer();
  }

  /** Forgets every cached client (tests; a server stopping). */
  clear(): void {
    this.cache.clear();
  }

  private cached<T>(src: TenantSource, port: string, parts: unknown[], build: () => T): T {
    // Only a hash of what the client was built from is kept beside it, never the values.
    const fingerprint = createHash('sha256').update(JSON.stringify(parts)).digest('hex');
    const key = `${src.tenantId}\u0000${port}`;
    const hit = this.cache.get(key);
    this.cache.delete(key);
    if (hit && hit.fingerprint === fingerprint) {
      this.cache.set(key, hit);
      return hit.client as T;
    }
    const client = build();
    this.cache.set(key, { fingerprint, client });
    while (this.cache.size > this.maxCached) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    return client;
  }
}

/**
 * A SecretReader straight from the vault (tenant value first, then platform-wide), for work that
 * runs outside a step (approval escalations and links). Steps use the engine's reader, which also
 * masks what it read.
 */
export function vaultSecretReader(vault: Pick<SecretsVault, 'get'>, tenantId: string): SecretReader {
  const get = async (name: string): Promise<string | undefined> => (await vault.get(tenantId, name)) ?? (await vault.get(GLOBAL_TENANT, name));
  return {
    get,
    async require(name) {
      const value = await get(name);
      if (value === undefined) throw missingSecret(tenantId, name);
      return value;
    },
  };
}

export function missingSecret(tenantId: string, name: string): ReflexError {
  return new ReflexError('config.invalid', `secret ${name} is not set for tenant ${tenantId}`, {
    retryable: false,
    safeMessage: `The secret ${name} is not set (reflex secrets set ${name} --tenant ${tenantId}).`,
    details: { secret: name },
  });
}

/** A tenant's config section parsed with its schema; a bad value names its key. */
function settings<S extends z.ZodType>(src: TenantSource, section: TenantIntegrationSection, schema: S): z.infer<S> {
  const raw = src.config[section];
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = [section, ...(issue?.path ?? []).map(String)].join('.');
    const message = issue?.message ?? 'invalid';
    throw new ReflexError('config.invalid', `tenant ${src.tenantId}: config key ${key}: ${message}`, {
      retryable: false,
      safeMessage: `Tenant ${src.tenantId} has an invalid setting ${key}: ${message} (reflex tenant config ${src.tenantId} --set ${key}=…).`,
      details: { key },
    });
  }
  return parsed.data;
}

function need<T>(src: TenantSource, key: string, value: T | undefined, why: string): T {
  if (value === undefined || value === null || value === '') {
    throw new ReflexError('config.invalid', `tenant ${src.tenantId}: config key ${key} is not set (${why})`, {
      retryable: false,
      safeMessage: `Tenant ${src.tenantId} needs ${key} (${why}): reflex tenant config ${src.tenantId} --set ${key}=<value>.`,
      details: { key },
    });
  }
  return value;
}

function chooseProvider<P extends string>(src: TenantSource, port: string, chosen: P | undefined, allowed: readonly P[], fallback?: P): P {
  const provider = chosen ?? fallback;
  if (provider === undefined) {
    const key = `${port}.provider`;
    throw new ReflexError('config.invalid', `tenant ${src.tenantId}: config key ${key} is not set, so no ${port} is configured`, {
      retryable: false,
      safeMessage: `Tenant ${src.tenantId} has no ${port} configured: set ${key} to ${allowed.join(' or ')} (reflex tenant config ${src.tenantId} --set ${key}=${allowed[0]}).`,
      details: { key },
    });
  }
  return provider;
}

/**
 * The vault secret holding a person's phone number (E.164), per tenant or platform-wide: where
 * `phone.call` to a schedule and approval links by SMS find the on-call. Principals store only an
 * e-mail address; a phone number is personal data, so it is encrypted with the credentials and
 * masked in step logs like them.
 *
 * @example
 * contactPhoneSecret('5b0c…') // 'contact.phone.5b0c…'  (reflex secrets set contact.phone.5b0c… --tenant acme)
 */
export function contactPhoneSecret(principalId: string): string {
  return `contact.phone.${principalId}`;
}
