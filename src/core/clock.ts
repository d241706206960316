/**
 * Time as a dependency. Everything that waits, schedules or compares timestamps takes a
 * `Clock`, so tests drive time with `ManualClock` instead of sleeping.
 */

/** A scheduled callback that can be cancelled. */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` once after `delayMs`. Timers never keep the process alive. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Resolves after `delayMs`, or rejects with the signal's reason when aborted first. */
  sleep(delayMs: number, signal?: AbortSignal): Promise<void>;
  /**
   * Milliseconds since an arbitrary start, on a clock nobody sets: a step of `now` (an NTP step, a
   * paused VM resumed) does not move it, so comparing the two shows the step at once.
   */
  steady?(): number;
}

/** The real wall clock and real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  sleep: (delayMs, signal) => sleepWith(systemClock, delayMs, signal),
  steady: () => performance.now(),
};

function sleepWith(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      handle.cancel();
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface PendingTimer {
  id: number;
  dueAt: number;
  callback: () => void;
}

/**
 * A clock that only moves when told to. `advance` fires due timers in time order and lets
 * the promise jobs they start settle between timers, so code that awaits I/O after a timer
 * behaves as it would in real time.
 */
export class ManualClock implements Clock {
  private current: number;
  private timers: PendingTimer[] = [];
  private nextId = 1;

  constructor(startAt: number = Date.UTC(2026, 0, 1)) {
    this.current = startAt;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = { id: this.nextId++, dueAt: this.current + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return {
      cancel: () => {
        this.timers = this.timers.filter((t) => t.id !== timer.id);
      },
    };
  }

  sleep(delayMs: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, delayMs, signal);
  }

  /** Number of timers still waiting. */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      await settle();
      const due = this.timers
        .filter((t) => t.dueAt <= target)
        .sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t.id !== due.id);
      this.current = Math.max(this.current, due.dueAt);
      due.callback();
    }
    this.current = target;
    await settle();
  }

  /** Sets the time without firing timers (for tests of stale timestamps and the like). */
  set(at: number): void {
    this.current = at;
  }
}

/** Lets pending promise jobs and I/O callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Waits that share one deadline, in real time (`Date.now()`, real timers) whatever clock the
 * rest runs on: the end of a stop, where a database that stops answering must not hold the
 * process for ever. Each wait names what it waits for; what had not finished by the deadline is
 * in `abandoned`, for the log line that says what the stop left. Once the deadline has passed,
 * later waits are not waited on at all (their work is still started by the caller). A rejection
 * within the time is thrown, as an `await` of the work would.
 */
export class BoundedWaits {
  readonly abandoned: string[] = [];

  constructor(private readonly deadline: number) {}

  /** Waits for `work` until the deadline; whether it finished. */
  async wait(what: string, work: Promise<unknown>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      work.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), Math.max(0, this.deadline - Date.now()));
      }),
    ]).finally(() => clearTimeout(timer));
    if (!finished) this.abandoned.push(what);
    return finished;
  }
}
