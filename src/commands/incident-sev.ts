import { resolveIncidentRef, setSeverity, shortIncidentId } from '../store/incidents.ts';
import { incidentRef, severityArg } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { severityLabel } from './format.ts';
import { RESPONDERS } from './roles.ts';

export const incidentSevCommand = defineCommand({
  name: 'incident sev',
  usage: '<incident> <sev 1-4>',
  summary: 'changes the severity of an incident',
  args: positional({ incident: incidentRef, sev: severityArg }),
  requiredRoles: RESPONDERS,
  async handler(ctx, { incident, sev }) {
    const inc = await resolveIncidentRef(ctx.deps.db, ctx.tenantId, incident);
    const { incident: updated, previous } = await setSeverity(
      ctx.deps.db,
      { tenantId: ctx.tenantId, incidentId: inc.id, severity: sev, actor: ctx.actor },
      ctx.deps.incidentEvents,
    );
    return {
      text: `:arrows_counterclockwise: Incident \`${shortIncidentId(updated.id)}\` is now ${severityLabel(sev)} (was SEV${previous}), set by ${ctx.principal.displayName}.`,
    };
  },
});
