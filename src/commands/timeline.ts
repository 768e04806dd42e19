import { listTimeline, resolveIncidentRef, shortIncidentId } from '../store/incidents.ts';
import { incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { formatTime } from './format.ts';
import { EVERYONE } from './roles.ts';

const LIMIT = 40;

export const timelineCommand = defineCommand({
  name: 'timeline',
  usage: '<incident>',
  summary: `shows the last ${LIMIT} entries of an incident's timeline`,
  args: positional({ incident: incidentRef }),
  requiredRoles: EVERYONE,
  actions: ['incident.timeline'],
  async handler(ctx, { incident }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    const entries = await listTimeline(ctx.deps.db, ctx.tenantId, inc.id, { limit: LIMIT });
    return {
      title: `Timeline of incident ${shortIncidentId(inc.id)}: ${inc.title}`,
      text: entries.map((e) => `\`${formatTime(e.created_at)}\` ${e.text} _(${e.kind}, ${e.actor})_`).join('\n'),
      context: entries.length === LIMIT ? [`The last ${LIMIT} entries.`] : [],
      ephemeral: true,
    };
  },
});
