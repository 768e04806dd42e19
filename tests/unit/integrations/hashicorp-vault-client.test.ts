import nock from 'nock';
import { describe, expect, it } from 'vitest';
import { HashiCorpVaultClient, SUPPORTED_ASSET_FORMS } from '../../../src/integrations/hashicorp-vault/hashicorp-vault-client.ts';
import { InMemoryIdempotencyStore } from '../../../src/integrations/twilio/in-memory-idempotency-store.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * HashiCorp Vault as a CredentialVault. No fixture of Vault's answers exists in ../shared/fixtures,
 * so the replies below are written from Vault's own documentation and source:
 * - developer.hashicorp.com/vault/api-docs/secret/databases, "Rotate Static Role Credentials"
 *   (`POST /database/rotate-role/:name`) and "Rotate Root Credentials" (`POST /database/rotate-root/:name`):
 *   no response body is documented; the handlers return nothing, which Vault answers as 204.
 * - developer.hashicorp.com/vault/docs/secrets/ldap (static roles, `POST /<mount>/rotate-role/<role>`).
 * - developer.hashicorp.com/vault/api-docs (index), "Error response" (`{"errors": [...]}` for any
 *   status >= 400), "HTTP status codes" (412 "should be retried", 503 sealed) and "Namespaces"
 *   (`X-Vault-Namespace`); "Authentication" (`X-Vault-Token`).
 * - hashicorp/vault builtin/logical/database/path_rotate_credentials.go: an unknown static role is
 *   `logical.ErrorResponse("no static role found for role name")`, i.e. 400.
 */

useStrictNock();

const VAULT = 'https://vault.acme.example:8200';
const TOKEN = 'hvs.CAESIJ0123456789abcdefghijklmnopqrstuv';
const KEY = 'reflex-run-7-rotate_credentials';

interface Seen {
  path: string;
  token: string | undefined;
  namespace: string | undefined;
}

function stage(path: string, status: number, body: unknown, seen: Seen[], headers: Record<string, string> = {}): nock.Scope {
  return nock(VAULT)
    .post(path)
    .reply(function () {
      const h = this.req.headers as Record<string, string | undefined>;
      seen.push({ path: this.req.path, token: h['x-vault-token'], namespace: h['x-vault-namespace'] });
      return [status, body === undefined ? '' : JSON.stringify(body), { 'Content-Type': 'application/json', ...headers }];
    });
}

function client(store = new InMemoryIdempotencyStore(), extra: Partial<ConstructorParameters<typeof HashiCorpVaultClient>[0]> = {}) {
  return new HashiCorpVaultClient({ baseUrl: VAULT, token: TOKEN, store, ...extra });
}

