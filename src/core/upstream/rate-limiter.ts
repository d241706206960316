/**
 * Upstream request-rate limits as sliding windows, all enforced at once (Freepik documents
 * 50 hits/s over 5 s *and* 10/s averaged over 2 minutes), in this process: what a gateway on
 * SQLite (one replica) uses. Replicas on PostgreSQL keep the same log in the shared store
 * (`store/shared-state-store.ts`), so the limits are the account's whatever the replica count.
 */
import type { Clock } from '../clock.js';

export interface RateWindow {
  limit: number;
  windowMs: number;
}

export class SlidingWindowRateLimiter {
  /** Times of recent calls, oldest first; as long as the longest window needs. */
  private readonly calls: number[] = [];
  private readonly longestWindow: number;

  constructor(
    private readonly windows: readonly RateWindow[],
    private readonly clock: Clock,
  ) {
    this.longestWindow = Math.max(0, ...windows.map((window) => window.windowMs));
  }

  /** Milliseconds until one more call is allowed (0 = now). */
  waitTime(): number {
    const now = this.clock.now();
    this.stepBack(now);
    this.forget(now);
    let wait = 0;
    for (const window of this.windows) {
      const inWindow = this.countSince(now - window.windowMs);
      if (inWindow >= window.limit) {
        // The call that has to leave the window before another fits.
        const index = this.calls.length - window.limit;
        const leaving = this.calls[index] ?? now;
        wait = Math.max(wait, leaving + window.windowMs - now);
      }
    }
    return wait;
  }

  /** Takes an allowance now if there is one. */
  tryAcquire(): boolean {
    if (this.waitTime() > 0) return false;
    this.calls.push(this.clock.now());
    return true;
  }

  /** Forgets the call allowed at `at`, which was never made. */
  giveBack(at: number): void {
    const index = this.calls.lastIndexOf(at);
    if (index >= 0) this.calls.splice(index, 1);
  }

  /** Waits (on the clock) for an allowance, up to `maxWaitMs`; false when that is not enough. */
  async acquire(maxWaitMs: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      const wait = this.waitTime();
      if (wait === 0) {
        this.calls.push(this.clock.now());
        return true;
      }
      if (wait > maxWaitMs) return false;
      await this.clock.sleep(wait, signal);
      maxWaitMs -= wait;
    }
  }

  private countSince(since: number): number {
    let count = 0;
    for (let i = this.calls.length - 1; i >= 0 && (this.calls[i] ?? 0) > since; i--) count++;
    return count;
  }

  /**
   * Calls stamped after `now` were made before the clock stepped back (an NTP step): they count
   * as made now, so they leave the window within its length; kept at their stamps, they would
   * hold a full window (every create and poll of the account) for as long as the step.
   */
  private stepBack(now: number): void {
    for (let i = this.calls.length - 1; i >= 0 && (this.calls[i] ?? 0) > now; i--) this.calls[i] = now;
  }

  private forget(now: number): void {
    while (this.calls.length > 0 && (this.calls[0] ?? 0) <= now - this.longestWindow) this.calls.shift();
  }
}
