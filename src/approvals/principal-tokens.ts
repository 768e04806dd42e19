import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from '../store/audit-log.ts';
import type { Database, Role } from '../store/schema.ts';
import { engineDb } from '../engine/engine-schema.ts';

/**
 * A principal's own API token, for deciding approvals over HTTP
 * (`POST /api/v1/approvals/:id/decision`). Only its sha256 is stored; the token is shown once.
 * The admin API token never decides a gate: it is nobody, and a gate needs someone.
 *
 * @example
 * const { token } = await createPrincipalToken(db, { principalId, label: 'ana laptop', actor: 'cli' });
 * const who = await authenticatePrincipalToken(db, token, 'acme');
 */
export const PRINCIPAL_TOKEN_PREFIX = 'rpt_';

export interface AuthenticatedPrincipal {
  principalId: string;
  displayName: string;
  identity: string;
  roles: Role[];
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export async function createPrincipalToken(
  db: Kysely<Database>,
  input: { principalId: string; label: string; actor: string },
): Promise<{ id: string; token: string }> {
  if (!z.uuid().safeParse(input.principalId).success) throw new ReflexError('input.invalid', 'bad principal id', { safeMessage: 'That is not a principal id.' });
  const exists = await db.selectFrom('principals').select('id').where('id', '=', input.principalId).executeTakeFirst();
  if (!exists) throw new ReflexError('not_found', `no principal ${input.principalId}`, { safeMessage: 'No such principal.' });
  const token = `${PRINCIPAL_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  const label = input.label.trim().slice(0, 100) || 'api';
  const id = await auditedWrite(db, input.actor, async (trx, audit) => {
    const row = await engineDb(trx)
      .insertInto('principal_tokens')
      .values({ principal_id: input.principalId, token_sha256: sha256(token), label, created_by: input.actor })
      .returning('id')
      .executeTakeFirstOrThrow();
    audit({ tenantId: null, action: 'principal.token.create', target: `principal:${input.principalId}`, delta: { tokenId: row.id, label } });
    return row.id;
  });
  return { id, token };
}

export async function revokePrincipalToken(db: Kysely<Database>, tokenId: string, actor: string): Promise<boolean> {
  return auditedWrite(db, actor, async (trx, audit) => {
    const res = await engineDb(trx).updateTable('principal_tokens').set({ revoked_at: new Date() }).where('id', '=', tokenId).where('revoked_at', 'is', null).executeTakeFirst();
    audit({ tenantId: null, action: 'principal.token.revoke', target: `principal_token:${tokenId}`, delta: { revoked: Number(res.numUpdatedRows) } });
    return Number(res.numUpdatedRows) > 0;
  });
}

/** The principal behind a token and its roles in `tenantId`, or a `auth.unauthenticated` error. */
export async function authenticatePrincipalToken(db: Kysely<Database>, token: string, tenantId: string): Promise<AuthenticatedPrincipal> {
  const unauth = new ReflexError('auth.unauthenticated', 'unknown or revoked principal token', {
    safeMessage: 'Send your own principal token (X-Reflex-Principal-Token or Authorization: Bearer rpt_…); the admin API token cannot decide approvals.',
  });
  if (!token.startsWith(PRINCIPAL_TOKEN_PREFIX) || token.length > 200) throw unauth;
  const row = await engineDb(db)
    .selectFrom('principal_tokens as t')
    .innerJoin('principals as p', 'p.id', 't.principal_id')
    .select(['t.id', 'p.id as principal_id', 'p.display_name'])
    .where('t.token_sha256', '=', sha256(token))
    .where('t.revoked_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw unauth;
  const roles = await db.selectFrom('principal_roles').select('role').where('principal_id', '=', row.principal_id).where('tenant_id', '=', tenantId).execute();
  const ident = await db.selectFrom('chat_identities').select(['platform', 'workspace', 'user_id']).where('principal_id', '=', row.principal_id).limit(1).executeTakeFirst();
  return {
    principalId: row.principal_id,
    displayName: row.display_name,
    identity: ident ? `${ident.platform}:${ident.workspace}:${ident.user_id}` : `principal:${row.principal_id}`,
    roles: roles.map((r) => r.role),
  };
}
