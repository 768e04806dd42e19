import { appendTimeline, resolveIncidentRef, shortIncidentId } from '../store/incidents.ts';
import { freeText, incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ANALYSTS } from './roles.ts';

export const noteCommand = defineCommand({
  name: 'note',
  usage: '<incident> <text…>',
  summary: "adds a note to an incident's timeline",
  args: positional({ incident: incidentRef, text: freeText('note') }, { rest: 'text' }),
  requiredRoles: ANALYSTS,
  async handler(ctx, { incident, text }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    await appendTimeline(ctx.deps.db, { tenantId: ctx.tenantId, incidentId: inc.id, kind: 'note', actor: ctx.actor, text, data: { via: ctx.via } });
    return { text: `:memo: Noted on incident \`${shortIncidentId(inc.id)}\`.`, ephemeral: true };
  },
});
