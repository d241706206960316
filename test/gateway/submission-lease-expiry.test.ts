/**
 * The submission lease (tracking.lease_ms) is taken once, before the upstream create, and never
 * renewed; nothing requires it to outlast providers.<id>.timeout_ms. A create that is slow but
 * alive is then declared abandoned by recoverAbandoned (on this or another replica).
 */
import { afterEach, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'a slow upstream', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): a live create slower than tracking.lease_ms (allowed: timeout_ms 60 s > lease_ms 30 s) is failed as "gateway stopped" while the upstream accepts and bills it.
it('does not fail a live submission whose upstream answers within timeout_ms but after lease_ms', async () => {
  gw = await startTestGateway({ config: { tracking: { lease_ms: 30_000 }, providers: { kling3api: { timeout_ms: 60_000 } } } });
  // The upstream answers, but only once 31 s of gateway time passed with the create in flight.
  const held = heldCall();
  gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
  const pending = fetch(`${gw.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(request),
  }).then(async (response) => (await response.json()) as { id: string; status: string; error: unknown });
  await held.reached;
  try {
    // 31 s of gateway time pass while the create is in flight; the worker loop runs.
    await gw.advance(31_000);
    // Still on its way, not declared abandoned.
    const inFlight = (await gw.request('GET', '/v1/videos')).body.data[0];
    expect((await gw.gateway.store.getTask(inFlight.id))?.phase).toBe('submitting');
  } finally {
    held.release();
  }
  const created = await pending;

  expect(gw.simulator('kling3api').tasks).toHaveLength(1);
  // The upstream accepted the task: the gateway must track it, not report it failed.
  expect(created.status).toBe('processing');
  const task = (await gw.get(created.id)).body;
  expect(task.status).toBe('processing');
});
