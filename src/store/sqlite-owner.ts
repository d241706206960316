/**
 * One SQLite file serves one gateway process (or the workers of one primary): at start it takes
 * over every lease in the file, as nobody else can hold one (`Recovery.atStart`). A second
 * gateway on the same file would take over the first one's creates on their way and its polls.
 * So the process that starts the gateway holds a lock on a file beside the database
 * (`<database>.owner`, a small SQLite file in exclusive locking mode) for as long as it runs. The
 * operating system lets go of it when the process ends, however it ends (kill -9 too), so a
 * restart is never held up by a lock left behind, and a reused process id cannot fool it.
 *
 * With `WORKERS` the primary holds that lock, but its workers run on the file too: a primary
 * killed outright lets go of it at once, while a worker that has not yet noticed (its event loop
 * busy, the process stopped) still holds leases and may still write. So each worker holds a
 * shared lock on `<database>.workers` for as long as it runs, and the primary notes their
 * process ids in its own file. A start takes `<database>.owner` first, then waits until nobody
 * holds `<database>.workers` (only the holder of `.owner` ever asks for it whole, so no two
 * starts race there); it names the workers it waits for, from the note the last primary left.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import SqliteDatabase from 'better-sqlite3';
import { sqliteFileOf } from './database-url.js';

/** Held for the life of the process (a lock the garbage collector must not close). */
let held: SqliteDatabase.Database | undefined;
/** A worker's shared hold on `<database>.workers`, for the life of the process. */
let joined: SqliteDatabase.Database | undefined;

/** A worker's drain when the caller does not say (`server.drain_timeout_ms` unset, upstreams at their 30 s default). */
const DEFAULT_DRAIN_MS = 35_000;
/**
 * What a worker's stop takes beyond its drain: its listener waits up to 2 s for fresh connections
 * and up to 30 s for provider webhooks taken during the drain, then the store closes.
 */
const STOP_AFTER_DRAIN_MS = 35_000;
const ORPHANS_RECHECK_MS = 100;

export class SqliteFileInUseError extends Error {
  constructor(readonly file: string) {
    super(
      `another gateway process is using the SQLite database ${file}: stop it first (one SQLite file serves one gateway process, or the WORKERS of one; replicas share PostgreSQL)`,
    );
  }
}

export class SqliteWorkersStillRunningError extends Error {
  constructor(
    readonly file: string,
    readonly pids: readonly number[],
    /** The drain the wait followed; none when nothing waited (`waitForOrphans: false`). */
    readonly drainMs: number | undefined,
  ) {
    super(
      `worker processes of a gateway whose primary ended${pids.length ? ` (pids ${pids.join(', ')})` : ''} still run on the SQLite database ${file}${drainMs === undefined ? '' : ` after ${orphansWaitWords(drainMs)}`}: end them first`,
    );
  }
}

/** How long a start waits for workers of a primary that ended: as long as a worker's stop may take. */
function orphansWaitMs(drainMs: number): number {
  return drainMs + STOP_AFTER_DRAIN_MS;
}

/** That wait, and what it is made of, in words. */
export function orphansWaitWords(drainMs: number): string {
  const seconds = (ms: number) => `${Math.ceil(ms / 1000)} s`;
  return `${seconds(orphansWaitMs(drainMs))} (their drain, up to ${seconds(drainMs)}, and ${seconds(STOP_AFTER_DRAIN_MS)} to close their connections)`;
}

/** The time a start waits by (the store imports nothing of the project: `core/clock.ts`'s clocks fit it). */
export interface WaitingClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface HoldOptions {
  /**
   * The longest a worker's drain takes (`server.drain_timeout_ms`, or its default): a worker of a
   * primary that ended stops as a gateway does, so the start waits this long and the time its
   * listener takes to close, then gives up.
   */
  drainMs?: number;
  /**
   * Whether to wait for those workers at all: a command that is no start (`migrate`) refuses the
   * file at once, as it refuses one a running gateway holds.
   */
  waitForOrphans?: boolean;
  /** Called once, when the start begins waiting, with the process ids it waits for and how long it will wait at most. */
  onWaiting?: (pids: number[], waitMs: number) => void;
  clock?: WaitingClock;
}

/**
 * Real time whose pauses keep the process alive (`systemClock`'s timers do not): nothing else
 * holds a start's event loop while it waits.
 */
const WAITING_CLOCK: WaitingClock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

/** Opens a lock file; closes it and throws what the pragmas threw (another process may hold it). */
function openLock(path: string): SqliteDatabase.Database {
  let lock: SqliteDatabase.Database;
  try {
    lock = new SqliteDatabase(path);
  } catch (error) {
    // A folder this process may not write, or something else at that name: said with the file.
    throw new Error(`cannot take the lock file ${path} beside the SQLite database (${(error as Error).message}): the folder must be writable by the gateway`);
  }
  try {
    lock.pragma('busy_timeout = 0');
    // Nothing worth a rollback journal is written: no `-journal` file beside it.
    lock.pragma('journal_mode = MEMORY');
  } catch (error) {
    lock.close();
    throw error;
  }
  return lock;
}

