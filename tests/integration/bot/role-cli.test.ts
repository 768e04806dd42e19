import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { resolvePrincipal, resolveWorkspaceTenant } from '../../../src/store/principals.ts';
import { TEST_DATABASE_URL } from '../../helpers/env.ts';
import { runReflex } from '../../helpers/processes.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

// Each case starts real processes (the app's workers, or the CLI): allow for a loaded machine.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

describe('reflex role', () => {
  let t: TestDatabase;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    t = await createTestDatabase();
    await ensureTenant(t.db, 'acme', 'Acme');
    env = { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REFLEX_DB_SCHEMA: t.schema, REFLEX_MASTER_KEY: randomBytes(32).toString('base64'), REFLEX_API_TOKEN: randomBytes(24).toString('hex'), LOG_LEVEL: 'warn' };
  });
  afterAll(() => t.drop());

  it('prints help for the group and its commands', async () => {
    const group = await runReflex(['role', '--help'], env);
    expect(group.code).toBe(0);
    expect(group.stdout).toMatch(/^Usage: reflex role/);
    for (const sub of ['grant', 'revoke', 'list', 'workspace']) expect(group.stdout).toContain(sub);
    const grant = await runReflex(['role', 'grant', '--help'], env);
    expect(grant.stdout).toMatch(/^Usage: reflex role grant \[options\] <identity> <role>/);
  });

  it('maps a workspace, then grants, lists and revokes roles by chat identity', async () => {
    const unmapped = await runReflex(['role', 'grant', 'slack:T111:W111', 'admin'], env);
    expect(unmapped.code).toBe(1);
    expect(unmapped.stderr).toContain('Workspace slack:T111 is not mapped to a tenant: pass --tenant, or map it with `reflex role workspace slack:T111 <tenant>`.');

    const map = await runReflex(['role', 'workspace', 'slack:T111', 'acme'], env);
    expect(map).toMatchObject({ code: 0, stdout: 'mapped slack:T111 to acme\n' });
    expect(await resolveWorkspaceTenant(t.db, 'slack', 'T111')).toBe('acme');

    const grant = await runReflex(['role', 'grant', 'slack:T111:W111', 'admin', '--name', 'Grace Hopper'], env);
    expect(grant).toMatchObject({ code: 0, stdout: 'granted admin in acme to slack:T111:W111\n' });
    expect((await runReflex(['role', 'grant', 'slack:T111:W111', 'admin'], env)).stdout).toBe('slack:T111:W111 already has admin in acme\n');
    expect(await resolvePrincipal(t.db, { platform: 'slack', workspace: 'T111', userId: 'W111' }, 'acme')).toMatchObject({ displayName: 'Grace Hopper', roles: ['admin'] });

    const list = await runReflex(['role', 'list', '--tenant', 'acme'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^acme\s+admin\s+Grace Hopper\s+slack:T111:W111\s+granted by cli /);

    expect((await runReflex(['role', 'revoke', 'slack:T111:W111', 'admin'], env)).stdout).toBe('revoked admin in acme from slack:T111:W111\n');
    expect((await runReflex(['role', 'revoke', 'slack:T111:W111', 'admin'], env)).stdout).toBe('slack:T111:W111 does not have admin in acme\n');
  });

  it('refuses a malformed identity, an unknown role, an unknown tenant, writing nothing', async () => {
    const before = await t.db.selectFrom('audit_log').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const ident = await runReflex(['role', 'grant', 'slack:T111', 'admin', '--tenant', 'acme'], env);
    expect(ident.code).toBe(1);
    expect(ident.stderr).toContain('expected <platform>:<workspace>:<user>');
    const role = await runReflex(['role', 'grant', 'slack:T111:W2', 'root', '--tenant', 'acme'], env);
    expect(role.stderr).toContain('Unknown role "root". Roles: viewer, analyst, responder, approver, admin.');
    const platform = await runReflex(['role', 'grant', 'irc:libera:bob', 'viewer', '--tenant', 'acme'], env);
    expect(platform.code).toBe(1);
    const tenant = await runReflex(['role', 'grant', 'slack:T111:W2', 'viewer', '--tenant', 'nope'], env);
    expect(tenant.stderr).toContain('There is no tenant "nope".');
    const ws = await runReflex(['role', 'workspace', 'slack', 'acme'], env);
    expect(ws.stderr).toContain('expected <platform>:<workspace>');
    const after = await t.db.selectFrom('audit_log').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    expect(after?.seq).toBe(before?.seq);
  });
});
