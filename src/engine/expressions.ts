/**
 * Playbook expressions: JSONata, compiled once, evaluated with hard limits.
 *
 * Convention (see docs/PLAYBOOKS.md):
 * - Fields that are *always* expressions (`if:`, `condition.if`, `wait.until`, an input's `from:`,
 *   `trigger.when`, `http.request`'s `success`) hold bare JSONata: `if: steps.enrich.output.score >= 80`.
 *   Wrapping them in `${{ … }}` is accepted too, because people will.
 * - Every other string (`with:` values, notify text, approval messages, `revert.after`) is a
 *   literal unless it contains `${{ … }}`. A string that is exactly one `${{ expr }}` takes the
 *   expression's value with its type (a number stays a number, a list stays a list); a string
 *   that mixes text and `${{ … }}` is rendered as text. So `ip: 10.0.0.1` is the string
 *   `10.0.0.1`, never a JSONata path, and a value pulled out of an attacker's e-mail is data,
 *   never code: it is not re-parsed.
 *
 * The context is `{ event, inputs, steps, tenant }` (plus `response` for an http success check
 * and `original`/`output` for undo mappings). Each key is both a field of the root (`event.host`)
 * and a variable (`$event.host`, usable inside predicates and lambdas where the root has moved).
 *
 * Limits: JSONata 2.2's own guardrails (`timeout`, `stack`, `sequence` options, checked on every
 * node it evaluates) bound run time, recursion depth and sequence length. What they cannot bound
 * is a single native call, i.e. a catastrophic regular expression in `$match`; playbooks are
 * reviewed code, and that is the remaining trust we put in their authors.
 */
import jsonata from 'jsonata';
import { ReflexError } from '../errors.ts';

export interface ExpressionLimits {
  /** Wall time of one evaluation. */
  timeoutMs: number;
  /** Nesting depth of JSONata's evaluator (catches runaway non-tail recursion). */
  maxDepth: number;
  /** Longest sequence an expression may build (`[1..1e7]` is refused). */
  maxSequence: number;
}

export const DEFAULT_EXPRESSION_LIMITS: Readonly<ExpressionLimits> = Object.freeze({
  timeoutMs: 1_000,
  maxDepth: 500,
  maxSequence: 100_000,
});

/** What a step's result looks like to later expressions: `steps.<id>.output`, `steps.<id>.status`. */
export interface StepResultView {
  status: string;
  output?: unknown;
  error?: string;
}

/** The evaluation context of a playbook run. Extra keys (`response`, `original`, …) are allowed. */
export interface ExpressionContext {
  readonly event?: unknown;
  readonly inputs?: Readonly<Record<string, unknown>>;
  readonly steps?: Readonly<Record<string, StepResultView>>;
  readonly tenant?: unknown;
  readonly [name: string]: unknown;
}

export type TemplatePart =
  | { kind: 'text'; text: string }
  | { kind: 'expression'; expression: Expression };

const OPEN = '${{';
const CLOSE = '}}';
const CACHE_LIMIT = 2_000;

interface JsonataFailure {
  code?: string;
  position?: number;
  token?: string;
  message?: string;
}

function describeFailure(err: unknown): { code: string; message: string; position: number | undefined } {
  const f = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as JsonataFailure;
  return { code: f.code ?? 'unknown', message: f.message ?? String(err), position: f.position };
}

function invalid(source: string, label: string, reason: string, extra: Record<string, unknown> = {}, cause?: unknown): ReflexError {
  return new ReflexError('input.invalid', `${label}: expression \`${source}\` ${reason}`, {
    retryable: false,
    safeMessage: `The playbook expression at ${label} is not valid: ${reason}.`,
    details: { expression: source, field: label, problem: `expression \`${source}\` ${reason}`, ...extra },
    cause,
  });
}

/**
 * A compiled JSONata expression. Compile with `Expression.compile` (cached by source); evaluation
 * never throws anything but a `ReflexError('input.invalid')` naming the expression and its field.
 *
 * @example
 * const score = Expression.compile('steps.enrich.output.score', 'steps[1].if');
 * await score.evaluate({ steps: { enrich: { status: 'succeeded', output: { score: 91 } } } }); // 91
 */