const isBusy = (error: unknown) => (error as { code?: string }).code === 'SQLITE_BUSY';

/** Whether a process with this id runs (of the workers the last primary noted, those still there). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * Takes the SQLite file `url` names for this process, or throws `SqliteFileInUseError` when
 * another process holds it. Then waits (as long as their stop may take, calling `onWaiting` once
 * with their process ids) for the workers of a primary that ended without them, or throws
 * `SqliteWorkersStillRunningError`. Nothing to take for PostgreSQL or `sqlite::memory:`.
 */
export async function holdSqliteFile(url: string, options: HoldOptions = {}): Promise<void> {
  const { drainMs = DEFAULT_DRAIN_MS, waitForOrphans = true, onWaiting = () => undefined, clock = WAITING_CLOCK } = options;
  const file = sqliteFileOf(url);
  if (file === undefined || held) return;
  mkdirSync(dirname(file), { recursive: true });
  // Beside the file a link to it leads to: one file named two ways has one lock.
  const real = realFile(file);
  let lock: SqliteDatabase.Database;
  try {
    lock = openLock(`${real}.owner`);
  } catch (error) {
    if (isBusy(error)) throw new SqliteFileInUseError(file);
    throw error;
  }
  let lastWorkers: number[];
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock, which exclusive locking mode keeps until close.
    lock.exec('begin exclusive; create table if not exists owner (pid integer); create table if not exists workers (pid integer)');
    lastWorkers = (lock.prepare('select pid from workers').all() as { pid: number }[]).map((row) => row.pid);
    lock.exec('delete from owner; commit');
    lock.prepare('insert into owner (pid) values (?)').run(process.pid);
  } catch (error) {
    lock.close();
    if (isBusy(error)) throw new SqliteFileInUseError(file);
    throw error;
  }
  held = lock;
  try {
    await waitForWorkersGone(real, file, lastWorkers, waitForOrphans ? drainMs : undefined, onWaiting, clock);
  } catch (error) {
    // Given up: the file is not this process's, so a start after the workers ended is not held up.
    held = undefined;
    lock.close();
    throw error;
  }
  lock.exec('delete from workers');
}

/**
 * Waits until no worker holds its share of `<database>.workers`, up to the orphans' wait for
 * `drainMs` (not at all without it), or throws `SqliteWorkersStillRunningError`.
 */
async function waitForWorkersGone(
  real: string,
  file: string,
  lastWorkers: readonly number[],
  drainMs: number | undefined,
  onWaiting: (pids: number[], waitMs: number) => void,
  clock: WaitingClock,
): Promise<void> {
  const workers = openLock(`${real}.workers`);
  try {
    const started = clock.now();
    const waitMs = drainMs === undefined ? 0 : orphansWaitMs(drainMs);
    let told = false;
    for (;;) {
      try {
        // Taken whole only when no worker holds its share.
        workers.exec('begin exclusive; create table if not exists workers (pid integer); commit');
        return;
      } catch (error) {
        if (!isBusy(error)) throw error;
      }
      if (clock.now() - started >= waitMs) throw new SqliteWorkersStillRunningError(file, lastWorkers.filter(running), drainMs);
      if (!told) onWaiting(lastWorkers.filter(running), waitMs);
      told = true;
      await clock.sleep(ORPHANS_RECHECK_MS);
    }
  } finally {
    workers.close();
  }
}

/** Notes a worker process this primary started, for a start that finds it running after the primary ended. */
export function noteWorkerProcess(pid: number | undefined): void {
  if (!held || pid === undefined) return;
  held.prepare('insert into workers (pid) values (?)').run(pid);
}

/** Notes that a worker process of this primary ended. */
export function forgetWorkerProcess(pid: number | undefined): void {
  if (!held || pid === undefined) return;
  held.prepare('delete from workers where pid = ?').run(pid);
}

/**
 * A worker of `WORKERS` takes its share of the SQLite file `url` names, held until it ends: a
 * start after its primary ended waits for it (`holdSqliteFile`). The primary holds the file, so
 * the share is always free to take.
 */
export function joinSqliteFile(url: string): void {
  const file = sqliteFileOf(url);
  if (file === undefined || joined) return;
  const lock = openLock(`${realFile(file)}.workers`);
  lock.pragma('busy_timeout = 5000');
  // A read inside a transaction holds the shared lock until the transaction ends: never.
  lock.exec('begin');
  lock.prepare('select count(*) from sqlite_master').get();
  joined = lock;
}

/**
 * The file `path` names, its links followed (SQLite follows them to open the database): one file
 * named two ways (a link to it, a link to its folder) has one `.owner` beside it. A database not
 * made yet is the file of that name in its folder's real place.
 */
function realFile(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return join(realpathSync(dirname(path)), basename(path));
  }
}
