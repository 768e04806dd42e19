import { z } from 'zod';
import type { CommandArgsInput } from './command.ts';
import { defineCommand } from './command.ts';
import { ENGINE_DISABLED, principalRef } from './engine-support.ts';
import { RESPONDERS } from './roles.ts';

const PLAYBOOK_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const INPUT = /^([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)$/s;

/** `<playbook> key=value …`; values may be quoted (`host="web 01"`), keys may not repeat. */
const runArgs = z.custom<CommandArgsInput>().transform((input, ctx) => {
  const [playbook, ...pairs] = input.tokens;
  if (playbook === undefined) {
    ctx.addIssue({ code: 'custom', message: 'missing <playbook>' });
    return z.NEVER;
  }
  if (!PLAYBOOK_ID.test(playbook)) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(playbook.slice(0, 40))} is not a playbook id (see \`playbooks\`)` });
    return z.NEVER;
  }
  const inputs: Record<string, string> = {};
  for (const pair of pairs) {
    const m = INPUT.exec(pair);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(pair.slice(0, 40))} is not key=value` });
      return z.NEVER;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (key in inputs) {
      ctx.addIssue({ code: 'custom', message: `input ${key} is given twice` });
      return z.NEVER;
    }
    if (value.length > 2000) {
      ctx.addIssue({ code: 'custom', message: `input ${key} is longer than 2,000 characters` });
      return z.NEVER;
    }
    inputs[key] = value;
  }
  return { playbook, inputs };
});

export const runCommand = defineCommand({
  name: 'run',
  usage: '<playbook> [key=value …]',
  summary: 'starts a playbook run',
  args: runArgs,
  requiredRoles: RESPONDERS,
  async handler(ctx, { playbook, inputs }) {
    const engine = ctx.deps.engine;
    if (!engine) return ENGINE_DISABLED;
    const run = await engine.start(ctx.tenantId, playbook, inputs, principalRef(ctx));
    return {
      text: `:arrow_forward: Started playbook \`${playbook}\`, run \`${run.id.slice(0, 8)}\` (${run.status}), for ${ctx.principal.displayName}.`,
      buttons: [{ actionId: 'run.show', label: 'Status', value: run.id }],
    };
  },
});
