/**
 * Runs a playbook's inline JavaScript in a fresh V8 isolate (isolated-vm).
 *
 * The snippet is the body of an async function `(input, log) => …`; what it returns is the step
 * output. Nothing of the host crosses into the isolate: the input goes in as a copy of its JSON,
 * the output comes out as a JSON string, and the only host function reachable is `log`, which
 * carries one string at a time out (also bound as `console.log/warn/error`, because people type
 * that). There is no `require`, `process`, timers, network or file system in an isolate.
 *
 * Limits (all non-retryable when hit, because running the same code again hits them again):
 * - memory: the isolate's `memoryLimit` (default 32 MB); exceeding it disposes the isolate.
 * - time: a CPU `timeout` on every entry into the isolate plus a wall-clock timer that disposes
 *   the isolate, so neither `while (true) {}` nor `await new Promise(() => {})` can hang a worker.
 * - output 1 MiB, input 1 MiB, 200 log lines of up to 2,000 characters.
 * A new isolate per run means one run cannot leave state behind for the next.
 *
 * @example
 * const { output, logs } = await runJavaScript('log("scoring"); return { risky: input.score > 80 };', { score: 91 });
 * // output: { risky: true }, logs: ['scoring']
 */
import ivm from 'isolated-vm';
import { ReflexError } from '../../errors.ts';

export interface JsSandboxOptions {
  /** Isolate heap limit in MB (isolated-vm's minimum is 8). */
  memoryLimitMb?: number;
  /** Wall-clock limit for the whole run, compile included. */
  timeoutMs?: number;
  maxInputBytes?: number;
  maxOutputBytes?: number;
  maxLogLines?: number;
  /** Named in error messages, e.g. the step id. */
  label?: string;
}

export interface JsSandboxResult {
  /** The snippet's return value as plain JSON (`null` when it returned nothing). */
  output: unknown;
  logs: string[];
  durationMs: number;
}

export const JS_SANDBOX_DEFAULTS = {
  memoryLimitMb: 32,
  timeoutMs: 5_000,
  maxInputBytes: 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxLogLines: 200,
  maxLogLineChars: 2_000,
} as const;

/**
 * Trusted glue, compiled in the isolate before the snippet: formats `log` arguments to one string
 * inside the isolate (so an object passed to `log` is never structured-cloned into the host) and
 * serialises the result there.
 */
const HARNESS = `(function (emit, userFunction, input, maxChars) {
  'use strict';
  const format = (value) => {
    if (typeof value === 'string') return value;
    try { const json = JSON.stringify(value); return json === undefined ? String(value) : json; }
    catch (e) { return String(value); }
  };
  const log = (...args) => {
    let line = args.map(format).join(' ');
    if (line.length > maxChars) line = line.slice(0, maxChars) + '…';
    emit(line);
  };
  globalThis.console = Object.freeze({ log, info: log, warn: log, error: log, debug: log });
  return Promise.resolve(userFunction(input, log)).then((value) => {
    const json = JSON.stringify(value === undefined ? null : value);
    return json === undefined ? 'null' : json;
  });
})`;

