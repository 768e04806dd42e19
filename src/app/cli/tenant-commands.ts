import { Command, Option } from 'commander';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { compileBareExpression } from '../../engine/expressions.ts';
import { formatDuration, parseDuration } from '../../engine/manifest/duration.ts';
import { ReflexError } from '../../errors.ts';
import { tenantPipelineConfigSchema } from '../../pipeline/tenant-config.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Database } from '../../store/schema.ts';
import type { Config } from '../config.ts';
import type { StoreRuntime } from '../runtime.ts';

/**
 * `reflex tenant …` and `reflex suppress …`: tenants, their pipeline settings, and suppression
 * rules. Every write goes through the audit chain; bad input is refused with a message naming
 * what is wrong, before anything is written. The listings only read and run no migrations.
 */

/** What main.ts lends the command groups: its store runner and its error printer. */
export interface CliDeps {
  withStore<T>(migrate: boolean, fn: (store: StoreRuntime, config: Config) => Promise<T>): Promise<T>;
  fail(err: unknown): never;
}

const ACTOR = 'cli';
const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Longest expiry of a suppression rule: a rule nobody renews must not hide alerts for ever. */
export const MAX_SUPPRESSION_MS = 90 * 86_400_000;

export function invalidInput(message: string, field?: string): ReflexError {
  return new ReflexError('input.invalid', message, { safeMessage: `${message} Nothing was written.`, ...(field ? { details: { field } } : {}) });
}

/** Throws `not_found` naming the tenant unless it exists; returns its name. */
export async function requireTenant(db: Kysely<Database>, tenantId: string): Promise<string> {
  const row = await db.selectFrom('tenants').select('name').where('id', '=', tenantId).executeTakeFirst();
  if (!row) {
    throw new ReflexError('not_found', `tenant ${tenantId} does not exist`, {
      safeMessage: `Tenant "${tenantId}" does not exist (see \`reflex tenant list\`, or create it with \`reflex tenant create ${TENANT_ID.test(tenantId) ? tenantId : '<id>'} --name <name>\`). Nothing was written.`,
    });
  }
  return row.name;
}

// ---- tenant config -------------------------------------------------------------------------

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Leaf keys of the tenant config schema as dotted paths (`notify.min_severity`). */
function schemaKeys(schema: unknown, prefix = ''): string[] {
  let s = schema as { unwrap?: () => unknown };
  while (!(s instanceof z.ZodObject) && typeof s?.unwrap === 'function') s = s.unwrap() as typeof s;
  if (!(s instanceof z.ZodObject)) return [prefix];
  return Object.entries(s.shape as Record<string, unknown>).flatMap(([k, v]) => schemaKeys(v, prefix ? `${prefix}.${k}` : k));
}
export const TENANT_CONFIG_KEYS: readonly string[] = schemaKeys(tenantPipelineConfigSchema);

function isKnownPath(path: string): 'leaf' | 'object' | undefined {
  if (TENANT_CONFIG_KEYS.includes(path)) return 'leaf';
  return TENANT_CONFIG_KEYS.some((k) => k.startsWith(`${path}.`)) ? 'object' : undefined;
}

function unknownKey(path: string): ReflexError {
  return invalidInput(`Unknown tenant config key "${path}". Keys: ${TENANT_CONFIG_KEYS.join(', ')}.`, path);
}

/** Every path a merge patch touches, checked against the schema (objects are walked into). */
function checkPatchKeys(patch: JsonObject, prefix = ''): string[] {
  const touched: string[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const path = prefix ? `${prefix}.${k}` : k;
    const kind = isKnownPath(path);
    if (!kind) throw unknownKey(path);
    if (kind === 'object' && isObject(v)) touched.push(...checkPatchKeys(v, path));
    else touched.push(path);
  }
  return touched;
}

/** RFC 7386 merge patch: objects merge, `null` removes a key (back to its default). */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** `notify.min_severity=2` -> `{ notify: { min_severity: 2 } }`; the value is JSON when it parses as JSON, else a string. */
export function setToPatch(assignment: string): { path: string; patch: JsonObject } {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw invalidInput(`--set ${JSON.stringify(assignment)}: expected key=value, e.g. --set notify.min_severity=2.`, 'set');
  const path = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1);
  if (!isKnownPath(path)) throw unknownKey(path);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const patch: JsonObject = {};
  let cursor = patch;
  const parts = path.split('.');
  parts.forEach((p, i) => {
    if (i === parts.length - 1) cursor[p] = value;
    else cursor = cursor[p] = {} as JsonObject;
  });
  return { path, patch };
}

