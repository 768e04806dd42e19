import nock from 'nock';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseIdempotencyStore } from '../../../src/engine/actions/database-idempotency-store.ts';
import type { ActionContext } from '../../../src/engine/actions/registry.ts';
import { missingSecret, TenantIntegrations } from '../../../src/engine/actions/tenant-integrations.ts';
import { createVendorExecutors } from '../../../src/engine/actions/vendor-actions.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { failure, useStrictNock } from '../../helpers/vendor-http.ts';

/**
 * `vault.rotate_credential` as the engine runs it: the tenant's HashiCorp Vault built from its
 * config and vault secret, the records of what a step's key rotated in PostgreSQL (the engine's
 * DatabaseIdempotencyStore), so a retried step (another worker, after a restart) rotates nothing
 * twice, and a failed asset fails the step with every asset's outcome.
 *
 * No Vault fixture exists in ../shared/fixtures: the answers are written from Vault's docs
 * (developer.hashicorp.com/vault/api-docs/secret/databases, "Rotate Static Role Credentials" and
 * "Rotate Root Credentials": no body, 204; developer.hashicorp.com/vault/api-docs, "Error response":
 * `{"errors": [...]}`, 503 when sealed).
 */

useStrictNock();

const VAULT = 'https://vault.acme.example:8200';
const TOKEN = 'hvs.CAESIJ-tenant-acme-0123456789abcdef';
const CONFIG = { vault: { provider: 'hashicorp' }, hashicorp_vault: { url: VAULT, namespace: 'admin/acme' } };
const SECRETS: Record<string, string> = { 'hashicorp_vault.token': TOKEN };

let t: TestDatabase;
let integrations: TenantIntegrations;
beforeAll(async () => {
  t = await createTestDatabase();
  await ensureTenant(t.db, 'acme', 'ACME');
  integrations = new TenantIntegrations({ idempotencyStore: (tenantId) => new DatabaseIdempotencyStore(t.db, tenantId), mailer: () => undefined });
});
afterAll(async () => {
  await t?.drop();
});

async function rotate(input: Record<string, unknown>, opts: { key?: string; config?: Record<string, unknown>; secrets?: Record<string, string>; via?: TenantIntegrations } = {}) {
  const logs: string[] = [];
  const secrets = opts.secrets ?? SECRETS;
  const ctx: ActionContext = {
    tenantId: 'acme',
    runId: 'run-1',
    stepId: 'rotate_credentials',
    idempotencyKey: opts.key ?? 'reflex-run-1-rotate_credentials',
    attempt: 1,
    secrets: {
      get: async (n) => secrets[n],
      require: async (n) => {
        const v = secrets[n];
        if (v === undefined) throw missingSecret('acme', n);
        return v;
      },
    },
    config: { id: 'acme', name: 'ACME', ...(opts.config ?? CONFIG) },
    signal: new AbortController().signal,
    timeoutMs: 30_000,
    expressionContext: {},
    log: (l) => logs.push(l),
  };
  const executor = new Map(createVendorExecutors({ integrations: opts.via ?? integrations, onCall: async () => undefined })).get('vault.rotate_credential');
  if (!executor) throw new Error('vault.rotate_credential is not registered');
  const output = await executor(input, ctx).catch((err: unknown) => {
    Object.assign(err as object, { logs });
    throw err;
  });
  return { output: JSON.parse(JSON.stringify(output)) as { vendor: string; results: { asset: string; status: string }[]; failures: unknown[] }, logs };
}

function stage(path: string, status: number, body?: unknown): { scope: nock.Scope; tokens: string[] } {
  const tokens: string[] = [];
  const scope = nock(VAULT, { reqheaders: { 'x-vault-namespace': 'admin/acme' } })
    .post(path)
    .reply(function () {
      tokens.push(String(this.req.headers['x-vault-token']));
      return [status, body === undefined ? '' : JSON.stringify(body), { 'Content-Type': 'application/json' }];
    });
  return { scope, tokens };
}

