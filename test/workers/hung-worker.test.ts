/**
 * A worker that hangs (its event loop blocked, or the process stopped with SIGSTOP) under
 * `WORKERS=2`: the primary handed it every other new connection regardless, and each of those
 * requests waited, unanswered, for as long as the worker hung. What a user sees now: once the
 * worker has not answered the primary's heartbeat for a few seconds, new connections go to the
 * worker that answers; when the hung one answers again, it serves again.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compiledBuild, intoLogLines, processAlive, startGatewayProcess, workerPidsOf } from '../support/gateway-process.js';

let child: ChildProcess;
let base: string;
const lines: { worker?: number; msg?: string; req?: { url: string } }[] = [];
let stopped: number | undefined;

beforeAll(async () => {
  compiledBuild();
  const dir = mkdtempSync(join(tmpdir(), 'kg-workers-hung-'));
  const started = await startGatewayProcess(
    {
      WORKERS: '2',
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
      STORAGE_PATH: join(dir, 'outputs'),
      GATEWAY_API_KEYS: 'dev:dev-key',
      LOG_LEVEL: 'info',
    },
    intoLogLines(lines),
    60_000,
    // The compiled build, as `npm start` runs it: three processes start, each through tsx otherwise.
    { compiled: true },
  );
  child = started.child;
  base = started.url;
}, 90_000);

afterAll(async () => {
  if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

const workerPids = () => workerPidsOf(child);

/** GET `path` on a connection of its own (so the primary hands each to a worker in turn): its status, or `timeout`. */
function getOnNewConnection(path: string, timeoutMs: number): Promise<number | 'timeout' | 'error'> {
  return new Promise((resolve) => {
    const req = request(`${base}${path}`, { agent: false, headers: { authorization: 'Bearer dev-key' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', () => resolve('error'));
    req.end();
  });
}

it('sends new connections to the worker that answers while the other hangs, and to both once it answers again', { timeout: 90_000 }, async () => {
  const workers = workerPids();
  expect(workers).toHaveLength(2);
  stopped = workers[0]!;
  process.kill(stopped, 'SIGSTOP');
  // Until the primary says the worker has not answered its heartbeat for 5 s (its own clock: a
  // separate process), and hands it no more connections.
  await expect
    .poll(() => lines.some((line) => line.msg?.includes('has not answered for 5 s; new connections go to the other workers until it does')), { timeout: 20_000, interval: 100 })
    .toBe(true);
  const answers = [];
  for (let index = 0; index < 8; index++) answers.push(await getOnNewConnection('/v1/providers', 3_000));
  expect(answers).toEqual(Array.from({ length: 8 }, () => 200));

  process.kill(stopped, 'SIGCONT');
  stopped = undefined;
  // Once it answers again it takes its turn: requests on new connections reach both workers.
  const servedBy = () => new Set(lines.filter((line) => line.req?.url === '/v1/providers').map((line) => line.worker));
  const before = lines.length;
  await expect
    .poll(
      async () => {
        await getOnNewConnection('/v1/providers', 3_000);
        return new Set(lines.slice(before).filter((line) => line.req?.url === '/v1/providers').map((line) => line.worker)).size;
      },
      { timeout: 20_000, interval: 200 },
    )
    .toBe(2);
  expect(servedBy().size).toBe(2);
});

it('hands new connections to every worker when none answers the heartbeat, as before, and each is answered once they run again', { timeout: 90_000 }, async () => {
  const workers = workerPids();
  expect(workers).toHaveLength(2);
  const silentBefore = lines.filter((line) => line.msg?.includes('has not answered for 5 s')).length;
  for (const pid of workers) process.kill(pid, 'SIGSTOP');
  try {
    await expect
      .poll(() => lines.filter((line) => line.msg?.includes('has not answered for 5 s')).length - silentBefore, { timeout: 20_000, interval: 100 })
      .toBe(2);
    // Handed to a stopped worker, it waits in that worker's queue: not held in the primary, which
    // would answer it 503 after 10 s for want of a worker although both serve.
    const answer = new Promise<number | 'error'>((resolve) => {
      const req = request(`${base}/v1/providers`, { agent: false, headers: { authorization: 'Bearer dev-key' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    // The primary (idle) accepts the connection and hands it over before the workers run again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const pid of workers) process.kill(pid, 'SIGCONT');
    expect(await answer).toBe(200);
  } finally {
    for (const pid of workers) if (processAlive(pid)) process.kill(pid, 'SIGCONT');
  }
});

const alive = processAlive;

it('stops on SIGTERM with exit 0 while a worker hangs, ending the hung worker instead of waiting for it forever', { timeout: 90_000 }, async () => {
  const workers = workerPids();
  expect(workers).toHaveLength(2);
  stopped = workers[1]!;
  process.kill(stopped, 'SIGSTOP');
  const signalledAt = Date.now();
  child.kill('SIGTERM');
  // The worker that answers drains and exits; the hung one never would: the primary waited on it forever.
  const code = await new Promise<number | null | 'still running'>((resolve) => {
    const timer = setTimeout(() => resolve('still running'), 60_000);
    child.once('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  expect(code).toBe(0);
  expect(Date.now() - signalledAt).toBeLessThan(45_000);
  await expect.poll(() => workers.filter(alive), { timeout: 5_000 }).toEqual([]);
  stopped = undefined;
  expect(lines.some((line) => line.msg?.includes('ended with SIGKILL'))).toBe(true);
});
