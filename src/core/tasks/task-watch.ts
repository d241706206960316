/**
 * One task's changes as an async iterator: what Server-Sent Events and `?wait=` read (SPEC §1).
 * Changes arrive through `TaskEvents`: at once from this process, and from other replicas as
 * soon as their notification lands (PostgreSQL `LISTEN/NOTIFY`). The task is also re-read now
 * and then, as the safety net for a lost notification. Reads only the store, never an upstream.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { TERMINAL_STATUSES } from '../model/canonical.js';
import { problems } from '../model/problems.js';
import type { TaskEvents } from './task-events.js';
import type { TaskRecord } from './task-records.js';
import type { TaskRepository } from './task-repository.js';

export interface WatchOptions {
  /** Ends the watch (the client went away). */
  signal?: AbortSignal;
  /** Ends the watch after this long, on the engine's clock. */
  timeoutMs?: number;
  /**
   * How often the task is re-read for other replicas' changes (default 1 s). When other
   * replicas' changes are notified, only a safety net: at least every 5 s.
   */
  recheckMs?: number;
  /**
   * Yields every status the task moves to (an event stream, one event per status change),
   * rather than only the newest version once the consumer is ready (a wait for the outcome).
   */
  everyStatus?: boolean;
}

const DEFAULT_RECHECK_MS = 1_000;
/** Re-reads while notifications from other replicas arrive: only for a notification lost on the way. */
const NOTIFIED_RECHECK_MS = 5_000;

/**
 * The `processing` a task went through between `before` (`queued`) and `after` (terminal) when
 * no version of it was seen here (another replica's changes are read back whole, and by then
 * the task may be done). A provider took it (it has the provider's id), a task a provider took
 * reaches its end only from `processing` (one still in the provider's queue is written
 * `processing` first, `TaskLifecycle.transition`), and a task never goes from `processing` back
 * to `queued`, so the version just before `after` (every write adds one) was `processing`: it is
 * given as `after` tells it, without the outcome and without the provider's word (the word this
 * replica last read is the outcome's, e.g. `COMPLETED`; the one the task had while processing was
 * never seen here).
 */
function processingBetween(before: TaskRecord, after: TaskRecord): TaskRecord | undefined {
  const skipped =
    before.status === 'queued' &&
    TERMINAL_STATUSES.has(after.status) &&
    after.providerTaskId !== null &&
    after.version - 1 > before.version;
  if (!skipped) return undefined;
  return {
    ...after,
    status: 'processing',
    phase: 'tracking',
    providerStatus: null,
    outputs: [],
    error: null,
    cost: { ...after.cost, estimated: true },
    completedAt: null,
    version: after.version - 1,
  };
}

/**
 * Yields the task as it is now, then each newer version as it lands, and ends after yielding
 * a terminal one (or when `signal` aborts or `timeoutMs` passes). Versions only go forward:
 * none is yielded twice, and while the consumer is busy only the newest waiting one is kept —
 * with `everyStatus`, the newest of each status waiting, and a `processing` only another
 * replica saw is stood for by `processingBetween`, so no status is skipped.
 * A task of another tenant is not found (thrown before the first yield).
 */
export async function* watchTask(
  engine: { tasks: TaskRepository; events: TaskEvents; clock: Clock },
  tenant: string,
  id: string,
  options: WatchOptions = {},
): AsyncGenerator<TaskRecord, void, undefined> {
  const { tasks, events, clock } = engine;
  const { signal, everyStatus = false } = options;
  /** Versions not yet yielded, oldest first: one, or with `everyStatus` one per status change. */
  const waiting: TaskRecord[] = [];
  let newestVersion = -1;
  let ended = false;
  let wake: (() => void) | undefined;
  const offer = (task: TaskRecord) => {
    if (task.version <= newestVersion) return;
    newestVersion = task.version;
    const last = waiting.at(-1);
    if (last && (!everyStatus || last.status === task.status)) waiting[waiting.length - 1] = task;
    else waiting.push(task);
    wake?.();
  };
  const end = () => {
    ended = true;
    wake?.();
  };
  let timeout: TimerHandle | undefined;
  let recheckTimer: TimerHandle | undefined;
  // A wait's N seconds count from here, not from the end of the first read (slow on a busy database).
  const startedAt = clock.now();
  // Subscribed before the first read, so no change can slip in between.
  const unsubscribe = events.subscribe(id, offer);
  signal?.addEventListener('abort', end, { once: true });
  try {
    const current = await tasks.get(id);
    if (!current || current.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    offer(current);
    if (options.timeoutMs !== undefined) timeout = clock.setTimeout(end, Math.max(0, options.timeoutMs - (clock.now() - startedAt)));
    const recheckMs = events.hearsOtherReplicas
      ? Math.max(options.recheckMs ?? 0, NOTIFIED_RECHECK_MS)
      : (options.recheckMs ?? DEFAULT_RECHECK_MS);
    const recheck = () => {
      if (ended) return;
      tasks
        .get(id)
        .then((task) => task && offer(task))
        .catch(() => undefined)
        .finally(() => {
          if (!ended) recheckTimer = clock.setTimeout(recheck, recheckMs);
        });
    };
    recheckTimer = clock.setTimeout(recheck, recheckMs);

    let previous: TaskRecord | undefined;
    while (!signal?.aborted) {
      const task = waiting.shift();
      if (task) {
        const missed = everyStatus && previous && processingBetween(previous, task);
        if (missed) yield missed;
        previous = task;
        yield task;
        if (TERMINAL_STATUSES.has(task.status)) return;
      } else if (ended) {
        return;
      } else {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    }
  } finally {
    ended = true;
    unsubscribe();
    signal?.removeEventListener('abort', end);
    timeout?.cancel();
    recheckTimer?.cancel();
  }
}
