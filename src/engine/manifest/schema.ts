/**
 * The shape of a playbook manifest as written in YAML (snake_case, durations as text). This layer
 * checks shape only; cross-references (goto and revert targets, the action catalogue, expression
 * syntax) are checked by `checks.ts` once the shape is known to be right, because their messages
 * need the whole playbook.
 *
 * A step's kind is the one kind key it carries (`action:`, `script:`, …), so the step schema is a
 * dispatcher rather than a zod union: a union would answer "Invalid input" for a misspelt kind,
 * where an author needs "unknown step kind `sleep`".
 */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { INPUT_TYPES, ROLES, STEP_KINDS } from './types.ts';
import type { StepKind } from './types.ts';

const IDENTIFIER = /^[a-z][a-z0-9_]*$/;

/** Step ids and input names are JSONata names (`steps.block_ip.output`), so no dashes. */
const identifier = z
  .string({ error: 'expected an identifier' })
  .regex(IDENTIFIER, { error: 'expected an identifier: lower-case letters, digits and _, starting with a letter' })
  .max(64, { error: 'expected an identifier of at most 64 characters' });

const playbookId = z
  .string({ error: 'expected a playbook id' })
  .regex(/^[a-z0-9][a-z0-9-]*$/, { error: 'expected a playbook id: lower-case letters, digits and -' })
  .max(80, { error: 'expected a playbook id of at most 80 characters' });

export const durationText = z
  .string({ error: 'expected a duration such as 30s, 15m, 24h or 7d' })
  .refine((text) => parseDuration(text) !== undefined, { error: 'expected a duration such as 30s, 15m, 24h or 7d' });

const text = z.string({ error: 'expected a string' });
const nonEmptyText = text.min(1, { error: 'expected a non-empty string' });

const retry = z.strictObject({
  max_attempts: z
    .int({ error: 'expected a whole number of attempts' })
    .min(1, { error: 'expected at least 1 attempt' })
    .max(10, { error: 'expected at most 10 attempts' }),
  delay: durationText.optional(),
  backoff: z.enum(['fixed', 'exponential'], { error: 'expected fixed or exponential' }).optional(),
});

const onError = z.union([z.literal('fail'), z.literal('continue'), z.strictObject({ goto: identifier })], {
  error: 'expected fail, continue or { goto: <step id> }',
});

const withMap = z.record(z.string(), z.unknown(), { error: 'expected a mapping of field: value' });

const baseFields = {
  id: identifier,
  name: nonEmptyText.optional(),
  if: text.optional(),
  on_error: onError.optional(),
};

const runFields = { timeout: durationText.optional(), retry: retry.optional() };

export type RawOnError = z.infer<typeof onError>;
export type RawRetry = z.infer<typeof retry>;

interface RawBase {
  id: string;
  name?: string | undefined;
  if?: string | undefined;
  on_error?: RawOnError | undefined;
}

interface RawRun {
  timeout?: string | undefined;
  retry?: RawRetry | undefined;
}

export interface RawActionStep extends RawBase, RawRun {
  action: string;
  with?: Record<string, unknown> | undefined;
}

export interface RawScriptStep extends RawBase, RawRun {
  script: { file?: string | undefined; javascript?: string | undefined; memory_mb?: number | undefined };
  with?: Record<string, unknown> | undefined;
}

export interface RawConditionStep extends RawBase {
  condition: { if: string; then: RawStep[]; else?: RawStep[] | undefined };
}

export interface RawApprovalStep extends RawBase {
  approval: {
    approvers: { roles?: (typeof ROLES)[number][] | undefined; users?: string[] | undefined; oncall?: string | undefined };
    quorum?: number | undefined;
    expires?: string | undefined;
    on_expiry?: 'deny' | 'escalate' | undefined;
    destructive?: boolean | undefined;
    message?: string | undefined;
  };
}

export interface RawWaitStep extends RawBase {
  wait: { duration?: string | undefined; until?: string | undefined; timeout?: string | undefined };
}

export interface RawNotifyStep extends RawBase, RawRun {
  notify: { channel: string; to?: string | undefined; template?: string | undefined; text?: string | undefined };
}

export interface RawParallelStep extends RawBase {
  parallel: Record<string, RawStep[]>;
  timeout?: string | undefined;
}

export interface RawRevertStep extends RawBase {
  revert: { step: string; after: string };
}

export type RawStep =
  | RawActionStep
  | RawScriptStep
  | RawConditionStep
  | RawApprovalStep
  | RawWaitStep
  | RawNotifyStep
  | RawParallelStep
  | RawRevertStep;

