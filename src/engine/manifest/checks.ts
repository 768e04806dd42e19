/**
 * Checks that need the whole playbook, run after the shape is known to be right: unique step ids,
 * goto and revert targets, the action catalogue, expression syntax, and references from
 * expressions to steps and inputs that do not exist. Each problem comes back with its path so the
 * caller can turn it into `file:line:column field: message`.
 */
import { Script } from 'node:vm';
import { findAction, ACTION_CATALOGUE } from '../action-catalogue.ts';
import type { ActionFieldType } from '../action-catalogue.ts';
import { ReflexError } from '../../errors.ts';
import { compileBareExpression, compileValueTemplates, isWholeExpression, rootReferences } from '../expressions.ts';
import type { Expression } from '../expressions.ts';
import { parseDuration } from './duration.ts';
import { checkInputValue } from './input-types.ts';
import type { RawPlaybook, RawStep } from './schema.ts';
import { formatPath } from './source-map.ts';
import type { ManifestPath } from './source-map.ts';
import { STEP_KINDS } from './types.ts';
import type { StepKind } from './types.ts';

export interface ManifestIssue {
  path: ManifestPath;
  message: string;
  /** Point at the key rather than the value (unknown fields). */
  atKey?: boolean;
}

export interface CheckOptions {
  /** Whether a script file exists in the script repository; omitted, script names are not looked up. */
  scriptExists?: (file: string) => boolean;
}

/** Longest a repository script may run: longer jobs belong in an integration, not a step. */
export const MAX_SCRIPT_TIMEOUT_MS = 10 * 60_000;

interface ListScope {
  /** The step that holds this list, or none for the playbook's top-level steps. */
  parent: { scope: ListScope; index: number; parallel: boolean } | undefined;
}

interface StepEntry {
  step: RawStep;
  kind: StepKind;
  path: ManifestPath;
  /** Position in document order, for "must come before/after". */
  order: number;
  scope: ListScope;
  index: number;
}

/** Context roots an expression may read, by where it is written. */
type ExpressionScope = 'event' | 'run' | 'response';

export function stepKind(step: RawStep): StepKind {
  const kind = STEP_KINDS.find((k) => k in step);
  if (kind === undefined) throw new ReflexError('internal', 'a validated step has no kind');
  return kind;
}