describe('vault.rotate_credential over HashiCorp Vault', () => {
  it('rotates every asset once per step; a retry on a fresh adapter finds the records in PostgreSQL', async () => {
    const a = stage('/v1/database/rotate-role/billing-app', 204);
    const b = stage('/v1/database/rotate-root/orders-pg', 204);
    const assets = ['database/static-role/billing-app', 'database/root/orders-pg'];
    const first = await rotate({ assets, reason: 'Suspected breach: generic.alert' });
    expect(a.scope.isDone() && b.scope.isDone()).toBe(true);
    expect([...a.tokens, ...b.tokens]).toEqual([TOKEN, TOKEN]);
    expect(first.output).toMatchObject({ vendor: 'hashicorp-vault', failures: [] });
    expect(first.output.results.map((r) => r.status)).toEqual(['rotated', 'rotated']);
    expect(first.logs).toEqual([
      'hashicorp-vault: rotated database/static-role/billing-app (database/rotate-role/billing-app)',
      'hashicorp-vault: rotated database/root/orders-pg (database/rotate-root/orders-pg)',
    ]);
    const rows = await t.db.selectFrom('pipeline_batches').select(['batch_id', 'stage']).where('stage', '=', 'vendor-idempotency:acme').execute();
    expect(rows).toHaveLength(2);
    for (const asset of assets) expect(rows.some((r) => r.batch_id.endsWith(`:reflex-run-1-rotate_credentials:${asset}`))).toBe(true);

    // Another worker after a restart: a new TenantIntegrations, the same database. No request is staged.
    const fresh = new TenantIntegrations({ idempotencyStore: (tenantId) => new DatabaseIdempotencyStore(t.db, tenantId), mailer: () => undefined });
    const retry = await rotate({ assets }, { via: fresh });
    expect(retry.output.results.map((r) => r.status)).toEqual(['already_rotated', 'already_rotated']);
    expect(retry.logs[0]).toContain('not rotated again');
  });

  it('a 5xx on one asset fails the step retryably, listing each asset; the retry rotates only what is left', async () => {
    const key = 'reflex-run-2-rotate_credentials';
    const assets = ['database/static-role/app-a', 'database/static-role/app-b'];
    stage('/v1/database/rotate-role/app-a', 204);
    stage('/v1/database/rotate-role/app-b', 503, { errors: ['Vault is sealed'] });
    const err = await failure(rotate({ assets }, { key }));
    expect(err).toMatchObject({ code: 'upstream.unavailable', retryable: true });
    expect(err.message).toContain('rotated 1 of 2');
    expect(err.message).toContain('database/static-role/app-b (503)');
    expect(err.details).toMatchObject({ results: [{ asset: 'database/static-role/app-a', status: 'rotated' }, { asset: 'database/static-role/app-b', status: 'failed', code: '503', retryable: true }] });
    expect((err as unknown as { logs: string[] }).logs[1]).toContain('did NOT rotate database/static-role/app-b');
    expect(JSON.stringify(err.details) + err.message + err.safeMessage).not.toContain(TOKEN);

    const onlyB = stage('/v1/database/rotate-role/app-b', 204);
    const retry = await rotate({ assets }, { key });
    expect(onlyB.scope.isDone()).toBe(true);
    expect(retry.output.results.map((r) => r.status)).toEqual(['already_rotated', 'rotated']);
  });

  it('a 4xx on one asset fails the step for good, naming the asset and Vault\'s reason', async () => {
    stage('/v1/database/rotate-role/app-c', 204);
    stage('/v1/database/rotate-role/ghost', 400, { errors: ['no static role found for role name'] });
    const err = await failure(rotate({ assets: ['database/static-role/app-c', 'database/static-role/ghost'] }, { key: 'reflex-run-3-rotate_credentials' }));
    expect(err).toMatchObject({ code: 'upstream.rejected', retryable: false });
    expect(err.message).toContain('database/static-role/ghost: HashiCorp Vault answered 400');
    expect(err.message).toContain('no static role found for role name');
    expect(err.safeMessage).toContain('rotated 1 of 2');
  });

  it('an asset it cannot rotate is config.invalid before anything is rotated', async () => {
    const err = await failure(rotate({ assets: ['database/static-role/app-d', 'secret/data/payments/api-key'] }, { key: 'reflex-run-4-rotate_credentials' }));
    expect(err).toMatchObject({ code: 'config.invalid', retryable: false });
    expect(err.safeMessage).toContain('database/static-role/<role>');
    expect(err.safeMessage).toContain('database/root/<connection>');
  });

  it('missing configuration is config.invalid naming the key or secret; bad input names the field', async () => {
    const none = await failure(rotate({ assets: ['database/static-role/x'] }, { config: {} }));
    expect(none).toMatchObject({ code: 'config.invalid', retryable: false });
    expect(none.safeMessage).toContain('vault.provider');
    const noUrl = await failure(rotate({ assets: ['database/static-role/x'] }, { config: { vault: { provider: 'hashicorp' } } }));
    expect(noUrl.safeMessage).toContain('hashicorp_vault.url');
    const noToken = await failure(rotate({ assets: ['database/static-role/x'] }, { secrets: {} }));
    expect(noToken.safeMessage).toContain('hashicorp_vault.token');
    const badMount = await failure(rotate({ assets: ['database/static-role/x'] }, { config: { ...CONFIG, hashicorp_vault: { url: VAULT, database_mount: '../sys' } } }));
    expect(badMount.safeMessage).toContain('hashicorp_vault.database_mount');
    expect(await failure(rotate({ assets: [] }))).toMatchObject({ code: 'input.invalid', details: { field: 'assets' } });
    expect(await failure(rotate({ assets: { a: 1 } }))).toMatchObject({ code: 'input.invalid', details: { field: 'assets' } });
  });
});
