import type { AnyCommand } from './command.ts';
import { approveCommand } from './approve.ts';
import { denyCommand } from './deny.ts';
import { enrichCommand } from './enrich.ts';
import { helpCommand } from './help.ts';
import { incidentCloseCommand } from './incident-close.ts';
import { incidentListCommand } from './incident-list.ts';
import { incidentNewCommand } from './incident-new.ts';
import { incidentSevCommand } from './incident-sev.ts';
import { incidentShowCommand } from './incident-show.ts';
import { noteCommand } from './note.ts';
import { pinCommand } from './pin.ts';
import { playbooksCommand } from './playbooks.ts';
import { roleGrantCommand } from './role-grant.ts';
import { roleListCommand } from './role-list.ts';
import { roleRevokeCommand } from './role-revoke.ts';
import { runCommand } from './run.ts';
import { runsCommand } from './runs.ts';
import { suggestCommand } from './suggest.ts';
import { summaryCommand } from './summary.ts';
import { timelineCommand } from './timeline.ts';
import { whoamiCommand } from './whoami.ts';

/** Every chat command, in the order `help` lists them. */
export const COMMANDS: readonly AnyCommand[] = [
  helpCommand,
  whoamiCommand,
  enrichCommand,
  incidentNewCommand,
  incidentListCommand,
  incidentShowCommand,
  incidentSevCommand,
  incidentCloseCommand,
  timelineCommand,
  noteCommand,
  summaryCommand,
  suggestCommand,
  playbooksCommand,
  runCommand,
  runsCommand,
  approveCommand,
  denyCommand,
  roleGrantCommand,
  roleRevokeCommand,
  roleListCommand,
  pinCommand,
];

/** Reactions that are commands, by the platform's reaction name. */
const REACTIONS: Record<string, string> = { pushpin: 'pin', round_pushpin: 'pin' };

export type CommandMatch =
  | { kind: 'command'; command: AnyCommand; rest: number }
  | { kind: 'group'; group: string; commands: AnyCommand[] }
  | { kind: 'unknown'; word: string };

/**
 * Looks commands up by typed words (longest name first), by button action id, or by reaction.
 *
 * @example
 * const m = new CommandRegistry().match(['incident', 'new', '2', 'Phishing']); // incident new, rest at 2
 */
export class CommandRegistry {
  private readonly byName = new Map<string, AnyCommand>();
  private readonly byAction = new Map<string, AnyCommand>();

  constructor(readonly commands: readonly AnyCommand[] = COMMANDS) {
    for (const c of commands) {
      if (this.byName.has(c.name)) throw new Error(`duplicate command ${c.name}`);
      this.byName.set(c.name, c);
      for (const a of c.actions ?? []) {
        if (this.byAction.has(a)) throw new Error(`duplicate action ${a}`);
        this.byAction.set(a, c);
      }
    }
  }

  match(tokens: readonly string[]): CommandMatch {
    const words = tokens.slice(0, 2).map((t) => t.toLowerCase());
    const two = words.length === 2 ? this.byName.get(words.join(' ')) : undefined;
    if (two) return { kind: 'command', command: two, rest: 2 };
    const one = words[0] === undefined ? undefined : this.byName.get(words[0]);
    if (one && !one.hidden) return { kind: 'command', command: one, rest: 1 };
    const group = this.commands.filter((c) => !c.hidden && c.name.startsWith(`${words[0]} `));
    if (group.length > 0) return { kind: 'group', group: words[0]!, commands: group };
    return { kind: 'unknown', word: tokens[0] ?? '' };
  }

  action(actionId: string): AnyCommand | undefined {
    return this.byAction.get(actionId);
  }

  reaction(name: string): AnyCommand | undefined {
    const command = REACTIONS[name];
    return command === undefined ? undefined : this.byName.get(command);
  }
}
