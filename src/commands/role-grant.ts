import { formatIdentity, grantRole } from '../store/principals.ts';
import { roleArg, userArg } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ADMINS } from './roles.ts';

export const roleGrantCommand = defineCommand({
  name: 'role grant',
  usage: '<@user> <role>',
  summary: 'grants a role in this tenant to someone in this workspace',
  args: positional({ user: userArg, role: roleArg }),
  requiredRoles: ADMINS,
  async handler(ctx, { user, role }) {
    const identity = { platform: ctx.invocation.platform, workspace: ctx.invocation.user.workspace, userId: user };
    const { granted } = await grantRole(ctx.deps.db, { identity, tenantId: ctx.tenantId, role, actor: ctx.actor });
    const who = formatIdentity(identity);
    return granted
      ? { text: `:key: Granted *${role}* in \`${ctx.tenantId}\` to \`${who}\`.` }
      : { text: `\`${who}\` already has *${role}* in \`${ctx.tenantId}\`; nothing changed.`, ephemeral: true };
  },
});
