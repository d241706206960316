/**
 * gateway.ts `close()` (what SIGTERM runs) cuts every open connection after 2 s and then closes
 * the store, without waiting for the request handlers still running. A create whose upstream
 * call is in flight at that moment (a slow but healthy upstream) loses its store: the upstream
 * accepts and bills the task, the gateway cannot record it, and the next start fails it as
 * "the gateway stopped while submitting" — on an orderly restart, not a crash.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { TENANT_KEY, startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a deploy in progress', duration: 5, routing: { providers: ['kling3api'] } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

// Regression (review): graceful close() does not drain in-flight creates (2 s connection cut, then store closed); an accepted, billed upstream task ends up failed after the restart.
it('finishes recording an in-flight create before a graceful shutdown closes the store', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = tempDatabaseUrl();
  const config = { database: { url: database }, providers: { kling3api: { timeout_ms: 10_000 } } };

  const first: TestGateway = await startTestGateway({ clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config });
  const kling3api = sandbox.simulators.get('kling3api')!;
  // A healthy upstream that takes 3 s to answer the create.
  kling3api.injectFault({ on: 'submit', delayMs: 3_000 });
  const reached = new Promise<void>((resolve) =>
    kling3api.onRequest((r) => {
      if (r.method === 'POST') resolve();
    }),
  );
  const pending = fetch(`${first.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(request),
  }).catch(() => undefined);
  // The stop comes once the create is on its way upstream (however long that takes here).
  await reached;
  // SIGTERM.
  await first.gateway.close();
  await pending;
  // The upstream made the task (3 s after the create reached it): at once when the close waited for
  // the create, as it must; later when it did not (then the next process finds the task failed).
  await vi.waitFor(() => expect(kling3api.tasks).toHaveLength(1), { timeout: 10_000, interval: 20 });

  const second = await startTestGateway({ clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config });
  cleanups.push(() => second.close());
  await second.advance(1_000);
  const [task] = (await second.request('GET', '/v1/videos')).body.data;
  // Recorded as accepted and followed by the next process: in progress upstream, not failed, not sent again.
  expect(task).toMatchObject({ status: 'processing', provider: 'kling3api', provider_task_id: kling3api.tasks[0]!.id, error: null });
  expect(task.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([['kling3api', 'accepted']]);
});
