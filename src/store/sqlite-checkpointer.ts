/**
 * Folds a SQLite file's write-ahead log back into the database from a thread of its own.
 *
 * In WAL mode a commit only appends pages to the log. Every 1,000 pages, SQLite's automatic
 * checkpoint makes the committing connection copy the log into the database file and flush both,
 * inside that commit. On the gateway's one event loop that was a pause of a few to ten
 * milliseconds about every thirty creates, and every request waiting behind it waited too
 * (`bench:create` at 150/s: added p50 about +110–140 ms with this thread, +290–340 ms without,
 * four alternating runs).
 *
 * Here a worker thread opens its own connection to the file and runs a `PASSIVE` checkpoint
 * every `intervalMs`: it copies what no reader still needs and waits for nobody, and writers go on
 * appending meanwhile. The next write after a full checkpoint starts the log over, so it stays
 * small. The gateway's connection keeps a far larger automatic threshold as a safety net, and
 * gets SQLite's usual one back if the thread ever stops on its own.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SqliteDatabase from 'better-sqlite3';

/** How often the thread checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** The main connection's own threshold while the thread runs (pages, about 40 MB of log). */
export const FALLBACK_CHECKPOINT_PAGES = 10_000;
/** How long `stop` waits for the thread to finish its round before ending it by force. */
const STOP_TIMEOUT_MS = 5_000;
/** SQLite's default threshold, given back when the thread is gone. */
const SQLITE_DEFAULT_CHECKPOINT_PAGES = 1_000;

/**
 * The thread's program, plain CommonJS so that it runs the same from the compiled build and from
 * the TypeScript sources under the test runner. A checkpoint another connection is running
 * (`SQLITE_BUSY`) is simply skipped until the next round.
 */
const PROGRAM = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const round = () => {
  try {
    checkpoint.get();
  } catch (error) {
    if (!String(error && error.code).startsWith('SQLITE_BUSY')) throw error;
  }
};
const timer = setInterval(round, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Stops the thread and closes its connection (before the gateway's own connection closes). */
  stop(): Promise<void>;
}

export function startCheckpointer(
  sqlite: SqliteDatabase.Database,
  file: string,
  intervalMs = CHECKPOINT_INTERVAL_MS,
): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(PROGRAM, {
    eval: true,
    workerData: { driver, file, intervalMs },
    // A statement and a timer: a few megabytes are plenty, and keep the process small.
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
  });
  // Never what keeps a process alive; `stop` ends it in an orderly way.
  worker.unref();
  sqlite.pragma(`wal_autocheckpoint = ${FALLBACK_CHECKPOINT_PAGES}`);
  let stopping = false;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  // An `error` event is always followed by `exit`; without a listener it would end the process.
  worker.on('error', () => undefined);
  void exited.then(() => {
    // Gone on its own (its connection failed, out of memory): the gateway's connection checkpoints
    // as SQLite does by default again.
    if (!stopping && sqlite.open) sqlite.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_CHECKPOINT_PAGES}`);
  });
  return {
    async stop() {
      if (stopping) return exited;
      stopping = true;
      // Held from here: a process with nothing else to do must still wait for the thread to end.
      worker.ref();
      worker.postMessage('stop');
      // A thread that does not end (a checkpoint that never returns) is ended by force.
      const force = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(force);
    },
  };
}
