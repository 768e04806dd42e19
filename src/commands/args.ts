import { z } from 'zod';
import { ROLES, type Role } from '../store/schema.ts';

/** Argument grammars several commands share. Messages name the value, so a typo is obvious. */
const shown = (v: unknown) => JSON.stringify(String(v).slice(0, 40));

/** An incident as chat shows it (`1a2b3c4d`, optionally `#1a2b3c4d`) or its whole UUID. */
export const incidentRef = z
  .string()
  .refine((v) => /^#?[0-9a-fA-F]{8}[0-9a-fA-F-]{0,28}$/.test(v), {
    error: (iss) => `${shown(iss.input)} is not an incident id: give its first 8 hex characters or the whole id`,
  })
  .transform((v) => v.replace(/^#/, '').toLowerCase());

/** A run or approval id: a UUID or a prefix of at least 8 hex digits, resolved by the engine. */
export const engineRef = (what: 'run' | 'approval') =>
  z
    .string()
    .refine((v) => /^[0-9a-fA-F]{8}[0-9a-fA-F-]{0,28}$/.test(v), { error: (iss) => `${shown(iss.input)} is not a ${what} id` })
    .transform((v) => v.toLowerCase());

export const severityArg = z.string().transform((v, ctx) => {
  const n = Number(v.replace(/^sev/i, ''));
  if (!/^(sev)?\d$/i.test(v) || n < 1 || n > 4) {
    ctx.addIssue({ code: 'custom', message: `${shown(v)} is not a severity: use 1 (critical) to 4 (info)` });
    return z.NEVER;
  }
  return n as 1 | 2 | 3 | 4;
});

export const roleArg = z.string().transform((v, ctx) => {
  const role = v.toLowerCase();
  if (!(ROLES as readonly string[]).includes(role)) {
    ctx.addIssue({ code: 'custom', message: `${shown(v)} is not a role: use one of ${ROLES.join(', ')}` });
    return z.NEVER;
  }
  return role as Role;
});

/** A user in the invoker's own workspace: `@U0123`, `U0123`, or Slack's `<@U0123|name>` as the transport left it. */
export const userArg = z
  .string()
  .transform((v) => v.replace(/^<@([^|>]+)(\|[^>]*)?>$/, '$1').replace(/^@/, ''))
  .refine((v) => /^[A-Za-z0-9._-]{1,128}$/.test(v), { error: (iss) => `${shown(iss.input)} is not a user: mention them (@name) or give their user id` });

export const freeText = (what: string, max = 4000) =>
  z.string().max(max, `the ${what} is longer than ${max.toLocaleString('en')} characters`);
