/**
 * Folds a SQLite file's write-ahead log back into the database from a thread of its own.
 *
 * In WAL mode a commit only appends pages to the log. Every 1,000 pages, SQLite's automatic
 * checkpoint made the committing connection copy the log into the database file and flush both,
 * inside that commit. On the gateway's one event loop that was a pause of a few to ten
 * milliseconds about every thirty creates, and every request waiting behind it waited too
 * (`bench:create` at 150/s: added p50 about +40–55 ms with this thread, +190–220 ms without,
 * alternating runs).
 *
 * Here a worker thread opens its own connection to the file and runs a `PASSIVE` checkpoint
 * every `intervalMs`: it copies what no reader still needs, waits for nobody and never takes the
 * write lock, so the gateway's connection is never made to wait by it. What it cannot do is
 * start the log over: SQLite does that at the first write after a checkpoint that copied all of
 * it, and under steady writes a commit nearly always lands during the copy. So the log grows to
 * the gateway connection's own threshold, raised to `FALLBACK_CHECKPOINT_PAGES` (about 40 MB);
 * there that connection checkpoints inside a commit as before, but only copies what the thread
 * has not (the last quarter second or so) before the log starts over: a short pause every few
 * seconds under load instead of a long one several times a second. If the thread ends on its
 * own, the connection gets SQLite's usual threshold back and `onError` hears why.
 */
import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import type SqliteDatabase from 'better-sqlite3';

/** How often the thread checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** The main connection's own threshold while the thread runs (pages, about 40 MB of log). */
export const FALLBACK_CHECKPOINT_PAGES = 10_000;
/** How long `stop` waits for the thread to finish its round before it lets it go. */
const STOP_TIMEOUT_MS = 5_000;
/** SQLite's default threshold, given back when the thread is gone. */
const SQLITE_DEFAULT_CHECKPOINT_PAGES = 1_000;

/**
 * The thread's program, plain CommonJS so that it runs the same from the compiled build and from
 * the TypeScript sources under the test runner. A checkpoint another connection is running comes
 * back as a row saying so, not as an error: that round is simply skipped. A round that fails (a
 * full disk: `SQLITE_FULL`, an I/O error) is said once, and the rounds go on: the first that
 * succeeds again says so. Ended by such a round, the thread was gone until a restart, long after
 * space had been freed.
 */
const PROGRAM = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const beforeRound = workerData.beforeRound ? db.prepare(workerData.beforeRound) : undefined;
let failing = false;
const timer = setInterval(() => {
  try {
    beforeRound?.get();
    checkpoint.get();
    if (failing) parentPort.postMessage({ resumed: true });
    failing = false;
  } catch (error) {
    if (!failing) parentPort.postMessage({ failed: { code: error.code, message: error.message } });
    failing = true;
  }
}, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * Why the thread ended, as an `Error`: a SQLite error crosses from the thread as a plain object
 * holding only its `code`.
 */
function describeFailure(failure: unknown, exitCode: number): Error {
  if (failure instanceof Error) return failure;
  if (failure === undefined) return new Error(`the SQLite checkpoint thread ended with code ${exitCode}`);
  return new Error(`the SQLite checkpoint thread failed: ${inspect(failure, { breakLength: Infinity })}`);
}

export interface Checkpointer {
  /** Stops the thread and closes its connection (before the gateway's own connection closes). */
  stop(): Promise<void>;
}

export interface CheckpointerOptions {
  intervalMs?: number;
  /** Told when the thread fails or ends by itself (checkpoints are then the gateway connection's again). */
  onError?: (error: unknown) => void;
  /** Told when a round fails after one that did not (a full disk); the rounds go on. */
  onRoundsFailing?: (error: Error) => void;
  /** Told when a round succeeds after failing ones. */
  onRoundsResumed?: () => void;
  /** A statement the thread runs before each checkpoint (tests: a round that fails on demand). */
  beforeRound?: string;
}

export function startCheckpointer(sqlite: SqliteDatabase.Database, file: string, options: CheckpointerOptions = {}): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(PROGRAM, {
    eval: true,
    workerData: { driver, file, intervalMs: options.intervalMs ?? CHECKPOINT_INTERVAL_MS, beforeRound: options.beforeRound },
    // A statement and a timer use about 5 MB of heap; the bound only guards against a leak.
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
  });
  // Never what keeps a process alive; `stop` ends it in an orderly way.
  worker.unref();
  sqlite.pragma(`wal_autocheckpoint = ${FALLBACK_CHECKPOINT_PAGES}`);
  let stopping = false;
  let failure: unknown;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  // An `error` event is always followed by `exit`; without a listener it would end the process.
  worker.on('error', (error) => (failure = error));
  worker.on('message', (message: { failed?: { code?: string; message?: string }; resumed?: boolean }) => {
    if (message.failed) options.onRoundsFailing?.(Object.assign(new Error(`SQLite checkpoints fail: ${message.failed.message ?? 'unknown error'}`), { code: message.failed.code }));
    else if (message.resumed) options.onRoundsResumed?.();
  });
  void exited.then((code) => {
    if (stopping) return;
    // Gone on its own (its connection failed, out of memory): the gateway's connection checkpoints
    // as SQLite does by default again.
    try {
      if (sqlite.open) sqlite.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_CHECKPOINT_PAGES}`);
    } catch {
      // The connection is busy streaming rows; it keeps the higher threshold, still a checkpoint.
    }
    options.onError?.(describeFailure(failure, code));
  });
  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      // Held from here: a process with nothing else to do must still wait for the thread to end.
      worker.ref();
      worker.postMessage('stop');
      // A round stuck in the disk (a flush that does not return) cannot be interrupted: after a
      // while the thread is let go, and whichever connection closes last folds the log in.
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)));
      await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      worker.unref();
      void worker.terminate();
    },
  };
}
