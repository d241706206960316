/**
 * A SQLite file several processes write at once (`WORKERS`): every transaction reads and then
 * writes, and none may fail or lose an update because another process wrote in between. (With
 * SQLite's default deferred `BEGIN`, the write after the read fails at once with `SQLITE_BUSY`
 * whenever another process committed meanwhile.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { expect, it, vi } from 'vitest';
import { compiledOnce } from '../../src/store/compiled-query.js';
import { openStore, type Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { MINUTE, T0, trackedRow } from '../support/task-rows.js';

const CHILD = fileURLToPath(new URL('../fixtures/sqlite-counter-child.ts', import.meta.url));
const HOLDER = fileURLToPath(new URL('../fixtures/sqlite-lock-holder.ts', import.meta.url));
const ROUNDS = 300;

/** A SQLite file opened as shared by processes, with `counter.n` at 0. */
async function sharedCounter(prefix: string): Promise<{ file: string; store: Store }> {
  const file = join(mkdtempSync(join(tmpdir(), prefix)), 'shared.db');
  const store = await openStore(`sqlite:${file}`, { sharedByProcesses: true });
  await sql`CREATE TABLE counter (n INTEGER NOT NULL)`.execute(store.db);
  await sql`INSERT INTO counter (n) VALUES (0)`.execute(store.db);
  return { file, store };
}

/**
 * Another process takes the file's write lock and keeps it until `release()`; resolves once it
 * holds it, with its exit (listened for at once). Held for as long as the test needs, however
 * slow the machine: a lock held for a real number of ms could be gone before this process acted.
 */
async function holdWriteLock(file: string): Promise<{ release: () => void; gone: Promise<unknown> }> {
  const holder = spawn(process.execPath, ['--import', 'tsx', HOLDER, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const gone = new Promise((resolve) => holder.once('exit', resolve));
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  return { release: () => holder.stdin.end(), gone };
}

function run(file: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, file, String(ROUNDS)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

it('serializes read-then-write transactions of several processes on one file: none fails, none is lost', { timeout: 60_000 }, async () => {
  const { file, store } = await sharedCounter('kg-sqlite-processes-');
  expect(store.shared).toBe(true);

  const results = await Promise.all([run(file), run(file), run(file)]);
  for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
  const { rows } = await sql<{ n: number }>`SELECT n FROM counter`.execute(store.db);
  expect(rows[0]!.n).toBe(3 * ROUNDS);
  await store.close();
});

it("waits for another process's write lock without stopping this process", { timeout: 30_000 }, async () => {
  const { file, store } = await sharedCounter('kg-sqlite-turns-');
  const holder = await holdWriteLock(file);

  // Timers keep firing while the transaction waits its turn (SQLite's busy handler would sleep the process).
  let ticks = 0;
  const ticking = setInterval(() => ticks++, 10);
  let written = false;
  const writing = store.db
    .transaction()
    .execute(async (trx) => {
      await sql`UPDATE counter SET n = n + 1`.execute(trx);
    })
    .then(() => (written = true));
  await vi.waitFor(() => expect(ticks).toBeGreaterThanOrEqual(20), { timeout: 10_000 });
  // Twenty ticks of this process's timers, and the transaction still waits for the lock.
  expect(written).toBe(false);
  holder.release();
  await writing;
  clearInterval(ticking);
  await holder.gone;

  const { rows } = await sql<{ n: number }>`SELECT n FROM counter`.execute(store.db);
  expect(rows[0]!.n).toBe(1);
  await store.close();
});

it("a compiled write outside a transaction waits for another process's write lock too", { timeout: 30_000 }, async () => {
  const { file, store } = await sharedCounter('kg-sqlite-direct-');
  // The shape of the gateway's hot writes (a task's status change): compiled once, `RETURNING`
  // rows, run on the database itself rather than in a transaction.
  const db = store.db as unknown as Kysely<{ counter: { n: number } }>;
  const add = compiledOnce((step: number) => db.updateTable('counter').set({ n: sql`n + ${step}` }).returning('n'), 1);
  const holder = await holdWriteLock(file);

  const adding = add(store.db, 5);
  await new Promise((resolve) => setTimeout(resolve, 100));
  holder.release();
  const { rows } = await adding;
  await holder.gone;
  expect(rows).toEqual([{ n: 5 }]);
  await store.close();
});

it("a worker tick with nothing due does not wait for another process's write lock; one with a task due leases it in its turn", { timeout: 30_000 }, async () => {
  const { file, store } = await sharedCounter('kg-sqlite-ticks-');
  const tasks = new TaskStore(store);
  await tasks.createTask(trackedRow('t_later', T0 + MINUTE));

  let holder = await holdWriteLock(file);
  // Nothing due: each claim answers at once, while the other process still holds the lock.
  expect(await tasks.claimDueForTracking(T0, 'worker-a', MINUTE, 10)).toEqual([]);
  expect(await tasks.claimDueForStorage(T0, 'worker-a', MINUTE, 10)).toEqual([]);
  expect(await tasks.claimDueDeliveries(T0, 'worker-a', MINUTE, 10)).toEqual([]);
  const probe = new SqliteDatabase(file, { timeout: 0 });
  expect(() => probe.exec('begin immediate')).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
  probe.close();
  holder.release();
  await holder.gone;

  await tasks.createTask(trackedRow('t_due', T0 - 1));
  // A task due: the claim writes, so it waits until the other process lets go (rather than failing).
  holder = await holdWriteLock(file);
  const claiming = tasks.claimDueForTracking(T0, 'worker-a', MINUTE, 10);
  await new Promise((resolve) => setTimeout(resolve, 100));
  holder.release();
  const claimed = await claiming;
  await holder.gone;
  expect(claimed.map((row) => [row.id, row.lease_owner, row.lease_until])).toEqual([['t_due', 'worker-a', T0 + MINUTE]]);
  await store.close();
});

it('is shared only when asked: a lone process keeps standing and limits in memory', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-sqlite-lone-')), 'lone.db');
  const lone = await openStore(`sqlite:${file}`);
  expect(lone.shared).toBe(false);
  await lone.close();
  const memory = await openStore('sqlite::memory:', { sharedByProcesses: true });
  expect(memory.shared).toBe(false);
  await memory.close();
});
