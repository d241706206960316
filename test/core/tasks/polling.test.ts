/**
 * Poll timing (SPEC §4): never before a job of that length could finish, then exponential
 * back-off with jitter, capped; while an upstream webhook is expected, polling is a slow
 * safety net. Random sources are fixed so every delay is exact.
 */
import { describe, expect, it } from 'vitest';
import { firstPollDelay, nextPollDelay, type PollingSettings } from '../../../src/core/tasks/polling.js';

/** The tracking section of the shipped config.yaml. */
const SETTINGS: PollingSettings = {
  poll_min_interval_ms: 2_000,
  poll_max_interval_ms: 30_000,
  poll_backoff: 1.5,
  poll_jitter: 0.2,
  webhook_safety_poll_ms: 60_000,
};

const NO_JITTER: PollingSettings = { ...SETTINGS, poll_jitter: 0 };
/** random() = 0.5 is the middle of the jitter range: no jitter either way. */
const middle = () => 0.5;
const lowest = () => 0;
const highest = () => 1;

describe('firstPollDelay', () => {
  it('waits the minimum run time of the job when that is longer than the min interval', () => {
    expect(firstPollDelay(45_000, NO_JITTER, middle)).toBe(45_000);
  });

  it('waits at least the min interval for a job that could finish sooner', () => {
    expect(firstPollDelay(500, NO_JITTER, middle)).toBe(2_000);
    expect(firstPollDelay(0, SETTINGS, lowest)).toBe(2_000);
  });

  it('jitters only upwards: never earlier than the job could finish', () => {
    expect(firstPollDelay(45_000, SETTINGS, lowest)).toBe(45_000);
    expect(firstPollDelay(45_000, SETTINGS, middle)).toBe(49_500);
    expect(firstPollDelay(45_000, SETTINGS, highest)).toBe(54_000);
    for (let i = 0; i <= 10; i++) {
      const delay = firstPollDelay(45_000, SETTINGS, () => i / 10);
      expect(delay).toBeGreaterThanOrEqual(45_000);
      expect(delay).toBeLessThanOrEqual(54_000);
    }
  });
});

describe('nextPollDelay', () => {
  it('grows by the back-off factor after each poll, starting at the min interval', () => {
    const delays = [1, 2, 3, 4].map((count) => nextPollDelay(count, NO_JITTER, middle, false));
    expect(delays).toEqual([2_000, 3_000, 4_500, 6_750]);
  });

  it('stops growing at the max interval', () => {
    // 2000 × 1.5^9 ≈ 76 900 > 30 000.
    expect(nextPollDelay(10, NO_JITTER, middle, false)).toBe(30_000);
    expect(nextPollDelay(1_000, NO_JITTER, middle, false)).toBe(30_000);
  });

  it('treats a count of 0 like the first poll', () => {
    expect(nextPollDelay(0, NO_JITTER, middle, false)).toBe(2_000);
  });

  it('polls only at the webhook safety interval while a webhook is expected', () => {
    expect(nextPollDelay(1, NO_JITTER, middle, true)).toBe(60_000);
    expect(nextPollDelay(20, NO_JITTER, middle, true)).toBe(60_000);
  });

  it('keeps a back-off longer than the safety interval while a webhook is expected', () => {
    const slowMax = { ...NO_JITTER, poll_max_interval_ms: 120_000 };
    expect(nextPollDelay(20, slowMax, middle, true)).toBe(120_000);
  });

  it('jitters either way by at most poll_jitter of the delay', () => {
    // Fourth poll: 6 750 ms ± 20 %.
    expect(nextPollDelay(4, SETTINGS, lowest, false)).toBe(5_400);
    expect(nextPollDelay(4, SETTINGS, middle, false)).toBe(6_750);
    expect(nextPollDelay(4, SETTINGS, highest, false)).toBe(8_100);
    // At the cap, jitter spreads polls below the max interval (so polls started together drift
    // apart) but never past it.
    expect(nextPollDelay(30, SETTINGS, lowest, false)).toBe(24_000);
    expect(nextPollDelay(30, SETTINGS, highest, false)).toBe(30_000);
    // The same below the safety interval.
    expect(nextPollDelay(1, SETTINGS, lowest, true)).toBe(48_000);
    expect(nextPollDelay(1, SETTINGS, highest, true)).toBe(60_000);
  });

  it('never jitters below the min interval', () => {
    expect(nextPollDelay(1, SETTINGS, lowest, false)).toBe(2_000);
    expect(nextPollDelay(1, SETTINGS, highest, false)).toBe(2_400);
  });
});

describe('a job that cannot finish early', () => {
  // config.yaml's polling, and Freepik's shortest run (30 s) with no webhook expected.
  const CONFIGURED: PollingSettings = { ...SETTINGS, poll_min_interval_ms: 2_000, poll_max_interval_ms: 30_000 };
  const FREEPIK_MINIMUM_MS = 30_000;

  /** Status polls until the first one at or after `jobMs`, with the given random source. */
  function pollsFor(jobMs: number, random: () => number): number {
    let at = firstPollDelay(FREEPIK_MINIMUM_MS, CONFIGURED, random);
    let polls = 1;
    while (at < jobMs) {
      at += nextPollDelay(polls, CONFIGURED, random, false, FREEPIK_MINIMUM_MS);
      polls += 1;
    }
    return polls;
  }

  it('waits a growing share of the run time after the first poll, not the 2 s minimum', () => {
    const delays = [1, 2, 3].map((count) => nextPollDelay(count, NO_JITTER, middle, false, 30_000));
    expect(delays).toEqual([7_500, 9_375, 11_719]);
    // Never past the max interval.
    expect(nextPollDelay(30, NO_JITTER, middle, false, 30_000)).toBe(30_000);
  });

  it('polls a 60 s Freepik job at most five times, whatever the jitter', () => {
    let state = 7;
    const seeded = () => {
      state = (state * 48_271) % 2_147_483_647;
      return state / 2_147_483_647;
    };
    for (const random of [lowest, middle, highest, seeded, seeded, seeded, seeded, seeded]) {
      expect(pollsFor(60_000, random)).toBeLessThanOrEqual(5);
    }
    // The first poll already sees a job that ends as early as it could.
    expect(pollsFor(30_000, lowest)).toBe(1);
  });
});
