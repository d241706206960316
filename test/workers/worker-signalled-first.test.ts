/**
 * A stop signal that reaches the workers before the primary (a script that signals the worker
 * processes and then the primary, or a process manager signalling each process of the group in
 * turn): each worker drains and exits 0 before the primary has begun its own stop. The primary
 * logged each as "worker N died; replacing it" at error, for a gateway that was merely stopping.
 * A worker that stopped cleanly is now replaced without a word when the primary's own stop follows
 * within the replacement's pause; one that is really replaced says so, as a stop, not a death.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { compiledBuild, intoLogLines, processAlive, startGatewayProcess, workerPidsOf } from '../support/gateway-process.js';

let child: ChildProcess | undefined;
beforeAll(() => compiledBuild(), 120_000);
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
  }
  child = undefined;
});

type Line = { level?: number | string; msg?: string; worker?: number };

async function workersGateway(lines: Line[]) {
  const dir = mkdtempSync(join(tmpdir(), 'kg-worker-first-'));
  const started = await startGatewayProcess(
    {
      WORKERS: '2',
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
      STORAGE_PATH: join(dir, 'outputs'),
      GATEWAY_API_KEYS: 'acme:acme-key-123456',
      LOG_LEVEL: 'info',
    },
    intoLogLines(lines),
    90_000,
    { compiled: true },
  );
  child = started.child;
  const workers = workerPidsOf(child);
  expect(workers).toHaveLength(2);
  return { child, workers };
}

it('says nothing of dead workers when SIGTERM reaches the workers just before the primary', { timeout: 120_000 }, async () => {
  const lines: Line[] = [];
  const { child, workers } = await workersGateway(lines);
  for (const pid of workers) process.kill(pid, 'SIGTERM');
  await expect.poll(() => workers.some(processAlive), { timeout: 30_000, interval: 10 }).toBe(false);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(lines.filter((line) => /died|replac/.test(line.msg ?? '')).map((line) => line.msg)).toEqual([]);
});

it('replaces a worker sent SIGTERM alone, saying it stopped on a signal of its own, not that it died', { timeout: 120_000 }, async () => {
  const lines: Line[] = [];
  const { child, workers } = await workersGateway(lines);
  process.kill(workers[0]!, 'SIGTERM');
  await expect.poll(() => workerPidsOf(child).filter((pid) => !workers.includes(pid)).length, { timeout: 30_000, interval: 50 }).toBe(1);
  // The new worker shows in the process table at once; the primary's line comes down its output
  // pipe, which a loaded machine may have this process read only later: wait for the line.
  await expect.poll(() => lines.some((line) => /replac/.test(line.msg ?? '')), { timeout: 30_000, interval: 50 }).toBe(true);
  const said = lines.filter((line) => /replac/.test(line.msg ?? ''));
  expect(said.map((line) => [line.level, line.msg])).toEqual([
    ['warn', expect.stringMatching(/^worker \d ended with 0 on a stop signal sent to it alone \(the primary got none\); replaced$/)],
  ]);
  expect(lines.filter((line) => /died/.test(line.msg ?? ''))).toEqual([]);
});
