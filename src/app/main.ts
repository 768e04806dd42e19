import { Command, Option } from 'commander';
import { ReflexError, toReflexError } from '../errors.ts';
import { sealAuditLog, verifyAuditChain } from '../store/audit-log.ts';
import { GLOBAL_TENANT } from '../store/secrets-vault.ts';
import { loadConfig, type Config } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { openStore } from './runtime.ts';
import { startServer, type RunningServer } from './server.ts';
import { chatIdentitySchema, formatIdentity, grantRole, listRoles, mapWorkspace, resolveWorkspaceTenant, revokeRole, CHAT_PLATFORMS, type ChatPlatformName } from '../store/principals.ts';
import { DEFAULT_TENANT } from './runtime.ts';
import { ROLES, type Role } from '../store/schema.ts';
import { registerTenantCommands } from './cli/tenant-commands.ts';
import { registerIngestCommands } from './cli/ingest-commands.ts';
import { registerDlqCommands } from './cli/dlq-commands.ts';
import { registerPlaybookCommands } from '../engine/playbook-cli.ts';

/**
 * The `reflex` CLI and `npm start`. Config is parsed here, once; a bad variable stops the command
 * with a message that names it (exit 78, EX_CONFIG).
 */
function boot(): { config: Config; logger: Logger } {
  let config: Config;
  try {
    config = loadConfig(process.env); // lint-allow: env (the one place config is read)
  } catch (err) {
    const e = toReflexError(err);
    process.stderr.write(`sentreflex: ${e.message}\n`);
    process.exit(78);
  }
  return { config, logger: createLogger(config.logLevel) };
}

function fail(err: unknown): never {
  const e = toReflexError(err);
  process.stderr.write(`sentreflex: ${e.code === 'internal' ? e.message : e.safeMessage}\n`);
  process.exit(e.code === 'config.invalid' ? 78 : 1);
}

function banner(server: RunningServer, config: Config): string {
  const token = server.store.local.apiToken;
  const lines = [
    '',
    '  SENTreflex is up.',
    '',
    `  Console      ${server.url}/`,
    `  API token    ${token}${config.apiToken ? '  (from REFLEX_API_TOKEN)' : `  (stored in ${config.dataDir}/api-token)`}`,
    `  Try the API  curl -H 'Authorization: Bearer ${token}' ${server.url}/api/v1/tenants`,
    ...server.hints.map((h) => `  ${h}`),
    `  Health       ${server.url}/readyz   Metrics ${server.url}/metrics`,
    `  Data         ${config.mode === 'embedded' ? `${config.dataDir} (embedded PostgreSQL)` : 'DATABASE_URL'}; queue on ${server.queues.backend}`,
    '',
    '  Ctrl-C stops it cleanly.',
    '',
  ];
  return lines.join('\n');
}

