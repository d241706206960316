/**
 * What worker processes on one SQLite file share about upstream accounts (WORKERS): the same
 * operations as replicas on PostgreSQL (shared-state-store.test.ts), through SQLite's own
 * spelling of them, so the two engines keep the same cool-downs, trials and windows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { SharedStateStore } from '../../src/store/shared-state-store.js';

const T0 = Date.UTC(2026, 0, 1);

describe('shared provider state on SQLite', () => {
  let store: Store;
  let state: SharedStateStore;

  beforeAll(async () => {
    store = await openStore('sqlite::memory:');
    state = new SharedStateStore(store);
  });

  afterAll(async () => {
    await store?.close();
  });

  it('keeps the longest cool-down asked, whatever order the asks come in', async () => {
    await state.register('cooling', T0);
    expect((await state.extendCooldown('cooling', T0 + 30_000, T0)).cooldownUntil).toBe(T0 + 30_000);
    expect((await state.extendCooldown('cooling', T0 + 5_000, T0 + 1)).cooldownUntil).toBe(T0 + 30_000);
    expect((await state.read('cooling')).cooldownUntil).toBe(T0 + 30_000);
    expect((await state.extendCooldown('cooling', T0 + 60_000, T0 + 2)).cooldownUntil).toBe(T0 + 60_000);
  });

  it('gives the trial call to one owner until its time runs out, at that very millisecond', async () => {
    await state.register('trial', T0);
    expect(await state.claimTrial('trial', 'worker-1', T0, T0 + 5_000)).toMatchObject({ trialOwner: 'worker-1' });
    expect(await state.claimTrial('trial', 'worker-2', T0 + 4_999, T0 + 9_999)).toBeUndefined();
    expect(await state.claimTrial('trial', 'worker-2', T0 + 5_000, T0 + 10_000)).toMatchObject({ trialOwner: 'worker-2' });
  });

  it('frees a window the moment its oldest call is a full window old', async () => {
    await state.register('window', T0);
    const windows = [{ limit: 2, windowMs: 1_000 }];
    expect(await state.takeRateAllowance('window', windows, T0)).toBe(0);
    expect(await state.takeRateAllowance('window', windows, T0 + 10)).toBe(0);
    expect(await state.takeRateAllowance('window', windows, T0 + 999)).toBe(1);
    expect(await state.rateWait('window', windows, T0 + 1_000)).toBe(0);
    expect(await state.takeRateAllowance('window', windows, T0 + 1_000)).toBe(0);
    expect(await state.takeRateAllowance('window', windows, T0 + 1_001)).toBe(9);
  });

  it('opens the circuit when failures in a row reach the threshold, not one later', async () => {
    await state.register('breaker', T0);
    const input = (now: number) => ({ owner: 'worker-1', threshold: 2, reopen: false, now });
    expect(await state.recordFailure('breaker', input(T0))).toMatchObject({ failures: 1, openedAt: null });
    expect(await state.recordFailure('breaker', input(T0 + 1))).toMatchObject({ failures: 2, openedAt: T0 + 1 });
  });

  it('reads call samples from `since` on, and forgets only those older than the purge time', async () => {
    await state.recordCalls([
      { key: 'samples', at: T0, ok: true, latencyMs: 10 },
      { key: 'samples', at: T0 + 1, ok: false, latencyMs: 20 },
    ]);
    expect((await state.recentCalls('samples', T0, 10)).map((call) => call.at)).toEqual([T0 + 1, T0]);
    await state.purgeBefore(T0);
    expect((await state.recentCalls('samples', 0, 10)).map((call) => call.at)).toEqual([T0 + 1, T0]);
    await state.purgeBefore(T0 + 1);
    expect((await state.recentCalls('samples', 0, 10)).map((call) => call.at)).toEqual([T0 + 1]);
  });

  it('gives back one allowance of the millisecond it names, when two were taken in it', async () => {
    await state.register('same-ms', T0);
    const windows = [{ limit: 2, windowMs: 1_000 }];
    expect(await state.takeRateAllowance('same-ms', windows, T0)).toBe(0);
    expect(await state.takeRateAllowance('same-ms', windows, T0)).toBe(0);
    await state.returnRateAllowance('same-ms', T0);
    expect(await state.takeRateAllowance('same-ms', windows, T0 + 1)).toBe(0);
    // The other one taken at T0 still counts: the window is full until it leaves.
    expect(await state.takeRateAllowance('same-ms', windows, T0 + 2)).toBe(998);
  });
});
