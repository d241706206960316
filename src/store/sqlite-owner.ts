/**
 * One SQLite file serves one gateway process (or the workers of one primary): at start it takes
 * over every lease in the file, as nobody else can hold one (`Recovery.atStart`). A second
 * gateway on the same file would take over the first one's creates on their way and its polls.
 * So the process that starts the gateway holds a lock on a file beside the database
 * (`<database>.owner`, a small SQLite file in exclusive locking mode) for as long as it runs. The
 * operating system lets go of it when the process ends, however it ends (kill -9 too), so a
 * restart is never held up by a lock left behind, and a reused process id cannot fool it.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { parseDatabaseUrl } from './database-url.js';

/** Held for the life of the process (a lock the garbage collector must not close). */
let held: SqliteDatabase.Database | undefined;

export class SqliteFileInUseError extends Error {
  constructor(readonly file: string) {
    super(
      `another gateway process is using the SQLite database ${file}: stop it first (one SQLite file serves one gateway process, or the WORKERS of one; replicas share PostgreSQL)`,
    );
  }
}

/**
 * Takes the SQLite file `url` names for this process, or throws `SqliteFileInUseError` when
 * another process holds it. Nothing to take for PostgreSQL or `sqlite::memory:`.
 */
export function holdSqliteFile(url: string): void {
  const { dialect, location } = parseDatabaseUrl(url);
  if (dialect !== 'sqlite' || location === ':memory:' || held) return;
  const file = resolve(location);
  mkdirSync(dirname(file), { recursive: true });
  const owner = `${realFile(file)}.owner`;
  let lock: SqliteDatabase.Database;
  try {
    lock = new SqliteDatabase(owner);
  } catch (error) {
    // A folder this process may not write, or something else at that name: said with the file.
    throw new Error(`cannot take the lock file ${owner} beside the SQLite database (${(error as Error).message}): the folder must be writable by the gateway`);
  }
  try {
    lock.pragma('busy_timeout = 0');
    // Nothing worth a rollback journal is written: no `<database>.owner-journal` beside it.
    lock.pragma('journal_mode = MEMORY');
    lock.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock, which exclusive locking mode keeps until close.
    lock.exec('begin exclusive; create table if not exists owner (pid integer); delete from owner; commit');
    lock.prepare('insert into owner (pid) values (?)').run(process.pid);
  } catch (error) {
    lock.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') throw new SqliteFileInUseError(file);
    throw error;
  }
  held = lock;
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
