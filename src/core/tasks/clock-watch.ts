/**
 * Whether this replica's clock still agrees with the other replicas' (README "Replicas"). Leases,
 * rate windows and deadlines compare this clock with times other replicas wrote; a replica whose
 * clock drifted ahead after it started (an NTP step, a paused VM resumed) reads live leases as run
 * out and sends a create another replica is still sending. So the clock is read against the
 * database server's every minute, and at once when it steps against the steady clock
 * (`Clock.steady`). While it is off by more than the limit, the replica says why in its readiness
 * (`/readyz` 503, so a load balancer stops sending it work) and takes no leased work (no dispatch
 * pass, poll, copy, delivery or takeover; creates already on their way still record their
 * answers), until it is back within the limit.
 */
import type { Logger } from '../../observability/logger.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { Clock, TimerHandle } from '../clock.js';

/** One reading of this replica's clock against the database server's. */
export interface ClockReading {
  /** How far this clock is ahead of the server's (negative: behind). */
  skewMs: number;
  /** The round trip of the reading, counted on this clock: the reading is uncertain by half of it. */
  roundTripMs: number;
}

export interface ClockWatchOptions {
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Reads this clock against the database server's. */
  measure: () => Promise<ClockReading>;
  /** What is wrong with a clock `skewMs` off, or undefined when it is within the limit. */
  problemOf: (skewMs: number) => string | undefined;
  /** The largest skew tolerated; a reading whose round trip is longer says nothing either way. */
  limitMs: number;
}

/** How often the clock is read again while it agrees. */
export const CLOCK_CHECK_EVERY_MS = 60_000;
/** How often while it is off: the replica takes work again soon after the clock is put right. */
export const CLOCK_RECHECK_WHILE_OFF_MS = 5_000;
/**
 * How far the clock may move against the steady clock between two looks before work waits for a
 * reading: NTP slews by at most 0.5 ms a second, so anything this large is a step.
 */
const STEP_TOLERANCE_MS = 250;

export class ClockWatch {
  /** What the last reading found wrong, if anything. */
  private off: string | undefined;
  /** A step seen against the steady clock and not read since. */
  private stepped: string | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  /** The clock and the steady clock at the last look, to notice a step between looks. */
  private lastLook: { now: number; steady: number } | undefined;
  private reading: Promise<void> | undefined;

  /** `options` undefined: one clock for everything that compares times (SQLite), never off. */
  constructor(private readonly options?: ClockWatchOptions) {}

  /**
   * Why this replica takes no leased work now (its clock is off the database server's, or stepped
   * and not read since), or undefined. A step seen here holds work at once, and reads the clock.
   */
  get holdReason(): string | undefined {
    this.noticeStep();
    return this.held;
  }

  private get held(): string | undefined {
    return this.off ?? this.stepped;
  }

  /** Shows a reading taken elsewhere (the start's) on the gauge. */
  note(skewMs: number): void {
    this.options?.metrics.clockOffset.set(skewMs / 1000);
  }

  /** Reads the clock every `CLOCK_CHECK_EVERY_MS` (every `CLOCK_RECHECK_WHILE_OFF_MS` while it is off) until `stop`. */
  start(): void {
    if (!this.options || this.stopped || this.timer) return;
    const { clock, logger } = this.options;
    this.noticeStep();
    const schedule = () => {
      if (this.stopped) return;
      this.timer = clock.setTimeout(() => {
        this.check()
          .catch((error: unknown) => logger.warn({ err: error }, 'could not read the clock against the database server'))
          .finally(schedule);
      }, this.held ? CLOCK_RECHECK_WHILE_OFF_MS : CLOCK_CHECK_EVERY_MS);
    };
    schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Reads the clock once and holds or releases leased work by what it shows (one reading at a time). */
  check(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  /**
   * A reading whose round trip is longer than the limit (or negative: the clock stepped meanwhile)
   * decides nothing.
   */
  private async read(): Promise<void> {
    if (!this.options) return;
    const { metrics, logger, measure, problemOf, limitMs } = this.options;
    const { skewMs, roundTripMs } = await measure();
    if (roundTripMs < 0 || roundTripMs > limitMs) {
      logger.warn({ skew_ms: Math.round(skewMs), round_trip_ms: Math.round(roundTripMs) }, 'clock reading against the database server too uncertain; reading again later');
      return;
    }
    metrics.clockOffset.set(skewMs / 1000);
    const problem = problemOf(skewMs);
    if (problem && !this.off) {
      logger.error(
        { skew_ms: Math.round(skewMs) },
        `${problem}: not ready, and taking no leased work (dispatch, polls, takeovers) until it is back within ${limitMs / 1000} s; synchronize the clocks (NTP)`,
      );
    } else if (!problem && this.held) {
      logger.info({ skew_ms: Math.round(skewMs) }, "clock within the limit of the database server's: ready, taking work");
    }
    this.off = problem;
    this.stepped = undefined;
  }

  /** Holds work and reads the clock when it moved against the steady clock since the last look. */
  private noticeStep(): void {
    const steadyNow = this.options?.clock.steady?.();
    if (steadyNow === undefined || this.stopped) return;
    const now = this.options!.clock.now();
    const last = this.lastLook;
    this.lastLook = { now, steady: steadyNow };
    if (!last) return;
    const stepMs = now - last.now - (steadyNow - last.steady);
    if (Math.abs(stepMs) <= STEP_TOLERANCE_MS) return;
    this.stepped ??= `this machine's clock stepped ${(Math.abs(stepMs) / 1000).toFixed(1)} s ${stepMs > 0 ? 'ahead' : 'back'}; reading it against the database server's`;
    this.options!.logger.warn({ step_ms: Math.round(stepMs) }, 'clock stepped: holding leased work until it is read against the database server');
    this.check().catch((error: unknown) => this.options!.logger.warn({ err: error }, 'could not read the clock against the database server'));
  }
}