function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Runs `code` against `input` in a new isolate; see the module comment for the contract. */
export async function runJavaScript(code: string, input: unknown, options: JsSandboxOptions = {}): Promise<JsSandboxResult> {
  const memoryLimitMb = options.memoryLimitMb ?? JS_SANDBOX_DEFAULTS.memoryLimitMb;
  const timeoutMs = options.timeoutMs ?? JS_SANDBOX_DEFAULTS.timeoutMs;
  const maxOutputBytes = options.maxOutputBytes ?? JS_SANDBOX_DEFAULTS.maxOutputBytes;
  const maxLogLines = options.maxLogLines ?? JS_SANDBOX_DEFAULTS.maxLogLines;
  const label = options.label ?? 'javascript step';

  const inputJson = JSON.stringify(input ?? null);
  if (inputJson === undefined) throw new ReflexError('input.invalid', `${label}: input is not JSON`, { retryable: false });
  if (Buffer.byteLength(inputJson, 'utf8') > (options.maxInputBytes ?? JS_SANDBOX_DEFAULTS.maxInputBytes)) {
    throw new ReflexError('input.too_large', `${label}: input is larger than the sandbox accepts`, { retryable: false });
  }

  const started = performance.now();
  const logs: string[] = [];
  let droppedLogs = 0;
  const isolate = new ivm.Isolate({ memoryLimit: memoryLimitMb });
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const wallClock = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      // Disposing interrupts whatever the isolate is doing, sync or awaiting a promise that never settles.
      if (!isolate.isDisposed) isolate.dispose();
      reject(new ReflexError('timeout', `${label}: JavaScript ran longer than ${timeoutMs} ms and was stopped`, { retryable: false }));
    }, timeoutMs);
  });
  try {
    const run = async (): Promise<unknown> => {
      const context = await isolate.createContext();
      const remaining = (): number => Math.max(1, Math.ceil(timeoutMs - (performance.now() - started)));
      const harness = await context.eval(HARNESS, { reference: true, timeout: remaining() });
      // lineOffset -1: the wrapper's first line is ours, so stack traces match the author's line numbers.
      let userFunction: ivm.Reference;
      try {
        userFunction = await context.eval(`(async function (input, log) {\n${code}\n})`, {
          reference: true,
          timeout: remaining(),
          filename: 'playbook-step.js',
          lineOffset: -1,
        });
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
        throw new ReflexError('input.invalid', `${label}: JavaScript does not compile: ${errorText(err)}`, {
          retryable: false,
          details: { reason: 'syntax' },
          cause: err,
        });
      }
      const emit = new ivm.Callback((line: unknown) => {
        if (logs.length < maxLogLines) logs.push(String(line));
        else droppedLogs++;
      });
      const inputCopy = new ivm.ExternalCopy(JSON.parse(inputJson) as unknown).copyInto({ release: true });
      return harness.apply(
        undefined,
        [emit, userFunction.derefInto({ release: true }), inputCopy, JS_SANDBOX_DEFAULTS.maxLogLineChars],
        { timeout: remaining(), result: { promise: true, copy: true } },
      );
    };
    let raw: unknown;
    try {
      raw = await Promise.race([run(), wallClock]);
    } catch (err) {
      if (err instanceof ReflexError) throw err;
      const message = errorText(err);
      if (timedOut || /Script execution timed out/i.test(message)) {
        throw new ReflexError('timeout', `${label}: JavaScript ran longer than ${timeoutMs} ms and was stopped`, { retryable: false, cause: err });
      }
      if (isolate.isDisposed || /memory limit|allocation failed|out of memory/i.test(message)) {
        throw new ReflexError('input.invalid', `${label}: JavaScript exceeded the ${memoryLimitMb} MB memory limit and was stopped`, {
          retryable: false,
          safeMessage: `The script used more than ${memoryLimitMb} MB of memory and was stopped.`,
          details: { reason: 'memory_limit' },
          cause: err,
        });
      }
      // An ordinary exception of the author's code: the step's retry policy decides.
      throw new ReflexError('upstream.rejected', `${label}: JavaScript threw ${message}`, {
        retryable: true,
        safeMessage: 'The script step failed.',
        details: { reason: 'script_error' },
        cause: err,
      });
    }
    if (typeof raw !== 'string') {
      throw new ReflexError('upstream.rejected', `${label}: JavaScript result could not be serialised`, { retryable: false });
    }
    if (Buffer.byteLength(raw, 'utf8') > maxOutputBytes) {
      throw new ReflexError('input.too_large', `${label}: JavaScript output is larger than ${maxOutputBytes} bytes`, { retryable: false });
    }
    if (droppedLogs > 0) logs.push(`… ${droppedLogs} more log line(s) dropped`);
    return { output: JSON.parse(raw) as unknown, logs, durationMs: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(timer);
    wallClock.catch(() => undefined);
    if (!isolate.isDisposed) isolate.dispose();
  }
}
