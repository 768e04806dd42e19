import { listTimeline, resolveIncidentRef, shortIncidentId } from '../store/incidents.ts';
import { incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ANALYSTS } from './roles.ts';

export const suggestCommand = defineCommand({
  name: 'suggest',
  usage: '<incident>',
  summary: 'suggests next steps for an incident',
  args: positional({ incident: incidentRef }),
  requiredRoles: ANALYSTS,
  async handler(ctx, { incident }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    if (!ctx.deps.assistant) return { text: ':information_source: The assistant is not enabled on this server, so there are no suggestions.', ephemeral: true };
    const suggestions = await ctx.deps.assistant.suggest(inc, await listTimeline(ctx.deps.db, ctx.tenantId, inc.id));
    if (suggestions.length === 0) return { text: `No suggestions for incident \`${shortIncidentId(inc.id)}\`.`, ephemeral: true };
    return {
      title: `Suggested next steps for incident ${shortIncidentId(inc.id)}`,
      text: suggestions
        .map((s, i) => `${i + 1}. ${s.text}${s.confidence !== undefined ? ` _(${Math.round(s.confidence * 100)}%)_` : ''}${s.playbookId ? ` \`run ${s.playbookId}\`` : ''}`)
        .join('\n'),
      ephemeral: true,
    };
  },
});
