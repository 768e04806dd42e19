import { defineCommand, positional } from './command.ts';
import { ENGINE_DISABLED } from './engine-support.ts';
import { EVERYONE } from './roles.ts';

export const playbooksCommand = defineCommand({
  name: 'playbooks',
  usage: '',
  summary: 'lists the playbooks you can run',
  args: positional({}),
  requiredRoles: EVERYONE,
  async handler(ctx) {
    const engine = ctx.deps.engine;
    if (!engine) return ENGINE_DISABLED;
    const books = await engine.list(ctx.tenantId);
    if (books.length === 0) return { text: 'No playbooks are loaded.', ephemeral: true };
    return {
      title: 'Playbooks',
      text: books
        .map((b) => {
          const inputs = b.inputs.map((i) => (i.required ? `${i.name}=…` : `[${i.name}=…]`)).join(' ');
          return `\`${b.id}\` ${b.name} (v${b.version})${b.description ? `: ${b.description}` : ''}${inputs ? `\n    \`run ${b.id} ${inputs}\`` : ''}`;
        })
        .join('\n'),
      ephemeral: true,
    };
  },
});
