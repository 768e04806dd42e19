import type { Kysely } from 'kysely';
import { secretsEqual } from '../../app/auth.ts';
import { authenticatePrincipalToken, PRINCIPAL_TOKEN_PREFIX } from '../../approvals/principal-tokens.ts';
import { ReflexError } from '../../errors.ts';
import { auditedWrite } from '../../store/audit-log.ts';
import { formatIdentity, grantRole, resolvePrincipal, resolveWorkspaceTenant, type ResolvedPrincipal } from '../../store/principals.ts';
import type { Database, Role } from '../../store/schema.ts';
import type { Session, SessionIdentity } from './sentchat-sessions.ts';

/**
 * Who a SENTchat user is. Every sign-in becomes a chat identity `sentchat:<realm>:<user>`, so
 * roles, refusals and the audit log read exactly as for Slack and Teams:
 *
 * - the API token signs in as the realm's built-in admin, `sentchat:<realm>:admin` (the realm is
 *   `SENTCHAT_REALM`, default `local`); in embedded mode its sign-in grants it `admin` on the
 *   realm's tenant (`default`), so the first person at a fresh install can work;
 * - a principal's own token (`rpt_…`, `reflex playbook approver-token`) signs in as that
 *   principal, through its `sentchat:<realm>:…` identity (linked on first use, audited);
 * - OIDC signs in as `sentchat:<issuer realm>:<sub>` (`sentchat-oidc.ts`).
 *
 * The tenant is the realm's (`reflex role workspace sentchat:<realm> <tenant>`), or the default
 * tenant in embedded mode.
 */
export const BUILT_IN_ADMIN = 'admin';
export const BUILT_IN_ADMIN_NAME = 'SENTchat admin';

export async function grantBuiltInAdmin(db: Kysely<Database>, realm: string, tenantId: string): Promise<boolean> {
  const r = await grantRole(db, { identity: { platform: 'sentchat', workspace: realm, userId: BUILT_IN_ADMIN }, tenantId, role: 'admin', actor: 'system:sentchat', displayName: BUILT_IN_ADMIN_NAME });
  return r.granted;
}

const WRONG_TOKEN = 'That token is not valid. Paste the API token SENTreflex printed at start, or your personal token (rpt_…).';

/** The identity a pasted token signs in as, or `auth.unauthenticated`. */
export async function identityForToken(
  db: Kysely<Database>,
  token: string,
  opts: { apiToken: string; apiTokenSignIn: boolean; realm: string; fallbackTenant: string | undefined },
): Promise<SessionIdentity> {
  if (secretsEqual(token, opts.apiToken)) {
    if (!opts.apiTokenSignIn) {
      throw new ReflexError('auth.unauthenticated', 'api token sign-in is off', {
        safeMessage: 'Signing in with the API token is turned off on this server (SENTCHAT_API_TOKEN_SIGNIN); use your personal token or single sign-on.',
      });
    }
    return { workspace: opts.realm, userId: BUILT_IN_ADMIN, displayName: BUILT_IN_ADMIN_NAME, method: 'api-token' };
  }
  if (token.startsWith(PRINCIPAL_TOKEN_PREFIX)) {
    const tenantId = (await resolveWorkspaceTenant(db, 'sentchat', opts.realm)) ?? opts.fallbackTenant ?? '';
    let who;
    try {
      who = await authenticatePrincipalToken(db, token, tenantId);
    } catch (err) {
      if (err instanceof ReflexError && err.code === 'auth.unauthenticated') throw new ReflexError('auth.unauthenticated', 'unknown or revoked principal token', { safeMessage: WRONG_TOKEN });
      throw err;
    }
    const userId = await linkSentchatIdentity(db, who.principalId, opts.realm);
    return { workspace: opts.realm, userId, displayName: who.displayName, method: 'principal-token' };
  }
  throw new ReflexError('auth.unauthenticated', 'wrong sentchat sign-in token', { safeMessage: WRONG_TOKEN });
}

/** The principal's SENTchat user id in the realm, linking `sentchat:<realm>:<principal id>` the first time. */
async function linkSentchatIdentity(db: Kysely<Database>, principalId: string, realm: string): Promise<string> {
  const existing = await db
    .selectFrom('chat_identities')
    .select('user_id')
    .where('principal_id', '=', principalId)
    .where('platform', '=', 'sentchat')
    .where('workspace', '=', realm)
    .orderBy('created_at')
    .executeTakeFirst();
  if (existing) return existing.user_id;
  const identity = { platform: 'sentchat' as const, workspace: realm, userId: principalId };
  await auditedWrite(db, 'system:sentchat', async (trx, audit) => {
    await trx
      .insertInto('chat_identities')
      .values({ principal_id: principalId, platform: 'sentchat', workspace: realm, user_id: principalId })
      .onConflict((oc) => oc.columns(['platform', 'workspace', 'user_id']).doNothing())
      .execute();
    audit({ tenantId: null, action: 'principal.identity.link', target: `principal:${principalId}`, delta: { identity: formatIdentity(identity), via: 'sentchat.principal-token' } });
  });
  return principalId;
}

export interface Viewer {
  session: Session;
  identity: string;
  tenantId: string;
  principal: ResolvedPrincipal;
  roles: Role[];
}

/** Who is asking and in which tenant, or why they may not: the same refusals `dispatch` gives in chat. */
export type ViewerCheck =
  | { ok: true; viewer: Viewer }
  | { ok: false; identity: string; tenantId: string | undefined; reason: 'workspace_not_connected' | 'unknown_user' | 'no_role'; hint: string };

export async function checkViewer(db: Kysely<Database>, session: Session, fallbackTenant: string | undefined): Promise<ViewerCheck> {
  const ref = { platform: 'sentchat' as const, workspace: session.workspace, userId: session.userId };
  const identity = formatIdentity(ref);
  const tenantId = (await resolveWorkspaceTenant(db, 'sentchat', session.workspace)) ?? fallbackTenant;
  if (!tenantId) {
    return { ok: false, identity, tenantId: undefined, reason: 'workspace_not_connected', hint: `An operator connects this realm to a tenant: reflex role workspace sentchat:${session.workspace} <tenant>` };
  }
  const principal = await resolvePrincipal(db, ref, tenantId);
  if (!principal || principal.roles.length === 0) {
    return { ok: false, identity, tenantId, reason: principal ? 'no_role' : 'unknown_user', hint: `Ask an admin to grant you a role: reflex role grant ${identity} viewer --tenant ${tenantId}` };
  }
  return { ok: true, viewer: { session, identity, tenantId, principal, roles: principal.roles } };
}
