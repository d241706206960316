/**
 * Replicas on one PostgreSQL compare times each of them wrote with their own clock: a lease
 * another replica took runs out, a create was sent long enough ago that the provider's answer can
 * no longer come. A replica whose clock is ahead reads live leases as run out and takes over
 * submissions still on their way (measured: one replica 20 s ahead, 60 creates — 17 paid twice, 24
 * upstream tasks left untracked). So a replica whose clock is off the database server's by more
 * than `MAX_CLOCK_SKEW_MS` does not start.
 */
import { sql } from 'kysely';
import type { Store } from './database.js';

/** Well within the margins leases and lost-answer lookups leave (seconds); NTP keeps clocks within milliseconds. */
export const MAX_CLOCK_SKEW_MS = 1_000;

/** How far the clock `now` reads is ahead of the database server's (negative: behind), over one round trip. */
export async function clockSkewMs(store: Store, now: () => number): Promise<number> {
  const before = now();
  const { rows } = await sql<{ now: number }>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as now`.execute(store.db);
  const after = now();
  return (before + after) / 2 - Number(rows[0]!.now);
}

/** Throws, saying by how much, when the clock `now` reads is off the PostgreSQL server's by more than `MAX_CLOCK_SKEW_MS`. */
export async function refuseSkewedClock(store: Store, now: () => number): Promise<void> {
  if (store.dialect !== 'postgres') return;
  const skew = await clockSkewMs(store, now);
  if (Math.abs(skew) <= MAX_CLOCK_SKEW_MS) return;
  throw new Error(
    `this machine's clock is ${(Math.abs(skew) / 1000).toFixed(1)} s ${skew > 0 ? 'ahead of' : 'behind'} the database server's ` +
      `(more than ${MAX_CLOCK_SKEW_MS / 1000} s): replicas sharing the database would misread each other's leases ` +
      '(a task sent twice, a paid video left behind); synchronize the clocks (NTP) and start again',
  );
}