function valueAt(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), obj);
}

/** What the audit row says a key became: URLs only by origin (webhook URLs often embed a token). */
function auditValue(path: string, value: unknown): unknown {
  if (value === undefined) return '(default)';
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, auditValue(`${path}.${k}`, v)]));
  if (path.endsWith('url') && typeof value === 'string') {
    try {
      return `${new URL(value).origin}/…`;
    } catch {
      return '(invalid url)';
    }
  }
  return value;
}

export interface TenantConfigChange {
  before: JsonObject;
  after: JsonObject;
  changed: string[];
}

/**
 * Applies `--json` (a merge patch) then each `--set` to a tenant's stored overrides and validates
 * the result with tenantPipelineConfigSchema. Pure: throws `input.invalid` naming the key.
 */
export function planTenantConfigChange(stored: unknown, opts: { json?: string; set: string[] }): TenantConfigChange {
  const before = isObject(stored) ? stored : {};
  let after: unknown = before;
  const touched: string[] = [];
  if (opts.json !== undefined) {
    let patch: unknown;
    try {
      patch = JSON.parse(opts.json);
    } catch (err) {
      throw invalidInput(`--json is not valid JSON: ${(err as Error).message}.`, 'json');
    }
    if (!isObject(patch)) throw invalidInput('--json must be a JSON object, e.g. --json \'{"notify":{"min_severity":2}}\'.', 'json');
    touched.push(...checkPatchKeys(patch));
    after = mergePatch(after, patch);
  }
  for (const s of opts.set) {
    const { path, patch } = setToPatch(s);
    touched.push(path);
    after = mergePatch(after, patch);
  }
  const parsed = tenantPipelineConfigSchema.safeParse(after);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    throw invalidInput(`Tenant config key "${key}": ${issue.message}.`, key);
  }
  const changed = [...new Set(touched)].filter((p) => JSON.stringify(valueAt(before, p)) !== JSON.stringify(valueAt(after, p)));
  return { before, after: after as JsonObject, changed };
}

// ---- commands ------------------------------------------------------------------------------

