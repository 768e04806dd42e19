import { Command } from 'commander';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerDlqCommands } from '../../../src/app/cli/dlq-commands.ts';
import { registerIngestCommands } from '../../../src/app/cli/ingest-commands.ts';
import { registerTenantCommands } from '../../../src/app/cli/tenant-commands.ts';
import { signHookBody } from '../../../src/pipeline/ingest/hook-signature.ts';
import type { Database } from '../../../src/store/schema.ts';
import { fixtureText } from '../../helpers/fixtures.ts';
import { settle, stats } from '../../helpers/pipeline.ts';
import { runReflex } from '../../helpers/processes.ts';
import { startTestServer, type TestServer, cliEnv } from '../../helpers/test-server.ts';

const sshd = fixtureText('wazuh/docs_alert_5716_sshd_auth_failed.json');


/**
 * Rows of the tables these commands write, and the audit rows the CLI wrote (the running pipeline
 * audits its own work meanwhile): "nothing written" means none of them moved.
 */
async function footprint(db: Kysely<Database>): Promise<Record<string, string>> {
  const count = async (table: 'tenants' | 'suppression_rules' | 'ingest_credentials' | 'secrets') =>
    (await db.selectFrom(table).select(({ fn }) => fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n;
  const configs = await db.selectFrom('tenants').select(['id', 'config']).orderBy('id').execute();
  const audit = await db.selectFrom('audit_log').select(({ fn }) => fn.countAll<string>().as('n')).where('actor', '=', 'cli').executeTakeFirstOrThrow();
  return {
    tenants: await count('tenants'),
    suppression_rules: await count('suppression_rules'),
    ingest_credentials: await count('ingest_credentials'),
    secrets: await count('secrets'),
    configs: JSON.stringify(configs),
    cli_audit_rows: audit.n,
  };
}

/** Runs CLI processes three at a time (each is a Node start-up; the database is shared). */
async function threeAtATime<T>(tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < tasks.length; i += 3) out.push(...(await Promise.all(tasks.slice(i, i + 3).map((t) => t()))));
  return out;
}

function post(s: TestServer, path: string, body: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

describe('reflex tenant, suppress and ingest', () => {
  let s: TestServer;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runReflex(args, env);
  /** A command expected to succeed; a failure shows its stderr. */
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    expect(r.code, `reflex ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  beforeAll(async () => {
    s = await startTestServer();
    env = cliEnv(s);
  });
  afterAll(() => s.stop());

  it('gives every subcommand a --help, and main.ts wires the groups in', async () => {
    // Every subcommand, in process (a spawn each would take minutes on a busy machine).
    const program = new Command('reflex').exitOverride();
    const deps = { withStore: () => Promise.reject(new Error('not in this test')), fail: (err: unknown): never => { throw err; } };
    registerTenantCommands(program, deps);
    registerIngestCommands(program, deps);
    registerDlqCommands(program, deps);
    const leaves: string[] = [];
    const walk = (cmd: Command, path: string[]) => {
      for (const sub of cmd.commands) {
        const here = [...path, sub.name()];
        expect(sub.description(), here.join(' ')).not.toBe('');
        if (sub.commands.length === 0) {
          leaves.push(here.join(' '));
          expect(sub.helpInformation(), here.join(' ')).toMatch(new RegExp(`^Usage: reflex ${here.join(' ')} `));
        } else walk(sub, here);
      }
    };
    walk(program, []);
    expect(leaves.sort()).toEqual([
      'dlq list', 'dlq replay', 'dlq show', 'ingest hmac create', 'ingest list', 'ingest revoke', 'ingest token create',
      'suppress add', 'suppress list', 'suppress remove', 'tenant config', 'tenant create', 'tenant list',
    ]);
    // And through the real binary, one per group.
    for (const args of [['tenant', 'config'], ['suppress', 'add'], ['ingest', 'hmac', 'create'], ['dlq', 'replay']]) {
      const r = await cli(...args, '--help');
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toMatch(new RegExp(`^Usage: reflex ${args.join(' ')} `));
      if (args[0] === 'tenant') expect(r.stdout).toContain('notify.min_severity');
    }
  }, 300_000);

  it('creates and lists tenants, and refuses a bad or taken id with nothing written', async () => {
    const created = await ok('tenant', 'create', 'acme', '--name', 'Acme Corp');
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('created tenant acme (Acme Corp)');
    const list = await ok('tenant', 'list');
    expect(list.stdout).toMatch(/^acme\s+Acme Corp\s+created /m);
    expect(list.stdout).toMatch(/^default\s+/m);

    const before = await footprint(s.store.db);
    const taken = await cli('tenant', 'create', 'acme', '--name', 'Other');
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('Tenant "acme" exists already');
    const bad = await cli('tenant', 'create', 'Acme Corp!', '--name', 'x');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Tenant id "Acme Corp!" is not valid');
    const noName = await cli('tenant', 'create', 'beta');
    expect(noName.code).toBe(1);
    expect(noName.stderr).toContain("required option '--name <name>' not specified");
    expect(await footprint(s.store.db)).toEqual(before);
  }, 300_000);

  it('shows the effective config with defaults, changes it with --set and --json, and refuses a bad key or value naming it', async () => {
    const shown = await ok('tenant', 'config', 'acme');
    const defaults = JSON.parse(shown.stdout) as { tenant: string; effective: Record<string, unknown>; overrides: Record<string, unknown> };
    expect(defaults).toEqual({
      tenant: 'acme',
      effective: { dedupe_window_seconds: 3600, correlation_window_seconds: 3600, incident_threshold: 2, deep_enrichment_threshold: 2, intel_cache_ttl_seconds: 21600, notify: { repeat_interval_seconds: 300, min_severity: 3 } },
      overrides: {},
    });

    const before = await footprint(s.store.db);
    const badConfigs = [
      [['--set', 'dedupe_windw_seconds=60'], 'Unknown tenant config key "dedupe_windw_seconds"'],
      [['--set', 'notify.colour=red'], 'Unknown tenant config key "notify.colour"'],
      [['--json', '{"notify":{"min_severity":3,"channel":"#soc"}}'], 'Unknown tenant config key "notify.channel"'],
      [['--set', 'notify.min_severity=9'], 'Tenant config key "notify.min_severity": Too big'],
      [['--set', 'dedupe_window_seconds=soon'], 'Tenant config key "dedupe_window_seconds"'],
      [['--set', 'notify.webhook_url=not a url'], 'Tenant config key "notify.webhook_url"'],
      [['--json', '[1,2]'], '--json must be a JSON object'],
      [['--json', '{"incident_threshold":'], '--json is not valid JSON'],
      // One good and one bad change: neither is written.
      [['--set', 'incident_threshold=1', '--set', 'intel_cache_ttl_seconds=-5'], 'Tenant config key "intel_cache_ttl_seconds"'],
    ] as const;
    // Refusals write nothing, so they can run side by side.
    const refusals = await threeAtATime(badConfigs.map(([args]) => () => cli('tenant', 'config', 'acme', ...args)));
    badConfigs.forEach(([args, message], i) => {
      expect(refusals[i]!.code, args.join(' ')).toBe(1);
      expect(refusals[i]!.stderr, args.join(' ')).toContain(message);
      expect(refusals[i]!.stderr, args.join(' ')).toContain('Nothing was written.');
    });
    expect(await footprint(s.store.db)).toEqual(before);

    const set = await ok('tenant', 'config', 'acme', '--set', 'dedupe_window_seconds=600', '--set', 'notify.min_severity=2', '--json', '{"thehive":{"url":"https://thehive.example.org","organisation":"acme"}}');
    expect(set.stderr).toContain('changed thehive.url, thehive.organisation, dedupe_window_seconds, notify.min_severity');
    const after = JSON.parse(set.stdout) as typeof defaults;
    expect(after.overrides).toEqual({ dedupe_window_seconds: 600, notify: { min_severity: 2 }, thehive: { url: 'https://thehive.example.org', organisation: 'acme' } });
    expect(after.effective).toMatchObject({ dedupe_window_seconds: 600, incident_threshold: 2, notify: { repeat_interval_seconds: 300, min_severity: 2 } });
    // What the pipeline reads is what the CLI wrote.
    const row = await s.store.db.selectFrom('tenants').select('config').where('id', '=', 'acme').executeTakeFirstOrThrow();
    expect(row.config).toEqual(after.overrides);
    // null puts a key back to its default.
    const reset = await ok('tenant', 'config', 'acme', '--set', 'dedupe_window_seconds=null', '--json', '{"thehive":null}');
    expect((JSON.parse(reset.stdout) as typeof defaults).overrides).toEqual({ notify: { min_severity: 2 } });
    const audit = await s.store.db.selectFrom('audit_log').select('delta').where('action', '=', 'tenant.config').where('target', '=', 'tenant:acme').orderBy('seq').execute();
    expect(audit.map((a) => a.delta)).toEqual([
      { changes: { 'thehive.url': 'https://thehive.example.org/…', 'thehive.organisation': 'acme', dedupe_window_seconds: 600, 'notify.min_severity': 2 } },
      { changes: { thehive: '(default)', dedupe_window_seconds: '(default)' } },
    ]);
    const missing = await cli('tenant', 'config', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Tenant "nope" does not exist');
  }, 300_000);

  it('adds a suppression rule that the running pipeline applies, and refuses a bad expression or expiry with nothing written', async () => {
    const before = await footprint(s.store.db);
    const base = ['suppress', 'add', '--tenant', 'acme', '--reason', 'pen test this week', '--owner', 'ann@example.com'];
    const badRules = [
      [['--match', 'event.event_type = ', '--expires', '7d'], '--match is not a valid JSONata expression'],
      [['--match', '$eval(event.raw.x)', '--expires', '7d'], '--match is not a valid JSONata expression'],
      [['--match', 'event.severity = 1', '--expires', '91d'], '--expires 91d is longer than the 90d'],
      [['--match', 'event.severity = 1', '--expires', 'next week'], '--expires "next week" is not a duration'],
      [['--match', 'event.severity = 1'], "required option '--expires <duration>' not specified"],
    ] as const;
    const refusals = await threeAtATime([
      ...badRules.map(([args]) => () => cli(...base, ...args)),
      () => cli('suppress', 'add', '--tenant', 'ghost', '--match', 'true', '--reason', 'r', '--owner', 'o', '--expires', '1h'),
    ]);
    badRules.forEach(([args, message], i) => {
      expect(refusals[i]!.code, args.join(' ')).toBe(1);
      expect(refusals[i]!.stderr, args.join(' ')).toContain(message);
    });
    expect(refusals.at(-1)!.code).toBe(1);
    expect(refusals.at(-1)!.stderr).toContain('Tenant "ghost" does not exist');
    expect(await footprint(s.store.db)).toEqual(before);

    const added = await ok(...base, '--match', 'event.event_type = "auth.failed" and event.host.name = "Centos"', '--expires', '7d', '--name', 'pen test');
    expect(added.stderr).toBe('');
    const id = /added suppression rule ([0-9a-f-]{36}) for acme/.exec(added.stdout)![1]!;
    const rule = await s.store.db.selectFrom('suppression_rules').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(rule).toMatchObject({ tenant_id: 'acme', name: 'pen test', owner: 'ann@example.com', reason: 'pen test this week' });
    expect(Math.abs(rule.expires_at.getTime() - rule.created_at.getTime() - 7 * 86_400_000)).toBeLessThan(60_000);
    expect((await ok('suppress', 'list', '--tenant', 'acme')).stdout).toContain(id);

    // The rule, as written, suppresses a matching alert in the running server.
    const token = /\n {2}(rfi_\S+)\n/.exec((await ok('ingest', 'token', 'create', '--tenant', 'acme')).stdout)![1]!;
    expect((await post(s, '/hooks/wazuh', sshd, { authorization: `Bearer ${token}` })).status).toBe(202);
    expect(await settle(s, { tenant: 'acme' })).toMatchObject({ accepted: 1, suppressed: 1, new: 0 });

    const removed = await ok('suppress', 'remove', id);
    expect(removed.stdout).toContain(`removed suppression rule ${id}`);
    expect((await ok('suppress', 'list', '--tenant', 'acme')).stdout).toBe('no suppression rules in force\n');
    expect((await ok('suppress', 'list', '--all')).stdout).toContain(`${id}  acme             expired`);
    const twice = await cli('suppress', 'remove', id);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('already ended');
  }, 300_000);

  it('creates a bearer token bound to a source that a running server accepts, lists it without the secret, and revokes it', async () => {
    const created = await ok('ingest', 'token', 'create', '--tenant', 'acme', '--source', 'wazuh');
    const token = /\n {2}(rfi_\S+)\n/.exec(created.stdout)![1]!;
    const id = /^ingest token ([0-9a-f-]{36}) for tenant acme, source wazuh:/.exec(created.stdout)![1]!;
    expect(created.stdout).toContain(`Authorization: Bearer ${token}`);
    const before = await stats(s, 'acme');
    expect((await post(s, '/hooks/wazuh', sshd, { authorization: `Bearer ${token}` })).status).toBe(202);
    expect((await settle(s, { tenant: 'acme' })).accepted).toBe(before.accepted + 1);
    // Bound to wazuh: the cowrie hook refuses it.
    expect((await post(s, '/hooks/cowrie', '{}', { authorization: `Bearer ${token}` })).status).toBe(401);

    const list = await ok('ingest', 'list', '--tenant', 'acme');
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+acme\\s+bearer\\s+wazuh\\s+active`, 'm'));
    expect(list.stdout).not.toContain(token);

    const revoked = await ok('ingest', 'revoke', id);
    expect(revoked.stdout).toContain(`revoked ingest token ${id}`);
    // The server re-reads credentials every few seconds; from then on it refuses the token.
    await vi.waitFor(async () => expect((await post(s, '/hooks/wazuh', sshd, { authorization: `Bearer ${token}` })).status).toBe(401), { timeout: 30_000, interval: 250 });
    expect((await ok('ingest', 'list', '--all')).stdout).toMatch(new RegExp(`^${id}\\s+acme\\s+bearer\\s+wazuh\\s+revoked `, 'm'));

    const before2 = await footprint(s.store.db);
    const badSource = await cli('ingest', 'token', 'create', '--tenant', 'acme', '--source', 'splunk');
    expect(badSource.code).toBe(1);
    expect(badSource.stderr).toContain('--source "splunk" is not a hook source');
    const ghost = await cli('ingest', 'token', 'create', '--tenant', 'ghost');
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toContain('Tenant "ghost" does not exist');
    const again = await cli('ingest', 'revoke', id);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('was revoked already');
    expect(await footprint(s.store.db)).toEqual(before2);
  }, 300_000);

  it('creates an HMAC secret that signs requests the server accepts for ?tenant=, once per tenant and source', async () => {
    const created = await ok('ingest', 'hmac', 'create', '--tenant', 'acme', '--source', 'generic:kiosk');
    const secret = /\n {2}(\S+)\n/.exec(created.stdout)![1]!;
    expect(created.stdout).toContain('X-Reflex-Signature: sha256=<hex of HMAC-SHA256(secret, "<X-Reflex-Timestamp>.<raw body>")>');
    expect(created.stdout).toContain('/hooks/generic/kiosk?tenant=acme');
    expect((await ok('ingest', 'list', '--tenant', 'acme')).stdout).not.toContain(secret);

    const body = JSON.stringify({ event_type: 'auth.bruteforce', severity: 2, timestamp: new Date().toISOString(), host: { name: 'kiosk-7' } });
    const ts = String(Math.floor(Date.now() / 1000));
    const signed = (b: string, t: string) => ({ 'x-reflex-timestamp': t, 'x-reflex-signature': `sha256=${signHookBody(secret, t, b)}` });
    const accepted = await post(s, '/hooks/generic/kiosk?tenant=acme', body, signed(body, ts));
    const answer = (await accepted.json()) as { accepted?: number; error?: { details?: { field?: string } } };
    expect(accepted.status, JSON.stringify(answer)).toBe(202);
    expect(answer.accepted).toBe(1);
    // Another tenant's name in ?tenant=, or another hook, is refused.
    expect((await post(s, '/hooks/generic/kiosk?tenant=default', body, signed(body, ts))).status).toBe(401);
    expect((await post(s, '/hooks/generic/other?tenant=acme', body, signed(body, ts))).status).toBe(401);

    const before = await footprint(s.store.db);
    const second = await cli('ingest', 'hmac', 'create', '--tenant', 'acme', '--source', 'generic:kiosk');
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('has an HMAC secret for source generic:kiosk already');
    expect(await footprint(s.store.db)).toEqual(before);

    const id = /^HMAC secret ([0-9a-f-]{36}) /.exec(created.stdout)![1]!;
    const row = await s.store.db.selectFrom('ingest_credentials').select('secret_name').where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.secret_name).toMatch(/^ingest\.hmac\.generic\.kiosk\.[0-9a-f]{8}$/);
    expect(await s.store.vault.get('acme', row.secret_name!)).toBeTruthy();
    await ok('ingest', 'revoke', id);
    // The secret leaves the vault with its credential.
    expect(await s.store.vault.get('acme', row.secret_name!)).toBeUndefined();
  }, 300_000);
});
