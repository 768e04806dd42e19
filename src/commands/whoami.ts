import { defineCommand, positional } from './command.ts';
import { EVERYONE } from './roles.ts';

export const whoamiCommand = defineCommand({
  name: 'whoami',
  usage: '',
  summary: 'shows who SENTreflex thinks you are and your roles in this tenant',
  args: positional({}),
  requiredRoles: EVERYONE,
  async handler(ctx) {
    const p = ctx.principal;
    return {
      title: p.displayName,
      text: `You are *${p.displayName}* in tenant \`${ctx.tenantId}\`.`,
      fields: [
        { label: 'Chat identity', value: ctx.actor },
        { label: 'Tenant', value: ctx.tenantId },
        { label: 'Roles', value: p.roles.join(', ') },
        { label: 'Principal', value: p.principalId },
      ],
      ephemeral: true,
    };
  },
});
