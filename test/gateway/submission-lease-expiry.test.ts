/**
 * The submission lease (tracking.lease_ms) is taken once, before the upstream create, and never
 * renewed; nothing requires it to outlast providers.<id>.timeout_ms. A create that is slow but
 * alive is then declared abandoned by recoverAbandoned (on this or another replica).
 */
import { afterEach, expect, it } from 'vitest';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'a slow upstream', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): a live create slower than tracking.lease_ms (allowed: timeout_ms 60 s > lease_ms 30 s) is failed as "gateway stopped" while the upstream accepts and bills it.
it('does not fail a live submission whose upstream answers within timeout_ms but after lease_ms', async () => {
  gw = await startTestGateway({ config: { tracking: { lease_ms: 30_000 }, providers: { kling3api: { timeout_ms: 60_000 } } } });
  // The upstream answers, but slowly (real time; the gateway clock moves 31 s meanwhile).
  gw.simulator('kling3api').injectFault({ on: 'submit', delayMs: 1_500 });
  const pending = fetch(`${gw.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(request),
  }).then(async (response) => (await response.json()) as { id: string; status: string; error: unknown });
  const simulator = gw.simulator('kling3api');
  for (let i = 0; i < 200 && !simulator.requests.some((r) => r.method === 'POST'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // 31 s of gateway time pass while the create is in flight; the worker loop runs.
  await gw.advance(31_000);
  const created = await pending;

  expect(gw.simulator('kling3api').tasks).toHaveLength(1);
  // The upstream accepted the task: the gateway must track it, not report it failed.
  expect(created.status).toBe('processing');
  const task = (await gw.get(created.id)).body;
  expect(task.status).toBe('processing');
});
