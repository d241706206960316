/**
 * A loop's failed passes, told without repeating (the gateway's worker loops, each of which runs
 * a pass every tick): while a store stays full or out of reach, every pass fails alike, once a
 * second per loop, and each was logged with its full stack.
 */
import type { Logger } from './logger.js';

/** How often a streak of the same failure is told again, at most. */
export const FAILURE_STREAK_EVERY_MS = 60_000;

/** Failures remembered at once, the least recently told out first: a loop's passes fail in few ways. */
const KINDS_KEPT = 16;
/** Of a failure without a code, the part of its message that tells it from others (bounded, for memory). */
const SAMENESS_CHARS = 200;

/** What makes two failures the same: the error's code (a store's), or else its message. */
function sameness(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' || typeof code === 'number') return `code:${code}`;
  return `message:${(typeof message === 'string' ? message : String(error)).slice(0, SAMENESS_CHARS)}`;
}

/** One way the passes fail: when it was last told, the passes since, and whether one succeeded meanwhile. */
interface Kind {
  toldAt: number;
  sinceTold: number;
  succeededSince: boolean;
}

/**
 * One loop's streak: the first failure is logged in full (its error, stack and all), a different
 * failure in full too; the same failure again at most once per `everyMs` (on `now`, the gateway's
 * clock), as one short line saying how many passes failed since it was last logged, or in full
 * again when a pass succeeded meanwhile (it came back). Two failures that alternate are each held
 * to that, and so is a failure that comes back between passes that succeed; a clock stepped back
 * tells the next one at once rather than when it catches up. The first pass that succeeds after
 * failures says how many failed in a row, when a failure was logged since it last said so.
 */
export class FailureStreak {
  /** Each way the passes failed lately, the least recently told first. */
  private readonly kinds = new Map<string, Kind>();
  /** Passes failed since the last one that succeeded, whatever their failures. */
  private inARow = 0;
  /** A failure was logged since the passes were last said to succeed again. */
  private loggedSinceRecovery = false;

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
    const kind = this.kinds.get(same);
    if (kind) {
      kind.sinceTold++;
      const elapsed = now - kind.toldAt;
      // Told less than `everyMs` ago (a clock stepped back tells it now).
      if (elapsed >= 0 && elapsed < this.everyMs) return;
    }
    this.kinds.delete(same);
    this.kinds.set(same, { toldAt: now, sinceTold: 0, succeededSince: false });
    if (this.kinds.size > KINDS_KEPT) this.kinds.delete(this.kinds.keys().next().value as string);
    this.loggedSinceRecovery = true;
    if (!kind || kind.succeededSince) {
      const since = kind && kind.sinceTold > 1 ? { failed_since_logged: kind.sinceTold } : {};
      this.logger.error({ err: error, ...this.fields, ...since }, message);
      return;
    }
    const { code } = (error ?? {}) as { code?: unknown };
    const passes = kind.sinceTold === 1 ? '1 more pass' : `${kind.sinceTold} more passes`;
    this.logger.error(
      { ...this.fields, ...(code !== undefined ? { code } : {}), failed_since_logged: kind.sinceTold, failed_in_a_row: this.inARow },
      `${message} (still failing: ${passes} failed since it was last logged, ${this.inARow} in a row)`,
    );
  }

  /** A pass succeeded: said once after failures, when one was logged since it was last said. */
  succeeded(): void {
    if (this.inARow === 0) return;
    for (const kind of this.kinds.values()) kind.succeededSince = true;
    if (this.loggedSinceRecovery) {
      this.logger.info({ ...this.fields, failed_in_a_row: this.inARow }, `${this.passes} succeed again after ${this.inARow} ${this.inARow === 1 ? 'failure' : 'failures'}`);
      this.loggedSinceRecovery = false;
    }
    this.inARow = 0;
  }
}
