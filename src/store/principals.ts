import { sql, type ColumnType, type Kysely } from 'kysely';
import { z } from 'zod';
import { ReflexError } from '../errors.ts';
import { auditedWrite } from './audit-log.ts';
import { ROLES, type ChatIdentitiesTable, type Database, type Role } from './schema.ts';

/**
 * Who is asking, and what they may do in which tenant (DESIGN.md §6).
 *
 * A chat user (platform + workspace + user id) is one *identity* of a *principal*; roles are
 * granted to the principal per tenant. A chat workspace (Slack team, Teams tenant, SENTchat
 * realm) belongs to exactly one tenant, so an invocation's tenant follows from where it was typed.
 *
 * An identity nobody granted a role to is unknown: resolving it creates nothing, so a stranger
 * typing `/reflex` leaves no principal behind (only the refusal in the audit log).
 */
export type ChatPlatformName = ChatIdentitiesTable['platform'];
export const CHAT_PLATFORMS: readonly ChatPlatformName[] = ['slack', 'teams', 'sentchat'];

export interface ChatIdentityRef {
  platform: ChatPlatformName;
  workspace: string;
  userId: string;
}

export interface ResolvedPrincipal {
  principalId: string;
  displayName: string;
  email: string | null;
  identity: ChatIdentityRef;
  tenantId: string;
  /** Roles in `tenantId`, in the order of ROLES. Empty when the principal has none there. */
  roles: Role[];
}

export interface RoleAssignment {
  tenantId: string;
  principalId: string;
  displayName: string;
  role: Role;
  grantedBy: string;
  grantedAt: Date;
  /** `platform:workspace:user` of every chat identity of the principal. */
  identities: string[];
}

/** migrations/20261121_0003_chat.ts; not yet in src/store/schema.ts, so typed here. */
export interface ChatWorkspacesTable {
  platform: ChatPlatformName;
  workspace: string;
  tenant_id: string;
  created_by: string;
  created_at: ColumnType<Date, Date | string | undefined, never>;
}
type ChatDb = { chat_workspaces: ChatWorkspacesTable };

const idPart = z
  .string()
  .min(1, 'is empty')
  .max(128, 'is longer than 128 characters')
  .regex(/^[A-Za-z0-9._@-]+$/, 'may only hold letters, digits and . _ @ -');

/** `slack:T111:W111`, as printed by the refusal message and typed into `reflex role grant`. */
export const chatIdentitySchema = z
  .string()
  .transform((s, ctx) => {
    const parts = s.trim().split(':');
    if (parts.length !== 3) {
      ctx.addIssue({ code: 'custom', message: 'expected <platform>:<workspace>:<user>, e.g. slack:T0123ABCD:U0456EFGH' });
      return z.NEVER;
    }
    return { platform: parts[0]!, workspace: parts[1]!, userId: parts[2]! };
  })
  .pipe(z.object({ platform: z.enum(CHAT_PLATFORMS as [ChatPlatformName, ...ChatPlatformName[]]), workspace: idPart, userId: idPart }));

export function formatIdentity(i: ChatIdentityRef): string {
  return `${i.platform}:${i.workspace}:${i.userId}`;
}

const ROLE_ORDER = new Map(ROLES.map((r, i) => [r, i]));
const byRoleOrder = (a: Role, b: Role) => ROLE_ORDER.get(a)! - ROLE_ORDER.get(b)!;

/**
 * The principal behind a chat identity and its roles in a tenant, or undefined for an identity
 * SENTreflex has never been told about.
 *
 * @example
 * const who = await resolvePrincipal(db, { platform: 'slack', workspace: 'T111', userId: 'W111' }, 'acme');
 * if (!who || who.roles.length === 0) refuse();
 */
export async function resolvePrincipal(db: Kysely<Database>, identity: ChatIdentityRef, tenantId: string): Promise<ResolvedPrincipal | undefined> {
  const row = await db
    .selectFrom('chat_identities as ci')
    .innerJoin('principals as p', 'p.id', 'ci.principal_id')
    .select(['p.id', 'p.display_name', 'p.email'])
    .where('ci.platform', '=', identity.platform)
    .where('ci.workspace', '=', identity.workspace)
    .where('ci.user_id', '=', identity.userId)
    .executeTakeFirst();
  if (!row) return undefined;
  const roles = await db
    .selectFrom('principal_roles')
    .select('role')
    .where('principal_id', '=', row.id)
    .where('tenant_id', '=', tenantId)
    .execute();
  return {
    principalId: row.id,
    displayName: row.display_name,
    email: row.email,
    identity,
    tenantId,
    roles: roles.map((r) => r.role).sort(byRoleOrder),
  };
}

