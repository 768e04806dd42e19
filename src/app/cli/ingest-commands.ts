import { Command, Option } from 'commander';
import { z } from 'zod';
import { ReflexError } from '../../errors.ts';
import { SIGNATURE_TOLERANCE_SECONDS } from '../../pipeline/ingest/hook-signature.ts';
import { addIngestToken, createIngestHmacSecret, generateIngestToken, sha256Hex } from '../../pipeline/ingest/ingest-credentials.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import type { Config } from '../config.ts';
import { invalidInput, requireTenant, type CliDeps } from './tenant-commands.ts';

/**
 * `reflex ingest …`: who may post to the hooks. A bearer token names its tenant by itself; an
 * HMAC secret signs each request and the tenant comes from `?tenant=`. Secrets are printed once,
 * at creation, and never again: the database holds a token's SHA-256 and the HMAC secret sits
 * encrypted in the vault. `list` only reads and runs no migrations; the writes do.
 */
const ACTOR = 'cli';
const SOURCE = /^(wazuh|cowrie|openvas|generic|generic:[a-z0-9][a-z0-9_-]{0,63}|\*)$/;
const SOURCE_HELP = 'wazuh | cowrie | openvas | generic:<name> | generic (every generic hook) | * (every hook)';

function sourceArg(raw: string): string {
  if (!SOURCE.test(raw)) throw invalidInput(`--source ${JSON.stringify(raw)} is not a hook source: use ${SOURCE_HELP}.`, 'source');
  return raw;
}

function hookPath(source: string): string {
  if (source === '*') return '/hooks/<wazuh|cowrie|openvas|generic/NAME>';
  if (source === 'generic') return '/hooks/generic/<name>';
  if (source.startsWith('generic:')) return `/hooks/generic/${source.slice('generic:'.length)}`;
  return `/hooks/${source}`;
}

function baseUrl(config: Config): string {
  return config.publicUrl?.replace(/\/$/, '') ?? `http://localhost:${config.port}`;
}

