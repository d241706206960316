/**
 * Fixed-window counters by key (rate-limiter-flexible): in PostgreSQL when replicas share one
 * database, so a limit holds across all of them; with several worker processes on a SQLite file
 * (`WORKERS`), in the primary's memory, asked over node:cluster's IPC (`RateLimiterCluster`; the
 * primary runs its `RateLimiterClusterMaster`); in memory for the single SQLite process. The
 * table has rate-limiter-flexible's shape and is made by migration 0009, never by the limiter
 * (its CREATE TABLE IF NOT EXISTS fails when replicas race to it).
 */
import { RateLimiterCluster, RateLimiterMemory, RateLimiterPostgres, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Store } from './database.js';

/** The answer for one request: let it through, or how long until the window lets one through again. */
export type WindowDecision = { allowed: true; countedUntil: number } | { allowed: false; retryAfterMs: number };

export interface WindowLimiter {
  /** Counts one request under `key`; rejects with an error whose `unanswered` is true when the primary keeping the count (WORKERS) did not answer in time. */
  take(key: string): Promise<WindowDecision>;
  /**
   * Uncounts a request `take` let through, when the window it was counted in is still the
   * current one (`countedUntil`, from the decision); after that, nothing (a give-back would
   * count against the next window, letting one more through there).
   */
  giveBack(key: string, countedUntil: number): Promise<void>;
}

const TABLE = 'gateway_rate_windows';
/** A request is given back only while its window has at least this long left. */
const GIVE_BACK_MARGIN_MS = 1_000;

/** `points` requests per `windowMs` for every key, named `name` (one table, names keep limits apart). */
export async function openWindowLimiter(
  store: Store,
  options: { name: string; points: number; windowMs: number; acrossWorkers?: boolean },
): Promise<WindowLimiter> {
  const settings = { keyPrefix: options.name, points: options.points, duration: Math.max(1, Math.round(options.windowMs / 1000)) };
  let limiter: RateLimiterAbstract;
  /** Whether the count is the primary's, asked over IPC (which gives up after its `timeoutMs`). */
  let askedOfPrimary = false;
  if (store.dialect === 'postgres' && store.pool) {
    limiter = new RateLimiterPostgres({
      ...settings,
      storeClient: store.pool,
      storeType: 'pool',
      tableName: TABLE,
      tableCreated: true,
      ...(store.schema ? { schemaName: store.schema } : {}),
      // Rows are one per key and name: nothing to sweep, and no timer outliving the pool.
      clearExpiredByTimeout: false,
    });
  } else if (options.acrossWorkers) {
    limiter = new RateLimiterCluster({ ...settings, timeoutMs: 5_000 });
    askedOfPrimary = true;
  } else {
    limiter = new RateLimiterMemory(settings);
  }
  /** Uncounts one request of `key`'s window ending at `countedUntil`, unless that window is (nearly) over. */
  const uncount = async (key: string, countedUntil: number) => {
    // A margin: the store's clock and this one may differ a little, and the window must not have turned.
    if (Date.now() + GIVE_BACK_MARGIN_MS >= countedUntil) return;
    const after = await limiter.reward(key, 1);
    // Below 0 only in a window that turned before the give-back was applied (the primary of
    // WORKERS answering late): counted back there, or that window would let one more through.
    if (after.consumedPoints < 0) await limiter.penalty(key, 1);
  };
  return {
    async take(key) {
      try {
        const counted = await limiter.consume(key, 1);
        return { allowed: true, countedUntil: Date.now() + counted.msBeforeNext };
      } catch (error) {
        if (error instanceof RateLimiterRes) {
          // rate-limiter-flexible counts a refused request too: left counted, every refusal past
          // the limit would hold a place, and a place given back (a create refused as bad input)
          // would free nothing while the window lasts. A refusal is a request that was not made.
          await uncount(key, Date.now() + error.msBeforeNext).catch(() => undefined);
          return { allowed: false, retryAfterMs: Math.max(1, error.msBeforeNext) };
        }
        // The primary did not answer in time (busy: a burst of creates on a loaded machine): the
        // count is unknown, which the caller answers as "send it again shortly", not as a fault.
        if (askedOfPrimary) throw Object.assign(new Error(`the count of ${key} was not answered in time`, { cause: error }), { unanswered: true });
        throw error;
      }
    },
    async giveBack(key, countedUntil) {
      await uncount(key, countedUntil);
    },
  };
}
