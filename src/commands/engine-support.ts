import type { ChatMessage } from '../bot/chat-types.ts';
import type { CommandContext } from './command.ts';
import type { PrincipalRef, RunInfo } from './ports.ts';
import { formatTime } from './format.ts';

/** The answer of every engine command on a server that runs without the playbook engine. */
export const ENGINE_DISABLED: ChatMessage = { text: ':information_source: The playbook engine is not enabled on this server.', ephemeral: true };

export function principalRef(ctx: CommandContext): PrincipalRef {
  return { principalId: ctx.principal.principalId, displayName: ctx.principal.displayName, identity: ctx.actor, roles: ctx.principal.roles };
}

export function runLine(r: RunInfo): string {
  return `\`${r.id.slice(0, 8)}\` ${r.playbookId} · ${r.status} · ${formatTime(r.createdAt)} by ${r.startedBy}${r.error ? ` · ${r.error}` : ''}`;
}
