import { createHmac } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../app/config.ts';
import { createLogger } from '../app/logger.ts';
import { QueueSystem } from '../app/queue.ts';
import type { StoreRuntime } from '../app/runtime.ts';
import { queueConfigFor } from '../app/server.ts';
import { OnCallDirectory } from '../approvals/oncall-directory.ts';
import { createPrincipalToken } from '../approvals/principal-tokens.ts';
import { ReflexError } from '../errors.ts';
import { chatIdentitySchema, formatIdentity } from '../store/principals.ts';
import { ActionRegistry } from './actions/registry.ts';
import { parsePlaybook } from './manifest.ts';
import { PlaybookCatalog } from './run/playbook-catalog.ts';
import { RunEngine } from './run-engine.ts';
import { repoRoot } from './repo-root.ts';

/**
 * `reflex playbook …`:
 * - `validate <file…>`: every problem of each manifest, as `file:line:column field: message`.
 * - `list`: the playbooks this server would load (manifests/playbooks/ and REFLEX_PLAYBOOK_DIRS).
 * - `run <id> --tenant t | --tenants all|a,b,c [--input k=v …]`: starts runs (one per tenant for
 *   a fan-out) and reports each as it finishes; the server's workers run them.
 * - `approver-token <platform:workspace:user>`: a principal's own API token for
 *   `POST /api/v1/approvals/:id/decision`, shown once.
 * - `oncall <tenant> <schedule> <identity…>`: the on-call rotation approvals escalate along.
 */
export interface PlaybookCliDeps {
  withStore<T>(migrate: boolean, fn: (store: StoreRuntime, config: Config) => Promise<T>): Promise<T>;
  fail(err: unknown): never;
  config(): Config;
}

function playbookDirs(config: Config): string[] {
  return [path.join(repoRoot(), 'manifests', 'playbooks'), ...config.playbookDirs];
}

async function scriptNames(): Promise<Set<string>> {
  return new Set(await readdir(path.join(repoRoot(), 'manifests', 'scripts')).catch(() => []));
}

