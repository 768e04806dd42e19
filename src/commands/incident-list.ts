import { z } from 'zod';
import { listIncidents } from '../store/incidents.ts';
import { defineCommand, positional } from './command.ts';
import { incidentLine } from './format.ts';
import { EVERYONE } from './roles.ts';

const LIMIT = 20;

export const incidentListCommand = defineCommand({
  name: 'incident list',
  usage: '[open|closed|all]',
  summary: `lists the latest ${LIMIT} incidents (open ones by default)`,
  args: positional({
    status: z
      .enum(['open', 'closed', 'all'], { error: (iss) => `${JSON.stringify(String(iss.input).slice(0, 20))} is not one of open, closed, all` })
      .optional(),
  }),
  requiredRoles: EVERYONE,
  async handler(ctx, { status }) {
    const which = status ?? 'open';
    const rows = await listIncidents(ctx.deps.db, ctx.tenantId, { status: which, limit: LIMIT });
    if (rows.length === 0) return { text: `No ${which === 'all' ? '' : `${which} `}incidents in \`${ctx.tenantId}\`.`, ephemeral: true };
    return {
      title: `${which === 'all' ? 'Latest' : which === 'open' ? 'Open' : 'Closed'} incidents in ${ctx.tenantId}`,
      text: rows.map(incidentLine).join('\n'),
      context: rows.length === LIMIT ? [`Showing the latest ${LIMIT}.`] : [],
      ephemeral: true,
    };
  },
});
