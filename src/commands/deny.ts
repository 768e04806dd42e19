import { engineRef, freeText } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ENGINE_DISABLED, principalRef } from './engine-support.ts';
import { APPROVERS } from './roles.ts';

export const denyCommand = defineCommand({
  name: 'deny',
  usage: '<approval> [reason…]',
  summary: 'denies a gated playbook step',
  args: positional({ approval: engineRef('approval'), reason: freeText('reason', 1000).optional() }, { rest: 'reason' }),
  requiredRoles: APPROVERS,
  actions: ['approval.deny'],
  async handler(ctx, { approval, reason }) {
    const engine = ctx.deps.engine;
    if (!engine) return ENGINE_DISABLED;
    const out = await engine.decide(ctx.tenantId, approval, principalRef(ctx), 'deny', reason, ctx.via);
    return { text: `:no_entry: ${ctx.principal.displayName} denied: ${out.summary}${reason ? ` (${reason})` : ''}. Status: *${out.status}*.` };
  },
});
