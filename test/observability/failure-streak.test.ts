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
  // A failure after the streak ended is a new streak, logged in full.
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
