/**
 * What one reading of the clock against the database server's decides (`ClockWatch`): off by more
 * than the limit holds leased work, a reading too uncertain to tell decides nothing, and a step
 * against the steady clock holds work until the reading that follows it.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { ClockWatch, type ClockReading } from '../../../src/core/tasks/clock-watch.js';
import { createLogger } from '../../../src/observability/logger.js';
import { GatewayMetrics } from '../../../src/observability/metrics.js';
import { clockSkewProblem, MAX_CLOCK_SKEW_MS } from '../../../src/store/clock-skew.js';

/** A watch whose readings are `next`; its clock's steady counterpart is `steady` (in ms, moved by the test). */
function watchWith(next: { reading: ClockReading }, steady?: { at: number }) {
  const clock = new ManualClock(Date.UTC(2026, 11, 3));
  if (steady) Object.assign(clock, { steady: () => steady.at });
  const metrics = new GatewayMetrics();
  const watch = new ClockWatch({
    clock,
    metrics,
    logger: createLogger('silent'),
    measure: async () => next.reading,
    problemOf: clockSkewProblem,
    limitMs: MAX_CLOCK_SKEW_MS,
  });
  const gauge = async () => (await metrics.clockOffset.get()).values[0]?.value;
  return { clock, watch, gauge };
}

describe('ClockWatch', () => {
  it('holds work while a reading is off by more than 1 s, and releases it at the first one within', async () => {
    const next = { reading: { skewMs: -1_500, roundTripMs: 4 } };
    const { watch, gauge } = watchWith(next);
    await watch.check();
    expect(watch.holdReason).toBe("this machine's clock is 1.5 s behind the database server's (more than 1 s)");
    expect(await gauge()).toBe(-1.5);
    next.reading = { skewMs: 300, roundTripMs: 4 };
    await watch.check();
    expect(watch.holdReason).toBeUndefined();
    expect(await gauge()).toBe(0.3);
  });

  it('decides nothing on a reading whose round trip is longer than the limit, or negative', async () => {
    const next = { reading: { skewMs: 20_000, roundTripMs: 1_500 } };
    const { watch, gauge } = watchWith(next);
    await watch.check();
    next.reading = { skewMs: 20_000, roundTripMs: -30 };
    await watch.check();
    expect(watch.holdReason).toBeUndefined();
    expect(await gauge()).toBe(0);
  });

  it('holds work from the moment the clock steps against the steady clock, until a reading says it is within', async () => {
    const next = { reading: { skewMs: 2, roundTripMs: 4 } };
    const steady = { at: 1_000 };
    const { clock, watch } = watchWith(next, steady);
    expect(watch.holdReason).toBeUndefined();
    // Both move alike (a busy event loop, NTP's slewing): no step.
    clock.set(clock.now() + 5_000);
    steady.at += 5_100;
    expect(watch.holdReason).toBeUndefined();
    // The wall clock steps 20 s ahead.
    clock.set(clock.now() + 20_000);
    expect(watch.holdReason).toMatch(/clock stepped 20\.0 s ahead; reading it against the database server's/);
    await watch.check();
    expect(watch.holdReason).toBeUndefined();
  });
});
