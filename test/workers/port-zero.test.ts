/**
 * `PORT=0`: the gateway listens on a port the system picks. The default `public_url` is built from
 * `PORT`, so it named port 0, and upstream callbacks and webhooks went there: a Freepik task,
 * tracked by its webhooks, waited for the safety poll (60 s) instead of finishing in a second.
 * The URL upstreams call is the address it listens on, in one process and with `WORKERS`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startGatewayProcess } from '../support/gateway-process.js';

const KEY = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
const started: ChildProcess[] = [];

/** Starts the gateway on `PORT=0` (as the helper does); resolves with what its ready line says. */
async function startOnPortZero(workers: number): Promise<{ url: string; public_url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-port-zero-'));
  const { child, ready } = await startGatewayProcess({
    HOST: '127.0.0.1',
    WORKERS: String(workers),
    DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
    STORAGE_PATH: join(dir, 'outputs'),
    SANDBOX_QUEUED_MS: '200',
    SANDBOX_PROCESSING_MS: '800',
    LOG_LEVEL: 'info',
  });
  started.push(child);
  return ready;
}

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

describe('PORT=0', () => {
  it.each([1, 2])('with WORKERS=%i, upstreams call back on the port picked, so a webhook-tracked task ends in seconds', { timeout: 90_000 }, async (workers) => {
    const { url, public_url } = await startOnPortZero(workers);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(public_url).toBe(url);
    const created = await fetch(`${url}/v1/videos`, {
      method: 'POST',
      headers: KEY,
      body: JSON.stringify({ model: 'kling-v3', prompt: 'a fox on port zero', duration: 5, routing: { providers: ['freepik'], allow_fallbacks: false } }),
    });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    // Freepik is followed by its webhooks; without them the first poll comes after 60 s.
    const done = (await (await fetch(`${url}/v1/videos/${id}?wait=20`, { headers: KEY })).json()) as { status: string };
    expect(done.status).toBe('succeeded');
  });
});
