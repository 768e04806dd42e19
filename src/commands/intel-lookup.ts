import { toReflexError } from '../errors.ts';
import { AbuseIpdbClient } from '../integrations/abuseipdb/abuseipdb-client.ts';
import type { IntelObservableKind, IntelProvider } from '../integrations/ports.ts';
import { VirusTotalClient } from '../integrations/virustotal/virustotal-client.ts';
import { GLOBAL_TENANT, type SecretsVault } from '../store/secrets-vault.ts';
import type { IntelLookup, IntelOutcome } from './ports.ts';

/** An intel provider the enrich command can use once a tenant has stored its API key. */
export interface IntelProviderFactory {
  name: string;
  /** Secret name in the vault, e.g. `virustotal.api_key`. */
  secret: string;
  kinds: readonly IntelObservableKind[];
  create(apiKey: string): IntelProvider;
}

/** VirusTotal and AbuseIPDB at the configured base URLs (VIRUSTOTAL_API_URL, ABUSEIPDB_API_URL). */
export function defaultIntelProviders(urls: { virustotal: string; abuseipdb: string }): IntelProviderFactory[] {
  return [
    {
      name: 'virustotal',
      secret: 'virustotal.api_key',
      kinds: ['ip', 'domain', 'url', 'hash'],
      create: (apiKey) => new VirusTotalClient({ apiKey, baseUrl: urls.virustotal }),
    },
    {
      name: 'abuseipdb',
      secret: 'abuseipdb.api_key',
      kinds: ['ip'],
      create: (apiKey) => new AbuseIpdbClient({ apiKey, baseUrl: urls.abuseipdb }),
    },
  ];
}

/**
 * Builds the enrich lookup from the secrets vault: a tenant's own key wins, a platform-wide key
 * (`reflex secrets set virustotal.api_key` without --tenant) is the fallback. Keys are cached for
 * 5 s (a rotated key applies within that); clients are built per lookup.
 *
 * @example
 * const lookupIntel = createIntelLookup(vault, defaultIntelProviders({ virustotal, abuseipdb }));
 */
const SECRET_TTL_MS = 5000;

export function createIntelLookup(
  vault: Pick<SecretsVault, 'get'>,
  providers: readonly IntelProviderFactory[],
  now: () => number = Date.now,
): IntelLookup {
  // Keys are read through a short cache: enrichment looks up every new alert's observables, and
  // two vault reads (tenant, then platform-wide) per provider per lookup were most of its queries.
  // A rotated key applies within SECRET_TTL_MS.
  const keys = new Map<string, { value: string | undefined; until: number }>();
  const secret = async (tenantId: string, name: string) => {
    const k = `${tenantId}\u0000${name}`;
    const hit = keys.get(k);
    if (hit && hit.until > now()) return hit.value;
    const value = (await vault.get(tenantId, name)) ?? (await vault.get(GLOBAL_TENANT, name));
    keys.set(k, { value, until: now() + SECRET_TTL_MS });
    return value;
  };
  // A vendor that answered 429 is not asked again (for that tenant's key) until its Retry-After
  // has passed: hammering it would only extend the block and burn the quota.
  const coolingUntil = new Map<string, number>();
  return async (tenantId, observable) =>
    Promise.all(
      providers.map(async (p): Promise<IntelOutcome> => {
        const cooling = `${tenantId}\u0000${p.name}`;
        try {
          const key = await secret(tenantId, p.secret);
          if (!key) return { provider: p.name, status: 'not_configured' };
          if (!p.kinds.includes(observable.kind)) return { provider: p.name, status: 'unsupported' };
          const until = coolingUntil.get(cooling) ?? 0;
          if (until > now()) {
            return { provider: p.name, status: 'unavailable', reason: `${p.name} is rate limiting us; next try after ${new Date(until).toISOString()}.` };
          }
          return { provider: p.name, status: 'ok', verdict: await p.create(key).lookup(observable) };
        } catch (err) {
          const e = toReflexError(err);
          if (e.code === 'upstream.rate_limited') coolingUntil.set(cooling, now() + (e.retryAfterMs ?? 60_000));
          // One provider's outage degrades the answer; it never fails the whole enrich.
          return { provider: p.name, status: 'unavailable', reason: e.safeMessage };
        }
      }),
    );
}