describe('HashiCorpVaultClient.rotate', () => {
  it('maps each asset form onto its rotate endpoint, with the token and namespace headers', async () => {
    const seen: Seen[] = [];
    stage('/v1/database/rotate-role/billing-app', 204, undefined, seen);
    stage('/v1/database/rotate-root/orders-pg', 204, undefined, seen);
    stage('/v1/ldap/rotate-role/svc-backup', 204, undefined, seen);
    const r = await client(undefined, { namespace: 'admin/acme' }).rotate(
      ['database/static-role/billing-app', 'database/root/orders-pg', 'ldap/static-role/svc-backup'],
      { idempotencyKey: KEY },
    );
    expect(seen.map((s) => s.path)).toEqual(['/v1/database/rotate-role/billing-app', '/v1/database/rotate-root/orders-pg', '/v1/ldap/rotate-role/svc-backup']);
    expect(seen.every((s) => s.token === TOKEN && s.namespace === 'admin/acme')).toBe(true);
    expect(r.failures).toEqual([]);
    expect(r.results.map((x) => [x.asset, x.status, x.operation])).toEqual([
      ['database/static-role/billing-app', 'rotated', 'database/rotate-role/billing-app'],
      ['database/root/orders-pg', 'rotated', 'database/rotate-root/orders-pg'],
      ['ldap/static-role/svc-backup', 'rotated', 'ldap/rotate-role/svc-backup'],
    ]);
    expect(JSON.stringify(r)).not.toContain(TOKEN);
  });

  it('uses the configured mounts and sends no namespace header when none is set', async () => {
    const seen: Seen[] = [];
    stage('/v1/prod/postgres/rotate-role/app-ro', 204, undefined, seen);
    stage('/v1/corp-ad/rotate-role/svc-web', 200, { warnings: ['rotation period is short'] }, seen);
    const r = await client(undefined, { databaseMount: 'prod/postgres', ldapMount: 'corp-ad' }).rotate(['database/static-role/app-ro', 'ldap/static-role/svc-web'], { idempotencyKey: KEY });
    expect(seen.map((s) => s.namespace)).toEqual([undefined, undefined]);
    // "Applications should be prepared to accept both 200 and 204 as success" (api-docs index).
    expect(r.results.map((x) => x.status)).toEqual(['rotated', 'rotated']);
  });

  it('a retried step does not rotate twice: the same key and asset answer from the record', async () => {
    const store = new InMemoryIdempotencyStore();
    const seen: Seen[] = [];
    stage('/v1/database/rotate-role/billing-app', 204, undefined, seen);
    const first = await client(store).rotate(['database/static-role/billing-app'], { idempotencyKey: KEY });
    // A new client (the adapter is rebuilt after a restart) with the same store still remembers.
    const retry = await client(store).rotate(['database/static-role/billing-app'], { idempotencyKey: KEY });
    expect(seen).toHaveLength(1);
    expect(first.results[0]).toMatchObject({ status: 'rotated' });
    expect(retry.results[0]).toMatchObject({ status: 'already_rotated', operation: 'database/rotate-role/billing-app', rotatedAt: first.results[0]?.rotatedAt });

    // Another step (another key) rotates again: that is a new intent.
    stage('/v1/database/rotate-role/billing-app', 204, undefined, seen);
    const other = await client(store).rotate(['database/static-role/billing-app'], { idempotencyKey: 'reflex-run-8-rotate_credentials' });
    expect(other.results[0]?.status).toBe('rotated');
    expect(seen).toHaveLength(2);
  });

  it('reports a failing asset without hiding it or stopping the others; 4xx is not retryable, 5xx and 429 are', async () => {
    const store = new InMemoryIdempotencyStore();
    const seen: Seen[] = [];
    stage('/v1/database/rotate-role/billing-app', 204, undefined, seen);
    stage('/v1/database/rotate-role/ghost', 400, { errors: ['no static role found for role name'] }, seen);
    stage('/v1/database/rotate-root/orders-pg', 503, { errors: ['Vault is sealed'] }, seen);
    stage('/v1/ldap/rotate-role/svc-web', 429, { errors: ['request path "ldap/rotate-role/svc-web": rate limit quota exceeded'] }, seen, { 'Retry-After': '7' });
    const assets = ['database/static-role/billing-app', 'database/static-role/ghost', 'database/root/orders-pg', 'ldap/static-role/svc-web'];
    const r = await client(store).rotate(assets, { idempotencyKey: KEY });
    expect(seen).toHaveLength(4);
    expect(r.results.map((x) => [x.asset, x.status, x.code, x.retryable])).toEqual([
      ['database/static-role/billing-app', 'rotated', undefined, undefined],
      ['database/static-role/ghost', 'failed', '400', false],
      ['database/root/orders-pg', 'failed', '503', true],
      ['ldap/static-role/svc-web', 'failed', '429', true],
    ]);
    expect(r.results[1]?.reason).toContain('no static role found for role name');
    expect(r.results[3]?.retryAfterMs).toBe(7000);
    expect(r.failures.map((f) => f.target)).toEqual(assets.slice(1));

    // The retry rotates only what failed: the first asset answers from the record.
    stage('/v1/database/rotate-role/ghost', 400, { errors: ['no static role found for role name'] }, seen);
    stage('/v1/database/rotate-root/orders-pg', 204, undefined, seen);
    stage('/v1/ldap/rotate-role/svc-web', 204, undefined, seen);
    const retry = await client(store).rotate(assets, { idempotencyKey: KEY });
    expect(seen.slice(4).map((s) => s.path)).toEqual(['/v1/database/rotate-role/ghost', '/v1/database/rotate-root/orders-pg', '/v1/ldap/rotate-role/svc-web']);
    expect(retry.results.map((x) => x.status)).toEqual(['already_rotated', 'failed', 'rotated', 'rotated']);
  });

  it('403 (token or policy) is not retryable and the token never appears in the reason', async () => {
    const seen: Seen[] = [];
    stage('/v1/database/rotate-role/billing-app', 403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] }, seen);
    const r = await client().rotate(['database/static-role/billing-app'], { idempotencyKey: KEY });
    expect(r.results[0]).toMatchObject({ status: 'failed', code: '403', retryable: false });
    expect(r.results[0]?.reason).toContain('permission denied');
    expect(JSON.stringify(r)).not.toContain(TOKEN);
  });

  it('412 (Enterprise, not consistent yet) is retryable', async () => {
    stage('/v1/database/rotate-role/billing-app', 412, { errors: ['required index state not present'] }, []);
    const r = await client().rotate(['database/static-role/billing-app'], { idempotencyKey: KEY });
    expect(r.results[0]).toMatchObject({ status: 'failed', code: '412', retryable: true });
  });

  it('refuses an asset it cannot rotate before calling Vault at all, naming the supported forms', async () => {
    for (const bad of ['secret/data/payments/api-key', 'kv/billing', 'database/static-role/', 'database/static-role/a/b', 'database/static-role/..', 'database/static-role/x.', 'ldap/root/corp', 'database/creds/app']) {
      const err = await failure(client().rotate(['database/static-role/billing-app', bad], { idempotencyKey: KEY }));
      expect(err).toMatchObject({ code: 'config.invalid', retryable: false });
      for (const form of SUPPORTED_ASSET_FORMS) expect(err.safeMessage).toContain(form);
    }
    // nock would fail the test on an unexpected request; and no interceptor was staged.
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('the same asset twice in one call is rotated once', async () => {
    const seen: Seen[] = [];
    stage('/v1/database/rotate-role/billing-app', 204, undefined, seen);
    const r = await client().rotate(['database/static-role/billing-app', ' database/static-role/billing-app '], { idempotencyKey: KEY });
    expect(seen).toHaveLength(1);
    expect(r.results).toHaveLength(1);
  });

  it('needs an idempotency key and at least one asset', async () => {
    expect(await failure(client().rotate(['database/static-role/x'], { idempotencyKey: '' }))).toMatchObject({ code: 'input.invalid' });
    expect(await failure(client().rotate([], { idempotencyKey: KEY }))).toMatchObject({ code: 'input.invalid' });
  });
});
