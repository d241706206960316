/**
 * A crash between the two writes that follow an accepted create (dispatcher.ts: the attempt is
 * marked `accepted`, then the task is moved to `tracking` with the upstream id) must not make
 * the next start send the same task upstream again.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { TENANT_KEY, startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a lighthouse at dusk', duration: 5, routing: { providers: ['kling3api'] } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

// Regression (review): a crash after updateAttempt('accepted') but before lifecycle.startTracking() commits makes recoverAbandoned requeue the task and submit it upstream a second time (paid twice).
it('does not create a second upstream task after a crash between the accepted attempt and the tracking write', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = tempDatabaseUrl();

  const first: TestGateway = await startTestGateway({
    clock,
    endpoints: sandbox.endpoints,
    simulators: sandbox.simulators,
    config: { database: { url: database } },
  });
  cleanups.push(() => first.close());
  // The process "dies" right after `store.updateAttempt(..., { outcome: 'accepted' })`: the next
  // await (moving the task to tracking with its provider_task_id) never completes.
  (first.gateway.dispatcher as unknown as { lifecycle: { startTracking: () => Promise<never> } }).lifecycle.startTracking = () =>
    new Promise<never>(() => undefined);

  const client = new AbortController();
  const pending = fetch(`${first.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(request),
    signal: client.signal,
  }).catch(() => undefined);
  const kling3api = sandbox.simulators.get('kling3api')!;
  for (let i = 0; i < 200 && kling3api.tasks.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(kling3api.tasks).toHaveLength(1);
  // Let the 'accepted' attempt write land, then the client gives up.
  await new Promise((resolve) => setTimeout(resolve, 50));
  client.abort();
  await pending;

  // A new process on the same database (the crashed one never writes again).
  const second = await startTestGateway({
    clock,
    endpoints: sandbox.endpoints,
    simulators: sandbox.simulators,
    config: { database: { url: database } },
  });
  cleanups.push(() => second.close());
  const [task] = (await second.request('GET', '/v1/videos')).body.data;
  expect(task.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['accepted']);
  await second.advance(1_000);
  await second.advance(1_000);

  // The upstream already holds (and bills) the first task: it must not be sent again.
  expect(kling3api.tasks).toHaveLength(1);
});
