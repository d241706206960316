/**
 * A count given back (a create refused as bad input, or a 429's own count) that lands after its
 * window turned — the primary of `WORKERS` answering late over IPC — must not open the next
 * window with a place too many.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { Store } from '../../src/store/database.js';
import { openWindowLimiter } from '../../src/store/window-limiter.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('a give-back that lands in the next window', () => {
  it('is undone there: the next window lets through its limit, not one more', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-12-04T10:00:00.000Z') });
    const limiter = await openWindowLimiter({ dialect: 'sqlite' } as Store, { name: 'late', points: 2, windowMs: 60_000 });
    const first = await limiter.take('acme');
    expect(first.allowed).toBe(true);
    // Asked in time, applied only once the window had turned (a busy primary).
    const reward = RateLimiterMemory.prototype.reward;
    vi.spyOn(RateLimiterMemory.prototype, 'reward').mockImplementationOnce(function (this: RateLimiterMemory, ...args) {
      vi.advanceTimersByTime(60_500);
      return reward.apply(this, args);
    });
    await limiter.giveBack('acme', (first as { countedUntil: number }).countedUntil);
    const next = await Promise.all([limiter.take('acme'), limiter.take('acme'), limiter.take('acme')]);
    expect(next.map((decision) => decision.allowed)).toEqual([true, true, false]);
  });
});
