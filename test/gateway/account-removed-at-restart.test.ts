/**
 * A provider's own `api_key` is its account `default`. An operator who moves that key into
 * `accounts` under another id (as the README's example names them, `main`) and restarts leaves
 * every task still in flight on `default` with nobody to ask about it: it waits for its deadline
 * and fails as `timeout`, though the upstream made (and billed) the video. The start says so at
 * once, per provider and account, with what to do; a restart that keeps the account says nothing.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const request = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };

function warnings(text: string): { msg: string; provider?: string; account?: string; tasks?: number }[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((line) => line.level === 'warn' || line.level === 40);
}

/** A sandbox and a database of their own, and a gateway started on both with what a test adds (logs, endpoints). */
async function sandboxAndDatabase() {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const { endpoints, simulators } = sandbox;
  const database = tempDatabaseUrl();
  const start = (options: Omit<Parameters<typeof startTestGateway>[0] & object, 'clock' | 'endpoints' | 'simulators' | 'config'> = {}) =>
    startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } }, ...options });
  return { endpoints, start };
}

it('warns at start about tasks in flight on an account the configuration no longer has, and not otherwise', async () => {
  const { endpoints, start } = await sandboxAndDatabase();
  const first = await start();
  const created = await Promise.all([first.create(request), first.create({ ...request, prompt: 'a second lighthouse' })]);
  expect(created.map((answer) => answer.body.status)).toEqual(['processing', 'processing']);
  await first.close();

  // Restarted as it was: nothing to say.
  const kept = capturedLogs();
  const same = await start({ logTo: kept.sink });
  await same.close();
  expect(warnings(kept.text()).filter((line) => /no longer has/.test(line.msg))).toEqual([]);

  // The key moved into `accounts` as `main`: the two tasks on `default` are stranded.
  const kling3api = endpoints.get('kling3api')!;
  const moved = capturedLogs();
  const renamed = await start({
    logTo: moved.sink,
    endpointOverrides: { kling3api: { accounts: [{ id: 'main', apiKey: kling3api.apiKey }] } },
  });
  open.push(renamed);
  expect(warnings(moved.text()).filter((line) => /no longer has/.test(line.msg))).toEqual([
    {
      level: 'warn',
      time: expect.any(String),
      service: 'kling-gateway',
      provider: 'kling3api',
      account: 'default',
      tasks: 2,
      msg: '2 tasks in flight on kling3api account default, which the configuration no longer has: nothing can ask about them, so they fail as timeout at their deadline; restore that account (a provider\'s own api_key is its account "default") until they have ended',
    },
  ]);
});

it('warns at start about tasks in flight on a provider whose key was removed, which turned it off without a key to follow them with', async () => {
  const { start } = await sandboxAndDatabase();
  const first = await start();
  expect((await first.create(request)).body.status).toBe('processing');
  await first.close();

  // What a live start gives a provider left without a key (`KLING3API_API_KEY` unset).
  const logs = capturedLogs();
  const keyless = await start({
    logTo: logs.sink,
    endpointOverrides: { kling3api: { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false, disabledReason: 'no api_key configured' } },
  });
  open.push(keyless);
  expect(warnings(logs.text()).filter((line) => /in flight on/.test(line.msg))).toEqual([
    {
      level: 'warn',
      time: expect.any(String),
      service: 'kling-gateway',
      provider: 'kling3api',
      tasks: 1,
      msg: '1 task in flight on kling3api, which has no key now (no api_key configured): nothing can ask about it, so it fails as timeout at its deadline; give the key back, and turn the provider off with enabled: false instead (its tasks in flight are still followed)',
    },
  ]);
});