function collectSteps(steps: RawStep[], path: ManifestPath, scope: ListScope, out: StepEntry[]): void {
  for (const [index, step] of steps.entries()) {
    const stepPath = [...path, index];
    const kind = stepKind(step);
    out.push({ step, kind, path: stepPath, order: out.length, scope, index });
    if ('condition' in step) {
      const child: ListScope = { parent: { scope, index, parallel: false } };
      collectSteps(step.condition.then, [...stepPath, 'condition', 'then'], child, out);
      if (step.condition.else) {
        collectSteps(step.condition.else, [...stepPath, 'condition', 'else'], { parent: { scope, index, parallel: false } }, out);
      }
    } else if ('parallel' in step) {
      for (const [branch, branchSteps] of Object.entries(step.parallel)) {
        collectSteps(branchSteps, [...stepPath, 'parallel', branch], { parent: { scope, index, parallel: true } }, out);
      }
    }
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

function suggestion(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/** Runs every cross-reference check; an empty list means the playbook is sound. */
export function checkPlaybook(raw: RawPlaybook, options: CheckOptions = {}): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const entries: StepEntry[] = [];
  collectSteps(raw.steps, ['steps'], { parent: undefined }, entries);

  const byId = new Map<string, StepEntry>();
  for (const entry of entries) {
    const first = byId.get(entry.step.id);
    if (first) {
      issues.push({
        path: [...entry.path, 'id'],
        message: `duplicate step id "${entry.step.id}" (first used at ${formatPath(first.path)})`,
      });
    } else {
      byId.set(entry.step.id, entry);
    }
  }
  const inputNames = new Set(Object.keys(raw.inputs ?? {}));

  const checkReferences = (expression: Expression, path: ManifestPath, scope: ExpressionScope): void => {
    for (const ref of rootReferences(expression)) {
      if (ref.root !== 'steps' && ref.root !== 'inputs' && ref.root !== 'response') continue;
      if (scope === 'event' && ref.root !== 'response') {
        issues.push({ path, message: `expression \`${expression.source}\` reads ${ref.root}, but only event and tenant exist here` });
      } else if (ref.root === 'response' && scope !== 'response') {
        // `response` is only bound for an http success check; elsewhere it would silently be empty.
        issues.push({ path, message: `expression \`${expression.source}\` reads response, which exists only in http.request's success` });
      } else if (ref.root === 'steps' && ref.name !== undefined && !byId.has(ref.name)) {
        issues.push({
          path,
          message: `expression \`${expression.source}\` reads steps.${ref.name}, which is not a step of this playbook${suggestion(ref.name, byId.keys())}`,
        });
      } else if (ref.root === 'inputs' && ref.name !== undefined && !inputNames.has(ref.name)) {
        issues.push({
          path,
          message: `expression \`${expression.source}\` reads inputs.${ref.name}, which is not a declared input${suggestion(ref.name, inputNames)}`,
        });
      }
    }
  };

  const compileIssue = (err: unknown, path: ManifestPath): void => {
    if (err instanceof ReflexError && typeof err.details?.['problem'] === 'string') {
      issues.push({ path, message: err.details['problem'] });
    } else {
      throw err;
    }
  };

  const checkBare = (text: string, path: ManifestPath, scope: ExpressionScope): void => {
    try {
      checkReferences(compileBareExpression(text, formatPath(path)), path, scope);
    } catch (err) {
      compileIssue(err, path);
    }
  };

  const checkTemplates = (value: unknown, path: ManifestPath): void => {
    try {
      for (const expression of compileValueTemplates(value, formatPath(path))) checkReferences(expression, path, 'run');
    } catch (err) {
      compileIssue(err, path);
    }
  };

  // Trigger and inputs only see the event: they are evaluated before any step has run.
  if (raw.trigger.when !== undefined) checkBare(raw.trigger.when, ['trigger', 'when'], 'event');
  const eventOnly = raw.trigger.manual !== true;
  for (const [name, input] of Object.entries(raw.inputs ?? {})) {
    const path: ManifestPath = ['inputs', name];
    if (input.from !== undefined) checkBare(input.from, [...path, 'from'], 'event');
    if (input.default !== undefined) {
      const problem = checkInputValue(input.type, input.list ?? false, input.default);
      if (problem) issues.push({ path: [...path, 'default'], message: `${problem} for an input of type ${input.type}` });
    }
    const required = input.required ?? true;
    if (eventOnly && required && input.from === undefined && input.default === undefined) {
      issues.push({ path, message: 'a required input of an event-triggered playbook needs from: or default:' });
    }
  }

  for (const entry of entries) {
    const { step, path } = entry;
    if (step.if !== undefined) checkBare(step.if, [...path, 'if'], 'run');
    if (step.on_error !== undefined && typeof step.on_error === 'object') {
      checkGoto(entry, step.on_error.goto, byId, issues);
    }
    if ('action' in step) checkAction(step.action, step.with, path, issues, checkTemplates, checkBare);
    else if ('script' in step) {
      checkTemplates(step.with ?? {}, [...path, 'with']);
      if (step.script.javascript !== undefined) {
        const problem = javascriptSyntaxError(step.script.javascript);
        if (problem) issues.push({ path: [...path, 'script', 'javascript'], message: `JavaScript does not compile: ${problem}` });
      }
      const file = step.script.file;
      if (file !== undefined && options.scriptExists && !options.scriptExists(file)) {
        issues.push({ path: [...path, 'script', 'file'], message: `no script "${file}" in manifests/scripts/` });
      }
      const timeout = step.timeout === undefined ? undefined : parseDuration(step.timeout);
      if (timeout !== undefined && timeout > MAX_SCRIPT_TIMEOUT_MS) {
        issues.push({ path: [...path, 'timeout'], message: 'scripts may run at most 10m' });
      }
    } else if ('condition' in step) checkBare(step.condition.if, [...path, 'condition', 'if'], 'run');
    else if ('approval' in step) {
      const { approvers, quorum, message } = step.approval;
      if (message !== undefined) checkTemplates(message, [...path, 'approval', 'message']);
      const onlyUsers = (approvers.roles?.length ?? 0) === 0 && approvers.oncall === undefined;
      if (onlyUsers && quorum !== undefined && quorum > (approvers.users?.length ?? 0)) {
        issues.push({
          path: [...path, 'approval', 'quorum'],
          message: `quorum ${quorum} can never be reached by ${approvers.users?.length ?? 0} named approver(s)`,
        });
      }
    } else if ('wait' in step) {
      if (step.wait.until !== undefined) checkBare(step.wait.until, [...path, 'wait', 'until'], 'run');
    } else if ('notify' in step) {
      checkTemplates(step.notify.channel, [...path, 'notify', 'channel']);
      if (step.notify.to !== undefined) checkTemplates(step.notify.to, [...path, 'notify', 'to']);
      if (step.notify.text !== undefined) checkTemplates(step.notify.text, [...path, 'notify', 'text']);
    } else if ('revert' in step) {
      checkRevert(entry, step.revert, byId, issues, checkTemplates);
    }
  }
  return issues;
}

/**
 * Compiles (never runs) a JavaScript step with the same wrapper the sandbox uses, so a syntax
 * error fails at load time rather than mid-incident. `vm.Script` only parses; nothing executes.
 */
function javascriptSyntaxError(code: string): string | undefined {
  try {
    new Script(`(async function (input, log) {\n${code}\n})`, { filename: 'playbook-step.js' });
    return undefined;
  } catch (err) {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
}

function checkGoto(entry: StepEntry, target: string, byId: Map<string, StepEntry>, issues: ManifestIssue[]): void {
  const path = [...entry.path, 'on_error', 'goto'];
  const to = byId.get(target);
  if (!to) {
    issues.push({ path, message: `goto target "${target}" is not a step of this playbook${suggestion(target, byId.keys())}` });
    return;
  }
  // Gotos only jump forward, within the same list or out to an enclosing one, so every run ends
  // and a branch of a parallel step never yanks its siblings elsewhere.
  let scope = entry.scope;
  let index = entry.index;
  for (;;) {
    if (to.scope === scope) {
      if (to.index > index) return;
      issues.push({ path, message: `goto target "${target}" must come after this step: gotos only jump forward, so every run ends` });
      return;
    }
    const parent = scope.parent;
    if (!parent) break;
    if (parent.parallel) {
      issues.push({ path, message: `goto target "${target}" is outside this parallel branch; a branch cannot jump out of its parallel step` });
      return;
    }
    scope = parent.scope;
    index = parent.index;
  }
  issues.push({ path, message: `goto target "${target}" is inside another branch; a goto can only reach steps of its own or an enclosing list` });
}

function checkRevert(
  entry: StepEntry,
  revert: { step: string; after: string },
  byId: Map<string, StepEntry>,
  issues: ManifestIssue[],
  checkTemplates: (value: unknown, path: ManifestPath) => void,
): void {
  const path = [...entry.path, 'revert'];
  const target = byId.get(revert.step);
  if (!target) {
    issues.push({ path: [...path, 'step'], message: `revert target "${revert.step}" is not a step of this playbook${suggestion(revert.step, byId.keys())}` });
  } else if (!('action' in target.step)) {
    issues.push({ path: [...path, 'step'], message: `revert target "${revert.step}" is a ${target.kind} step; only action steps can be reverted` });
  } else {
    const action = target.step.action;
    const spec = findAction(action);
    if (spec && !spec.undo) {
      issues.push({ path: [...path, 'step'], message: `revert target "${revert.step}" calls ${action}, which has no undo action` });
    } else if (spec?.undo) {
      for (const field of spec.undo.requires ?? []) {
        if (target.step.with?.[field] === undefined) {
          issues.push({ path: [...path, 'step'], message: `revert target "${revert.step}" must set with.${field} so ${action} can be undone` });
        }
      }
    }
    if (target.order >= entry.order) {
      issues.push({ path: [...path, 'step'], message: `revert target "${revert.step}" must come before the revert step` });
    }
  }
  const afterPath = [...path, 'after'];
  if (isWholeExpression(revert.after)) checkTemplates(revert.after, afterPath);
  else if (parseDuration(revert.after) === undefined) {
    issues.push({ path: afterPath, message: 'expected a duration such as 30s, 15m, 24h or 7d, or a ${{ expression }}' });
  }
}

const TYPE_WORDS: Record<ActionFieldType, string> = {
  string: 'an expression or string',
  number: 'a number or an expression',
  boolean: 'true, false or an expression',
  duration: 'a duration such as 30s, 15m, 24h or 7d, or an expression',
  string_list: 'a string, a list of strings or an expression',
  object: 'a mapping or an expression',
  any: 'a value',
  expression: 'a JSONata expression (bare, evaluated after the call)',
};

function fitsType(type: ActionFieldType, value: unknown): boolean {
  const dynamic = typeof value === 'string' && isWholeExpression(value);
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' || dynamic;
    case 'boolean':
      return typeof value === 'boolean' || dynamic;
    case 'duration':
      return typeof value === 'string' && (dynamic || parseDuration(value) !== undefined);
    case 'string_list':
      return typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string'));
    case 'object':
      return dynamic || (typeof value === 'object' && value !== null && !Array.isArray(value));
    case 'expression':
      return typeof value === 'string';
    case 'any':
      return true;
  }
}

function checkAction(
  name: string,
  withValues: Record<string, unknown> | undefined,
  path: ManifestPath,
  issues: ManifestIssue[],
  checkTemplates: (value: unknown, path: ManifestPath) => void,
  checkBare: (text: string, path: ManifestPath, scope: ExpressionScope) => void,
): void {
  const spec = findAction(name);
  if (!spec) {
    issues.push({ path: [...path, 'action'], message: `unknown action "${name}"${suggestion(name, Object.keys(ACTION_CATALOGUE))}` });
    return;
  }
  const values = withValues ?? {};
  for (const [field, value] of Object.entries(values)) {
    const fieldPath = [...path, 'with', field];
    const fieldSpec = spec.fields[field];
    if (!fieldSpec) {
      issues.push({
        path: fieldPath,
        atKey: true,
        message: `unknown field for ${name}${suggestion(field, Object.keys(spec.fields))} (accepted: ${Object.keys(spec.fields).join(', ')})`,
      });
      continue;
    }
    if (!fitsType(fieldSpec.type, value)) {
      issues.push({ path: fieldPath, message: `expected ${TYPE_WORDS[fieldSpec.type]}` });
      continue;
    }
    if (fieldSpec.type === 'expression') checkBare(value as string, fieldPath, 'response');
    else checkTemplates(value, fieldPath);
  }
  const missing = Object.entries(spec.fields)
    .filter(([field, fieldSpec]) => fieldSpec.required && values[field] === undefined)
    .map(([field]) => field);
  if (missing.length > 0) {
    issues.push({
      path: withValues === undefined ? [...path, 'action'] : [...path, 'with'],
      message: `${name} needs with.${missing.join(', with.')}`,
    });
  }
}
