import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { authenticatePrincipalToken } from '../../../src/approvals/principal-tokens.ts';
import { OnCallDirectory } from '../../../src/approvals/oncall-directory.ts';
import { grantRole } from '../../../src/store/principals.ts';
import { TEST_DATABASE_URL } from '../../helpers/env.ts';
import { runReflex } from '../../helpers/processes.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';

/** `reflex playbook …`, run as the real CLI against a schema of its own. */
const EXTRA = `id: extra-playbook
name: From REFLEX_PLAYBOOK_DIRS
version: 2
trigger: { manual: true }
steps:
  - id: only
    script: { javascript: "return 1" }
`;

let t: TestDatabase;
let env: NodeJS.ProcessEnv;
let dir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'reflex-playbooks-'));
  writeFileSync(path.join(dir, 'extra.yaml'), EXTRA);
  writeFileSync(path.join(dir, 'broken.yaml'), EXTRA.replace('id: extra-playbook', 'id: broken-one').replace('script: { javascript: "return 1" }', 'action: firewall.blok'));
  env = { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REFLEX_DB_SCHEMA: t.schema, REFLEX_MASTER_KEY: randomBytes(32).toString('base64'), REFLEX_API_TOKEN: randomBytes(24).toString('hex'), REFLEX_PLAYBOOK_DIRS: dir };
  delete env.REDIS_URL;
  await ensureTenant(t.db, 'acme', 'Acme');
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await t.drop();
});

describe('reflex playbook', () => {
  it('validates manifests, listing every problem with its position', async () => {
    const ok = await runReflex(['playbook', 'validate', 'manifests/playbooks/kiosk-lockdown.yaml', path.join(dir, 'extra.yaml')], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok  manifests/playbooks/kiosk-lockdown.yaml: kiosk-lockdown v1');
    const bad = await runReflex(['playbook', 'validate', path.join(dir, 'broken.yaml')], env);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`${path.join(dir, 'broken.yaml')}:7:13 steps[0].action: unknown action "firewall.blok" (did you mean firewall.block?)`);
  });

  it('lists the shipped playbooks and those of REFLEX_PLAYBOOK_DIRS, and names refused files', async () => {
    const r = await runReflex(['playbook', 'list'], env);
    expect(r.stdout).toMatch(/^extra-playbook\s+v2\s+- \+ manual\s+From REFLEX_PLAYBOOK_DIRS$/m);
    expect(r.stdout).toMatch(/^host-isolation\s+v1/m);
    expect(r.stdout).toContain('REFUSED');
    expect(r.stdout).toContain('broken.yaml');
    expect(r.code).toBe(1);
  });

  it('fans a run out to every tenant and reports each run as it finishes', async () => {
    const { createHarness, playbook } = await import('./engine-harness.ts');
    // A worker for the CLI's runs: the harness's engine, on the queue the CLI finds from its config.
    const h = await createHarness({ playbooks: [playbook(EXTRA, path.join(dir, 'extra.yaml'))], queueBesideDatabase: true });
    try {
      await ensureTenant(h.db, 'globex', 'Globex');
      const r = await runReflex(['playbook', 'run', 'extra-playbook', '--tenants', 'all'], { ...env, REFLEX_DB_SCHEMA: h.database.schema });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^started acme\s+run [0-9a-f-]{36}$/m);
      expect(r.stdout).toMatch(/^started globex\s+run [0-9a-f-]{36}$/m);
      expect(r.stdout).toMatch(/^\[1\/2\] (acme|globex)\s+succeeded$/m);
      expect(r.stdout).toMatch(/^\[2\/2\] (acme|globex)\s+succeeded$/m);
      const runs = await h.db.selectFrom('playbook_runs').select(['tenant_id', 'status', 'started_by']).orderBy('tenant_id').execute();
      expect(runs).toEqual([
        { tenant_id: 'acme', status: 'succeeded', started_by: 'cli' },
        { tenant_id: 'globex', status: 'succeeded', started_by: 'cli' },
      ]);
    } finally {
      await h.stop();
    }
  });

  it('creates an approver token (shown once) and sets an on-call rotation', async () => {
    const who = await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T1', userId: 'U1' }, tenantId: 'acme', role: 'approver', actor: 'test', displayName: 'Ana' });
    const r = await runReflex(['playbook', 'approver-token', 'slack:T1:U1', '--label', 'laptop'], env);
    expect(r.code).toBe(0);
    const token = r.stdout.trim();
    expect(token).toMatch(/^rpt_/);
    expect(await authenticatePrincipalToken(t.db, token, 'acme')).toMatchObject({ principalId: who.principalId, roles: ['approver'] });
    const unknown = await runReflex(['playbook', 'approver-token', 'slack:T1:NOBODY'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Nobody is known as slack:T1:NOBODY');

    const o = await runReflex(['playbook', 'oncall', 'acme', 'secops-primary', 'slack:T1:U1'], env);
    expect(o.code).toBe(0);
    expect(await new OnCallDirectory(t.db).onCall('acme', 'secops-primary', 0)).toBe(who.principalId);
  });
});