const stepRef: z.ZodType<RawStep> = z.lazy(() => step);
const stepList = z.array(stepRef, { error: 'expected a list of steps' }).min(1, { error: 'expected at least one step' });

const KIND_SCHEMAS: Record<StepKind, z.ZodType<RawStep>> = {
  action: z.strictObject({
    ...baseFields,
    ...runFields,
    action: z.string({ error: 'expected an action name such as firewall.block' }),
    with: withMap.optional(),
  }),
  script: z.strictObject({
    ...baseFields,
    ...runFields,
    script: z
      .strictObject({
        file: z
          .string({ error: 'expected a script file name' })
          .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\.(sh|py)$/, {
            error: 'expected a file name in manifests/scripts/ ending in .sh or .py (no directories)',
          })
          .optional(),
        javascript: nonEmptyText.optional(),
        memory_mb: z
          .int({ error: 'expected a whole number of MiB' })
          .min(8, { error: 'expected at least 8 MiB' })
          .max(512, { error: 'expected at most 512 MiB' })
          .optional(),
      })
      .refine((s) => (s.file === undefined) !== (s.javascript === undefined), {
        error: 'expected exactly one of file or javascript',
      }),
    with: withMap.optional(),
  }),
  condition: z.strictObject({
    ...baseFields,
    condition: z.strictObject({ if: text, then: stepList, else: stepList.optional() }),
  }),
  approval: z.strictObject({
    ...baseFields,
    approval: z.strictObject({
      approvers: z
        .strictObject({
          roles: z.array(z.enum(ROLES, { error: `expected one of ${ROLES.join(', ')}` })).optional(),
          users: z.array(nonEmptyText).optional(),
          oncall: nonEmptyText.optional(),
        })
        .refine((a) => (a.roles?.length ?? 0) + (a.users?.length ?? 0) > 0 || a.oncall !== undefined, {
          error: 'expected at least one of roles, users or oncall',
        }),
      quorum: z
        .int({ error: 'expected a whole number' })
        .min(1, { error: 'expected a quorum of at least 1' })
        .max(10, { error: 'expected a quorum of at most 10' })
        .optional(),
      expires: durationText.optional(),
      on_expiry: z.enum(['deny', 'escalate'], { error: 'expected deny or escalate' }).optional(),
      destructive: z.boolean({ error: 'expected true or false' }).optional(),
      message: text.optional(),
    }),
  }),
  wait: z.strictObject({
    ...baseFields,
    wait: z
      .strictObject({ duration: durationText.optional(), until: text.optional(), timeout: durationText.optional() })
      .refine((w) => (w.duration !== undefined) !== (w.until !== undefined), {
        error: 'expected either duration, or until with a timeout',
      })
      .refine((w) => w.until === undefined || w.timeout !== undefined, {
        error: 'a wait for an event needs a timeout, or a run could wait forever',
      })
      .refine((w) => w.duration === undefined || w.timeout === undefined, {
        error: 'timeout applies to until, not to a fixed duration',
      }),
  }),
  notify: z.strictObject({
    ...baseFields,
    ...runFields,
    notify: z
      .strictObject({
        channel: nonEmptyText,
        to: text.optional(),
        template: z
          .string({ error: 'expected a template name' })
          .regex(/^[a-z0-9][a-z0-9_.-]*$/, { error: 'expected a template name (lower-case, digits, . _ -)' })
          .optional(),
        text: nonEmptyText.optional(),
      })
      .refine((n) => (n.template === undefined) !== (n.text === undefined), {
        error: 'expected exactly one of template or text',
      }),
  }),
  parallel: z.strictObject({
    ...baseFields,
    timeout: durationText.optional(),
    parallel: z
      .record(identifier, stepList, { error: 'expected a mapping of branch name: list of steps' })
      .refine((branches) => Object.keys(branches).length >= 2, { error: 'expected at least two branches' }),
  }),
  revert: z.strictObject({
    ...baseFields,
    revert: z.strictObject({ step: identifier, after: nonEmptyText }),
  }),
};

