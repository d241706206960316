/**
 * A worker that crashes at once on every start, after the gateway first served (a dependency
 * gone bad under a running gateway): with `WORKERS=2` the primary replaced it for ever, every
 * 30 s at most, while a supervisor (systemd, Kubernetes) saw a running process and never heard of
 * the failure. What an operator sees now: the replacements come after growing pauses, and once
 * several in a row have ended before serving, with no worker serving meanwhile, the primary says
 * so, stops its workers and exits 1, which the supervisor acts on.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { CRASH_LOOP_LIMIT } from '../../src/workers/primary.js';
import { compiledBuild, intoLogLines, processAlive, workerPidsOf } from '../support/gateway-process.js';
import { spawnWorkersGateway } from '../support/workers-process.js';

// The compiled build, as `npm start` runs it: every replacement is a new process, which through
// tsx compiles the sources again before it can crash.
beforeAll(() => compiledBuild(), 120_000);

/**
 * A gateway with `WORKERS=2` whose workers end at once on start while `crash` exists (as one whose
 * start fails does), and the log lines its primary and workers have written so far.
 */
function crashOnStartGateway(prefix: string) {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  const crash = join(folder, 'crash-on-start');
  const preload = join(folder, 'crash-on-start.mjs');
  writeFileSync(preload, [`import cluster from 'node:cluster';`, `import { existsSync } from 'node:fs';`, `if (cluster.isWorker && existsSync(${JSON.stringify(crash)})) process.exit(1);`].join('\n'));
  const child = spawnWorkersGateway(folder, preload, { compiled: true });
  const lines: { msg?: string; code?: number; pid?: number }[] = [];
  const keep = intoLogLines(lines);
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    const parts = out.split('\n');
    out = parts.pop()!;
    for (const part of parts) keep(part);
  });
  /** Once it listens with its two workers: every start from now on fails, and the first worker is killed. Both workers' pids. */
  const killIntoCrashes = async () => {
    await expect.poll(() => lines.some((line) => line.msg?.includes('listening on')), { timeout: 60_000 }).toBe(true);
    const workers = workerPidsOf(child);
    expect(workers).toHaveLength(2);
    writeFileSync(crash, '');
    process.kill(workers[0]!, 'SIGKILL');
    return workers;
  };
  return { child, crash, lines, killIntoCrashes };
}

// The two tests wait on the primary's pauses (0.5 s doubling) with gateways of their own: side by side.
it.concurrent('stops every worker and exits 1 once replacements keep crashing on start, after growing pauses', { timeout: 120_000 }, async () => {
  const { child, lines, killIntoCrashes } = crashOnStartGateway('kg-crash-loop-');
  const exited = new Promise<number | null | 'still running'>((resolve) => {
    const timer = setTimeout(() => resolve('still running'), 100_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  try {
    const workers = await killIntoCrashes();

    expect(await exited).toBe(1);
    const replacing = lines.filter((line) => line.msg?.includes('replacing it in')).map((line) => Number(/replacing it in (\d+) ms/.exec(line.msg!)![1]));
    // The killed worker and the replacements that crashed, each waited for longer than the one before.
    expect(replacing).toEqual([500, 1_000, 2_000, 4_000, 8_000].slice(0, CRASH_LOOP_LIMIT));
    expect(lines.some((line) => line.msg?.includes(`${CRASH_LOOP_LIMIT} workers in a row ended before they served`))).toBe(true);
    // The worker that kept serving was stopped with it.
    expect(processAlive(workers[1]!)).toBe(false);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

it.concurrent('keeps replacing a worker whose failed starts are broken by one that served: no crash loop, and a SIGTERM still ends it with 0', { timeout: 180_000 }, async () => {
  const { child, crash, lines, killIntoCrashes } = crashOnStartGateway('kg-crash-loop-served-');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const replaced = () => lines.filter((line) => line.msg?.includes('replacing it in')).length;
  const serving = () => lines.filter((line) => / serving$/.test(line.msg ?? '')).length;
  const running = () => child.exitCode === null && child.signalCode === null;
  try {
    // Worker 1 is killed and its next three starts fail...
    const workers = await killIntoCrashes();
    await expect.poll(() => replaced(), { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(4);
    // ...then one serves.
    rmSync(crash);
    await expect.poll(() => serving(), { timeout: 60_000 }).toBe(3);
    const replacement = workerPidsOf(child).find((pid) => pid !== workers[1])!;
    // Killed again, its next two starts fail: five failed starts within the window, but one
    // served between them — no loop, which a replacement would not end.
    writeFileSync(crash, '');
    process.kill(replacement, 'SIGKILL');
    await expect.poll(() => replaced() >= 7 || !running(), { timeout: 90_000, interval: 100 }).toBe(true);
    expect(lines.some((line) => line.msg?.includes('workers in a row ended before they served'))).toBe(false);
    expect(running()).toBe(true);
    rmSync(crash);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    if (running()) child.kill('SIGKILL');
  }
});
