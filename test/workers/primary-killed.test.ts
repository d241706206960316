/**
 * `WORKERS=2` whose primary is killed with SIGKILL while creates are on their way upstream (the
 * simulators in a process of their own, as `SIMULATORS_URL` shares them, so they outlive it). A
 * worker whose primary is gone stops by itself — and, like every stop of the gateway, drains
 * first: node:cluster's own handler ended it at once (process.exit on the lost channel, before
 * the gateway's stop ran), so every create on its way was cut, its client reset, a kling3api task
 * the upstream accepted settled as interrupted (kling3api offers no way to find it again), and the
 * worker wrote no line saying why it ended. Now the creates are answered `202` and their tasks
 * succeed after a restart, with one upstream task each. A message a worker sends the primary
 * after it is gone (rate-limiter-flexible asks the shared create counter with no callback) is
 * raised as an 'error' event on the process, which nothing heard: the worker crashed in the
 * middle of its drain. It is now ignored (the ask times out into a 503).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { startGatewayProcess } from '../support/gateway-process.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const KEY = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** The simulators in a process of their own, on ports the system picks; resolves with their control URL. */
async function startSimulators(): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/simulators.ts')], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', SIMULATORS_PORT: '0', SIMULATORS_HOST: '127.0.0.1', SANDBOX_QUEUED_MS: '200', SANDBOX_PROCESSING_MS: '800' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(child);
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.split('\n').find((each) => each.startsWith('{"url"'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`the simulators ended (${code})`)));
  });
}

interface Task {
  id: string;
  status: string;
  provider_task_id: string | null;
  attempts: { outcome: string }[];
}

it('a worker whose primary was killed answers the creates it had on their way before it ends', { timeout: 120_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-primary-killed-'));
  const simulators = await startSimulators();
  // In each worker, a message to the primary just after it is gone, as a create's ask of the
  // shared counter would be when it comes at that moment.
  const late = join(folder, 'late-message.mjs');
  writeFileSync(
    late,
    `import cluster from 'node:cluster';\nif (cluster.isWorker) process.once('disconnect', () => setImmediate(() => process.send({ late: true })));\n`,
  );
  const env = {
    WORKERS: '2',
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`,
    STORAGE_PATH: join(folder, 'outputs'),
    SIMULATORS_URL: simulators,
    LOG_LEVEL: 'info',
  };
  const lines: string[] = [];
  const first = await startGatewayProcess({ ...env, NODE_OPTIONS: `--import ${late}` }, (line) => lines.push(line), 90_000);
  started.push(first.child);

  // Each create is held upstream for 3 s: long enough to kill the primary while both are on their way.
  const fault = await fetch(`${simulators}/simulators/kling3api/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ on: 'submit', delayMs: 3_000, times: 2 }),
  });
  expect(fault.status).toBe(204);
  const creates = Array.from({ length: 2 }, (_, index) =>
    fetch(`${first.url}/v1/videos`, {
      method: 'POST',
      headers: KEY,
      body: JSON.stringify({ model: 'kling-v3', prompt: `a fox on its way ${index}`, duration: 5, routing: { providers: ['kling3api'] } }),
    }).then(
      async (response) => ({ status: response.status, task: (await response.json()) as Task }),
      (error: Error) => ({ status: 0, error: String((error.cause as Error | undefined)?.message ?? error.message) }),
    ),
  );
  // Both creates reached the upstream.
  const submits = async () =>
    ((await (await fetch(`${simulators}/simulators/kling3api/requests`)).json()) as { method: string }[]).filter((request) => request.method === 'POST').length;
  await expect.poll(submits, { timeout: 10_000, interval: 50 }).toBe(2);
  first.child.kill('SIGKILL');

  const answers = await Promise.all(creates);
  for (const answer of answers) expect(answer, JSON.stringify(answer)).toMatchObject({ status: 202 });
  // The workers said why they stopped.
  await expect.poll(() => lines.filter((line) => line.includes('"why":"primary gone"')).length, { timeout: 10_000 }).toBe(2);
  expect(lines.filter((line) => line.includes('"level":"fatal"'))).toEqual([]);

  // A restart on the same file follows them to the end: one upstream task each, succeeded.
  const second = await startGatewayProcess(env, () => undefined, 90_000);
  started.push(second.child);
  for (const answer of answers) {
    const id = (answer as { task: Task }).task.id;
    let task: Task;
    do task = (await (await fetch(`${second.url}/v1/videos/${id}?wait=30`, { headers: KEY })).json()) as Task;
    while (['queued', 'processing'].includes(task.status));
    expect(task.status, JSON.stringify(task)).toBe('succeeded');
    expect(task.attempts.filter((attempt) => attempt.outcome === 'accepted')).toHaveLength(1);
  }
  expect(await submits()).toBe(2);
});
