import type { ChatMessage, Invocation } from '../bot/chat-types.ts';
import { assertNever, chatSafeText, toReflexError } from '../errors.ts';
import { recordAudit } from '../store/audit-log.ts';
import { formatIdentity, resolveCaller, type ChatIdentityRef } from '../store/principals.ts';
import { describeArgsError, type AnyCommand, type CommandArgsInput, type CommandDeps } from './command.ts';
import { problem } from './format.ts';
import { CommandRegistry } from './registry.ts';
import { isAllowed } from './roles.ts';
import { tokenize } from './tokenize.ts';

/** What a transport hands over: the tenant is not the transport's to decide. */
export type InboundInvocation = Omit<Invocation, 'tenantId'>;

/**
 * `ok`: the command ran. `refused`: unknown user, no role, or not this role (audited as
 * `command.refused`). `invalid`: bad input, unknown command, a rejected request (nothing written).
 * `failed`: something broke on our side. `ignored`: nothing to do and nothing to say.
 */
export type DispatchOutcome = 'ok' | 'refused' | 'invalid' | 'failed' | 'ignored';

export interface DispatchResult {
  outcome: DispatchOutcome;
  /** The command's name, once known. */
  command?: string;
  tenantId?: string;
  /** The answer to post; null when there is nothing to say. */
  message: ChatMessage | null;
}

const defaultRegistry = new CommandRegistry();

// Codes that mean "the request cannot be done as asked": the user's to fix, nothing was written.
const USER_ERRORS = new Set(['input.invalid', 'input.too_large', 'not_found', 'conflict', 'auth.forbidden']);

/**
 * Runs one chat invocation: workspace -> tenant, identity -> principal and roles, words or
 * button -> command, role check, grammar, handler, audit. Every way out is an answer for the
 * chat user; nothing here throws for a user's mistake.
 *
 * The role is checked before the arguments are parsed, so someone without access learns nothing
 * about a command's grammar or the ids it accepts.
 *
 * @example
 * const r = await dispatch({ platform: 'slack', user: { platform: 'slack', workspace: 'T1', userId: 'U1' },
 *   channel: { id: 'C1' }, text: 'enrich 198.51.100.7', receivedAt: new Date() }, deps);
 * await transport.post({ channelId: 'C1' }, r.message!);
 */
