/**
 * Turns a checked raw manifest into the engine's `Playbook`: camelCase, milliseconds, defaults
 * filled in. Defaults live here and only here, so the engine never guesses and
 * docs/PLAYBOOKS.md has one table to mirror.
 */
import { findAction } from '../action-catalogue.ts';
import { ReflexError } from '../../errors.ts';
import { isWholeExpression } from '../expressions.ts';
import { stepKind } from './checks.ts';
import { parseDuration } from './duration.ts';
import type { RawOnError, RawPlaybook, RawRetry, RawStep } from './schema.ts';
import type { ManifestPath } from './source-map.ts';
import type { OnError, Playbook, PlaybookInput, RetryPolicy, Severity, SourceLocation, Step } from './types.ts';

export const STEP_DEFAULTS = {
  actionTimeoutMs: 60_000,
  scriptTimeoutMs: 30_000,
  notifyTimeoutMs: 30_000,
  parallelTimeoutMs: 3_600_000,
  javascriptMemoryMb: 32,
  processMemoryMb: 256,
  /** Long enough to wake someone, short enough that a containment is not left hanging. */
  approvalExpiresMs: 15 * 60_000,
  approvalQuorum: 1,
  retryDelayMs: 5_000,
  /** Integration calls carry idempotency keys, so retrying them is safe. */
  actionAttempts: 3,
  notifyAttempts: 3,
  /** Scripts may not be idempotent: no retry unless the author asks for it. */
  scriptAttempts: 1,
} as const;

export type Locate = (path: ManifestPath) => SourceLocation;

function ms(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = parseDuration(text);
  if (value === undefined) throw new ReflexError('internal', `unchecked duration ${text}`);
  return value;
}

function retryPolicy(raw: RawRetry | undefined, attempts: number): RetryPolicy {
  return {
    maxAttempts: raw?.max_attempts ?? attempts,
    delayMs: ms(raw?.delay, STEP_DEFAULTS.retryDelayMs),
    backoff: raw?.backoff ?? 'exponential',
  };
}

function onError(raw: RawOnError | undefined): OnError {
  if (raw === undefined || raw === 'fail') return { kind: 'fail' };
  if (raw === 'continue') return { kind: 'continue' };
  return { kind: 'goto', step: raw.goto };
}

function normalizeSteps(raws: RawStep[], path: ManifestPath, locate: Locate, byId: Map<string, RawStep>): Step[] {
  return raws.map((raw, index) => normalizeStep(raw, [...path, index], locate, byId));
}