const SHARED_KEYS = new Set(['id', 'name', 'if', 'on_error', 'timeout', 'retry', 'with']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Picks the kind schema from the one kind key present, then re-reports its issues at full paths. */
const step: z.ZodType<RawStep> = z.unknown().transform((value, ctx): RawStep => {
  if (!isRecord(value)) {
    ctx.addIssue({ code: 'custom', message: 'expected a step: a mapping with an id and one kind', input: value });
    return z.NEVER;
  }
  const kinds = STEP_KINDS.filter((kind) => kind in value);
  const first = kinds[0];
  if (first === undefined) {
    const unknown = Object.keys(value).find((key) => !SHARED_KEYS.has(key));
    if (unknown !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown step kind "${unknown}" (expected one of ${STEP_KINDS.join(', ')})`,
        path: [unknown],
        params: { atKey: true },
        input: value,
      });
    } else {
      ctx.addIssue({ code: 'custom', message: `step has no kind: add one of ${STEP_KINDS.join(', ')}`, input: value });
    }
    return z.NEVER;
  }
  if (kinds.length > 1) {
    ctx.addIssue({
      code: 'custom',
      message: `a step has exactly one kind; this one has ${kinds.join(' and ')}`,
      path: [kinds[1] as string],
      params: { atKey: true },
      input: value,
    });
    return z.NEVER;
  }
  const parsed = KIND_SCHEMAS[first].safeParse(value, { reportInput: true });
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) forwardIssue(ctx, issue, value);
  return z.NEVER;
});

type Ctx = z.core.$RefinementCtx<unknown>;

/** Keeps `unrecognized_keys` distinguishable after re-reporting so each unknown key gets its own line. */
function forwardIssue(ctx: Ctx, issue: z.core.$ZodIssue, input: unknown): void {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    for (const key of issue.keys) {
      ctx.addIssue({ code: 'custom', message: 'unknown field', path: [...path, key], params: { atKey: true }, input });
    }
    return;
  }
  const params = issue.code === 'custom' ? issue.params : undefined;
  ctx.addIssue({
    code: 'custom',
    message: describeIssue(issue),
    path,
    ...(params ? { params } : {}),
    input,
  });
}

const input = z.strictObject({
  type: z.enum(INPUT_TYPES, { error: `expected one of ${INPUT_TYPES.join(', ')}` }),
  list: z.boolean({ error: 'expected true or false' }).optional(),
  from: text.optional(),
  required: z.boolean({ error: 'expected true or false' }).optional(),
  default: z.unknown().optional(),
  description: text.optional(),
  sensitive: z.boolean({ error: 'expected true or false' }).optional(),
});

const severity = z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)], {
  error: 'expected a severity 1 (critical) to 4 (info)',
});

const trigger = z
  .strictObject({
    event_type: z
      .union([nonEmptyText, z.array(nonEmptyText).min(1)], { error: 'expected an event type or a list of them' })
      .optional(),
    severity: z.union([severity, z.array(severity).min(1)], { error: 'expected a severity 1-4 or a list of them' }).optional(),
    when: text.optional(),
    manual: z.boolean({ error: 'expected true or false' }).optional(),
  })
  .refine((t) => t.event_type !== undefined || t.manual === true, {
    error: 'expected event_type, or manual: true for a playbook that is only started by hand',
  })
  .refine((t) => t.event_type !== undefined || (t.severity === undefined && t.when === undefined), {
    error: 'severity and when filter events, so they need an event_type',
  });

export const playbookSchema = z.strictObject({
  id: playbookId,
  name: nonEmptyText,
  version: z.int({ error: 'expected a whole version number' }).min(1, { error: 'expected a version of 1 or more' }),
  description: text.optional(),
  trigger,
  inputs: z.record(identifier, input, { error: 'expected a mapping of input name: definition' }).optional(),
  steps: stepList,
});

export type RawPlaybook = z.infer<typeof playbookSchema>;
export type RawInput = z.infer<typeof input>;

/** Short, author-facing text for a zod issue (zod's defaults speak TypeScript, not YAML). */
export function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      if (issue.message.startsWith('Invalid input')) return `expected ${article(issue.expected)}, got ${kindOf(issue.input)}`;
      return issue.message;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    case 'invalid_key':
      return `invalid name: ${issue.issues[0]?.message ?? issue.message}`;
    case 'too_small':
    case 'too_big':
      if (issue.message.startsWith('Too ')) {
        const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
        return issue.origin === 'array' ? `expected ${bound} items` : `expected ${bound}`;
      }
      return issue.message;
    default:
      return issue.message;
  }
}

function article(expected: string): string {
  switch (expected) {
    case 'int':
      return 'a whole number';
    case 'object':
    case 'record':
      return 'a mapping';
    case 'array':
      return 'a list';
    default:
      return `a ${expected}`;
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}