export async function dispatch(inbound: InboundInvocation, deps: CommandDeps, registry: CommandRegistry = defaultRegistry): Promise<DispatchResult> {
  const now = deps.now?.() ?? new Date();
  const identity: ChatIdentityRef = { platform: inbound.platform, workspace: inbound.user.workspace, userId: inbound.user.userId };
  const actor = formatIdentity(identity);
  const via = `${inbound.platform}.${inbound.action ? 'button' : inbound.reaction ? 'reaction' : 'text'}`;
  const quietRefusal = inbound.reaction !== undefined;

  const refuse = async (tenantId: string | null, reason: string, message: ChatMessage, command?: string): Promise<DispatchResult> => {
    await recordAudit(deps.db, actor, [
      {
        tenantId,
        action: 'command.refused',
        target: `chat:${actor}`,
        delta: { reason, via, channel: inbound.channel.id, ...(command ? { command } : {}), ...(inbound.deliveryId ? { deliveryId: inbound.deliveryId } : {}) },
      },
    ]);
    return { outcome: 'refused', ...(command ? { command } : {}), ...(tenantId ? { tenantId } : {}), message: quietRefusal ? null : message };
  };

  const { tenantId, principal } = await resolveCaller(deps.db, identity, deps.fallbackTenant);
  if (!tenantId) {
    return refuse(null, 'workspace_not_connected', {
      text:
        `:no_entry: This ${inbound.platform} workspace (\`${inbound.user.workspace}\`) is not connected to a SENTreflex tenant yet. ` +
        `An operator connects it with \`reflex role workspace ${inbound.platform}:${inbound.user.workspace} <tenant>\`.`,
      ephemeral: true,
    });
  }

  if (!principal || principal.roles.length === 0) {
    return refuse(tenantId, principal ? 'no_role' : 'unknown_user', {
      text:
        `:no_entry: Sorry, you are not authorised to use SENTreflex here yet. ` +
        `Ask an admin to grant you a role: \`reflex role grant ${actor} viewer --tenant ${tenantId}\`.`,
      ephemeral: true,
    });
  }

  const request = resolveRequest(inbound, registry);
  if ('result' in request) return { ...request.result, tenantId };
  const { command, input } = request;

  if (!isAllowed(principal.roles, command.requiredRoles)) {
    return refuse(
      tenantId,
      'role',
      {
        text: `:no_entry: \`${command.name}\` needs one of these roles: ${command.requiredRoles.join(', ')}. You have: ${principal.roles.join(', ')}.`,
        ephemeral: true,
      },
      command.name,
    );
  }

  const parsed = command.args.safeParse(input);
  if (!parsed.success) {
    return { outcome: 'invalid', command: command.name, tenantId, message: problem(describeArgsError(parsed.error), `${command.name}${command.usage ? ` ${command.usage}` : ''}`) };
  }

  let message: ChatMessage | null;
  try {
    message = await command.handler(
      { invocation: { ...inbound, tenantId }, tenantId, principal, actor, via, deps, now, commands: registry.commands },
      parsed.data,
    );
  } catch (err) {
    const e = toReflexError(err);
    if (USER_ERRORS.has(e.code)) return { outcome: 'invalid', command: command.name, tenantId, message: problem(e.safeMessage) };
    deps.onError?.(err, { command: command.name, tenantId });
    return { outcome: 'failed', command: command.name, tenantId, message: { text: chatSafeText(e), ephemeral: true } };
  }

  try {
    await recordAudit(deps.db, actor, [
      {
        tenantId,
        action: `command.${command.name.replace(/ /g, '.')}`,
        target: `chat:${actor}`,
        delta: {
          via,
          channel: inbound.channel.id,
          args: auditArgs(parsed.data),
          ...(inbound.deliveryId ? { deliveryId: inbound.deliveryId } : {}),
        },
      },
    ]);
  } catch (err) {
    // The command's own writes are committed and audited; losing this record must not lose the answer.
    deps.onError?.(err, { command: command.name, tenantId });
  }
  return { outcome: 'ok', command: command.name, tenantId, message };
}

type Request = { command: AnyCommand; input: CommandArgsInput } | { result: DispatchResult };

function resolveRequest(inbound: InboundInvocation, registry: CommandRegistry): Request {
  if (inbound.action) {
    const command = registry.action(inbound.action.actionId);
    if (!command) {
      return { result: { outcome: 'invalid', message: problem(`That button (\`${inbound.action.actionId.slice(0, 60)}\`) is not one SENTreflex knows.`) } };
    }
    return { command, input: { tokens: [inbound.action.value], tails: [inbound.action.value] } };
  }
  if (inbound.reaction) {
    const command = registry.reaction(inbound.reaction.name);
    if (!command) return { result: { outcome: 'ignored', message: null } };
    return { command, input: { tokens: [], tails: [] } };
  }
  const { tokens, tails } = tokenize(inbound.text ?? '');
  // A bare `/reflex` is a request for help.
  const m = registry.match(tokens.length > 0 ? tokens : ['help']);
  switch (m.kind) {
    case 'command':
      return { command: m.command, input: { tokens: tokens.slice(m.rest), tails: tails.slice(m.rest) } };
    case 'group':
      return {
        result: {
          outcome: 'invalid',
          message: problem(`\`${m.group}\` needs one of: ${m.commands.map((c) => `\`${c.name}${c.usage ? ` ${c.usage}` : ''}\``).join(', ')}.`),
        },
      };
    case 'unknown':
      return { result: { outcome: 'invalid', message: problem(`I don't know the command ${JSON.stringify(m.word.slice(0, 40))}. Try \`help\`.`) } };
    default:
      return assertNever(m);
  }
}

/** Arguments as the audit log keeps them: long text cut, so a pasted log does not bloat the chain. */
function auditArgs(args: unknown): unknown {
  if (typeof args === 'string') return args.length > 300 ? `${args.slice(0, 300)}…` : args;
  if (Array.isArray(args)) return args.map(auditArgs);
  if (typeof args === 'object' && args !== null) {
    return Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined).map(([k, v]) => [k, auditArgs(v)]));
  }
  return args;
}
