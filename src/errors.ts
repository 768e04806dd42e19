/**
 * The one root error of SENTreflex.
 *
 * Every failure that crosses a boundary (HTTP, chat, queue) is a `ReflexError` with a string
 * `code`, a `retryable` flag, an internal message (logged, may hold details) and a `safeMessage`
 * that may be shown to a chat user or an API client. Retry behaviour lives here, on the error,
 * not in `if` chains at call sites: queue workers ask `isRetryable(err)` and stop retrying when it
 * says no (BullMQ's `UnrecoverableError` is thrown for them).
 *
 * @example
 * throw new ReflexError('intel.rate_limited', 'VirusTotal answered 429', {
 *   retryable: true, retryAfterMs: 60_000, safeMessage: 'VirusTotal is rate limiting us; retrying.',
 * });
 */
export type ErrorCode =
  | 'config.invalid'
  | 'input.invalid'
  | 'input.too_large'
  | 'auth.unauthenticated'
  | 'auth.forbidden'
  | 'not_found'
  | 'conflict'
  | 'capacity.exceeded'
  | 'upstream.unavailable'
  | 'upstream.rejected'
  | 'upstream.rate_limited'
  | 'timeout'
  | 'internal';

export interface ReflexErrorOptions {
  retryable?: boolean;
  /** Shown to users (chat, API). Defaults to a generic sentence for the code. */
  safeMessage?: string;
  /** When the caller may try again (from a vendor's `Retry-After`, or our own back-pressure). */
  retryAfterMs?: number;
  /** Structured details safe to return to an API client (e.g. which field failed validation). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

const DEFAULT_SAFE: Record<ErrorCode, string> = {
  'config.invalid': 'SENTreflex is misconfigured.',
  'input.invalid': 'The input is not valid.',
  'input.too_large': 'The input is too large.',
  'auth.unauthenticated': 'Authentication is required.',
  'auth.forbidden': 'You are not authorised to do that.',
  not_found: 'Not found.',
  conflict: 'That conflicts with the current state.',
  'capacity.exceeded': 'SENTreflex is over capacity; try again shortly.',
  'upstream.unavailable': 'A connected service is unavailable.',
  'upstream.rejected': 'A connected service rejected the request.',
  'upstream.rate_limited': 'A connected service is rate limiting us.',
  timeout: 'The operation timed out.',
  internal: 'Something went wrong inside SENTreflex.',
};

const DEFAULT_RETRYABLE: Record<ErrorCode, boolean> = {
  'config.invalid': false,
  'input.invalid': false,
  'input.too_large': false,
  'auth.unauthenticated': false,
  'auth.forbidden': false,
  not_found: false,
  conflict: false,
  'capacity.exceeded': true,
  'upstream.unavailable': true,
  'upstream.rejected': false,
  'upstream.rate_limited': true,
  timeout: true,
  internal: false,
};

const HTTP_STATUS: Record<ErrorCode, number> = {
  'config.invalid': 500,
  'input.invalid': 400,
  'input.too_large': 413,
  'auth.unauthenticated': 401,
  'auth.forbidden': 403,
  not_found: 404,
  conflict: 409,
  'capacity.exceeded': 429,
  'upstream.unavailable': 502,
  'upstream.rejected': 502,
  'upstream.rate_limited': 503,
  timeout: 504,
  internal: 500,
};

export class ReflexError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly safeMessage: string;
  readonly retryAfterMs: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: ReflexErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ReflexError';
    this.code = code;
    this.retryable = opts.retryable ?? DEFAULT_RETRYABLE[code];
    this.safeMessage = opts.safeMessage ?? DEFAULT_SAFE[code];
    this.retryAfterMs = opts.retryAfterMs;
    this.details = opts.details;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  /** The JSON body an HTTP edge answers with. Never includes the internal message. */
  toResponseBody(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.safeMessage,
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }
}

/** Wraps anything thrown into a ReflexError; unknown errors become non-retryable `internal`. */
export function toReflexError(err: unknown): ReflexError {
  if (err instanceof ReflexError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ReflexError('internal', message, { cause: err });
}

export function isRetryable(err: unknown): boolean {
  return err instanceof ReflexError ? err.retryable : true;
}

/** Text safe to post into a chat channel for any thrown value. */
export function chatSafeText(err: unknown): string {
  const e = toReflexError(err);
  return `:warning: ${e.safeMessage} (code \`${e.code}\`)`;
}

/** Exhaustiveness helper for switches over codes and states. */
export function assertNever(value: never): never {
  throw new ReflexError('internal', `unexpected value: ${JSON.stringify(value)}`);
}
