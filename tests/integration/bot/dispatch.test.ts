import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ensureTenant } from '../../../src/app/runtime.ts';
import { defineCommand, positional, type CommandDeps } from '../../../src/commands/command.ts';
import { dispatch, type InboundInvocation } from '../../../src/commands/dispatch.ts';
import { createIntelLookup, defaultIntelProviders } from '../../../src/commands/intel-lookup.ts';
import { COMMANDS, CommandRegistry } from '../../../src/commands/registry.ts';
import { EVERYONE } from '../../../src/commands/roles.ts';
import { createIncident } from '../../../src/store/incidents.ts';
import { grantRole, mapWorkspace } from '../../../src/store/principals.ts';
import { SecretsVault } from '../../../src/store/secrets-vault.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { fixture } from './slack-test-kit.ts';

const VT = 'https://vt.test';
const ABUSE = 'https://abuse.test';

describe('dispatch', () => {
  let t: TestDatabase;
  let deps: CommandDeps;
  const errors: unknown[] = [];
  beforeAll(async () => {
    t = await createTestDatabase();
    await ensureTenant(t.db, 'acme', 'Acme');
    await ensureTenant(t.db, 'default', 'Default tenant');
    await mapWorkspace(t.db, { platform: 'slack', workspace: 'T1', tenantId: 'acme', actor: 'test' });
    await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T1', userId: 'UADMIN' }, tenantId: 'acme', role: 'admin', actor: 'test', displayName: 'Ada' });
    await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T1', userId: 'UVIEW' }, tenantId: 'acme', role: 'viewer', actor: 'test' });
    await grantRole(t.db, { identity: { platform: 'slack', workspace: 'TLOCAL', userId: 'UME' }, tenantId: 'default', role: 'analyst', actor: 'test' });
    deps = { db: t.db, onError: (err) => errors.push(err) };
  });
  afterAll(() => t.drop());

  const inv = (userId: string, text: string, workspace = 'T1'): InboundInvocation => ({
    platform: 'slack',
    user: { platform: 'slack', workspace, userId },
    channel: { id: 'C1' },
    text,
    receivedAt: new Date(),
  });
  const auditHead = async () => (await t.db.selectFrom('audit_log').select(sql<string>`coalesce(max(seq), 0)`.as('seq')).executeTakeFirstOrThrow()).seq;
  const auditSince = async (seq: string) => t.db.selectFrom('audit_log').select(['action', 'tenant_id', 'delta']).where('seq', '>', seq).orderBy('seq').execute();

  it('refuses a workspace mapped to no tenant (and audits it), unless a fallback tenant is configured', async () => {
    const head = await auditHead();
    const r = await dispatch(inv('UME', 'whoami', 'TLOCAL'), deps);
    expect(r.outcome).toBe('refused');
    expect(r.message?.text).toContain('is not connected to a SENTreflex tenant');
    expect(await auditSince(head)).toEqual([{ action: 'command.refused', tenant_id: null, delta: expect.objectContaining({ reason: 'workspace_not_connected' }) }]);
    // Embedded mode: one machine, one team, the default tenant.
    const embedded = await dispatch(inv('UME', 'whoami', 'TLOCAL'), { ...deps, fallbackTenant: 'default' });
    expect(embedded).toMatchObject({ outcome: 'ok', tenantId: 'default' });
    expect(embedded.message?.fields).toContainEqual({ label: 'Roles', value: 'analyst' });
  });

  it('answers bad input, unknown commands and bare groups with help, and writes nothing', async () => {
    const head = await auditHead();
    expect((await dispatch(inv('UADMIN', 'incident new 9 x'), deps)).message?.text).toBe(
      ':warning: "9" is not a severity: use 1 (critical) to 4 (info)\nUsage: `incident new <sev 1-4> <title…>`',
    );
    expect((await dispatch(inv('UADMIN', 'frobnicate now'), deps)).message?.text).toBe(':warning: I don\'t know the command "frobnicate". Try `help`.');
    expect((await dispatch(inv('UADMIN', 'role'), deps)).message?.text).toContain('`role` needs one of: `role grant <@user> <role>`');
    expect((await dispatch(inv('UADMIN', 'incident show 00000000'), deps)).message?.text).toBe(':warning: No incident 00000000 in this tenant.');
    expect(await auditSince(head)).toEqual([]);
  });

  it('lists only the commands a role may run; a bare /reflex is help', async () => {
    const viewer = await dispatch(inv('UVIEW', ''), deps);
    expect(viewer.command).toBe('help');
    expect(viewer.message?.text).toContain('`incident list [open|closed|all]`');
    expect(viewer.message?.text).not.toContain('`incident new');
    expect(viewer.message?.context?.[0]).toMatch(/Your roles here: viewer\. \d+ more command\(s\) need other roles\./);
    const admin = await dispatch(inv('UADMIN', 'help'), deps);
    expect(admin.message?.text).toContain('`role grant <@user> <role>`');
    expect((await dispatch(inv('UVIEW', 'help incident close'), deps)).message?.text).toContain('Allowed: responder, admin; buttons: incident.close');
  });

  it('says the playbook engine and the assistant are not enabled when they are not wired', async () => {
    for (const text of ['playbooks', 'run host-isolation host=web-01', 'runs', 'approve 9f8e7d6c', 'deny 9f8e7d6c']) {
      const r = await dispatch(inv('UADMIN', text), deps);
      expect(r.outcome).toBe('ok');
      expect(r.message?.text).toBe(':information_source: The playbook engine is not enabled on this server.');
    }
    const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Assistant-less incident', severity: 2, createdBy: 'test' });
    expect((await dispatch(inv('UADMIN', `suggest ${inc.id.slice(0, 8)}`), deps)).message?.text).toContain('The assistant is not enabled on this server');
  });

  it('summarises deterministically without an assistant, in prose with one, and falls back when it fails', async () => {
    const inc = await createIncident(t.db, { tenantId: 'acme', title: 'Summarised incident', severity: 2, createdBy: 'test' });
    const ref = inc.id.slice(0, 8);
    const plain = await dispatch(inv('UVIEW', `summary ${ref}`), deps);
    expect(plain.message?.text).toContain('*What:* Summarised incident');
    const prose = await dispatch(inv('UVIEW', `summary ${ref}`), { ...deps, assistant: { summarize: async () => 'A phishing wave, contained.', suggest: async () => [] } });
    expect(prose.message?.text).toBe('A phishing wave, contained.');
    const failing = await dispatch(inv('UVIEW', `summary ${ref}`), {
      ...deps,
      assistant: {
        summarize: async () => {
          throw new Error('Claude is down');
        },
        suggest: async () => [],
      },
    });
    expect(failing.message?.text).toContain('*What:* Summarised incident');
    expect(failing.message?.context).toContain('The assistant is unavailable; this summary is built from the timeline.');
  });

  it('will not let chat remove the last admin of a tenant', async () => {
    const r = await dispatch(inv('UADMIN', 'role revoke @UADMIN admin'), deps);
    expect(r.outcome).toBe('invalid');
    expect(r.message?.text).toContain('is the last admin of `acme`');
    await grantRole(t.db, { identity: { platform: 'slack', workspace: 'T1', userId: 'UADMIN2' }, tenantId: 'acme', role: 'admin', actor: 'test' });
    expect((await dispatch(inv('UADMIN', 'role revoke @UADMIN2 admin'), deps)).message?.text).toContain('Revoked *admin*');
  });

  it('turns an unexpected failure into a safe message and reports it, without an audit row', async () => {
    const boom = defineCommand({
      name: 'boom',
      usage: '',
      summary: 'fails',
      args: positional({ x: z.string().optional() }),
      requiredRoles: EVERYONE,
      async handler() {
        throw new Error('connection to 10.0.0.5:5432 reset');
      },
    });
    const head = await auditHead();
    const before = errors.length;
    const r = await dispatch(inv('UVIEW', 'boom'), deps, new CommandRegistry([...COMMANDS, boom]));
    expect(r).toMatchObject({ outcome: 'failed', message: { text: ':warning: Something went wrong inside SENTreflex. (code `internal`)', ephemeral: true } });
    expect(errors.length).toBe(before + 1);
    expect(await auditSince(head)).toEqual([]);
  });

  describe('enrich with the real intel clients', () => {
    beforeAll(() => nock.disableNetConnect());
    afterAll(() => {
      nock.cleanAll();
      nock.enableNetConnect();
    });

    it('asks the configured providers, degrades one that fails to "unavailable", and says which are not configured', async () => {
      const vault = new SecretsVault(t.db, randomBytes(32));
      await vault.set('acme', 'abuseipdb.api_key', 'abuse-key-acme-0123456789', 'test');
      // Platform-wide key: used by every tenant without its own.
      await vault.set('', 'virustotal.api_key', 'vt-key-global-0123456789', 'test');
      const lookupIntel = createIntelLookup(vault, defaultIntelProviders({ virustotal: VT, abuseipdb: ABUSE }));
      nock(VT, { reqheaders: { 'x-apikey': 'vt-key-global-0123456789' } })
        .get('/api/v3/ip_addresses/198.51.100.100')
        .reply(503, JSON.parse(fixture('intel/virustotal_v3_error_envelope__vt-py_tests.json')));
      nock(ABUSE, { reqheaders: { key: 'abuse-key-acme-0123456789' } })
        .get('/api/v2/check')
        .query(true)
        .reply(200, fixture('intel/abuseipdb_v2_check_verbose__rapid7_check_ip_data.json'), { 'Content-Type': 'application/json' });

      const r = await dispatch(inv('UADMIN', 'enrich 198.51.100[.]100'), { ...deps, lookupIntel });
      expect(r.outcome).toBe('ok');
      expect(r.message?.text).toBe(':red_circle: Overall: *malicious* (1 of 2 provider(s) answered).');
      expect(r.message?.fields).toEqual([
        { label: 'virustotal', value: expect.stringMatching(/^:grey_question: unavailable: /) },
        { label: 'abuseipdb', value: expect.stringContaining(':red_circle: malicious (score 100): abuse confidence 100%') },
      ]);
      expect(nock.isDone()).toBe(true);

      // A domain: AbuseIPDB cannot look it up.
      nock(VT).get('/api/v3/domains/down.mykings.pw').reply(200, fixture('intel/virustotal_v3_domains__demisto_VirusTotalV3_domain.json'), { 'Content-Type': 'application/json' });
      const d = await dispatch(inv('UADMIN', 'enrich down.mykings.pw'), { ...deps, lookupIntel });
      expect(d.message?.text).toBe(':red_circle: Overall: *malicious* (1 of 2 provider(s) answered).');
      expect(d.message?.context).toEqual(['Cannot look up a domain: abuseipdb.']);
    });

    it('says how to configure a provider when none is, and asks no vendor', async () => {
      const empty = createIntelLookup({ get: async () => undefined }, defaultIntelProviders({ virustotal: VT, abuseipdb: ABUSE }));
      await ensureTenant(t.db, 'globex', 'Globex');
      expect(await empty('globex', { kind: 'ip', value: '198.51.100.100' })).toEqual([
        { provider: 'virustotal', status: 'not_configured' },
        { provider: 'abuseipdb', status: 'not_configured' },
      ]);
      const r = await dispatch(inv('UADMIN', 'enrich 198.51.100.100'), { ...deps, lookupIntel: empty });
      expect(r.message?.text).toBe('No threat-intel provider could answer for this indicator.');
      expect(r.message?.context).toEqual(['Not configured for this tenant: virustotal, abuseipdb (an operator adds a key with `reflex secrets set <provider>.api_key --tenant acme`).']);
    });
  });
});
