import { appendTimeline, findIncidentByChannel, shortIncidentId } from '../store/incidents.ts';
import { defineCommand, positional } from './command.ts';
import { ANALYSTS } from './roles.ts';

/**
 * A :pushpin: reaction on a message in an incident channel copies the message to the incident's
 * timeline, so what was said in the heat of the moment is in the record. Not typed: the
 * transport turns the reaction into an invocation carrying the message.
 */
export const pinCommand = defineCommand({
  name: 'pin',
  usage: '',
  summary: 'react with :pushpin: to a message in an incident channel to add it to the timeline',
  args: positional({}),
  requiredRoles: ANALYSTS,
  hidden: true,
  async handler(ctx) {
    const reaction = ctx.invocation.reaction;
    if (!reaction) return { text: 'React with :pushpin: to a message in an incident channel to add it to the timeline.', ephemeral: true };
    const inc = await findIncidentByChannel(ctx.deps.db, ctx.invocation.platform, ctx.invocation.channel.id);
    // People pin for their own reasons outside incident channels; say nothing there.
    if (!inc || inc.tenant_id !== ctx.tenantId) return null;
    const text = reaction.message.text.trim() || '(a message without text)';
    await appendTimeline(ctx.deps.db, {
      tenantId: ctx.tenantId,
      incidentId: inc.id,
      kind: 'chat.pinned',
      actor: ctx.actor,
      text: text.length > 4000 ? `${text.slice(0, 3999)}…` : text,
      data: { channelId: ctx.invocation.channel.id, messageId: reaction.message.id, ...(reaction.message.userId ? { author: reaction.message.userId } : {}) },
    });
    return { text: `:pushpin: Added to the timeline of incident \`${shortIncidentId(inc.id)}\` by ${ctx.principal.displayName}.` };
  },
});