function normalizeStep(raw: RawStep, path: ManifestPath, locate: Locate, byId: Map<string, RawStep>): Step {
  const base = {
    id: raw.id,
    ...(raw.name !== undefined ? { name: raw.name } : {}),
    ...(raw.if !== undefined ? { if: raw.if } : {}),
    onError: onError(raw.on_error),
    location: locate(path),
  };
  const kind = stepKind(raw);
  if ('action' in raw) {
    return {
      ...base,
      kind: 'action',
      action: raw.action,
      with: raw.with ?? {},
      timeoutMs: ms(raw.timeout, STEP_DEFAULTS.actionTimeoutMs),
      retry: retryPolicy(raw.retry, STEP_DEFAULTS.actionAttempts),
    };
  }
  if ('script' in raw) {
    const { file, javascript, memory_mb: memoryMb } = raw.script;
    const script =
      javascript !== undefined
        ? { language: 'javascript' as const, code: javascript }
        : { language: file?.endsWith('.py') ? ('python' as const) : ('bash' as const), file: file ?? '' };
    return {
      ...base,
      kind: 'script',
      script,
      with: raw.with ?? {},
      memoryMb: memoryMb ?? (javascript !== undefined ? STEP_DEFAULTS.javascriptMemoryMb : STEP_DEFAULTS.processMemoryMb),
      timeoutMs: ms(raw.timeout, STEP_DEFAULTS.scriptTimeoutMs),
      retry: retryPolicy(raw.retry, STEP_DEFAULTS.scriptAttempts),
    };
  }
  if ('condition' in raw) {
    return {
      ...base,
      kind: 'condition',
      condition: raw.condition.if,
      then: normalizeSteps(raw.condition.then, [...path, 'condition', 'then'], locate, byId),
      else: normalizeSteps(raw.condition.else ?? [], [...path, 'condition', 'else'], locate, byId),
    };
  }
  if ('approval' in raw) {
    const a = raw.approval;
    return {
      ...base,
      kind: 'approval',
      approvers: {
        roles: a.approvers.roles ?? [],
        users: a.approvers.users ?? [],
        ...(a.approvers.oncall !== undefined ? { oncall: a.approvers.oncall } : {}),
      },
      quorum: a.quorum ?? STEP_DEFAULTS.approvalQuorum,
      expiresMs: ms(a.expires, STEP_DEFAULTS.approvalExpiresMs),
      onExpiry: a.on_expiry ?? 'deny',
      // Secure by default: an approval gate exists because the next step hurts if it is wrong.
      destructive: a.destructive ?? true,
      ...(a.message !== undefined ? { message: a.message } : {}),
    };
  }
  if ('wait' in raw) {
    const w = raw.wait;
    return w.until !== undefined
      ? { ...base, kind: 'wait', mode: 'event', until: w.until, timeoutMs: ms(w.timeout, 0) }
      : { ...base, kind: 'wait', mode: 'duration', durationMs: ms(w.duration, 0) };
  }
  if ('notify' in raw) {
    const n = raw.notify;
    return {
      ...base,
      kind: 'notify',
      channel: n.channel,
      ...(n.to !== undefined ? { to: n.to } : {}),
      ...(n.template !== undefined ? { template: n.template } : {}),
      ...(n.text !== undefined ? { text: n.text } : {}),
      timeoutMs: ms(raw.timeout, STEP_DEFAULTS.notifyTimeoutMs),
      retry: retryPolicy(raw.retry, STEP_DEFAULTS.notifyAttempts),
    };
  }
  if ('parallel' in raw) {
    return {
      ...base,
      kind: 'parallel',
      branches: Object.entries(raw.parallel).map(([name, steps]) => ({
        name,
        steps: normalizeSteps(steps, [...path, 'parallel', name], locate, byId),
      })),
      timeoutMs: ms(raw.timeout, STEP_DEFAULTS.parallelTimeoutMs),
    };
  }
  if ('revert' in raw) {
    const target = byId.get(raw.revert.step);
    const undo = target && 'action' in target ? findAction(target.action)?.undo : undefined;
    if (!undo) throw new ReflexError('internal', `unchecked revert target ${raw.revert.step}`);
    const after = raw.revert.after;
    return {
      ...base,
      kind: 'revert',
      target: raw.revert.step,
      undoAction: undo.action,
      after: isWholeExpression(after) ? { kind: 'expression', source: after } : { kind: 'fixed', ms: ms(after, 0) },
    };
  }
  throw new ReflexError('internal', `step kind ${kind} has no normaliser`);
}

function collect(raws: RawStep[], byId: Map<string, RawStep>): void {
  for (const raw of raws) {
    byId.set(raw.id, raw);
    if ('condition' in raw) {
      collect(raw.condition.then, byId);
      collect(raw.condition.else ?? [], byId);
    } else if ('parallel' in raw) {
      for (const steps of Object.values(raw.parallel)) collect(steps, byId);
    }
  }
}

export function normalizePlaybook(raw: RawPlaybook, locate: Locate): Playbook {
  const byId = new Map<string, RawStep>();
  collect(raw.steps, byId);
  const eventTypes = raw.trigger.event_type === undefined ? [] : [raw.trigger.event_type].flat();
  const severities: Severity[] = raw.trigger.severity === undefined ? [] : [raw.trigger.severity].flat();
  const inputs: PlaybookInput[] = Object.entries(raw.inputs ?? {}).map(([name, input]) => ({
    name,
    type: input.type,
    list: input.list ?? false,
    ...(input.from !== undefined ? { from: input.from } : {}),
    required: input.required ?? true,
    ...(input.default !== undefined ? { default: input.default } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
    sensitive: input.sensitive ?? false,
  }));
  return {
    id: raw.id,
    name: raw.name,
    version: raw.version,
    description: raw.description ?? '',
    trigger: {
      eventTypes,
      severities: [...new Set(severities)].sort(),
      ...(raw.trigger.when !== undefined ? { when: raw.trigger.when } : {}),
      manual: raw.trigger.manual ?? false,
    },
    inputs,
    steps: normalizeSteps(raw.steps, ['steps'], locate, byId),
    location: locate([]),
  };
}