export class Expression {
  private static readonly cache = new Map<string, jsonata.Expression>();

  private constructor(
    readonly source: string,
    readonly label: string,
    private readonly compiled: jsonata.Expression,
    private readonly limits: ExpressionLimits,
  ) {}

  /** Parses `source`; throws `ReflexError('input.invalid')` with the JSONata message and position. */
  static compile(source: string, label: string, limits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS): Expression {
    if (source.trim() === '') throw invalid(source, label, 'is empty');
    const key = `${limits.timeoutMs}/${limits.maxDepth}/${limits.maxSequence}\u0000${source}`;
    let compiled = Expression.cache.get(key);
    if (!compiled) {
      try {
        compiled = jsonata(source, { timeout: limits.timeoutMs, stack: limits.maxDepth, sequence: limits.maxSequence });
      } catch (err) {
        const f = describeFailure(err);
        const at = f.position === undefined ? '' : ` (at character ${f.position})`;
        throw invalid(source, label, `does not compile: ${f.message}${at}`, { jsonataCode: f.code, position: f.position }, err);
      }
      if (mentionsVariable(compiled.ast(), 'eval')) {
        // `$eval(event.raw.x)` would run attacker-supplied text as an expression over our context.
        throw invalid(source, label, 'uses $eval, which would run data as code; playbook expressions cannot use it');
      }
      // A bounded cache: manifests are few, but callers compiling ad-hoc text must not grow memory forever.
      if (Expression.cache.size >= CACHE_LIMIT) Expression.cache.clear();
      Expression.cache.set(key, compiled);
    }
    return new Expression(source, label, compiled, limits);
  }

  /** The compiled tree, for static checks such as "does `steps.x` name a step that exists". */
  ast(): jsonata.ExprNode {
    return this.compiled.ast();
  }

  /** Evaluates against the context; the result is plain JSON (or `undefined` when nothing matched). */
  async evaluate(context: ExpressionContext): Promise<unknown> {
    const bindings: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(context)) bindings[name] = value;
    let result: unknown;
    try {
      result = await this.compiled.evaluate(context, bindings);
    } catch (err) {
      const f = describeFailure(err);
      if (f.code === 'D1012') {
        throw invalid(this.source, this.label, `timed out after ${this.limits.timeoutMs} ms`, { reason: 'timeout' }, err);
      }
      if (f.code === 'D1011') {
        throw invalid(this.source, this.label, `recursed deeper than ${this.limits.maxDepth} levels`, { reason: 'depth' }, err);
      }
      if (f.code === 'D2015' || f.code === 'D2014') {
        throw invalid(this.source, this.label, `built a sequence longer than ${this.limits.maxSequence} items`, { reason: 'sequence' }, err);
      }
      throw invalid(this.source, this.label, `failed: ${f.message}`, { jsonataCode: f.code, position: f.position }, err);
    }
    return toPlainJson(result, 0);
  }

  /** Evaluates and casts with JSONata's own truthiness (`$boolean`), so `[]`, `""` and `0` are false. */
  async test(context: ExpressionContext): Promise<boolean> {
    return jsonataBoolean(await this.evaluate(context));
  }
}

function mentionsVariable(node: unknown, name: string): boolean {
  if (Array.isArray(node)) return node.some((item) => mentionsVariable(item, name));
  if (typeof node !== 'object' || node === null) return false;
  const n = node as { type?: unknown; value?: unknown };
  if (n.type === 'variable' && n.value === name) return true;
  return Object.values(node).some((child) => typeof child === 'object' && mentionsVariable(child, name));
}

