/**
 * The validated, normalised form of a playbook manifest, as the engine consumes it. Durations are
 * milliseconds, defaults are filled in, and every step knows the line it was written on so a
 * run's errors can point back at the manifest. Expressions stay as source text: they are
 * compiled (and cached) by `expressions.ts`, and a playbook stays plain JSON that can be stored
 * with a run as the exact version it executed.
 */

export type InputType =
  | 'ip' | 'domain' | 'url' | 'email' | 'hash' | 'user' | 'host' | 'string' | 'number' | 'boolean' | 'duration';

export const INPUT_TYPES: readonly InputType[] = [
  'ip', 'domain', 'url', 'email', 'hash', 'user', 'host', 'string', 'number', 'boolean', 'duration',
];

/** Severity of a SentinelNet event: 1 = critical … 4 = info. */
export type Severity = 1 | 2 | 3 | 4;

/** Roles of DESIGN §6 that an approval may name. */
export type Role = 'viewer' | 'analyst' | 'responder' | 'approver' | 'admin';

export const ROLES: readonly Role[] = ['viewer', 'analyst', 'responder', 'approver', 'admin'];

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

export interface PlaybookTrigger {
  /** Event types that start the playbook; empty when it only runs manually. */
  eventTypes: string[];
  /** Severities that match; empty means any. */
  severities: Severity[];
  /** Extra JSONata filter over `{ event, tenant }`. */
  when?: string;
  /** Whether `/reflex run <playbook>` may start it by hand. */
  manual: boolean;
}

export interface PlaybookInput {
  name: string;
  type: InputType;
  /** A list of values of `type` rather than one. */
  list: boolean;
  /** JSONata over `{ event, tenant }` that extracts the value from the triggering event. */
  from?: string;
  required: boolean;
  default?: unknown;
  description?: string;
  /** Whether the value is hidden in chat and logs (e.g. a password reset token). */
  sensitive: boolean;
}

export type OnError = { kind: 'fail' } | { kind: 'continue' } | { kind: 'goto'; step: string };

export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts: number;
  delayMs: number;
  backoff: 'fixed' | 'exponential';
}

export type StepKind = 'action' | 'script' | 'condition' | 'approval' | 'wait' | 'notify' | 'parallel' | 'revert';

export const STEP_KINDS: readonly StepKind[] = [
  'action', 'script', 'condition', 'approval', 'wait', 'notify', 'parallel', 'revert',
];

interface StepBase {
  id: string;
  name?: string;
  /** JSONata; when it is false the step is skipped (status `skipped`) and the run moves on. */
  if?: string;
  onError: OnError;
  location: SourceLocation;
}

export interface ActionStep extends StepBase {
  kind: 'action';
  action: string;
  /** Values with `${{ }}` templates, resolved just before the call. */
  with: Record<string, unknown>;
  timeoutMs: number;
  retry: RetryPolicy;
}

export type ScriptSource = { language: 'javascript'; code: string } | { language: 'bash' | 'python'; file: string };

export interface ScriptStep extends StepBase {
  kind: 'script';
  script: ScriptSource;
  with: Record<string, unknown>;
  memoryMb: number;
  timeoutMs: number;
  retry: RetryPolicy;
}

export interface ConditionStep extends StepBase {
  kind: 'condition';
  condition: string;
  then: Step[];
  else: Step[];
}

export interface ApprovalStep extends StepBase {
  kind: 'approval';
  approvers: { roles: Role[]; users: string[]; oncall?: string };
  quorum: number;
  expiresMs: number;
  onExpiry: 'deny' | 'escalate';
  /** When true the requester can never approve (DESIGN §3.4). */
  destructive: boolean;
  /** Shown on the approval card; a template. */
  message?: string;
}

export type WaitStep = StepBase & { kind: 'wait' } & (
  | { mode: 'duration'; durationMs: number }
  | { mode: 'event'; until: string; timeoutMs: number }
);

export interface NotifyStep extends StepBase {
  kind: 'notify';
  /** `incident`, `reporter`, `#channel`, `email:address`, `oncall:schedule`, or a template. */
  channel: string;
  to?: string;
  template?: string;
  text?: string;
  timeoutMs: number;
  retry: RetryPolicy;
}

export interface ParallelBranch {
  name: string;
  steps: Step[];
}

export interface ParallelStep extends StepBase {
  kind: 'parallel';
  branches: ParallelBranch[];
  timeoutMs: number;
}

/** `after` is fixed, or a whole `${{ expr }}` whose value must be a duration at run time. */
export type DurationSetting = { kind: 'fixed'; ms: number } | { kind: 'expression'; source: string };

export interface RevertStep extends StepBase {
  kind: 'revert';
  /** The action step whose effect is undone. */
  target: string;
  /** The undo action, from the catalogue entry of the target's action. */
  undoAction: string;
  after: DurationSetting;
}

export type Step = ActionStep | ScriptStep | ConditionStep | ApprovalStep | WaitStep | NotifyStep | ParallelStep | RevertStep;

export interface Playbook {
  id: string;
  name: string;
  version: number;
  description: string;
  trigger: PlaybookTrigger;
  inputs: PlaybookInput[];
  steps: Step[];
  location: SourceLocation;
}
