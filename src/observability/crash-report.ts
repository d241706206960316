/**
 * An error nothing caught (an uncaught exception, an unhandled rejection) goes through the
 * gateway's logger, and so its redaction and secret scrubber, before the process exits 1 as node
 * would have. Node's own report prints the error with `util.inspect`, past every redaction: an
 * axios error's request, its headers with an upstream key included, would reach standard error
 * as it was.
 */
import type { Logger } from './logger.js';

/** What of `process` this needs (a test gives an EventEmitter). */
export interface CrashSource {
  on(event: 'uncaughtException' | 'unhandledRejection', listener: (error: unknown) => void): unknown;
}

/**
 * The error as logged: its kind, message and stack, never its other fields (an axios error's
 * `config` and `request` hold every header sent).
 */
function described(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { type: error.name, message: error.message, stack: error.stack };
  return { type: typeof error, message: String(error) };
}

/** Logs what nothing caught through `logger`, then calls `exit(1)` (the process's, in the gateway). */
export function reportCrashes(source: CrashSource, logger: Logger, exit: (code: number) => void): void {
  let exiting = false;
  const report = (what: string) => (error: unknown) => {
    logger.fatal({ error: described(error) }, `${what}; the gateway exits`);
    // A second error while the first is reported is logged too, but exits once.
    if (exiting) return;
    exiting = true;
    logger.flush?.();
    exit(1);
  };
  source.on('uncaughtException', report('uncaught exception'));
  source.on('unhandledRejection', report('unhandled promise rejection'));
}
