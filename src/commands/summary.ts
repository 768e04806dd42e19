import { listTimeline, resolveIncidentRef, shortIncidentId } from '../store/incidents.ts';
import { incidentRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { summarizeIncident } from './incident-summary.ts';
import { EVERYONE } from './roles.ts';

export const summaryCommand = defineCommand({
  name: 'summary',
  usage: '<incident>',
  summary: 'summarises an incident: what, when, severity, actions, decisions',
  args: positional({ incident: incidentRef }),
  requiredRoles: EVERYONE,
  actions: ['incident.summary'],
  async handler(ctx, { incident }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    const timeline = await listTimeline(ctx.deps.db, ctx.tenantId, inc.id);
    const facts = summarizeIncident(inc, timeline, ctx.now);
    if (!ctx.deps.assistant) return facts;
    try {
      const prose = await ctx.deps.assistant.summarize(inc, timeline);
      return { title: `Summary of incident ${shortIncidentId(inc.id)}`, text: prose, context: ['Written by the assistant from the incident timeline.'] };
    } catch (err) {
      // The facts are always available; an assistant outage must not hide them.
      ctx.deps.onError?.(err, { command: 'summary', tenantId: ctx.tenantId });
      return { ...facts, context: [...(facts.context ?? []), 'The assistant is unavailable; this summary is built from the timeline.'] };
    }
  },
});
