/**
 * A start after a `WORKERS` primary was killed waits for that primary's workers still running on
 * the SQLite file: each stops the way a gateway stops, draining for up to
 * `server.drain_timeout_ms`. The wait was a fixed 60 s: with a longer drain, the start gave up
 * (exit 1, "end them first") while a worker was still legitimately draining, inviting the
 * operator to kill it in the middle of its creates. The wait now follows the configured drain,
 * and says how long it waited.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterEach, expect, it, vi } from 'vitest';
import { drainTimeoutMs, parseConfig } from '../../src/config/config.js';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDER_IDS } from '../../src/providers/registry.js';

const opened: SqliteDatabase.Database[] = [];
afterEach(() => {
  for (const db of opened.splice(0)) if (db.open) db.close();
});

/** A SQLite file with an orphaned worker on it: a process holding its share of `<database>.workers`. */
async function fileWithOrphan() {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-orphan-wait-')), 'gateway.db');
  const orphan = new SqliteDatabase(`${file}.workers`);
  opened.push(orphan);
  orphan.exec('begin');
  orphan.prepare('select count(*) from sqlite_master').get();
  // Each test its own module: the hold is the process's, taken once.
  vi.resetModules();
  const owner = await import('../../src/store/sqlite-owner.js');
  return { url: `sqlite:${file}`, file, orphan, owner };
}

it('waits past 60 s for an orphaned worker while its configured drain allows, and starts once it has ended', async () => {
  const { url, orphan, owner } = await fileWithOrphan();
  const clock = new ManualClock();
  const told: number[] = [];
  let started = false;
  const hold = owner.holdSqliteFile(url, { drainMs: 120_000, clock, onWaiting: (_pids, waitMs) => told.push(waitMs) }).then(() => (started = true));

  await clock.advance(100_000);
  expect(started).toBe(false);
  expect(told).toEqual([155_000]);

  // The orphan ends its drain and exits.
  orphan.exec('rollback');
  orphan.close();
  await clock.advance(200);
  await hold;
  expect(started).toBe(true);
});

it('gives up once the configured drain and the time to close its connections are over, saying how long it waited', async () => {
  const { url, file, owner } = await fileWithOrphan();
  const clock = new ManualClock();
  let outcome: unknown;
  const hold = owner.holdSqliteFile(url, { drainMs: 120_000, clock }).then(
    () => (outcome = 'started'),
    (error: unknown) => (outcome = error),
  );

  await clock.advance(154_800);
  expect(outcome).toBeUndefined();
  await clock.advance(400);
  await hold;
  expect(outcome).toBeInstanceOf(owner.SqliteWorkersStillRunningError);
  expect((outcome as Error).message).toBe(
    `worker processes of a gateway whose primary ended still run on the SQLite database ${file} after 155 s (their drain, up to 120 s, and 35 s to close their connections): end them first`,
  );
});

it('lets go of the database when it gives up, so a later start takes it once the orphan has ended', async () => {
  const { url, file, orphan, owner } = await fileWithOrphan();
  const clock = new ManualClock();
  const hold = owner.holdSqliteFile(url, { drainMs: 1_000, clock }).catch((error: unknown) => error);
  await clock.advance(36_100);
  expect(await hold).toBeInstanceOf(owner.SqliteWorkersStillRunningError);

  // Nobody holds `.owner` any more: another process could take it (here, another connection).
  const other = new SqliteDatabase(`${file}.owner`);
  opened.push(other);
  other.pragma('busy_timeout = 0');
  other.exec('begin exclusive; commit');
  other.close();

  // And this process takes it for real once the orphan ended (not told it holds it already).
  orphan.exec('rollback');
  orphan.close();
  await owner.holdSqliteFile(url, { clock });
  const again = new SqliteDatabase(`${file}.owner`);
  opened.push(again);
  again.pragma('busy_timeout = 0');
  expect(() => again.exec('begin exclusive; commit')).toThrow(/locked|busy/i);
});

it('kling-gateway migrate refuses a SQLite file orphaned workers still run on, as one a running gateway holds, at once and changing nothing', async () => {
  const { url, file } = await fileWithOrphan();
  const { runCliCaptured } = await import('../support/cli-run.js');
  const refused = await runCliCaptured(['migrate', '--database-url', url], { env: {} });
  expect(refused.code).toBe(2);
  expect(refused.stderr).toMatch(
    /worker processes of a gateway whose primary ended still run on this file; stop them before migrating \(\d+ migrations to apply: 0001_initial, .*\); nothing was changed/,
  );
  expect(new SqliteDatabase(file, { readonly: true }).prepare("select name from sqlite_master where type = 'table'").all()).toEqual([]);
  // The lock is not left held by the command.
  const other = new SqliteDatabase(`${file}.owner`);
  opened.push(other);
  other.pragma('busy_timeout = 0');
  other.exec('begin exclusive; commit');
});

it('takes the drain the start waits for from server.drain_timeout_ms, or the longest upstream timeout_ms plus 5 s', () => {
  const config = (server: object, providers: object) =>
    parseConfig({ server: { public_url: 'http://127.0.0.1:1', ...server }, database: { url: 'sqlite::memory:' }, auth: { api_keys: 'acme:acme-key-123456' }, providers }, {}, PROVIDER_IDS);
  expect(drainTimeoutMs(config({ drain_timeout_ms: 90_000 }, {}), PROVIDER_IDS)).toBe(90_000);
  expect(drainTimeoutMs(config({}, { freepik: { timeout_ms: 70_000 } }), PROVIDER_IDS)).toBe(75_000);
  // A provider the file leaves out has the default 30 s.
  expect(drainTimeoutMs(config({}, { freepik: { timeout_ms: 10_000 } }), PROVIDER_IDS)).toBe(35_000);
});