async function runServer(role: 'all' | 'worker'): Promise<void> {
  const { config, logger } = boot();
  let server: RunningServer;
  try {
    server = await startServer(config, logger, role);
  } catch (err) {
    fail(err);
  }
  process.stdout.write(`${role === 'all' ? banner(server, config) : `\n  SENTreflex worker is up (health ${server.url}/readyz).\n`}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: closing HTTP, workers, queues, database');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 30s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    try {
      await server.close();
      logger.info('stopped cleanly');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function withStore<T>(migrate: boolean, fn: (store: Awaited<ReturnType<typeof openStore>>, config: Config) => Promise<T>): Promise<T> {
  const { config } = boot();
  // CLI commands log only warnings: their output is for the person at the terminal.
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const store = await openStore(config, logger, { migrate });
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * `reflex role …`: who may do what from chat. Identities are `<platform>:<workspace>:<user>`, as
 * the bot prints them when it refuses someone. The tenant defaults to the one the workspace is
 * mapped to (embedded mode: `default`).
 */
function addRoleCommands(program: Command): void {
  const role = program.command('role').description('chat users, their roles per tenant, and which tenant a chat workspace belongs to');
  const identityOf = (raw: string) => {
    const r = chatIdentitySchema.safeParse(raw);
    if (!r.success) {
      throw new ReflexError('input.invalid', `bad identity ${raw}`, { safeMessage: `${JSON.stringify(raw)}: ${r.error.issues[0]!.message}` });
    }
    return r.data;
  };
  const roleOf = (raw: string): Role => {
    if (!(ROLES as readonly string[]).includes(raw)) {
      throw new ReflexError('input.invalid', `bad role ${raw}`, { safeMessage: `Unknown role "${raw}". Roles: ${ROLES.join(', ')}.` });
    }
    return raw as Role;
  };
  const tenantFor = async (db: Awaited<ReturnType<typeof openStore>>['db'], config: Config, identity: { platform: ChatPlatformName; workspace: string }, given?: string) => {
    if (given) return given;
    const mapped = await resolveWorkspaceTenant(db, identity.platform, identity.workspace);
    if (mapped) return mapped;
    if (config.mode === 'embedded') return DEFAULT_TENANT;
    throw new ReflexError('input.invalid', 'no tenant', {
      safeMessage: `Workspace ${identity.platform}:${identity.workspace} is not mapped to a tenant: pass --tenant, or map it with \`reflex role workspace ${identity.platform}:${identity.workspace} <tenant>\`.`,
    });
  };

  role
    .command('grant')
    .description('grant a role; creates the principal on first grant')
    .argument('<identity>', 'chat identity, e.g. slack:T0123ABCD:U0456EFGH')
    .argument('<role>', ROLES.join(' | '))
    .addOption(new Option('--tenant <id>', 'tenant (default: the workspace\'s tenant)'))
    .addOption(new Option('--name <display name>', 'display name for a new principal'))
    .action((rawIdentity: string, rawRole: string, opts: { tenant?: string; name?: string }) =>
      withStore(true, async (store, config) => {
        const identity = identityOf(rawIdentity);
        const r = roleOf(rawRole);
        const tenantId = await tenantFor(store.db, config, identity, opts.tenant);
        const res = await grantRole(store.db, { identity, tenantId, role: r, actor: 'cli', ...(opts.name ? { displayName: opts.name } : {}) });
        process.stdout.write(res.granted ? `granted ${r} in ${tenantId} to ${formatIdentity(identity)}\n` : `${formatIdentity(identity)} already has ${r} in ${tenantId}\n`);
      }).catch(fail),
    );
  role
    .command('revoke')
    .description('revoke a role')
    .argument('<identity>', 'chat identity, e.g. slack:T0123ABCD:U0456EFGH')
    .argument('<role>', ROLES.join(' | '))
    .addOption(new Option('--tenant <id>', 'tenant (default: the workspace\'s tenant)'))
    .action((rawIdentity: string, rawRole: string, opts: { tenant?: string }) =>
      withStore(true, async (store, config) => {
        const identity = identityOf(rawIdentity);
        const r = roleOf(rawRole);
        const tenantId = await tenantFor(store.db, config, identity, opts.tenant);
        const res = await revokeRole(store.db, { identity, tenantId, role: r, actor: 'cli' });
        process.stdout.write(res.revoked ? `revoked ${r} in ${tenantId} from ${formatIdentity(identity)}\n` : `${formatIdentity(identity)} does not have ${r} in ${tenantId}\n`);
      }).catch(fail),
    );
  role
    .command('list')
    .description('list role assignments')
    .addOption(new Option('--tenant <id>', 'only this tenant'))
    .action((opts: { tenant?: string }) =>
      withStore(true, async (store) => {
        const rows = await listRoles(store.db, opts.tenant ? { tenantId: opts.tenant } : {});
        if (rows.length === 0) process.stdout.write('no roles granted\n');
        for (const r of rows) {
          process.stdout.write(`${r.tenantId.padEnd(16)} ${r.role.padEnd(10)} ${r.displayName.padEnd(24)} ${r.identities.join(',')}  granted by ${r.grantedBy} ${r.grantedAt.toISOString()}\n`);
        }
      }).catch(fail),
    );
  role
    .command('workspace')
    .description('map a chat workspace (Slack team id, Teams tenant id) to a tenant')
    .argument('<workspace>', `<platform>:<workspace>, platform one of ${CHAT_PLATFORMS.join(', ')}; e.g. slack:T0123ABCD`)
    .argument('<tenant>', 'tenant id')
    .action((raw: string, tenantId: string) =>
      withStore(true, async (store) => {
        const [platform, workspace, extra] = raw.split(':');
        if (!platform || !workspace || extra !== undefined || !(CHAT_PLATFORMS as readonly string[]).includes(platform)) {
          throw new ReflexError('input.invalid', `bad workspace ${raw}`, { safeMessage: `${JSON.stringify(raw)}: expected <platform>:<workspace>, e.g. slack:T0123ABCD` });
        }
        const res = await mapWorkspace(store.db, { platform: platform as ChatPlatformName, workspace, tenantId, actor: 'cli' });
        process.stdout.write(
          res.changed ? `mapped ${platform}:${workspace} to ${tenantId}${res.previousTenantId ? ` (was ${res.previousTenantId})` : ''}\n` : `${platform}:${workspace} already maps to ${tenantId}\n`,
        );
      }).catch(fail),
    );
}

