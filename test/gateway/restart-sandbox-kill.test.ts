/**
 * `npm start` with no keys: the gateway on a SQLite file with the three simulators in its own
 * process. Killed (`kill -9`) or stopped (SIGTERM) while its tasks are running and started again on the same file, it
 * resumes tracking them, and the simulators started with it know them too (their journal beside
 * the database file): every task ends `succeeded` with a video that plays, in seconds, instead
 * of each status call answering 404 and every task failing as `timeout` at its 30-minute deadline.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compiledBuild, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { restartablePort } from '../support/restart-port.js';

const HEADERS = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
const PROVIDERS = ['kling3api', 'freepik', 'kling-legacy'] as const;

const started: ChildProcess[] = [];

beforeAll(() => compiledBuild(), 120_000);

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

async function start(env: Record<string, string>, port?: number): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(env, () => undefined, 30_000, { compiled: true, ...(port !== undefined ? { port } : {}) });
  started.push(gateway.child);
  return gateway;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

describe('sandbox restarted on the same SQLite file (npm start, kill -9 or SIGTERM, npm start)', () => {
  it.each(['SIGKILL', 'SIGTERM'] as const)('finishes every task each provider was running when the process was stopped with %s', { timeout: 45_000 }, async (signal) => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-sandbox-kill-'));
    const env = {
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
      STORAGE_PATH: join(dir, 'outputs'),
      SANDBOX_QUEUED_MS: '1000',
      SANDBOX_PROCESSING_MS: '6000',
      LOG_LEVEL: 'info',
    };
    const first = await start(env, await restartablePort());
    const ids: Record<string, string> = {};
    for (const provider of PROVIDERS) {
      const created = await fetch(`${first.url}/v1/videos`, {
        method: 'POST',
        headers: HEADERS,
        body: JSON.stringify({ model: 'kling-v3', prompt: `a lighthouse in a storm (${provider})`, duration: 5, routing: { providers: [provider], allow_fallbacks: false } }),
      });
      expect(created.status).toBe(202);
      const body = (await created.json()) as { id: string; status: string };
      // Accepted upstream: the simulator holds the task.
      expect(body.status).toBe(provider === 'kling3api' ? 'processing' : 'queued');
      ids[provider] = body.id;
    }
    const createdAt = Date.now();
    await stop(first.child, signal);

    // On the port it listened on, as `npm start` on its configured port: webhooks and callbacks
    // of the phases reached from now on come to this process.
    const second = await start(env, first.port);
    const finished = await Promise.all(
      PROVIDERS.map(async (provider) => {
        const answer = await fetch(`${second.url}/v1/videos/${ids[provider]}?wait=25`, { headers: HEADERS });
        return { provider, task: (await answer.json()) as { status: string; error?: unknown; outputs?: { url: string }[] } };
      }),
    );
    for (const { provider, task } of finished) {
      expect({ provider, status: task.status, error: task.error ?? null }).toEqual({ provider, status: 'succeeded', error: null });
      const video = await fetch(task.outputs![0]!.url, { headers: HEADERS });
      expect(video.status).toBe(200);
      expect(video.headers.get('content-type')).toBe('video/mp4');
      // An MP4 starts with its `ftyp` box.
      expect(Buffer.from(await video.arrayBuffer()).subarray(4, 8).toString('latin1')).toBe('ftyp');
    }
    // Seconds after the tasks' 7 s, not their 30-minute deadline (nor the 60 s safety poll of the
    // tasks followed by webhooks and callbacks: those of the phases reached after the restart came).
    expect(Date.now() - createdAt).toBeLessThan(20_000);
  });
});