function parseInputs(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new ReflexError('input.invalid', `bad --input ${p}`, { safeMessage: `--input takes name=value, got "${p}".` });
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

async function resolveIdentity(store: StoreRuntime, raw: string): Promise<string> {
  const parsed = chatIdentitySchema.safeParse(raw);
  if (!parsed.success) throw new ReflexError('input.invalid', `bad identity ${raw}`, { safeMessage: `${raw}: ${parsed.error.issues[0]!.message}` });
  const i = parsed.data;
  const row = await store.db
    .selectFrom('chat_identities')
    .select('principal_id')
    .where('platform', '=', i.platform)
    .where('workspace', '=', i.workspace)
    .where('user_id', '=', i.userId)
    .executeTakeFirst();
  if (!row) throw new ReflexError('not_found', `no principal ${raw}`, { safeMessage: `Nobody is known as ${formatIdentity(i)}; grant them a role first (reflex role grant).` });
  return row.principal_id;
}

export function registerPlaybookCommands(program: Command, deps: PlaybookCliDeps): void {
  const { withStore, fail } = deps;
  const playbook = program.command('playbook').description('playbook manifests, runs, approver tokens and on-call rotations');

  playbook
    .command('validate')
    .description('check playbook manifests; lists every problem as file:line:column field: message (exit 1 when any)')
    .argument('<files...>', 'manifest files')
    .action(async (files: string[]) => {
      try {
        const scripts = await scriptNames();
        let bad = 0;
        for (const file of files) {
          try {
            const pb = parsePlaybook(await readFile(file, 'utf8'), file, { scriptExists: (n) => scripts.has(n) });
            process.stdout.write(`ok  ${file}: ${pb.id} v${pb.version}, ${pb.steps.length} top-level step(s)\n`);
          } catch (err) {
            bad += 1;
            process.stdout.write(`${err instanceof Error ? err.message : String(err)}\n`);
          }
        }
        if (bad) process.exitCode = 1;
      } catch (err) {
        fail(err);
      }
    });

  playbook
    .command('list')
    .description('the playbooks this server loads, and the manifests it refuses')
    .action(async () => {
      try {
        const config = deps.config();
        const catalog = await PlaybookCatalog.load(playbookDirs(config), path.join(repoRoot(), 'manifests', 'scripts'));
        for (const { playbook: pb } of catalog.list()) {
          const trigger = [pb.trigger.eventTypes.join('|') || '-', pb.trigger.manual ? 'manual' : ''].filter(Boolean).join(' + ');
          process.stdout.write(`${pb.id.padEnd(28)} v${String(pb.version).padEnd(4)} ${trigger.padEnd(28)} ${pb.name}\n`);
        }
        for (const e of catalog.errors) process.stdout.write(`REFUSED ${e.error.message}\n`);
        if (catalog.errors.length) process.exitCode = 1;
      } catch (err) {
        fail(err);
      }
    });

  playbook
    .command('run')
    .description('start a playbook by hand for one tenant or many (--tenants all|a,b,c), reporting each run as it finishes')
    .argument('<playbook>', 'playbook id')
    .option('--tenant <id>', 'the tenant to run for')
    .option('--tenants <list>', 'all, or a comma-separated list of tenants: one run each')
    .option('--input <name=value...>', 'an input, repeatable', [])
    .option('--no-wait', 'start and print the run ids without waiting for them to finish')
    .action((id: string, opts: { tenant?: string; tenants?: string; input: string[]; wait: boolean }) =>
      withStore(true, async (store, config) => {
        if ((opts.tenant === undefined) === (opts.tenants === undefined)) {
          throw new ReflexError('input.invalid', 'tenant or tenants', { safeMessage: 'Give exactly one of --tenant and --tenants.' });
        }
        const catalog = await PlaybookCatalog.load(playbookDirs(config), path.join(repoRoot(), 'manifests', 'scripts'));
        const queues = new QueueSystem(queueConfigFor(config, store.databaseUrl));
        try {
          const engine = new RunEngine({
            db: store.db,
            queues,
            vault: store.vault,
            catalog,
            actions: new ActionRegistry(),
            chat: () => undefined,
            pager: () => undefined,
            linkSender: () => undefined,
            linkSecret: createHmac('sha256', store.local.masterKey).update('sentreflex.approval-links.v1').digest(),
            publicUrl: () => config.publicUrl ?? '',
            scriptsDir: path.join(repoRoot(), 'manifests', 'scripts'),
            logger: createLogger('warn'),
          });
          const tenants = opts.tenants === undefined ? [opts.tenant!] : opts.tenants === 'all' ? 'all' : opts.tenants.split(',').map((t) => t.trim()).filter(Boolean);
          const out = await engine.runs.fanOut({ playbookId: id, tenants, inputs: parseInputs(opts.input), startedBy: 'cli' });
          for (const r of out.runs) process.stdout.write(r.runId ? `started ${r.tenantId.padEnd(16)} run ${r.runId}\n` : `REFUSED ${r.tenantId.padEnd(16)} ${r.error}\n`);
          if (!opts.wait) return;
          const reported = new Set<string>();
          const total = out.runs.filter((r) => r.runId).length;
          while (reported.size < total) {
            for (const p of await engine.runs.batchProgress(out.batchId)) {
              if (reported.has(p.runId) || !['succeeded', 'failed', 'cancelled'].includes(p.status)) continue;
              reported.add(p.runId);
              process.stdout.write(`[${reported.size}/${total}] ${p.tenantId.padEnd(16)} ${p.status}${p.error ? `: ${p.error}` : ''}\n`);
              if (p.status !== 'succeeded') process.exitCode = 1;
            }
            if (reported.size < total) await new Promise((r) => setTimeout(r, 500));
          }
          if (out.runs.some((r) => r.error)) process.exitCode = 1;
        } finally {
          await queues.close();
        }
      }).catch(fail),
    );

  playbook
    .command('approver-token')
    .description("create a principal's own API token for deciding approvals over the API (shown once)")
    .argument('<identity>', 'platform:workspace:user, e.g. slack:T0123ABCD:U0456EFGH')
    .option('--label <text>', 'what the token is for', 'api')
    .action((identity: string, opts: { label: string }) =>
      withStore(true, async (store) => {
        const principalId = await resolveIdentity(store, identity);
        const { token } = await createPrincipalToken(store.db, { principalId, label: opts.label, actor: 'cli' });
        process.stdout.write(`${token}\n`);
        process.stderr.write('Shown once. Send it as X-Reflex-Principal-Token to POST /api/v1/approvals/:id/decision.\n');
      }).catch(fail),
    );

  playbook
    .command('oncall')
    .description('set the on-call rotation of a schedule (first = primary; expiring approvals escalate down the list)')
    .argument('<tenant>', 'tenant id')
    .argument('<schedule>', 'schedule name, e.g. secops-primary')
    .argument('<identities...>', 'platform:workspace:user, in escalation order')
    .action((tenant: string, schedule: string, identities: string[]) =>
      withStore(true, async (store) => {
        const ids: string[] = [];
        for (const i of identities) ids.push(await resolveIdentity(store, i));
        await new OnCallDirectory(store.db).setRotation(tenant, schedule, ids, 'cli');
        process.stdout.write(`${tenant}/${schedule}: ${identities.join(' -> ')}\n`);
      }).catch(fail),
    );
}