async function requireTenant(db: Kysely<Database>, tenantId: string): Promise<void> {
  const t = await db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst();
  if (!t) throw new ReflexError('not_found', `no tenant ${tenantId}`, { safeMessage: `There is no tenant "${tenantId}".` });
}

function requireRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new ReflexError('input.invalid', `unknown role ${role}`, { safeMessage: `Unknown role "${role}". Roles: ${ROLES.join(', ')}.` });
  }
  return role as Role;
}

/**
 * Grants `role` in `tenantId` to the principal behind `identity`, creating the principal and
 * identity on first grant. Granting a role already held writes nothing and answers `granted: false`.
 */
export async function grantRole(
  db: Kysely<Database>,
  input: { identity: ChatIdentityRef; tenantId: string; role: Role; actor: string; displayName?: string; email?: string },
): Promise<{ principalId: string; granted: boolean }> {
  const role = requireRole(input.role);
  await requireTenant(db, input.tenantId);
  const existing = await resolvePrincipal(db, input.identity, input.tenantId);
  if (existing?.roles.includes(role)) return { principalId: existing.principalId, granted: false };
  const who = formatIdentity(input.identity);
  return auditedWrite(db, input.actor, async (trx, audit) => {
    let principalId = existing?.principalId;
    if (!principalId) {
      const p = await trx
        .insertInto('principals')
        .values({ display_name: input.displayName ?? who, email: input.email ?? null })
        .returning('id')
        .executeTakeFirstOrThrow();
      principalId = p.id;
      await trx
        .insertInto('chat_identities')
        .values({ principal_id: principalId, platform: input.identity.platform, workspace: input.identity.workspace, user_id: input.identity.userId })
        .execute();
      audit({ tenantId: input.tenantId, action: 'principal.create', target: `principal:${principalId}`, delta: { identity: who } });
    }
    const res = await trx
      .insertInto('principal_roles')
      .values({ tenant_id: input.tenantId, principal_id: principalId, role, granted_by: input.actor })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    audit({
      tenantId: input.tenantId,
      action: 'role.grant',
      target: `principal:${principalId}`,
      delta: { role, identity: who, created: Number(res.numInsertedOrUpdatedRows ?? 0) > 0 },
    });
    return { principalId, granted: true };
  });
}

/** Revokes `role` in `tenantId`; a role not held writes nothing and answers `revoked: false`. */
export async function revokeRole(
  db: Kysely<Database>,
  input: { identity: ChatIdentityRef; tenantId: string; role: Role; actor: string },
): Promise<{ revoked: boolean }> {
  const role = requireRole(input.role);
  const existing = await resolvePrincipal(db, input.identity, input.tenantId);
  if (!existing?.roles.includes(role)) return { revoked: false };
  return auditedWrite(db, input.actor, async (trx, audit) => {
    const res = await trx
      .deleteFrom('principal_roles')
      .where('tenant_id', '=', input.tenantId)
      .where('principal_id', '=', existing.principalId)
      .where('role', '=', role)
      .executeTakeFirst();
    audit({
      tenantId: input.tenantId,
      action: 'role.revoke',
      target: `principal:${existing.principalId}`,
      delta: { role, identity: formatIdentity(input.identity), removed: Number(res.numDeletedRows) },
    });
    return { revoked: true };
  });
}

/** Role assignments, by tenant then principal then role order; filter by tenant and/or identity. */
export async function listRoles(db: Kysely<Database>, filter: { tenantId?: string; identity?: ChatIdentityRef } = {}): Promise<RoleAssignment[]> {
  let q = db
    .selectFrom('principal_roles as pr')
    .innerJoin('principals as p', 'p.id', 'pr.principal_id')
    .select(['pr.tenant_id', 'pr.principal_id', 'pr.role', 'pr.granted_by', 'pr.granted_at', 'p.display_name']);
  if (filter.tenantId !== undefined) q = q.where('pr.tenant_id', '=', filter.tenantId);
  if (filter.identity) {
    const i = filter.identity;
    q = q.where('pr.principal_id', 'in', (eb) =>
      eb
        .selectFrom('chat_identities')
        .select('principal_id')
        .where('platform', '=', i.platform)
        .where('workspace', '=', i.workspace)
        .where('user_id', '=', i.userId),
    );
  }
  const rows = await q.orderBy('pr.tenant_id').orderBy('p.display_name').orderBy('pr.principal_id').execute();
  const ids = [...new Set(rows.map((r) => r.principal_id))];
  const identities = ids.length
    ? await db.selectFrom('chat_identities').select(['principal_id', 'platform', 'workspace', 'user_id']).where('principal_id', 'in', ids).execute()
    : [];
  const byPrincipal = new Map<string, string[]>();
  for (const i of identities) {
    const list = byPrincipal.get(i.principal_id) ?? [];
    list.push(formatIdentity({ platform: i.platform, workspace: i.workspace, userId: i.user_id }));
    byPrincipal.set(i.principal_id, list);
  }
  return rows
    .map((r) => ({
      tenantId: r.tenant_id,
      principalId: r.principal_id,
      displayName: r.display_name,
      role: r.role,
      grantedBy: r.granted_by,
      grantedAt: r.granted_at,
      identities: (byPrincipal.get(r.principal_id) ?? []).sort(),
    }))
    .sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.displayName.localeCompare(b.displayName) || a.principalId.localeCompare(b.principalId) || byRoleOrder(a.role, b.role));
}

