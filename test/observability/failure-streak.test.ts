import { expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { FailureStreak } from '../../src/observability/failure-streak.js';
import { capturedLogs } from '../support/captured-logs.js';

function streak() {
  const logs = capturedLogs();
  let now = 0;
  const failures = new FailureStreak(createLogger('info', { destination: logs.sink }), { worker: 'tracking' }, 'worker passes', () => now);
  const lines = () => logs.text().trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown> & { msg: string; err?: { stack?: string } });
  return { failures, lines, advance: (ms: number) => (now += ms) };
}

const full = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
const ioError = () => Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });

it('logs a different failure in the middle of a streak in full, and the same one again only once a minute', async () => {
  const { failures, lines, advance } = streak();
  for (let pass = 0; pass < 30; pass++, advance(1_000)) failures.failed(full(), 'worker pass failed');
  failures.failed(ioError(), 'worker pass failed: disk');
  // A pass a second: the 60th after the one logged in full comes a minute after it.
  for (let pass = 0; pass < 60; pass++) {
    advance(1_000);
    failures.failed(ioError(), 'worker pass failed: disk');
  }
  await new Promise((resolve) => setImmediate(resolve));
  const logged = lines();
  expect(logged.map((line) => [line.msg, line.err?.stack !== undefined])).toEqual([
    ['worker pass failed', true],
    ['worker pass failed: disk', true],
    ['worker pass failed: disk (still failing: 60 more passes failed since it was last logged, 91 in a row)', false],
  ]);
});

it('says nothing after a pass that succeeds when none failed, and once how many failed when passes succeed again', async () => {
  const { failures, lines, advance } = streak();
  failures.succeeded();
  failures.failed(full(), 'worker pass failed');
  advance(1_000);
  failures.succeeded();
  failures.succeeded();
  // The same failure back within the minute it was logged in: counted, not logged, and the pass
  // that succeeds after it says nothing new.
  advance(1_000);
  failures.failed(full(), 'worker pass failed');
  failures.succeeded();
  // Back after that minute: a new streak, logged in full.
  advance(60_000);
  failures.failed(full(), 'worker pass failed');
  failures.succeeded();
  await new Promise((resolve) => setImmediate(resolve));
  expect(lines().map((line) => [line.level, line.msg, line.err !== undefined])).toEqual([
    ['error', 'worker pass failed', true],
    ['info', 'worker passes succeed again after 1 failure', false],
    ['error', 'worker pass failed', true],
    ['info', 'worker passes succeed again after 1 failure', false],
  ]);
});

const unreachable = () => Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
const startingUp = () => Object.assign(new Error('the database system is starting up'), { code: '57P03' });

// A PostgreSQL restarting: one pass is refused the connection, the next told it is starting up,
// and so on. Each change of failure was logged in full, so the streak logged every pass.
it('logs two failures that alternate pass after pass each once in full, then once a minute', async () => {
  const { failures, lines, advance } = streak();
  for (let pass = 0; pass < 150; pass++, advance(1_000)) failures.failed(pass % 2 === 0 ? unreachable() : startingUp(), 'worker pass failed');
  await new Promise((resolve) => setImmediate(resolve));
  const logged = lines();
  expect(logged.filter((line) => line.err !== undefined)).toHaveLength(2);
  // Each failure said again once a minute, with a count: two and a half minutes, two lines each.
  expect(logged.filter((line) => line.err === undefined).map((line) => line.code)).toEqual(['ECONNREFUSED', '57P03', 'ECONNREFUSED', '57P03']);
});

// A database whose disk refuses writes: a pass that has something to write fails, the next has
// nothing to write and succeeds, and so on. Each failure was logged in full and each success said
// "succeed again": two lines a pass, twice a second per worker.
it('logs a failure that comes back pass after pass between passes that succeed at most about twice a minute', async () => {
  const { failures, lines, advance } = streak();
  for (let pass = 0; pass < 300; pass++, advance(1_000)) {
    if (pass % 2 === 0) failures.failed(full(), 'worker pass failed');
    else failures.succeeded();
  }
  await new Promise((resolve) => setImmediate(resolve));
  const logged = lines();
  // Five minutes: the failure in full once a minute at most, and as often the passes succeeding again.
  expect(logged.filter((line) => line.level === 'error').length).toBeLessThanOrEqual(5);
  expect(logged.filter((line) => line.level === 'info').length).toBeLessThanOrEqual(5);
  expect(logged[0]).toMatchObject({ level: 'error', msg: 'worker pass failed' });
  expect(logged[0]!.err?.stack).toBeDefined();
});

// A wall clock stepped back (an NTP correction): the streak's last telling is then in the future,
// and the same failure was not said again until the clock caught up with it (an hour here).
it('says a failure still failing again within a minute after the clock steps back', async () => {
  const { failures, lines, advance } = streak();
  failures.failed(full(), 'worker pass failed');
  advance(-3_600_000);
  for (let pass = 0; pass < 61; pass++) {
    advance(1_000);
    failures.failed(full(), 'worker pass failed');
  }
  await new Promise((resolve) => setImmediate(resolve));
  const logged = lines();
  expect(logged.length).toBeGreaterThanOrEqual(2);
  expect(logged[1]!.msg).toMatch(/^worker pass failed \(still failing: \d+ more (pass|passes) failed since it was last logged, \d+ in a row\)$/);
});
