/**
 * A replica's clock that drifts off the database server's after it started (an NTP step, a paused
 * VM resumed), for tests of the clock watch on PostgreSQL.
 */
import { ManualClock } from '../../src/core/clock.js';

/**
 * The machine's wall clock, `driftMs` off, with timers that only fire when the test moves them
 * (`advance`, as on a `ManualClock`; as real timers count elapsed time, not the wall clock, they
 * ignore the drift, and `advance` moves only them, never `now`). `steady` (the machine's steady
 * clock, which no drift moves) unless `withSteady` is false: then only the gateway's minutely
 * reading can find the drift.
 */
export class DriftingClock extends ManualClock {
  driftMs = 0;
  readonly steady: (() => number) | undefined;

  constructor(withSteady = true) {
    super(Date.now());
    this.steady = withSteady ? () => Date.now() : undefined;
  }

  override now(): number {
    return Date.now() + this.driftMs;
  }
}
