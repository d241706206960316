/**
 * Upstream request-rate limits as sliding windows, all enforced at once (SPEC §3; Freepik
 * documents 50 hits/s over 5 s and 10/s averaged over 2 minutes). Time is a ManualClock: every
 * wait is exact and no test sleeps.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { SlidingWindowRateLimiter, type RateWindow } from '../../../src/core/upstream/rate-limiter.js';

const FREEPIK: RateWindow[] = [
  { limit: 250, windowMs: 5_000 },
  { limit: 1_200, windowMs: 120_000 },
];

function limiter(windows: RateWindow[]) {
  const clock = new ManualClock();
  const start = clock.now();
  return { clock, start, limiter: new SlidingWindowRateLimiter(windows, clock) };
}

/** Takes every allowance available right now; returns how many. */
function drain(rate: SlidingWindowRateLimiter): number {
  let taken = 0;
  while (rate.tryAcquire()) taken++;
  return taken;
}

describe('one window', () => {
  it('allows up to the limit at once, then refuses', () => {
    const { limiter: rate } = limiter([{ limit: 3, windowMs: 1_000 }]);
    expect(drain(rate)).toBe(3);
    expect(rate.tryAcquire()).toBe(false);
    expect(rate.waitTime()).toBeGreaterThan(0);
  });

  it('says 0 while there is room', () => {
    const { limiter: rate } = limiter([{ limit: 3, windowMs: 1_000 }]);
    expect(rate.waitTime()).toBe(0);
    rate.tryAcquire();
    rate.tryAcquire();
    expect(rate.waitTime()).toBe(0);
  });

  it('frees room as each call leaves the window, oldest first', async () => {
    const { clock, limiter: rate } = limiter([{ limit: 2, windowMs: 1_000 }]);
    expect(rate.tryAcquire()).toBe(true); // t = 0
    await clock.advance(300);
    expect(rate.tryAcquire()).toBe(true); // t = 300
    await clock.advance(699); // t = 999: the first call is still inside the window
    expect(rate.tryAcquire()).toBe(false);
    await clock.advance(1); // t = 1000: it has left
    expect(rate.tryAcquire()).toBe(true);
    expect(rate.tryAcquire()).toBe(false);
    await clock.advance(300); // t = 1300: the call at 300 has left
    expect(rate.tryAcquire()).toBe(true);
  });

  it('waitTime is how long until the oldest call in the way leaves: a call then fits', async () => {
    const { clock, limiter: rate } = limiter([{ limit: 2, windowMs: 1_000 }]);
    rate.tryAcquire(); // t = 0
    await clock.advance(300);
    rate.tryAcquire(); // t = 300
    const wait = rate.waitTime();
    // The call at 0 leaves at 1000, 700 ms from now (the limiter adds at most 1 ms of margin).
    expect(wait).toBeGreaterThanOrEqual(700);
    expect(wait).toBeLessThanOrEqual(701);
    await clock.advance(wait);
    expect(rate.tryAcquire()).toBe(true);
  });

  // Regression: see the commit that fixed it.
  it('waitTime is exactly the time until a call is allowed', async () => {
    const { clock, limiter: rate } = limiter([{ limit: 2, windowMs: 1_000 }]);
    rate.tryAcquire();
    await clock.advance(300);
    rate.tryAcquire();
    expect(rate.waitTime()).toBe(700);
    await clock.advance(699);
    expect(rate.tryAcquire()).toBe(false);
    await clock.advance(1);
    expect(rate.tryAcquire()).toBe(true);
  });

  it('is no limit at all without windows', () => {
    const { limiter: rate } = limiter([]);
    for (let i = 0; i < 1_000; i++) expect(rate.tryAcquire()).toBe(true);
    expect(rate.waitTime()).toBe(0);
  });
});

