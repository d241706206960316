/**
 * `WORKERS=2` on a SQLite file whose primary is killed with SIGKILL: the operating system lets go
 * of the primary's hold on `<database>.owner` at once, but a worker that has not yet noticed its
 * primary is gone (its event loop blocked, the process stopped) still runs on the file, with its
 * leases, its creates on their way and its polls. A gateway started at once on the same file took
 * over every lease at start and served beside it — two gateways on one SQLite file, which the
 * hold is there to prevent. The new start now waits until the old primary's workers have ended,
 * saying so (with their process ids), and serves only then.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { READY } from '../../cluster/ready-line.js';
import { processAlive, startGatewayProcess, workerPidsOf } from '../support/gateway-process.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const started: ChildProcess[] = [];
const stoppedPids: number[] = [];

afterEach(() => {
  for (const pid of stoppedPids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Whether `pid` still runs (a process that ended but was not yet reaped counts as ended). */
function running(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<unknown> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
}

/** Resolves with the first line of `child`'s output that `test` accepts. */
function firstLine(child: ChildProcess, test: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let rest = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) if (test(part)) resolve(part);
    });
    child.once('exit', (code, signal) => reject(new Error(`the gateway ended (${code ?? signal})`)));
  });
}

it('a start after the primary was killed waits for its workers still running on the SQLite file, then serves', { timeout: 120_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-orphans-'));
  const env = { WORKERS: '2', HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`, STORAGE_PATH: join(folder, 'outputs'), LOG_LEVEL: 'info' };
  const first = await startGatewayProcess(env, () => undefined, 90_000);
  started.push(first.child);
  const [blocked, other] = workerPidsOf(first.child);
  expect(blocked && other).toBeTruthy();

  // One worker is stopped (it stands for a worker whose event loop is busy): it cannot notice yet
  // that its primary is gone. The primary is killed outright.
  process.kill(blocked!, 'SIGSTOP');
  stoppedPids.push(blocked!);
  first.child.kill('SIGKILL');
  await exited(first.child);

  const second = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/main.ts')], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(second);
  const said = firstLine(second, (line) => line.includes(READY) || line.includes('still run on'));
  // The new start does not serve beside the old worker: it says it waits for it, naming it.
  const line = await said;
  expect(line).not.toContain(READY);
  expect(line).toContain(String(blocked));
  // How long it will wait: the workers' drain (here the default, the longest upstream timeout + 5 s) and their listener's end.
  expect(line).toContain('waiting up to 70 s (their drain, up to 35 s, and 35 s to close their connections)');
  expect(running(blocked!)).toBe(true);

  // Once the old worker runs again, it finds its primary gone and ends; then the new start serves.
  const ready = firstLine(second, (each) => each.includes(READY));
  process.kill(blocked!, 'SIGCONT');
  const url = (JSON.parse(await ready) as { url: string }).url;
  expect(running(blocked!)).toBe(false);
  expect((await fetch(`${url}/readyz`)).status).toBe(200);
});