/** `reflex playbook …` (validate, list, run, approver-token, oncall); the commands live in src/engine/playbook-cli.ts. */
function addPlaybookCommands(program: Command): void {
  registerPlaybookCommands(program, { withStore, fail, config: () => boot().config });
}

export function buildCli(): Command {
  const program = new Command('reflex')
    .description('SENTreflex: ChatOps-first SOAR')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nConfiguration comes from the environment: PORT, DATABASE_URL, REDIS_URL, REFLEX_DATA_DIR,\nREFLEX_API_TOKEN, REFLEX_MASTER_KEY, LOG_LEVEL (see README.md).',
    );

  program
    .command('start')
    .description('start the server (HTTP, API and workers); embedded PostgreSQL when DATABASE_URL is unset')
    .action(() => runServer('all'));

  program
    .command('worker')
    .description('start a worker process (pipeline and playbook workers; HTTP only for /healthz, /readyz, /metrics)')
    .action(() => runServer('worker'));

  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .action(() =>
      withStore(true, async () => {
        process.stdout.write('migrations are up to date\n');
      }).catch(fail),
    );

  const audit = program.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description('walk the audit chain and report the first broken link (exit 1 when broken)')
    .action(() =>
      withStore(false, async (store) => {
        // Link what writers appended since the last seal, so the walk covers every committed row.
        const sealed = await sealAuditLog(store.db);
        const result = await verifyAuditChain(store.db, (n) => {
          if (process.stderr.isTTY) process.stderr.write(`\rchecked ${n} rows`);
        });
        if (process.stderr.isTTY) process.stderr.write('\n');
        const tail = `${sealed ? `; sealed ${sealed} pending rows first` : ''}${result.unsealed ? `; ${result.unsealed} rows still unsealed (being written)` : ''}`;
        if (result.ok) {
          process.stdout.write(`audit chain OK: ${result.checked} rows, head ${result.head}${tail}\n`);
          return;
        }
        process.stdout.write(
          `audit chain BROKEN at position ${result.brokenAt}${result.seq ? ` (seq ${result.seq})` : ''}: ${result.reason} (${result.checked} rows verified before it)${tail}\n`,
        );
        process.exitCode = 1;
      }).catch(fail),
    );

  const secrets = program.command('secrets').description('integration credentials, encrypted at rest (AES-256-GCM)');
  secrets
    .command('set')
    .description('store a secret; the value is read from standard input, never from the command line')
    .argument('<name>', 'secret name, e.g. virustotal.api_key')
    .addOption(new Option('--tenant <id>', 'tenant the secret belongs to (default: platform-wide)'))
    .action((name: string, opts: { tenant?: string }) =>
      withStore(true, async (store) => {
        if (process.stdin.isTTY) process.stderr.write(`value for ${name} (end with Ctrl-D): `);
        const value = await readStdin();
        if (!value) throw new ReflexError('input.invalid', 'empty value', { safeMessage: 'No value on standard input; nothing stored.' });
        await store.vault.set(opts.tenant ?? GLOBAL_TENANT, name, value, 'cli');
        process.stdout.write(`stored ${opts.tenant ? `${opts.tenant}/` : ''}${name}\n`);
      }).catch(fail),
    );
  secrets
    .command('list')
    .description('list secret names (never values)')
    .addOption(new Option('--tenant <id>', 'only this tenant'))
    .action((opts: { tenant?: string }) =>
      withStore(true, async (store) => {
        const rows = await store.vault.list(opts.tenant);
        if (rows.length === 0) process.stdout.write('no secrets\n');
        for (const r of rows) {
          process.stdout.write(`${(r.tenantId || '*').padEnd(16)} ${r.name.padEnd(40)} key ${r.keyId}  updated ${r.updatedAt.toISOString()}\n`);
        }
      }).catch(fail),
    );

  addRoleCommands(program);
  registerTenantCommands(program, { withStore, fail });
  registerIngestCommands(program, { withStore, fail });
  registerDlqCommands(program, { withStore, fail });
  addPlaybookCommands(program);

  return program;
}

await buildCli().parseAsync(process.argv);