describe("two windows together (Freepik's 250 per 5 s and 1200 per 2 min)", () => {
  it('a burst is held to 250 by the 5-second window', () => {
    const { limiter: rate } = limiter(FREEPIK);
    expect(drain(rate)).toBe(250);
    // The burst leaves the 5 s window at 5000 ms.
    expect(rate.waitTime()).toBeGreaterThanOrEqual(5_000);
    expect(rate.waitTime()).toBeLessThanOrEqual(5_001);
  });

  it('after sustained use the 2-minute window binds, although the 5-second window has room', async () => {
    const { clock, start, limiter: rate } = limiter(FREEPIK);
    const taken: number[] = [];
    // Use every allowance as soon as it comes, as long as only the 5 s window makes us wait.
    for (;;) {
      taken.push(drain(rate));
      if (rate.waitTime() > 5_001) break;
      await clock.advance(rate.waitTime());
    }
    // 250 every 5 s until the 2-minute allowance of 1200 is used up, about 20 s in.
    expect(taken).toEqual([250, 250, 250, 250, 200]);
    expect(clock.now() - start).toBeGreaterThanOrEqual(20_000);
    expect(clock.now() - start).toBeLessThan(21_000);
    // The 5 s window holds only the last 200 calls, yet nothing more is allowed: the 2-minute
    // window waits for the first burst (at 0) to leave at 120 s.
    expect(rate.tryAcquire()).toBe(false);
    const wait = rate.waitTime();
    expect(clock.now() - start + wait).toBeGreaterThanOrEqual(120_000);
    expect(clock.now() - start + wait).toBeLessThanOrEqual(120_001);
    await clock.advance(wait);
    // The first burst (250 calls) has left the 2-minute window: exactly that many fit again.
    expect(drain(rate)).toBe(250);
  });

  it('never lets more than 1200 calls into any 2 minutes, nor 250 into any 5 s', async () => {
    const { clock, limiter: rate } = limiter(FREEPIK);
    const times: number[] = [];
    for (let step = 0; step < 3_000; step++) {
      while (rate.tryAcquire()) times.push(clock.now());
      await clock.advance(97);
    }
    // For each call, count the calls in the window that ends with it (times are ascending).
    let maxInFive = 0;
    let maxInTwoMinutes = 0;
    let fiveStart = 0;
    let twoMinuteStart = 0;
    for (let i = 0; i < times.length; i++) {
      const at = times[i] ?? 0;
      while ((times[fiveStart] ?? 0) <= at - 5_000) fiveStart++;
      while ((times[twoMinuteStart] ?? 0) <= at - 120_000) twoMinuteStart++;
      maxInFive = Math.max(maxInFive, i - fiveStart + 1);
      maxInTwoMinutes = Math.max(maxInTwoMinutes, i - twoMinuteStart + 1);
    }
    expect(maxInFive).toBe(250);
    expect(maxInTwoMinutes).toBe(1_200);
    // Over about 290 s, the 2-minute window allows about 10 calls a second.
    expect(times.length).toBeGreaterThan(2_400);
    expect(times.length).toBeLessThanOrEqual(3_600);
  });
});

describe('acquire', () => {
  it('takes an allowance at once when there is one', async () => {
    const { clock, start, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    await expect(rate.acquire(0)).resolves.toBe(true);
    expect(clock.now()).toBe(start);
    expect(rate.tryAcquire()).toBe(false);
  });

  it('waits on the clock for the next allowance, then takes it', async () => {
    const { clock, start, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    rate.tryAcquire();
    let result: boolean | undefined;
    const pending = rate.acquire(5_000).then((value) => (result = value));
    await clock.advance(500);
    expect(result).toBeUndefined();
    await clock.advance(501);
    await pending;
    expect(result).toBe(true);
    expect(clock.now() - start).toBe(1_001);
    // It took the allowance: the next caller has to wait again.
    expect(rate.tryAcquire()).toBe(false);
  });

  it('gives up at once, taking nothing, when the wait is longer than maxWait', async () => {
    const { clock, start, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    rate.tryAcquire();
    const before = rate.waitTime();
    await expect(rate.acquire(500)).resolves.toBe(false);
    expect(clock.now()).toBe(start);
    expect(clock.pendingTimers).toBe(0);
    expect(rate.waitTime()).toBe(before);
  });

  it('serves waiters one allowance at a time', async () => {
    const { clock, start, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    rate.tryAcquire();
    const granted: number[] = [];
    const first = rate.acquire(10_000).then(() => granted.push(clock.now() - start));
    const second = rate.acquire(10_000).then(() => granted.push(clock.now() - start));
    await clock.advance(3_000);
    await Promise.all([first, second]);
    expect(granted).toHaveLength(2);
    expect((granted[1] ?? 0) - (granted[0] ?? 0)).toBeGreaterThanOrEqual(1_000);
  });

  it('gives up when the waits add up past maxWait', async () => {
    const { clock, start, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    rate.tryAcquire();
    // Both wait 1001 ms for the same allowance; the first takes it, and the second would need
    // another 1001 ms with only 499 ms of its 1500 left.
    const first = rate.acquire(1_500);
    const second = rate.acquire(1_500);
    await clock.advance(1_001);
    await expect(first).resolves.toBe(true);
    await expect(second).resolves.toBe(false);
    expect(clock.now() - start).toBe(1_001);
  });

  it('stops waiting when aborted, with the abort reason, and takes nothing', async () => {
    const { clock, limiter: rate } = limiter([{ limit: 1, windowMs: 1_000 }]);
    rate.tryAcquire();
    const controller = new AbortController();
    const pending = rate.acquire(5_000, controller.signal);
    const reason = new Error('shutting down');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await clock.advance(1_001);
    expect(rate.tryAcquire()).toBe(true);
  });
});

describe('a clock stepped back (an NTP step on the one SQLite replica)', () => {
  it('counts the calls made before the step as just made: the window frees within its length, not the step’s', () => {
    const { clock, limiter: rate } = limiter([{ limit: 2, windowMs: 1_000 }]);
    expect(drain(rate)).toBe(2);
    clock.set(clock.now() - 3_600_000);
    // Still full (those calls were made within the window, in real time)…
    expect(rate.tryAcquire()).toBe(false);
    expect(rate.waitTime()).toBe(1_000);
    // …and free once the window has passed, not an hour later.
    clock.set(clock.now() + 1_000);
    expect(drain(rate)).toBe(2);
    expect(rate.waitTime()).toBe(1_000);
  });
});