function tenantIdArg(raw: string): string {
  if (!TENANT_ID.test(raw)) {
    throw invalidInput(`Tenant id ${JSON.stringify(raw)} is not valid: use lower-case letters, digits, - and _ (at most 63, starting with a letter or digit).`, 'id');
  }
  return raw;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const UUID = z.uuid();

export function registerTenantCommands(program: Command, deps: CliDeps): void {
  const { withStore, fail } = deps;
  const tenant = program.command('tenant').description('tenants and their pipeline settings');

  tenant
    .command('create')
    .description('create a tenant (its id is the `client_id` of its events)')
    .argument('<id>', 'tenant id: lower-case letters, digits, - and _, e.g. acme-corp')
    .requiredOption('--name <name>', 'display name, e.g. "Acme Corp"')
    .action((rawId: string, opts: { name: string }) =>
      withStore(true, async (store) => {
        const id = tenantIdArg(rawId);
        const name = opts.name.trim();
        if (!name || name.length > 200) throw invalidInput('--name must be 1 to 200 characters.', 'name');
        await auditedWrite(store.db, ACTOR, async (trx, audit) => {
          const res = await trx.insertInto('tenants').values({ id, name, config: {} }).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
          if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) {
            throw new ReflexError('conflict', `tenant ${id} exists`, { safeMessage: `Tenant "${id}" exists already; nothing was written.` });
          }
          audit({ tenantId: id, action: 'tenant.create', target: `tenant:${id}`, delta: { name } });
        });
        process.stdout.write(`created tenant ${id} (${name})\nnext: reflex ingest token create --tenant ${id}   (a hook credential for it)\n`);
      }).catch(fail),
    );

  tenant
    .command('list')
    .description('list tenants')
    .action(() =>
      withStore(false, async (store) => {
        const rows = await store.db.selectFrom('tenants').select(['id', 'name', 'config', 'created_at']).orderBy('id').execute();
        if (rows.length === 0) process.stdout.write('no tenants\n');
        for (const r of rows) {
          const overrides = isObject(r.config) ? Object.keys(r.config).length : 0;
          process.stdout.write(`${r.id.padEnd(24)} ${r.name.padEnd(32)} created ${r.created_at.toISOString()}  ${overrides ? `config: ${overrides} override(s)` : 'config: defaults'}\n`);
        }
      }).catch(fail),
    );

  tenant
    .command('config')
    .description('show a tenant\'s effective pipeline config (defaults filled in), or change it')
    .argument('<id>', 'tenant id')
    .addOption(new Option('--set <key=value>', 'set one key (repeatable); dotted keys for nested ones, e.g. notify.min_severity=2; key=null restores the default').argParser(collect).default([]))
    .addOption(new Option('--json <object>', 'merge a JSON object into the config (RFC 7386: null removes a key), e.g. \'{"notify":{"min_severity":2}}\''))
    .addHelpText('after', `\nKeys: ${TENANT_CONFIG_KEYS.join(', ')}.\nThe output is JSON: {"tenant", "effective", "overrides"}.`)
    .action((rawId: string, opts: { set: string[]; json?: string }) =>
      withStore(true, async (store) => {
        const id = tenantIdArg(rawId);
        await requireTenant(store.db, id);
        const show = (overrides: unknown) => {
          const effective = tenantPipelineConfigSchema.safeParse(overrides ?? {});
          if (!effective.success) {
            const issue = effective.error.issues[0]!;
            const key = issue.path.join('.');
            throw new ReflexError('input.invalid', `tenant ${id} stored config invalid at ${key}`, {
              safeMessage: `Tenant "${id}" has an invalid stored config at "${key}": ${issue.message}. Fix it with --set ${key}=<value> (or ${key}=null for the default).`,
              details: { field: key },
            });
          }
          process.stdout.write(`${JSON.stringify({ tenant: id, effective: effective.data, overrides: overrides ?? {} }, null, 2)}\n`);
        };
        if (opts.json === undefined && opts.set.length === 0) {
          const row = await store.db.selectFrom('tenants').select('config').where('id', '=', id).executeTakeFirstOrThrow();
          show(row.config);
          return;
        }
        const planOn = (stored: unknown) => planTenantConfigChange(stored, { ...(opts.json !== undefined ? { json: opts.json } : {}), set: opts.set });
        const current = await store.db.selectFrom('tenants').select('config').where('id', '=', id).executeTakeFirstOrThrow();
        // Validate before opening a write: a bad key or value is refused with nothing written.
        let result = planOn(current.config);
        if (result.changed.length > 0) {
          result = await auditedWrite(store.db, ACTOR, async (trx, audit) => {
            const row = await trx.selectFrom('tenants').select('config').where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
            const plan = planOn(row.config);
            await trx.updateTable('tenants').set({ config: JSON.stringify(plan.after) }).where('id', '=', id).execute();
            audit({
              tenantId: id,
              action: 'tenant.config',
              target: `tenant:${id}`,
              delta: { changes: Object.fromEntries(plan.changed.map((p) => [p, auditValue(p, valueAt(plan.after, p))])) },
            });
            return plan;
          });
        }
        process.stderr.write(result.changed.length ? `changed ${result.changed.join(', ')} (running servers pick it up within 5 s)\n` : 'no change\n');
        show(result.after);
      }).catch(fail),
    );

  const suppress = program.command('suppress').description('suppression rules: matching events are counted and kept, but raise no alert (owner and expiry required)');

  suppress
    .command('add')
    .description('add a suppression rule')
    .requiredOption('--tenant <id>', 'tenant the rule applies to')
    .requiredOption('--match <jsonata>', 'JSONata over the event that is true for events to suppress, e.g. \'event.event_type = "vuln.detected" and event.host.name = "scanner-01"\'')
    .requiredOption('--reason <text>', 'why (shown in audits and `suppress list`)')
    .requiredOption('--owner <who>', 'who answers for the rule, e.g. an e-mail or chat handle')
    .requiredOption('--expires <duration>', `how long it lasts: 30m, 12h, 7d (at most ${formatDuration(MAX_SUPPRESSION_MS)})`)
    .addOption(new Option('--name <name>', 'short name (default: the reason, shortened)'))
    .action((opts: { tenant: string; match: string; reason: string; owner: string; expires: string; name?: string }) =>
      withStore(true, async (store) => {
        const tenantId = tenantIdArg(opts.tenant);
        const reason = opts.reason.trim();
        const owner = opts.owner.trim();
        if (!reason) throw invalidInput('--reason must not be empty.', 'reason');
        if (!owner) throw invalidInput('--owner must not be empty.', 'owner');
        const ms = parseDuration(opts.expires);
        if (ms === undefined) throw invalidInput(`--expires ${JSON.stringify(opts.expires)} is not a duration such as 30m, 12h or 7d.`, 'expires');
        if (ms > MAX_SUPPRESSION_MS) throw invalidInput(`--expires ${opts.expires} is longer than the ${formatDuration(MAX_SUPPRESSION_MS)} a suppression rule may last; renew it instead.`, 'expires');
        if (opts.match.length > 4000) throw invalidInput('--match is longer than 4000 characters.', 'match');
        try {
          compileBareExpression(opts.match, '--match');
        } catch (err) {
          const problem = (err instanceof ReflexError && typeof err.details?.problem === 'string' ? err.details.problem : (err as Error).message) ?? 'does not compile';
          throw invalidInput(`--match is not a valid JSONata expression: ${problem}.`, 'match');
        }
        await requireTenant(store.db, tenantId);
        const name = (opts.name ?? reason).trim().slice(0, 80);
        const expiresAt = new Date(Date.now() + ms);
        const row = await auditedWrite(store.db, ACTOR, async (trx, audit) => {
          const r = await trx
            .insertInto('suppression_rules')
            .values({ tenant_id: tenantId, name, match: opts.match, owner, reason, expires_at: expiresAt })
            .returning(['id', 'expires_at'])
            .executeTakeFirstOrThrow();
          audit({ tenantId, action: 'suppression.create', target: `suppression:${r.id}`, delta: { name, match: opts.match, owner, reason, expiresAt: r.expires_at.toISOString() } });
          return r;
        });
        process.stdout.write(`added suppression rule ${row.id} for ${tenantId}: "${name}", owner ${owner}, expires ${row.expires_at.toISOString()}\n`);
      }).catch(fail),
    );

  suppress
    .command('list')
    .description('list suppression rules in force (with --all, expired and removed ones too)')
    .addOption(new Option('--tenant <id>', 'only this tenant'))
    .addOption(new Option('--all', 'include expired and removed rules'))
    .action((opts: { tenant?: string; all?: boolean }) =>
      withStore(false, async (store) => {
        let q = store.db.selectFrom('suppression_rules').selectAll().orderBy('tenant_id').orderBy('created_at');
        if (opts.tenant) q = q.where('tenant_id', '=', opts.tenant);
        if (!opts.all) q = q.where('expires_at', '>', new Date());
        const rows = await q.execute();
        if (rows.length === 0) process.stdout.write(opts.all ? 'no suppression rules\n' : 'no suppression rules in force\n');
        const now = Date.now();
        for (const r of rows) {
          const state = r.expires_at.getTime() > now ? `expires ${r.expires_at.toISOString()}` : `expired ${r.expires_at.toISOString()}`;
          process.stdout.write(
            `${r.id}  ${r.tenant_id.padEnd(16)} ${state}  hits ${r.hits}${r.last_hit_at ? ` (last ${r.last_hit_at.toISOString()})` : ''}\n    ${r.name} — owner ${r.owner}; reason: ${r.reason}\n    match: ${r.match}\n`,
          );
        }
      }).catch(fail),
    );

  suppress
    .command('remove')
    .description('end a suppression rule now (it is kept, expired, so suppressed events still name their rule)')
    .argument('<id>', 'rule id, from `reflex suppress list`')
    .action((id: string) =>
      withStore(true, async (store) => {
        if (!UUID.safeParse(id).success) throw invalidInput(`${JSON.stringify(id)} is not a rule id (a UUID, see \`reflex suppress list\`).`, 'id');
        await auditedWrite(store.db, ACTOR, async (trx, audit) => {
          const rule = await trx.selectFrom('suppression_rules').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
          if (!rule) throw new ReflexError('not_found', `no rule ${id}`, { safeMessage: `No suppression rule ${id}; nothing was written.` });
          if (rule.expires_at.getTime() <= Date.now()) {
            throw new ReflexError('conflict', `rule ${id} not in force`, { safeMessage: `Suppression rule ${id} already ended at ${rule.expires_at.toISOString()}; nothing was written.` });
          }
          await trx.updateTable('suppression_rules').set({ expires_at: new Date() }).where('id', '=', id).execute();
          audit({ tenantId: rule.tenant_id, action: 'suppression.remove', target: `suppression:${id}`, delta: { name: rule.name, match: rule.match, owner: rule.owner, hits: String(rule.hits) } });
        });
        process.stdout.write(`removed suppression rule ${id} (running servers stop applying it within 5 s)\n`);
      }).catch(fail),
    );
}
