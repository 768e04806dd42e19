import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ChatMessage, Invocation } from '../bot/chat-types.ts';
import type { IncidentEvents } from '../store/incidents.ts';
import type { ResolvedPrincipal } from '../store/principals.ts';
import type { Database, Role } from '../store/schema.ts';
import type { Assistant, IntelLookup, PlaybookEngine } from './ports.ts';

/**
 * What a chat command is: a grammar (zod over the typed tokens), the roles allowed to run it and
 * a handler that answers a platform-neutral `ChatMessage`. One file per command in this folder;
 * `registry.ts` lists them and `dispatch.ts` runs them.
 */

/** The tokens after the command name; `tails[i]` is the raw text from token i to the end. */
export interface CommandArgsInput {
  tokens: string[];
  tails: string[];
}

export interface CommandDeps {
  db: Kysely<Database>;
  /** Threat-intel lookups for `enrich`; absent = no provider wired. */
  lookupIntel?: IntelLookup;
  /** Absent until the playbook engine is wired: its commands then say so. */
  engine?: PlaybookEngine;
  /** Absent = deterministic summaries and no suggestions. */
  assistant?: Assistant;
  /** Told about incident changes (a SEV1 gets its own channel). */
  incidentEvents?: IncidentEvents;
  /**
   * Tenant for a chat workspace nobody mapped. Embedded mode passes `default` (one machine, one
   * team); production passes nothing and an unmapped workspace is refused.
   */
  fallbackTenant?: string;
  now?: () => Date;
  /** Where unexpected handler failures are reported (never shown in chat beyond a safe message). */
  onError?: (err: unknown, context: { command: string; tenantId: string }) => void;
}

export interface CommandContext {
  invocation: Invocation;
  tenantId: string;
  principal: ResolvedPrincipal;
  /** `platform:workspace:user`, the actor string written to the audit log and timelines. */
  actor: string;
  /** How it was invoked; passed to the engine as the approval's `via`. */
  via: string;
  deps: CommandDeps;
  now: Date;
  /** Every command, for `help`. */
  commands: readonly AnyCommand[];
}

export interface Command<A> {
  /** One or two words, e.g. `enrich`, `incident new`. */
  name: string;
  /** The grammar after the name, e.g. `<sev 1-4> <title…>`. */
  usage: string;
  summary: string;
  args: z.ZodType<A, CommandArgsInput>;
  /** Roles allowed to run it; `admin` is always allowed (see roles.ts). */
  requiredRoles: readonly Role[];
  /** Button action ids this command answers; the button's value is its only argument. */
  actions?: readonly string[];
  /** Shown by `help` only when asked for by name (reaction-driven commands). */
  hidden?: boolean;
  /** `null`: nothing to say (a 📌 outside an incident channel). */
  handler(ctx: CommandContext, args: A): Promise<ChatMessage | null>;
}

/** A command of any argument type: the registry's view (each handler gets what its own grammar made). */
export type AnyCommand = Command<unknown>;

export function defineCommand<A>(c: Command<A>): Command<A> {
  return c;
}

type Shape = Record<string, z.ZodType>;
type Out<S extends Shape> = { [K in keyof S]: z.output<S[K]> };

/**
 * Positional arguments, in the order of `shape`; `rest` names the last one, which takes the raw
 * rest of the line (a title, a note, a reason). An argument whose schema accepts `undefined` is
 * optional.
 *
 * @example
 * args: positional({ sev: severitySchema, title: z.string() }, { rest: 'title' })
 * // "2 Phishing wave hits finance" -> { sev: 2, title: 'Phishing wave hits finance' }
 */
export function positional<S extends Shape>(shape: S, opts: { rest?: keyof S & string } = {}): z.ZodType<Out<S>, CommandArgsInput> {
  const keys = Object.keys(shape);
  if (opts.rest !== undefined && keys[keys.length - 1] !== opts.rest) throw new Error(`positional: rest argument ${opts.rest} must come last`);
  // Problems are reported in argument order: a bad first argument is named before a missing second.
  const fields: Record<string, z.ZodType> = {};
  for (const key of keys) {
    const schema = shape[key]!;
    fields[key] = schema.safeParse(undefined).success
      ? schema
      : z
          .unknown()
          .refine((v) => v !== undefined, { message: `missing <${key}>`, abort: true })
          .pipe(schema as z.ZodType<unknown, never>);
  }
  fields._extra = z.undefined({ error: (iss) => `unexpected ${JSON.stringify(String(iss.input).slice(0, 80))}` }).optional();
  return z
    .custom<CommandArgsInput>((v) => typeof v === 'object' && v !== null && Array.isArray((v as CommandArgsInput).tokens))
    .transform((input) => {
      const out: Record<string, unknown> = {};
      keys.forEach((key, i) => {
        out[key] = key === opts.rest ? input.tails[i]?.trim() || undefined : input.tokens[i];
      });
      if (opts.rest === undefined && input.tokens.length > keys.length) out._extra = input.tokens.slice(keys.length).join(' ');
      return out;
    })
    .pipe(z.object(fields))
    .transform(({ _extra: _, ...args }) => args) as unknown as z.ZodType<Out<S>, CommandArgsInput>;
}

/** The first problem of a failed parse, as one sentence for chat. */
export function describeArgsError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'the arguments are not valid';
  return issue.message;
}
