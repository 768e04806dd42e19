import { listRoles } from '../store/principals.ts';
import type { Role } from '../store/schema.ts';
import { defineCommand, positional } from './command.ts';
import { ADMINS } from './roles.ts';

export const roleListCommand = defineCommand({
  name: 'role list',
  usage: '',
  summary: 'lists who has which role in this tenant',
  args: positional({}),
  requiredRoles: ADMINS,
  async handler(ctx) {
    const rows = await listRoles(ctx.deps.db, { tenantId: ctx.tenantId });
    const byPrincipal = new Map<string, { name: string; identities: string[]; roles: Role[] }>();
    for (const r of rows) {
      const p = byPrincipal.get(r.principalId) ?? { name: r.displayName, identities: r.identities, roles: [] };
      p.roles.push(r.role);
      byPrincipal.set(r.principalId, p);
    }
    if (byPrincipal.size === 0) return { text: `Nobody has a role in \`${ctx.tenantId}\`.`, ephemeral: true };
    return {
      title: `Roles in ${ctx.tenantId}`,
      text: [...byPrincipal.values()].map((p) => `*${p.name}* (${p.identities.map((i) => `\`${i}\``).join(', ')}): ${p.roles.join(', ')}`).join('\n'),
      ephemeral: true,
    };
  },
});
