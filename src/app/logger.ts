import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stdout. Secrets are redacted by path wherever they could appear
 * (headers, config, job data), as a second line of defence: the code never logs them on purpose.
 */
export function createLogger(level: string, name = 'sentreflex'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-reflex-signature"]',
        'req.headers["x-slack-signature"]',
        '*.apiToken',
        '*.masterKey',
        '*.password',
        '*.secret',
        '*.token',
      ],
      censor: '[redacted]',
    },
  });
}
