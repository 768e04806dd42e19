import { engineRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ENGINE_DISABLED, principalRef } from './engine-support.ts';
import { APPROVERS } from './roles.ts';

export const approveCommand = defineCommand({
  name: 'approve',
  usage: '<approval>',
  summary: 'approves a gated playbook step',
  args: positional({ approval: engineRef('approval') }),
  requiredRoles: APPROVERS,
  actions: ['approval.approve'],
  async handler(ctx, { approval }) {
    const engine = ctx.deps.engine;
    if (!engine) return ENGINE_DISABLED;
    const out = await engine.decide(ctx.tenantId, approval, principalRef(ctx), 'approve', undefined, ctx.via);
    return {
      text:
        out.status === 'pending'
          ? `:ballot_box_with_check: ${ctx.principal.displayName} approved: ${out.summary}. ${out.remaining ?? 1} more approval(s) needed.`
          : `:white_check_mark: ${out.summary}: *${out.status}* (last decision by ${ctx.principal.displayName}).`,
    };
  },
});
