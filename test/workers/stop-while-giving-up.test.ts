/**
 * A SIGTERM that comes while the primary of `WORKERS` is already giving up (a worker was refused
 * the configuration, exit 78, or its start failed, exit 1) ran a second stop beside the first:
 * the store was closed twice, and whichever stop ended the process first chose its status, so a
 * supervisor could read exit 0 (a clean stop) from a gateway that cannot run. The failing status
 * now wins, and the stop runs once.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { CONFIG_REFUSED_EXIT } from '../../src/config/config.js';
import { compiledBuild } from '../support/gateway-process.js';
import { spawnWorkersGateway } from '../support/workers-process.js';

// The compiled build, as `npm start` runs it: each worker start goes through tsx otherwise.
beforeAll(() => compiledBuild(), 120_000);

it('exits with the status of the give-up when SIGTERM comes while the primary gives up', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-stop-giving-up-'));
  const preload = join(folder, 'refuse-in-worker.mjs');
  // Worker 1 ends as one refused the configuration does; worker 2 takes a moment to stop, so the
  // primary's give-up is still waiting for it when the SIGTERM comes.
  writeFileSync(
    preload,
    [
      `import cluster from 'node:cluster';`,
      `if (cluster.isWorker && process.env.KLING_GATEWAY_WORKER === '1') process.exit(${CONFIG_REFUSED_EXIT});`,
      `if (cluster.isWorker && process.env.KLING_GATEWAY_WORKER === '2') process.on('SIGTERM', () => setTimeout(() => process.exit(0), 1_000));`,
    ].join('\n'),
  );
  const child = spawnWorkersGateway(folder, preload, { stderr: 'pipe', compiled: true });
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('stopping every worker') && !child.killed) child.kill('SIGTERM');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 80_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);

  expect(child.killed).toBe(true);
  expect(code).toBe(CONFIG_REFUSED_EXIT);
  expect(err).not.toContain('failed');
  expect(out).not.toContain('uncaught');
});
