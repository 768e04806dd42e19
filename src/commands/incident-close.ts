import { closeIncident, resolveIncidentRef, shortIncidentId } from '../store/incidents.ts';
import { freeText, incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { RESPONDERS } from './roles.ts';

export const incidentCloseCommand = defineCommand({
  name: 'incident close',
  usage: '<incident> [reason…]',
  summary: 'closes an incident',
  args: positional({ incident: incidentRef, reason: freeText('reason', 1000).optional() }, { rest: 'reason' }),
  requiredRoles: RESPONDERS,
  actions: ['incident.close'],
  async handler(ctx, { incident, reason }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    const closed = await closeIncident(
      ctx.deps.db,
      { tenantId: ctx.tenantId, incidentId: inc.id, actor: ctx.actor, ...(reason ? { reason } : {}) },
      ctx.deps.incidentEvents,
    );
    return { text: `:white_check_mark: Incident \`${shortIncidentId(closed.id)}\` (${closed.title}) closed by ${ctx.principal.displayName}${reason ? `: ${reason}` : '.'}` };
  },
});
