import { ReflexError } from '../errors.ts';
import { engineRef } from './args.ts';
import { defineCommand, positional } from './command.ts';
import { ENGINE_DISABLED, runLine } from './engine-support.ts';
import { formatTime } from './format.ts';
import { EVERYONE } from './roles.ts';

export const runsCommand = defineCommand({
  name: 'runs',
  usage: '[run]',
  summary: 'lists recent playbook runs, or shows one',
  args: positional({ run: engineRef('run').optional() }),
  requiredRoles: EVERYONE,
  actions: ['run.show'],
  async handler(ctx, { run }) {
    const engine = ctx.deps.engine;
    if (!engine) return ENGINE_DISABLED;
    if (!run) {
      const runs = await engine.listRuns(ctx.tenantId, { limit: 15 });
      if (runs.length === 0) return { text: 'No playbook runs yet.', ephemeral: true };
      return { title: 'Recent playbook runs', text: runs.map(runLine).join('\n'), ephemeral: true };
    }
    const r = await engine.getRun(ctx.tenantId, run);
    if (!r) throw new ReflexError('not_found', `no run ${run}`, { safeMessage: `No run ${run.slice(0, 8)} in this tenant.` });
    return {
      title: `Run ${r.id.slice(0, 8)} of ${r.playbookId}`,
      text: runLine(r),
      fields: [
        { label: 'Status', value: r.status },
        { label: 'Started', value: `${formatTime(r.createdAt)} by ${r.startedBy}` },
        ...(r.finishedAt ? [{ label: 'Finished', value: formatTime(r.finishedAt) }] : []),
        ...(r.steps?.length ? [{ label: 'Steps', value: r.steps.map((s) => `${s.stepId}: ${s.status}`).join('\n') }] : []),
      ],
      ephemeral: true,
    };
  },
});
