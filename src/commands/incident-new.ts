import { createIncident } from '../store/incidents.ts';
import { freeText, severityArg } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { incidentCard, severityLabel } from './format.ts';
import { ANALYSTS } from './roles.ts';

export const incidentNewCommand = defineCommand({
  name: 'incident new',
  usage: '<sev 1-4> <title…>',
  summary: 'declares an incident (1 = critical … 4 = info)',
  args: positional({ sev: severityArg, title: freeText('title', 200) }, { rest: 'title' }),
  requiredRoles: ANALYSTS,
  async handler(ctx, { sev, title }) {
    const inc = await createIncident(ctx.deps.db, { tenantId: ctx.tenantId, title, severity: sev, createdBy: ctx.actor }, ctx.deps.incidentEvents);
    return incidentCard(inc, { headline: `:rotating_light: ${severityLabel(sev)} incident declared by ${ctx.principal.displayName}.` });
  },
});
