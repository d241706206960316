/**
 * An error nothing caught in a worker of `WORKERS` is logged (scrubbed) before the worker exits,
 * as in a lone gateway — and says which worker it was, as the worker's other lines do. The
 * report was written through the logger made before the worker knew its number: a fatal line
 * with no `worker`, beside the primary's line about the worker that ended.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { compiledBuild } from '../support/gateway-process.js';
import { spawnWorkersGateway } from '../support/workers-process.js';

const KEY = 'tenant-secret-key-0123456789';

// The compiled build, as `npm start` runs it: each worker start goes through tsx otherwise.
beforeAll(() => compiledBuild(), 120_000);

it('a worker crash report is scrubbed and names the worker', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-worker-crash-'));
  const preload = join(folder, 'throw-in-worker.mjs');
  // Only in the worker processes, once the gateway reports crashes there: an error nothing
  // catches, carrying a key.
  writeFileSync(
    preload,
    [
      `import cluster from 'node:cluster';`,
      `const armed = () => process.listenerCount('uncaughtException') > 0;`,
      `const check = setInterval(() => { if (!armed()) return; clearInterval(check); throw new Error('boom with the key ${KEY}'); }, 20);`,
      `if (!cluster.isWorker) clearInterval(check);`,
    ].join('\n'),
  );
  const child = spawnWorkersGateway(folder, preload, { apiKeys: `dev:${KEY}`, compiled: true });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 80_000);
  await new Promise((resolve) => child.once('exit', resolve));
  clearTimeout(timer);

  const lines = out
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: string; worker?: number; msg: string; error?: { message: string } });
  const crashes = lines.filter((line) => line.level === 'fatal');
  expect(crashes.length).toBeGreaterThan(0);
  for (const crash of crashes) {
    expect(crash.msg).toBe('uncaught exception; the gateway exits');
    expect(crash.error?.message).toBe('boom with the key [redacted]');
    expect([1, 2]).toContain(crash.worker);
  }
  expect(out).not.toContain(KEY);
});
