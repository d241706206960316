/**
 * With `WORKERS`, what the start finds wrong is said once per start, as a lone gateway says it:
 * the configuration warnings (a misspelt variable, a loopback public URL in a live deployment, a
 * provider without a webhook secret), a provider disabled for want of a key, tasks in flight
 * that nothing can ask about any more, and a result storage that does not answer. Each worker
 * said the last three again (twice with two workers, and once more for every worker replaced
 * after a crash), so an operator counting the lines read twice the trouble there was.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { startGatewayProcess, workerPidsOf, type GatewayProcess } from '../support/gateway-process.js';
import { startTestGateway, testConfig } from '../support/harness.js';

const running: GatewayProcess[] = [];
afterEach(() => {
  for (const gateway of running.splice(0)) if (gateway.child.exitCode === null && gateway.child.signalCode === null) gateway.child.kill('SIGKILL');
});

/** What the start warns about, as the operator reads it. */
const START_WARNING = /disabled: |in flight on|public_url|webhook_secret is not set|environment variable|result storage does not answer/;

/** Resolves once `test` accepts one of `lines` (read as they come). */
async function seen<Line>(lines: Line[], test: (line: Line) => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!lines.some(test)) {
    if (Date.now() > until) throw new Error('not logged in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

it('says each start-up warning once with two workers, and not again when a worker is replaced', { timeout: 180_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-start-warnings-'));
  const database = `sqlite:${join(folder, 'gateway.db')}`;

  // A task in flight on kling3api, written by a gateway that had its key.
  const clock = new ManualClock(Date.now());
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  const before = await startTestGateway({ clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config: { database: { url: database } } });
  const created = await before.create({ model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } });
  expect(created.body.status).toBe('processing');
  await before.close();
  await sandbox.close();

  // Live on Freepik alone (its key misspelt once more beside it): kling3api and kling-legacy are
  // disabled, and the kling3api task is stranded.
  const lines: { level: string; msg: string; worker?: number }[] = [];
  const gateway = await startGatewayProcess(
    {
      WORKERS: '2',
      HOST: '127.0.0.1',
      DATABASE_URL: database,
      STORAGE_PATH: join(folder, 'outputs'),
      LOG_LEVEL: 'info',
      GATEWAY_API_KEYS: 'acme:acme-live-key-123456',
      FREEPIK_API_KEY: 'fpk-live-test-key',
      FREEPIK_BASE_URL: 'http://127.0.0.1:1',
      FREEPIK_APIKEY: 'fpk-live-test-key',
      // Copies go to a bucket on a port nothing listens on: the start's check of it says so.
      STORAGE_BACKEND: 's3',
      S3_BUCKET: 'kling-results',
      S3_ENDPOINT: 'http://127.0.0.1:1',
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: 'test-access-key',
      S3_SECRET_ACCESS_KEY: 'test-secret-value',
    },
    (line) => lines.push(JSON.parse(line)),
    90_000,
  );
  running.push(gateway);
  // Each worker writes its own lines, which may reach the pipe after the primary's ready line:
  // every warning the start owes is awaited, and the count is taken once a replacement has started
  // too, by when a second worker's (or the replacement's) copy would have come.
  const warnings = () => lines.filter((line) => line.level === 'warn' && START_WARNING.test(line.msg)).map((line) => line.msg);
  const expected = [
    (msg: string) => /kling3api disabled: /.test(msg),
    (msg: string) => /kling-legacy disabled: /.test(msg),
    (msg: string) => msg.startsWith('1 task in flight on kling3api, which has no key now'),
    (msg: string) => msg.startsWith('environment variable FREEPIK_APIKEY is set'),
    (msg: string) => msg.startsWith('providers.freepik.webhook_secret is not set'),
    (msg: string) => msg.startsWith('server.public_url'),
    (msg: string) => msg.startsWith('result storage does not answer'),
  ];
  for (const test of expected) await seen(lines, (line) => line.level === 'warn' && test(line.msg));

  // A worker dies and is replaced: the start's warnings are not said again.
  const [killed] = workerPidsOf(gateway.child);
  const serving = lines.filter((line) => / serving$/.test(line.msg)).length;
  process.kill(killed!, 'SIGKILL');
  await seen(lines, (line) => / died; replacing it/.test(line.msg));
  await seen(lines, () => lines.filter((line) => / serving$/.test(line.msg)).length > serving);
  const said = warnings();
  for (const test of expected) expect(said.filter(test)).toHaveLength(1);
  expect(new Set(said).size).toBe(said.length);
});
