/**
 * A live start gives a provider left without a key (its `KLING3API_API_KEY` unset by mistake) a
 * stand-in endpoint that is never to be called, and warns that nothing can ask about its tasks in
 * flight. Those tasks wait without calling anything, as those of an account no longer configured
 * do: not a failing status call every poll interval for the whole deadline, each logged as a
 * failure and opening the provider's circuit (an alert for a provider that is merely switched
 * off). Their deadline error says why nothing ended them sooner. Once the key is back at the next
 * start, they are polled again within a minute and end as the upstream says.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const request = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };
/** What a live start gives a provider left without a key. */
const KEYLESS: Record<string, Partial<ProviderEndpoint>> = {
  kling3api: { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false, disabledReason: 'no api_key configured' },
};

async function restartable() {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const { endpoints, simulators } = sandbox;
  const database = tempDatabaseUrl();
  return (options: Omit<Parameters<typeof startTestGateway>[0] & object, 'clock' | 'endpoints' | 'simulators' | 'config'> = {}) =>
    startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } }, ...options });
}

it('lets a task of a provider left without a key wait for its deadline without calling anything, and says why it timed out', async () => {
  const start = await restartable();
  const first = await start();
  const task = (await first.create(request)).body;
  expect(task.status).toBe('processing');
  await first.close();

  const logs = capturedLogs();
  const keyless = await start({ logTo: logs.sink, endpointOverrides: KEYLESS });
  open.push(keyless);
  for (let step = 0; step < 35; step++) await keyless.advance(60_000);

  const ended = (await keyless.get(task.id)).body;
  expect(ended.error).toEqual({
    code: 'timeout',
    message:
      "the task did not finish within the 30-minute deadline (last upstream status: IN_PROGRESS); nothing could ask about it: kling3api has no key in this gateway's configuration",
    provider_code: null,
  });
  const lines = logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { msg: string; provider?: string; task_id?: string });
  // Nothing was called: no failed polls logged, no circuit opened.
  expect(lines.filter((line) => line.msg === 'upstream call' || line.msg === 'status poll failed; will retry' || /^circuit/.test(line.msg))).toEqual([]);
  expect(lines.filter((line) => /holding this task/.test(line.msg)).map((line) => [line.task_id, line.msg])).toEqual([
    [task.id, 'the provider holding this task has no key configured'],
  ]);
  const provider = (await keyless.request('GET', '/v1/providers')).body.data.find((entry: { id: string }) => entry.id === 'kling3api');
  expect({ circuit: provider.circuit, calls: provider.calls }).toEqual({ circuit: 'closed', calls: 0 });
});

it('polls such a task again within a minute once the key is back at the next start, and finishes it', async () => {
  const start = await restartable();
  const first = await start();
  const task = (await first.create(request)).body;
  await first.close();

  const keyless = await start({ endpointOverrides: KEYLESS });
  for (let step = 0; step < 5; step++) await keyless.advance(60_000);
  expect((await keyless.get(task.id)).body.status).toBe('processing');
  await keyless.close();

  const restored = await start();
  open.push(restored);
  for (let step = 0; step < 30; step++) await restored.advance(2_000);
  expect((await restored.get(task.id)).body.status).toBe('succeeded');
});
