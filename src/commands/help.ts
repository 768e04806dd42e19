import { z } from 'zod';
import { positional, defineCommand, type AnyCommand } from './command.ts';
import { problem } from './format.ts';
import { EVERYONE, isAllowed } from './roles.ts';

function line(c: AnyCommand): string {
  return `\`${c.name}${c.usage ? ` ${c.usage}` : ''}\` ${c.summary}`;
}

function rolesOf(c: AnyCommand): string {
  return c.requiredRoles.length === EVERYONE.length ? 'everyone with a role' : c.requiredRoles.join(', ');
}

export const helpCommand = defineCommand({
  name: 'help',
  usage: '[command]',
  summary: 'lists the commands you can run, or explains one',
  args: positional({ command: z.string().optional() }, { rest: 'command' }),
  requiredRoles: EVERYONE,
  async handler(ctx, { command }) {
    if (command) {
      const wanted = command.toLowerCase().replace(/\s+/g, ' ');
      const exact = ctx.commands.find((c) => c.name === wanted);
      const group = ctx.commands.filter((c) => c.name.startsWith(`${wanted} `) && !c.hidden);
      if (!exact && group.length === 0) return problem(`There is no command ${JSON.stringify(command.slice(0, 40))}. Try \`help\`.`);
      const shown = exact ? [exact] : group;
      return {
        title: exact ? `Command ${exact.name}` : `Commands ${wanted} …`,
        text: shown.map((c) => `${line(c)}\nAllowed: ${rolesOf(c)}${c.actions?.length ? `; buttons: ${c.actions.join(', ')}` : ''}`).join('\n\n'),
        ephemeral: true,
      };
    }
    const visible = ctx.commands.filter((c) => !c.hidden);
    const mine = visible.filter((c) => isAllowed(ctx.principal.roles, c.requiredRoles));
    const others = visible.length - mine.length;
    return {
      title: 'SENTreflex commands',
      text: mine.map(line).join('\n'),
      context: [
        `Your roles here: ${ctx.principal.roles.join(', ')}.${others > 0 ? ` ${others} more command(s) need other roles.` : ''} React with :pushpin: in an incident channel to add a message to its timeline.`,
      ],
      ephemeral: true,
    };
  },
});