/**
 * Who is calling and for which tenant, in one round trip (the chat command path runs this for
 * every invocation): the tenant the workspace is mapped to, else `fallbackTenant`; the principal
 * behind the identity, if any, with its roles in that tenant. Same answers as
 * resolveWorkspaceTenant followed by resolvePrincipal.
 */
export async function resolveCaller(
  db: Kysely<Database>,
  identity: ChatIdentityRef,
  fallbackTenant: string | undefined,
): Promise<{ tenantId: string | undefined; principal: ResolvedPrincipal | undefined }> {
  const { rows } = await sql<{ tenant_id: string | null; id: string | null; display_name: string | null; email: string | null; roles: Role[] | null }>`
    with t as (
      select coalesce(
        (select tenant_id from chat_workspaces where platform = ${identity.platform} and workspace = ${identity.workspace}),
        ${fallbackTenant ?? null}::text) as tenant_id)
    select t.tenant_id, p.id, p.display_name, p.email,
           (select array_agg(r.role) from principal_roles r where r.principal_id = p.id and r.tenant_id = t.tenant_id) as roles
      from t
      left join chat_identities ci on ci.platform = ${identity.platform} and ci.workspace = ${identity.workspace} and ci.user_id = ${identity.userId}
      left join principals p on p.id = ci.principal_id`.execute(db);
  const row = rows[0];
  const tenantId = row?.tenant_id ?? undefined;
  if (!row?.id || !tenantId) return { tenantId, principal: undefined };
  return {
    tenantId,
    principal: {
      principalId: row.id,
      displayName: row.display_name ?? '',
      email: row.email,
      identity,
      tenantId,
      roles: [...(row.roles ?? [])].sort(byRoleOrder),
    },
  };
}

/** The tenant a chat workspace belongs to, or undefined when nobody mapped it. */
export async function resolveWorkspaceTenant(db: Kysely<Database>, platform: ChatPlatformName, workspace: string): Promise<string | undefined> {
  const row = await db
    .withTables<ChatDb>()
    .selectFrom('chat_workspaces')
    .select('tenant_id')
    .where('platform', '=', platform)
    .where('workspace', '=', workspace)
    .executeTakeFirst();
  return row?.tenant_id;
}

/**
 * Maps a chat workspace to a tenant (re-mapping moves it). Mapping it to the tenant it already
 * belongs to writes nothing.
 *
 * @example
 * await mapWorkspace(db, { platform: 'slack', workspace: 'T0123ABCD', tenantId: 'acme', actor: 'cli' });
 */
export async function mapWorkspace(
  db: Kysely<Database>,
  input: { platform: ChatPlatformName; workspace: string; tenantId: string; actor: string },
): Promise<{ changed: boolean; previousTenantId: string | undefined }> {
  const workspace = idPart.safeParse(input.workspace);
  if (!workspace.success) {
    throw new ReflexError('input.invalid', `bad workspace id ${input.workspace}`, { safeMessage: `The workspace id ${workspace.error.issues[0]!.message}.` });
  }
  await requireTenant(db, input.tenantId);
  const previous = await resolveWorkspaceTenant(db, input.platform, input.workspace);
  if (previous === input.tenantId) return { changed: false, previousTenantId: previous };
  await auditedWrite(db, input.actor, async (trx, audit) => {
    await trx
      .withTables<ChatDb>()
      .insertInto('chat_workspaces')
      .values({ platform: input.platform, workspace: input.workspace, tenant_id: input.tenantId, created_by: input.actor })
      .onConflict((oc) => oc.columns(['platform', 'workspace']).doUpdateSet({ tenant_id: input.tenantId, created_by: input.actor }))
      .execute();
    audit({
      tenantId: input.tenantId,
      action: 'chat.workspace.map',
      target: `workspace:${input.platform}:${input.workspace}`,
      delta: { tenantId: input.tenantId, previousTenantId: previous ?? null },
    });
  });
  return { changed: true, previousTenantId: previous };
}