export function registerIngestCommands(program: Command, deps: CliDeps): void {
  const { withStore, fail } = deps;
  const ingest = program.command('ingest').description('hook credentials: bearer tokens and HMAC secrets per tenant and source');

  const token = ingest.command('token').description('bearer tokens (Authorization: Bearer <token>)');
  token
    .command('create')
    .description('create a bearer token for a tenant; printed once, only its SHA-256 is stored')
    .requiredOption('--tenant <id>', 'tenant the token posts for')
    .addOption(new Option('--source <source>', SOURCE_HELP).default('*'))
    .action((opts: { tenant: string; source: string }) =>
      withStore(true, async (store, config) => {
        const source = sourceArg(opts.source);
        await requireTenant(store.db, opts.tenant);
        const value = generateIngestToken();
        await addIngestToken(store.db, { tenantId: opts.tenant, source, token: value, actor: ACTOR });
        const row = await store.db.selectFrom('ingest_credentials').select('id').where('token_sha256', '=', sha256Hex(value)).executeTakeFirstOrThrow();
        process.stdout.write(
          [
            `ingest token ${row.id} for tenant ${opts.tenant}, source ${source}:`,
            '',
            `  ${value}`,
            '',
            'It is shown once and cannot be shown again (only its SHA-256 is stored). Send it as:',
            `  curl -H 'Authorization: Bearer ${value}' -H 'content-type: application/json' --data-binary @alert.json ${baseUrl(config)}${hookPath(source)}`,
            `Revoke it with: reflex ingest revoke ${row.id}`,
            '',
          ].join('\n'),
        );
      }).catch(fail),
    );

  const hmac = ingest.command('hmac').description('HMAC-SHA256 signing secrets (X-Reflex-Signature, X-Reflex-Timestamp)');
  hmac
    .command('create')
    .description('create an HMAC secret for a tenant; printed once, stored encrypted in the vault')
    .requiredOption('--tenant <id>', 'tenant the signed requests post for (they name it with ?tenant=)')
    .addOption(new Option('--source <source>', SOURCE_HELP).default('*'))
    .action((opts: { tenant: string; source: string }) =>
      withStore(true, async (store, config) => {
        const source = sourceArg(opts.source);
        await requireTenant(store.db, opts.tenant);
        // One live secret per tenant and source: the vault keeps it under a name derived from the
        // source, so a second one would silently replace the first under a live credential.
        const live = await store.db
          .selectFrom('ingest_credentials')
          .select('id')
          .where('tenant_id', '=', opts.tenant)
          .where('source', '=', source)
          .where('kind', '=', 'hmac')
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        if (live) {
          throw new ReflexError('conflict', `hmac exists for ${opts.tenant}/${source}`, {
            safeMessage: `Tenant ${opts.tenant} has an HMAC secret for source ${source} already (credential ${live.id}); revoke it first with \`reflex ingest revoke ${live.id}\`. Nothing was written.`,
          });
        }
        const secret = await createIngestHmacSecret(store.db, store.vault, { tenantId: opts.tenant, source, actor: ACTOR });
        const row = await store.db
          .selectFrom('ingest_credentials')
          .select(['id', 'secret_name'])
          .where('tenant_id', '=', opts.tenant)
          .where('source', '=', source)
          .where('kind', '=', 'hmac')
          .where('revoked_at', 'is', null)
          .orderBy('created_at', 'desc')
          .executeTakeFirstOrThrow();
        process.stdout.write(
          [
            `HMAC secret ${row.id} for tenant ${opts.tenant}, source ${source}:`,
            '',
            `  ${secret}`,
            '',
            `It is shown once (stored encrypted in the vault as ${row.secret_name}). Sign every request with it:`,
            '  X-Reflex-Timestamp: <unix seconds>',
            '  X-Reflex-Signature: sha256=<hex of HMAC-SHA256(secret, "<X-Reflex-Timestamp>.<raw body>")>',
            `and post to ${baseUrl(config)}${hookPath(source)}?tenant=${opts.tenant}`,
            `Requests whose timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s from the server's clock are refused. With a shell:`,
            `  ts=$(date +%s); sig=$({ printf '%s.' "$ts"; cat alert.json; } | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')`,
            `  curl -H "X-Reflex-Timestamp: $ts" -H "X-Reflex-Signature: sha256=$sig" -H 'content-type: application/json' --data-binary @alert.json '${baseUrl(config)}${hookPath(source)}?tenant=${opts.tenant}'`,
            `Revoke it with: reflex ingest revoke ${row.id}`,
            '',
          ].join('\n'),
        );
      }).catch(fail),
    );

  ingest
    .command('list')
    .description('list hook credentials (never their secrets)')
    .addOption(new Option('--tenant <id>', 'only this tenant'))
    .addOption(new Option('--all', 'include revoked credentials'))
    .action((opts: { tenant?: string; all?: boolean }) =>
      withStore(false, async (store) => {
        let q = store.db
          .selectFrom('ingest_credentials')
          .select(['id', 'tenant_id', 'source', 'kind', 'secret_name', 'created_by', 'created_at', 'revoked_at'])
          .orderBy('tenant_id')
          .orderBy('created_at');
        if (opts.tenant) q = q.where('tenant_id', '=', opts.tenant);
        if (!opts.all) q = q.where('revoked_at', 'is', null);
        const rows = await q.execute();
        if (rows.length === 0) process.stdout.write('no hook credentials\n');
        for (const r of rows) {
          const state = r.revoked_at ? `revoked ${r.revoked_at.toISOString()}` : 'active';
          process.stdout.write(
            `${r.id}  ${r.tenant_id.padEnd(16)} ${r.kind.padEnd(6)} ${r.source.padEnd(20)} ${state.padEnd(32)} created ${r.created_at.toISOString()} by ${r.created_by}${r.secret_name ? `  vault ${r.secret_name}` : ''}\n`,
          );
        }
      }).catch(fail),
    );

  ingest
    .command('revoke')
    .description('revoke a hook credential (running servers refuse it within 5 s)')
    .argument('<id>', 'credential id, from `reflex ingest list`')
    .action((id: string) =>
      withStore(true, async (store) => {
        if (!z.uuid().safeParse(id).success) throw invalidInput(`${JSON.stringify(id)} is not a credential id (a UUID, see \`reflex ingest list\`).`, 'id');
        const revoked = await auditedWrite(store.db, ACTOR, async (trx, audit) => {
          const cred = await trx.selectFrom('ingest_credentials').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
          if (!cred) throw new ReflexError('not_found', `no credential ${id}`, { safeMessage: `No hook credential ${id}; nothing was written.` });
          if (cred.revoked_at) {
            throw new ReflexError('conflict', `credential ${id} revoked`, { safeMessage: `Hook credential ${id} was revoked already at ${cred.revoked_at.toISOString()}; nothing was written.` });
          }
          await trx.updateTable('ingest_credentials').set({ revoked_at: new Date() }).where('id', '=', id).execute();
          audit({ tenantId: cred.tenant_id, action: `ingest.${cred.kind === 'hmac' ? 'hmac' : 'token'}.revoke`, target: `ingest:${cred.tenant_id}/${cred.source}`, delta: { credential: id } });
          return cred;
        });
        // A revoked HMAC secret has no business staying in the vault, unless another live
        // credential still points at the same vault entry.
        if (revoked.kind === 'hmac' && revoked.secret_name) {
          const still = await store.db
            .selectFrom('ingest_credentials')
            .select('id')
            .where('tenant_id', '=', revoked.tenant_id)
            .where('secret_name', '=', revoked.secret_name)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          if (!still) await store.vault.delete(revoked.tenant_id, revoked.secret_name, ACTOR);
        }
        process.stdout.write(`revoked ${revoked.kind === 'hmac' ? 'HMAC secret' : 'ingest token'} ${id} (tenant ${revoked.tenant_id}, source ${revoked.source}); running servers refuse it within 5 s\n`);
      }).catch(fail),
    );
}
