/**
 * A loop's failed passes, told without repeating (the gateway's worker loops, each of which runs
 * a pass every tick): while a store stays full or out of reach, every pass fails alike, once a
 * second per loop, and each was logged with its full stack.
 */
import type { Logger } from './logger.js';

/** How often a streak of the same failure is told again, at most. */
export const FAILURE_STREAK_EVERY_MS = 60_000;

/** What makes two failures the same: the error's code (a store's), or else its message. */
function sameness(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' || typeof code === 'number') return `code:${code}`;
  return `message:${typeof message === 'string' ? message : String(error)}`;
}

/**
 * One loop's streak: the first failure is logged in full (its error, stack and all), a different
 * failure in full again; the same failure again at most once per `everyMs` (on `now`, the
 * gateway's clock) as one short line saying how many passes failed since it was last logged; and
 * the first pass that succeeds after failures says how many failed in a row.
 */
export class FailureStreak {
  /** The failure last logged in full, when it was last told, and the passes since. */
  private current: { sameness: string; toldAt: number; sinceTold: number } | undefined;
  /** Passes failed since the last one that succeeded, whatever their failures. */
  private inARow = 0;

  constructor(
    private readonly logger: Logger,
    /** Fields on every line (`{ worker: 'tracking' }`). */
    private readonly fields: Record<string, unknown>,
    /** What passes these are, for the line once they succeed again ("worker passes"). */
    private readonly passes: string,
    private readonly now: () => number,
    private readonly everyMs = FAILURE_STREAK_EVERY_MS,
  ) {}

  /** A pass failed with `error`, which `message` describes. */
  failed(error: unknown, message: string): void {
    this.inARow++;
    const same = sameness(error);
    const now = this.now();
    if (this.current?.sameness !== same) {
      this.current = { sameness: same, toldAt: now, sinceTold: 0 };
      this.logger.error({ err: error, ...this.fields }, message);
      return;
    }
    this.current.sinceTold++;
    if (now - this.current.toldAt < this.everyMs) return;
    const { code } = (error ?? {}) as { code?: unknown };
    const passes = this.current.sinceTold === 1 ? '1 more pass' : `${this.current.sinceTold} more passes`;
    this.logger.error(
      { ...this.fields, ...(code !== undefined ? { code } : {}), failed_since_logged: this.current.sinceTold, failed_in_a_row: this.inARow },
      `${message} (still failing: ${passes} failed since it was last logged, ${this.inARow} in a row)`,
    );
    this.current.toldAt = now;
    this.current.sinceTold = 0;
  }

  /** A pass succeeded: said once after failures. */
  succeeded(): void {
    if (this.inARow === 0) return;
    this.logger.info({ ...this.fields, failed_in_a_row: this.inARow }, `${this.passes} succeed again after ${this.inARow} ${this.inARow === 1 ? 'failure' : 'failures'}`);
    this.inARow = 0;
    this.current = undefined;
  }
}
