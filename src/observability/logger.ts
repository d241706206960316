/**
 * Structured JSON logs (pino). Secrets are redacted by path as a second line of defence; the
 * first is that nothing logs headers or config objects that carry keys.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { SecretScrubber } from './secret-scrubber.js';

export type { Logger };

/** Paths redacted in every deployment: the gateway's own secrets and the usual auth headers. */
const ALWAYS_REDACTED = [
  'req.headers.authorization',
  'req.headers["idempotency-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  '*.api_key',
  '*.apiKey',
  '*.webhook_secret',
  '*.webhookSecret',
  '*.webhookSecrets',
  '*.secret',
];

/**
 * Every path pino replaces with `[redacted]`: the fixed list, and `secretHeaders` wherever
 * request headers are logged. The header names come from whoever knows the providers (the
 * composition root passes what their `authHeaders` produce); this module knows none.
 */
export function redactedPaths(secretHeaders: readonly string[] = []): string[] {
  const headerPaths = secretHeaders
    .map((name) => name.toLowerCase())
    .filter((name) => /^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name))
    .flatMap((name) => [`req.headers["${name}"]`, `headers["${name}"]`]);
  return [...new Set([...ALWAYS_REDACTED, ...headerPaths])];
}

export interface LoggerOptions {
  /** Where the lines go (standard output when absent). */
  destination?: DestinationStream;
  /** Headers that carry upstream keys (the providers' `authHeaders`), redacted wherever headers are logged. */
  secretHeaders?: readonly string[];
  /**
   * Every configured secret, looked for in each finished line in all its encodings (an upstream
   * answer or a webhook body logged as it came may echo one back).
   */
  secrets?: SecretScrubber;
}

export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  return pino(
    {
      level,
      base: { service: 'kling-gateway' },
      redact: { paths: redactedPaths(options.secretHeaders), censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      ...(options.secrets && !options.secrets.empty
        ? { hooks: { streamWrite: (line: string) => options.secrets!.scrub(line) } }
        : {}),
    },
    options.destination,
  );
}