/** Copies a JSONata result into plain JSON: sequences become arrays, functions vanish, no shared references. */
function toPlainJson(value: unknown, depth: number): unknown {
  if (depth > 200) throw new ReflexError('input.invalid', 'expression result is nested too deeply', { retryable: false });
  if (value === undefined || value === null) return value;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'function':
    case 'symbol':
    case 'bigint':
      return undefined;
    default:
      break;
  }
  if (Array.isArray(value)) {
    return value.map((item) => toPlainJson(item, depth + 1)).filter((item) => item !== undefined);
  }
  const record = value as Record<string, unknown>;
  if (record['_jsonata_lambda'] === true || record['_jsonata_function'] === true) return undefined;
  if (value instanceof Date) return value.toISOString();
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(record)) {
    const plain = toPlainJson(item, depth + 1);
    if (plain !== undefined) out[key] = plain;
  }
  return out;
}

/** JSONata's `$boolean` casting rules. */
export function jsonataBoolean(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.some((item) => jsonataBoolean(item));
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'string':
      return value.length > 0;
    case 'number':
      return value !== 0;
    case 'object':
      return Object.keys(value).length > 0;
    default:
      return false;
  }
}

/** True when a string holds at least one `${{ … }}` and so is not a plain literal. */
export function isTemplate(text: string): boolean {
  return text.includes(OPEN);
}

/**
 * Finds the `}}` that closes an expression opened at `start`, skipping braces and quotes that
 * belong to the JSONata inside (`${{ {"a": {"b": 1}} }}` must not end at the first `}}`).
 */
function findClose(text: string, start: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (quote !== undefined) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end === -1) return -1;
      i = end + 1;
    } else if (ch === '{') depth++;
    else if (ch === '}') {
      if (depth === 0 && text[i + 1] === '}') return i;
      if (depth > 0) depth--;
    }
  }
  return -1;
}

/**
 * Splits a `with:`-style string into literal text and compiled expressions.
 * Throws `ReflexError('input.invalid')` naming `label` for an unterminated `${{` or bad JSONata.
 */
export function compileTemplate(text: string, label: string, limits?: ExpressionLimits): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf(OPEN, at);
    if (open === -1) {
      parts.push({ kind: 'text', text: text.slice(at) });
      break;
    }
    if (open > at) parts.push({ kind: 'text', text: text.slice(at, open) });
    const close = findClose(text, open + OPEN.length);
    if (close === -1) throw invalid(text, label, `has a \`${OPEN}\` without a closing \`${CLOSE}\``);
    const source = text.slice(open + OPEN.length, close).trim();
    if (source === '') throw invalid(text, label, `has an empty \`${OPEN} ${CLOSE}\``);
    parts.push({ kind: 'expression', expression: Expression.compile(source, label, limits) });
    at = close + CLOSE.length;
  }
  return parts;
}

/** The expression of a string that is exactly one `${{ expr }}` (surrounding blanks allowed). */
function wholeExpression(parts: TemplatePart[]): Expression | undefined {
  const meaningful = parts.filter((p) => p.kind === 'expression' || p.text.trim() !== '');
  const only = meaningful.length === 1 ? meaningful[0] : undefined;
  return only?.kind === 'expression' ? only.expression : undefined;
}

function renderText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/**
 * Compiles a field that is always an expression. `${{ expr }}` is unwrapped so both spellings
 * work; anything else is taken as bare JSONata.
 */
export function compileBareExpression(text: string, label: string, limits?: ExpressionLimits): Expression {
  if (isTemplate(text)) {
    const whole = wholeExpression(compileTemplate(text, label, limits));
    if (!whole) throw invalid(text, label, `must be a single expression, not text mixed with \`${OPEN} ${CLOSE}\``);
    return whole;
  }
  return Expression.compile(text, label, limits);
}

/** Evaluates an always-an-expression field (`if:`) to a boolean with JSONata truthiness. */
export async function evaluateCondition(text: string, context: ExpressionContext, label: string): Promise<boolean> {
  return compileBareExpression(text, label).test(context);
}

/** Resolves one template string: a whole `${{ expr }}` keeps its type; mixed text renders as a string. */
export async function resolveTemplate(text: string, context: ExpressionContext, label: string): Promise<unknown> {
  if (!isTemplate(text)) return text;
  const parts = compileTemplate(text, label);
  const whole = wholeExpression(parts);
  if (whole) return whole.evaluate(context);
  let out = '';
  for (const part of parts) out += part.kind === 'text' ? part.text : renderText(await part.expression.evaluate(context));
  return out;
}

