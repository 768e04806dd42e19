import type { ILogger, ILoggerOptions, LogLevel } from '@microsoft/teams.common';
import type { Logger } from '../../app/logger.ts';

/**
 * The Teams SDK's logger interface over ours, at debug level: the SDK logs every refused token
 * as an error, and a stranger must not be able to fill the error log by posting junk. The route
 * logs one warning per refused request itself. Nothing here receives a raw token: the SDK logs
 * verification errors and decoded claims, never the bearer string.
 */
export function sdkLogger(log: Logger, name = 'teams-sdk'): ILogger {
  const write = (...msg: unknown[]) => log.debug({ sdk: name }, msg.map((m) => (m instanceof Error ? m.message : typeof m === 'string' ? m : safeJson(m))).join(' '));
  return {
    debug: write,
    info: write,
    warn: write,
    error: write,
    trace: write,
    log: (_level: LogLevel, ...msg: unknown[]) => write(...msg),
    child: (child: string, _overrides?: ILoggerOptions) => sdkLogger(log, `${name}/${child}`),
  };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 500) ?? String(v);
  } catch {
    return String(v);
  }
}
