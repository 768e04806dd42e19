import { ReflexError } from '../errors.ts';
import { formatIdentity, listRoles, resolvePrincipal, revokeRole } from '../store/principals.ts';
import { roleArg, userArg } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ADMINS } from './roles.ts';

export const roleRevokeCommand = defineCommand({
  name: 'role revoke',
  usage: '<@user> <role>',
  summary: 'revokes a role in this tenant from someone in this workspace',
  args: positional({ user: userArg, role: roleArg }),
  requiredRoles: ADMINS,
  async handler(ctx, { user, role }) {
    const identity = { platform: ctx.invocation.platform, workspace: ctx.invocation.user.workspace, userId: user };
    const who = formatIdentity(identity);
    if (role === 'admin') {
      // Chat must not lock a tenant out of its own administration; the CLI can still do it.
      const target = await resolvePrincipal(ctx.deps.db, identity, ctx.tenantId);
      const admins = new Set((await listRoles(ctx.deps.db, { tenantId: ctx.tenantId })).filter((r) => r.role === 'admin').map((r) => r.principalId));
      if (target && admins.has(target.principalId) && admins.size === 1) {
        throw new ReflexError('conflict', `last admin of ${ctx.tenantId}`, {
          safeMessage: `\`${who}\` is the last admin of \`${ctx.tenantId}\`; grant admin to someone else first.`,
        });
      }
    }
    const { revoked } = await revokeRole(ctx.deps.db, { identity, tenantId: ctx.tenantId, role, actor: ctx.actor });
    return revoked
      ? { text: `:lock: Revoked *${role}* in \`${ctx.tenantId}\` from \`${who}\`.` }
      : { text: `\`${who}\` does not have *${role}* in \`${ctx.tenantId}\`; nothing changed.`, ephemeral: true };
  },
});
