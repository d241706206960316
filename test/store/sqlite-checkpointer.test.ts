/**
 * The SQLite file's write-ahead log is folded into the database by a thread of its own, not by
 * the commits of the gateway's connection (which paused the event loop for milliseconds each time).
 * The thread runs on real time; these tests wait for what it does, they never time it.
 */
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { FALLBACK_CHECKPOINT_PAGES, startCheckpointer } from '../../src/store/sqlite-checkpointer.js';

const ROWS = 150;
const ROW_BYTES = 2_000;
/** How long and how often a test waits for what the thread does. */
const POLL = { timeout: 10_000, interval: 50 };

function databaseFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'kg-checkpoint-')), 'gateway.db');
}

/** 150 commits of 2 kB each: a few hundred pages of log, under both automatic thresholds. */
async function writeRows(store: Store): Promise<void> {
  await sql`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`.execute(store.db);
  for (let row = 0; row < ROWS; row++) {
    await store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO notes (body) VALUES (${'x'.repeat(ROW_BYTES)})`.execute(trx);
    });
  }
}

describe('background checkpoints', () => {
  it('copy the log into the database file while the gateway connection only appends', async () => {
    const file = databaseFile();
    const store = await openStore(`sqlite:${file}`);
    await writeRows(store);
    // Every row reaches the database file itself, with no checkpoint run by this connection.
    await expect.poll(() => statSync(file).size >= ROWS * ROW_BYTES, POLL).toBe(true);
    const { rows } = await sql<{ count: number }>`SELECT count(*) AS count FROM notes`.execute(store.db);
    expect(rows[0]!.count).toBe(ROWS);
    await store.close();
  });

  it('leave the log alone when turned off (SQLite checkpoints only past its own threshold)', async () => {
    const file = databaseFile();
    const store = await openStore(`sqlite:${file}`, { backgroundCheckpoints: false });
    await writeRows(store);
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(statSync(file).size).toBeLessThan(ROWS * ROW_BYTES / 4);
    await store.close();
  });

  it('stop with the store: its thread is gone once the store is closed', async () => {
    // The thread pool for file operations starts on first use: start it before counting threads.
    await stat(tmpdir());
    const threads = () => readdirSync('/proc/self/task').length;
    const before = threads();
    const file = databaseFile();
    const store = await openStore(`sqlite:${file}`);
    expect(threads()).toBeGreaterThan(before);
    await writeRows(store);
    await store.close();
    await expect.poll(() => threads() === before, POLL).toBe(true);
    // And every row is in the database file, the log folded in by the last connection to close.
    expect(existsSync(`${file}-wal`)).toBe(false);
    const reopened = new SqliteDatabase(file, { readonly: true });
    expect(reopened.prepare('SELECT count(*) AS count FROM notes').get()).toEqual({ count: ROWS });
    reopened.close();
  });

  it("give the gateway's connection SQLite's own threshold back, and say so, when the thread ends by itself", async () => {
    const sqlite = new SqliteDatabase(':memory:');
    const errors: unknown[] = [];
    // A file that does not exist: the thread's connection fails and the thread ends.
    const missing = join(mkdtempSync(join(tmpdir(), 'kg-checkpoint-')), 'missing.db');
    const checkpointer = startCheckpointer(sqlite, missing, { intervalMs: 50, onError: (error) => errors.push(error) });
    expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(FALLBACK_CHECKPOINT_PAGES);
    await expect.poll(() => sqlite.pragma('wal_autocheckpoint', { simple: true }) === 1_000, POLL).toBe(true);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/SQLITE_CANTOPEN/);
    await checkpointer.stop();
    sqlite.close();
  });

  // A full disk failed a round (SQLITE_FULL), which ended the thread for good: the log was folded
  // in by the commits again, their pauses back, until a restart, though space had long been freed.
  it('go on through rounds that fail (a full disk), say so once, and checkpoint again once they no longer fail', async () => {
    const file = databaseFile();
    const setup = new SqliteDatabase(file);
    setup.pragma('journal_mode = WAL');
    setup.exec('CREATE TABLE disk (full INTEGER NOT NULL); INSERT INTO disk VALUES (1)');
    setup.close();
    const sqlite = new SqliteDatabase(file);
    const troubles: unknown[] = [];
    const resumed: number[] = [];
    const checkpointer = startCheckpointer(sqlite, file, {
      intervalMs: 20,
      onError: (error) => troubles.push(error),
      onRoundsFailing: (error) => troubles.push(error),
      onRoundsResumed: () => resumed.push(1),
      // Each round fails while the table says the disk is full (a runtime error, as SQLITE_FULL is).
      beforeRound: "SELECT CASE WHEN (SELECT full FROM disk) = 1 THEN json('the disk is full') END",
    });
    await expect.poll(() => troubles.length, POLL).toBe(1);
    // Many rounds later: told once, and the thread still there (the connection keeps its higher threshold).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(troubles).toHaveLength(1);
    expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(FALLBACK_CHECKPOINT_PAGES);

    sqlite.exec('UPDATE disk SET full = 0');
    await expect.poll(() => resumed.length, POLL).toBe(1);
    sqlite.exec(`CREATE TABLE notes (body TEXT NOT NULL)`);
    for (let row = 0; row < ROWS; row++) sqlite.prepare('INSERT INTO notes (body) VALUES (?)').run('x'.repeat(ROW_BYTES));
    // Folded into the database file by the thread again.
    await expect.poll(() => statSync(file).size >= ROWS * ROW_BYTES, POLL).toBe(true);
    expect(troubles).toHaveLength(1);
    await checkpointer.stop();
    sqlite.close();
  });

  it('close the store and its thread when the database cannot be migrated', async () => {
    const file = databaseFile();
    // A table the gateway's first migration creates, already there with another shape.
    const foreign = new SqliteDatabase(file);
    foreign.exec('CREATE TABLE tasks (something_else TEXT)');
    foreign.close();
    await stat(tmpdir());
    const threads = () => readdirSync('/proc/self/task').length;
    const before = threads();
    await expect(openStore(`sqlite:${file}`)).rejects.toThrow(/migration/);
    await expect.poll(() => threads() === before, POLL).toBe(true);
  });
});
