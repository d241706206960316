/**
 * Replicas on one PostgreSQL compare times each of them wrote with their own clock: a lease
 * another replica took runs out, a create was sent long enough ago that the provider's answer can
 * no longer come. A replica whose clock is ahead reads live leases as run out and takes over
 * submissions still on their way (measured: one replica 20 s ahead, 60 creates — 17 paid twice, 24
 * upstream tasks left untracked). So a replica whose clock is off the database server's by more
 * than `MAX_CLOCK_SKEW_MS` does not start, and one whose clock drifts off later (an NTP step, a
 * paused VM resumed) is measured again while it runs (`ClockWatch`).
 */
import { sql } from 'kysely';
import type { Store } from './database.js';

/** Well within the margins leases and lost-answer lookups leave (seconds); NTP keeps clocks within milliseconds. */
export const MAX_CLOCK_SKEW_MS = 1_000;

/** One reading of the clock `now` against the database server's. */
export interface ClockSkewSample {
  /** How far `now` is ahead of the server's clock (negative: behind), at the middle of the round trip. */
  skewMs: number;
  /** The query's round trip as `now` counted it: the reading is uncertain by half of it. */
  roundTripMs: number;
}

/** Reads the server's clock once, timing the round trip with `now`. */
export async function measureClockSkew(store: Store, now: () => number): Promise<ClockSkewSample> {
  const before = now();
  const { rows } = await sql<{ now: number }>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as now`.execute(store.db);
  const after = now();
  return { skewMs: (before + after) / 2 - Number(rows[0]!.now), roundTripMs: after - before };
}

/** What is wrong with a clock `skewMs` ahead of the server's (negative: behind), or undefined when within `MAX_CLOCK_SKEW_MS`. */
export function clockSkewProblem(skewMs: number): string | undefined {
  if (Math.abs(skewMs) <= MAX_CLOCK_SKEW_MS) return undefined;
  return (
    `this machine's clock is ${(Math.abs(skewMs) / 1000).toFixed(1)} s ${skewMs > 0 ? 'ahead of' : 'behind'} the database server's ` +
    `(more than ${MAX_CLOCK_SKEW_MS / 1000} s)`
  );
}

/**
 * Throws, saying by how much, when the clock `now` reads is off the PostgreSQL server's by more
 * than `MAX_CLOCK_SKEW_MS`. Returns the skew measured (undefined on SQLite: one machine, one clock).
 */
export async function refuseSkewedClock(store: Store, now: () => number): Promise<number | undefined> {
  if (store.dialect !== 'postgres') return undefined;
  const { skewMs: skew } = await measureClockSkew(store, now);
  const problem = clockSkewProblem(skew);
  if (!problem) return skew;
  throw new Error(
    `${problem}: replicas sharing the database would misread each other's leases ` +
      '(a task sent twice, a paid video left behind); synchronize the clocks (NTP) and start again',
  );
}
