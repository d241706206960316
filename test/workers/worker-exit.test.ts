/**
 * What the primary does when a worker ends while the gateway is not stopping: a worker whose own
 * start failed before the gateway first served stops the gateway (a replacement would fail
 * alike), as does one refused the configuration; a worker that already served, or that was
 * killed from outside (SIGKILL, the OOM killer), is replaced, also while another worker of the
 * first start is still starting.
 */
import { describe, expect, it } from 'vitest';
import { CONFIG_REFUSED_EXIT } from '../../src/config/config.js';
import { afterWorkerExit, CRASH_LOOP_LIMIT, CRASH_LOOP_WINDOW_MS, HEALTHY_AFTER_MS, WorkerRestarts } from '../../src/workers/primary.js';

it('stops the gateway when a worker fails its start before the gateway first served, or is refused the configuration', () => {
  expect(afterWorkerExit({ code: 1, signal: null, served: false, gatewayServed: false })).toEqual({ kind: 'give-up', exitCode: 1, why: 'ended before it served' });
  expect(afterWorkerExit({ code: CONFIG_REFUSED_EXIT, signal: null, served: false, gatewayServed: true })).toEqual({
    kind: 'give-up',
    exitCode: CONFIG_REFUSED_EXIT,
    why: 'was refused the configuration',
  });
});

it('stops the gateway with the failed worker\'s own exit status, and with 1 (never 0, a clean stop to a supervisor) when it ended with 0', () => {
  expect(afterWorkerExit({ code: 2, signal: null, served: false, gatewayServed: false })).toMatchObject({ kind: 'give-up', exitCode: 2 });
  expect(afterWorkerExit({ code: 0, signal: null, served: false, gatewayServed: false })).toMatchObject({ kind: 'give-up', exitCode: 1 });
});

it('replaces a worker that already served and was killed while another worker of the first start was still starting', () => {
  expect(afterWorkerExit({ code: null, signal: 'SIGKILL', served: true, gatewayServed: false })).toEqual({ kind: 'replace' });
  expect(afterWorkerExit({ code: 1, signal: null, served: true, gatewayServed: false })).toEqual({ kind: 'replace' });
});

it('replaces a starting worker killed from outside, and any worker once the gateway served', () => {
  expect(afterWorkerExit({ code: null, signal: 'SIGKILL', served: false, gatewayServed: false })).toEqual({ kind: 'replace' });
  expect(afterWorkerExit({ code: 1, signal: null, served: false, gatewayServed: true })).toEqual({ kind: 'replace' });
});

describe('replacing workers that keep dying (WorkerRestarts)', () => {
  function restarts() {
    let now = 1_000_000;
    const policy = new WorkerRestarts(() => now);
    return { policy, advance: (ms: number) => (now += ms) };
  }

  it('waits longer before each replacement of a worker that died young, up to a cap', () => {
    const { policy, advance } = restarts();
    const delays: number[] = [];
    // Each served a second, then died: no crash loop of starts, but no healthy run either.
    for (let death = 0; death < 10; death++) {
      const action = policy.died(1_000, true);
      expect(action.kind).toBe('replace');
      if (action.kind === 'replace') delays.push(action.delayMs);
      advance(1_000 + (action.kind === 'replace' ? action.delayMs : 0));
    }
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('replaces at once a worker that ran fine before it crashed, however often that happens', () => {
    const { policy, advance } = restarts();
    for (let death = 0; death < 20; death++) {
      expect(policy.died(HEALTHY_AFTER_MS + 1, true)).toEqual({ kind: 'replace', delayMs: 500 });
      advance(HEALTHY_AFTER_MS + 1);
    }
  });

  it(`gives up once ${CRASH_LOOP_LIMIT} workers in a row end before they serve within the window, none serving meanwhile`, () => {
    const { policy, advance } = restarts();
    for (let death = 1; death < CRASH_LOOP_LIMIT; death++) {
      expect(policy.died(300, false).kind).toBe('replace');
      advance(1_000);
    }
    expect(policy.died(300, false)).toEqual({ kind: 'give-up', crashes: CRASH_LOOP_LIMIT, windowMs: CRASH_LOOP_WINDOW_MS });
  });

  it('gives up at the fifth failed start in a row, as documented, not later', () => {
    const { policy, advance } = restarts();
    for (let death = 1; death < 5; death++) {
      expect(policy.died(300, false).kind).toBe('replace');
      advance(1_000);
    }
    expect(policy.died(300, false)).toMatchObject({ kind: 'give-up', crashes: 5 });
  });

  it('does not give up when a worker served between the failed starts, or when they are spread wider than the window', () => {
    const { policy, advance } = restarts();
    for (let death = 0; death < CRASH_LOOP_LIMIT * 3; death++) {
      expect(policy.died(300, false).kind).toBe('replace');
      if (death % (CRASH_LOOP_LIMIT - 1) === CRASH_LOOP_LIMIT - 2) policy.served();
      advance(1_000);
    }
    const spread = restarts();
    for (let death = 0; death < CRASH_LOOP_LIMIT * 3; death++) {
      expect(spread.policy.died(300, false).kind).toBe('replace');
      spread.advance(CRASH_LOOP_WINDOW_MS / (CRASH_LOOP_LIMIT - 1) + 1);
    }
  });

  it('counts the failed starts of each worker on its own: several failing side by side (a database restarting) are no crash loop yet', () => {
    const { policy, advance } = restarts();
    // Eight workers died together (the database went away); their replacements each fail their
    // start after the database's 10 s connect limit, side by side: once each, no worker's loop.
    for (let slot = 0; slot < 8; slot++) expect(policy.died(60_000, true, slot).kind).toBe('replace');
    advance(10_500);
    for (let slot = 0; slot < 8; slot++) expect(policy.died(10_000, false, slot).kind).toBe('replace');
    // One worker's replacements failing in a row is: the fifth of its starts gives up.
    for (let start = 2; start < CRASH_LOOP_LIMIT; start++) {
      advance(11_000);
      expect(policy.died(10_000, false, 3).kind).toBe('replace');
    }
    advance(11_000);
    expect(policy.died(10_000, false, 3)).toEqual({ kind: 'give-up', crashes: CRASH_LOOP_LIMIT, windowMs: CRASH_LOOP_WINDOW_MS });
  });
});
