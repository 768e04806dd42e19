import { resolveIncidentRef } from '../store/incidents.ts';
import { incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { incidentCard } from './format.ts';
import { EVERYONE } from './roles.ts';

export const incidentShowCommand = defineCommand({
  name: 'incident show',
  usage: '<incident>',
  summary: 'shows an incident',
  args: positional({ incident: incidentRef }),
  requiredRoles: EVERYONE,
  actions: ['incident.show'],
  async handler(ctx, { incident }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    return { ...incidentCard(inc), ephemeral: true };
  },
});
