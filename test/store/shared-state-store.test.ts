/**
 * What replicas share about upstream accounts (issue 13), on the real PostgreSQL: two stores
 * on one schema stand for two replicas racing for the same rate windows and the same trial call.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { SharedStateStore } from '../../src/store/shared-state-store.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();
const T0 = Date.UTC(2026, 0, 1);

describe.skipIf(!available)('shared provider state on PostgreSQL', () => {
  const schema = newSchemaName();
  const stores: Store[] = [];
  let a: SharedStateStore;
  let b: SharedStateStore;

  beforeAll(async () => {
    stores.push(await openPostgresStore(schema), await openPostgresStore(schema));
    a = new SharedStateStore(stores[0]!);
    b = new SharedStateStore(stores[1]!);
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await dropSchema(schema);
  });

  /** Whether a statement is waiting for the transaction `id` to end (a row it locked). */
  async function waitsFor(id: string): Promise<boolean> {
    const { rows } = await sql<{ waiting: number }>`select count(*)::int as waiting from pg_locks where locktype = 'transactionid' and transactionid::text = ${id} and not granted`.execute(stores[1]!.db);
    return rows[0]!.waiting > 0;
  }

  it('never allows more calls than a window holds, however many replicas ask at once', async () => {
    await a.register('racing', T0);
    const windows = [{ limit: 5, windowMs: 1_000 }];
    const asks = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).takeRateAllowance('racing', windows, T0 + (i % 4)));
    const waits = await Promise.all(asks);
    expect(waits.filter((wait) => wait === 0)).toHaveLength(5);
    // The refused learn when the oldest call leaves the window.
    expect(Math.min(...waits.filter((wait) => wait > 0))).toBeGreaterThanOrEqual(996);
    expect(await a.takeRateAllowance('racing', windows, T0 + 999)).toBeGreaterThan(0);
    expect(await b.takeRateAllowance('racing', windows, T0 + 1_001)).toBe(0);
  });

  it('says when a window has room again without taking from it, as every replica counts it', async () => {
    await a.register('peek', T0);
    const windows = [{ limit: 1, windowMs: 1_000 }];
    expect(await b.rateWait('peek', windows, T0)).toBe(0);
    expect(await b.rateWait('peek', windows, T0)).toBe(0);
    expect(await a.takeRateAllowance('peek', windows, T0)).toBe(0);
    expect(await b.rateWait('peek', windows, T0 + 400)).toBe(600);
    expect(await b.rateWait('peek', windows, T0 + 1_000)).toBe(0);
    expect(await a.takeRateAllowance('peek', windows, T0 + 1_000)).toBe(0);
  });

  it('forgets an allowance given back (its call never went), for every replica', async () => {
    await a.register('given-back', T0);
    const windows = [{ limit: 1, windowMs: 1_000 }];
    expect(await a.takeRateAllowance('given-back', windows, T0)).toBe(0);
    expect(await b.takeRateAllowance('given-back', windows, T0 + 10)).toBe(990);
    await a.returnRateAllowance('given-back', T0);
    expect(await b.takeRateAllowance('given-back', windows, T0 + 10)).toBe(0);
    // Only the one given back: the allowance just taken still counts.
    await a.returnRateAllowance('given-back', T0);
    expect(await a.rateWait('given-back', windows, T0 + 20)).toBe(990);
  });

  it('holds every window together (a burst window and a long one)', async () => {
    await a.register('two-windows', T0);
    const windows = [
      { limit: 3, windowMs: 1_000 },
      { limit: 4, windowMs: 10_000 },
    ];
    const allowed: number[] = [];
    for (let t = T0; t < T0 + 10_000; t += 100) {
      if ((await (t % 200 ? a : b).takeRateAllowance('two-windows', windows, t)) === 0) allowed.push(t);
    }
    expect(allowed).toEqual([T0, T0 + 100, T0 + 200, T0 + 1_000]);
  });

  it('inside a transaction of the store, what is taken rolls back with it, or holds the key until it commits', async () => {
    const store = stores[0]!;
    const windows = [{ limit: 1, windowMs: 1_000 }];
    await a.register('inside', T0);
    const failed = store.db.transaction().execute(async (db) => {
      const inside = a.within({ store, db });
      expect(await inside.claimTrial('inside', 'replica-a', T0, T0 + 5_000)).toMatchObject({ trialOwner: 'replica-a' });
      expect(await inside.takeRateAllowance('inside', windows, T0)).toBe(0);
      throw new Error('the create failed');
    });
    await expect(failed).rejects.toThrow('the create failed');
    // As if never asked: the trial is free and the window has its room.
    expect(await b.read('inside')).toMatchObject({ trialOwner: null });
    expect(await b.takeRateAllowance('inside', windows, T0)).toBe(0);

    await a.register('held', T0);
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    let transactionId!: string;
    let taken!: () => void;
    const granted = new Promise<void>((resolve) => (taken = resolve));
    const holding = store.db.transaction().execute(async (db) => {
      expect(await a.within({ store, db }).takeRateAllowance('held', windows, T0)).toBe(0);
      transactionId = String((await sql<{ id: string }>`select txid_current()::text as id`.execute(db)).rows[0]!.id);
      taken();
      await committing;
    });
    await granted;
    // Another replica asking meanwhile waits for that transaction, and then sees its call.
    const other = b.takeRateAllowance('held', windows, T0 + 1);
    while (!(await waitsFor(transactionId))) await new Promise((resolve) => setImmediate(resolve));
    commit();
    await holding;
    expect(await other).toBe(999);
  });

  it('gives the single trial call to one replica until it reports or its time runs out', async () => {
    await a.register('trial', T0);
    const claims = await Promise.all([a.claimTrial('trial', 'replica-a', T0, T0 + 5_000), b.claimTrial('trial', 'replica-b', T0, T0 + 5_000)]);
    expect(claims.filter((claim) => claim !== undefined)).toHaveLength(1);
    const winner = claims[0] ? 'replica-a' : 'replica-b';
    expect(await b.claimTrial('trial', 'replica-c', T0 + 1_000, T0 + 6_000)).toBeUndefined();
    // The holder died: its time runs out and someone else may try.
    expect(await b.claimTrial('trial', 'replica-c', T0 + 5_000, T0 + 10_000)).toMatchObject({ trialOwner: 'replica-c' });
    // The late report of the first holder does not free the second's trial.
    expect(await a.recordSuccess('trial', winner, T0 + 5_001)).toMatchObject({ trialOwner: 'replica-c', failures: 0 });
  });

  it('opens the circuit when failures in a row reach the threshold, across replicas', async () => {
    await a.register('breaker', T0);
    const input = (owner: string, now: number) => ({ owner, threshold: 3, reopen: false, now });
    expect(await a.recordFailure('breaker', input('replica-a', T0))).toMatchObject({ failures: 1, openedAt: null });
    expect(await b.recordFailure('breaker', input('replica-b', T0 + 1))).toMatchObject({ failures: 2, openedAt: null });
    expect(await a.recordFailure('breaker', input('replica-a', T0 + 2))).toMatchObject({ failures: 3, openedAt: T0 + 2 });
    // A late failure of a call sent before it opened does not push the opening back.
    expect(await b.recordFailure('breaker', input('replica-b', T0 + 50))).toMatchObject({ failures: 4, openedAt: T0 + 2 });
    // A failed probe opens it for another period; a healthy answer closes it.
    expect(await b.recordFailure('breaker', { ...input('replica-b', T0 + 30_000), reopen: true })).toMatchObject({ openedAt: T0 + 30_000 });
    expect(await a.recordSuccess('breaker', 'replica-a', T0 + 60_000)).toMatchObject({ failures: 0, openedAt: null });
    expect(await b.read('breaker')).toMatchObject({ failures: 0, openedAt: null });
  });

  it('keeps the longest Retry-After any replica was given', async () => {
    await a.register('cooling', T0);
    await a.extendCooldown('cooling', T0 + 30_000, T0);
    await b.extendCooldown('cooling', T0 + 5_000, T0 + 1);
    expect((await b.read('cooling')).cooldownUntil).toBe(T0 + 30_000);
  });

  it('shares call samples, newest first, and forgets old ones', async () => {
    await a.recordCalls([
      { key: 'figures', at: T0, ok: true, latencyMs: 120 },
      { key: 'figures', at: T0 + 10, ok: false, latencyMs: 30 },
    ]);
    await b.recordCalls([{ key: 'figures', at: T0 + 20, ok: true, latencyMs: 80.4 }]);
    expect(await b.recentCalls('figures', T0 + 5, 10)).toEqual([
      { at: T0 + 20, ok: true, latencyMs: 80 },
      { at: T0 + 10, ok: false, latencyMs: 30 },
    ]);
    const hourly = [{ limit: 1, windowMs: 3_600_000 }];
    await a.register('hourly', T0);
    expect(await a.takeRateAllowance('hourly', hourly, T0)).toBe(0);
    await a.purgeBefore(T0 + 1_800_000);
    expect(await a.recentCalls('figures', 0, 10)).toEqual([]);
    // Rate grants stay: a window may be longer than samples are kept.
    expect(await b.takeRateAllowance('hourly', hourly, T0 + 1_800_000)).toBe(1_800_000);
  });
});