/**
 * Resolves a `with:` value (any JSON) against the context: strings are templates, lists and maps
 * are walked, everything else is returned as is. Keys whose value resolves to nothing are dropped.
 *
 * @example
 * await resolveValue({ ip: '${{ inputs.source_ip }}', ttl: '24h' }, { inputs: { source_ip: '203.0.113.9' } }, 'steps[2].with');
 * // { ip: '203.0.113.9', ttl: '24h' }
 */
export async function resolveValue(value: unknown, context: ExpressionContext, label: string): Promise<unknown> {
  if (typeof value === 'string') return resolveTemplate(value, context, label);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const [i, item] of value.entries()) {
      const resolved = await resolveValue(item, context, `${label}[${i}]`);
      if (resolved !== undefined) out.push(resolved);
    }
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const resolved = await resolveValue(item, context, `${label}.${key}`);
      if (resolved !== undefined) out[key] = resolved;
    }
    return out;
  }
  return value;
}

/**
 * Compiles every template inside a value (for manifest validation); returns the expressions found
 * with the field each came from, so callers can run static checks on them.
 */
export function compileValueTemplates(value: unknown, label: string): Expression[] {
  if (typeof value === 'string') {
    return compileTemplate(value, label).flatMap((p) => (p.kind === 'expression' ? [p.expression] : []));
  }
  if (Array.isArray(value)) return value.flatMap((item, i) => compileValueTemplates(item, `${label}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => compileValueTemplates(item, `${label}.${key}`));
  }
  return [];
}

/** True when the string is exactly one `${{ expr }}`, i.e. its value is decided at run time. */
export function isWholeExpression(text: string): boolean {
  if (!isTemplate(text)) return false;
  try {
    return wholeExpression(compileTemplate(text, 'value')) !== undefined;
  } catch {
    return false;
  }
}

export interface RootReference {
  /** `steps`, `inputs`, `event`, `tenant`, … */
  root: string;
  /** The name right after the root (`enrich` in `steps.enrich.output`), when there is one. */
  name: string | undefined;
  position: number | undefined;
}

/**
 * Lists the context paths an expression reads from its root: `steps.enrich.output` and
 * `$steps.enrich.output` both give `{ root: 'steps', name: 'enrich' }`. Paths inside predicates,
 * later path steps and lambda bodies are relative to something else and are not reported, so a
 * caller can flag typos without false alarms.
 */
export function rootReferences(expression: Expression): RootReference[] {
  const found: RootReference[] = [];
  const recorded = new Set<unknown>();
  const visit = (node: unknown, atRoot: boolean): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item, atRoot);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const n = node as Record<string, unknown> & { type?: string; value?: unknown; position?: number };
    if (n.type === 'path' && Array.isArray(n['steps'])) {
      const steps = n['steps'] as Array<Record<string, unknown>>;
      const first = steps[0];
      const second = steps[1];
      const secondName = second?.['type'] === 'name' ? String(second['value']) : undefined;
      if (first && ((first['type'] === 'name' && atRoot) || first['type'] === 'variable') && typeof first['value'] === 'string') {
        found.push({ root: first['value'], name: secondName, position: first['position'] as number | undefined });
        recorded.add(first);
      }
      steps.forEach((step, i) => visit(step, atRoot && i === 0));
      return;
    }
    if (n.type === 'variable' && typeof n.value === 'string' && n.value !== '' && !recorded.has(node)) {
      found.push({ root: n.value, name: undefined, position: n.position });
    }
    for (const [key, child] of Object.entries(n)) {
      if (key === 'predicate' || key === 'stages' || key === 'group') visit(child, false);
      else if (key === 'body' && n.type === 'lambda') visit(child, false);
      else if (typeof child === 'object') visit(child, atRoot);
    }
  };
  visit(expression.ast(), true);
  return found;
}
