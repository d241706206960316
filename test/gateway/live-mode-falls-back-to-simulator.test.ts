/**
 * sandbox.ts starts a simulator for *every* enabled provider without a key, also when other
 * providers are live. SPEC §6 describes the sandbox as what runs "with no upstream keys". In a
 * live deployment where one key is missing or empty (`api_key: ${KLING3API_API_KEY:-}` with the
 * secret not injected), real customer requests are routed — by failover or because only that
 * provider serves the model — to a loopback simulator, and "succeed" with its sample file.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

// Regression (review): with some providers live, a keyless provider silently runs its simulator and real tasks "succeed" with a fake sample video.
it('never serves a real (live) deployment from a built-in simulator', async () => {
  gw = await startTestGateway({
    config: {
      // Freepik is live (its upstream is down right now); kling3api's key did not get injected.
      providers: { freepik: { api_key: 'live-freepik-key', base_url: 'http://127.0.0.1:1' } },
    },
  });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a real customer request', duration: 5 });
  const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
  const providers = (await gw.request('GET', '/v1/providers')).body.data as { id: string; mode: string }[];
  // The keyless providers are disabled, not simulated: the request fails on the live one, the only one tried.
  expect(providers.map((provider) => [provider.id, provider.mode])).toEqual([
    ['freepik', 'live'],
    ['kling3api', 'disabled'],
    ['kling-legacy', 'disabled'],
  ]);
  expect(task).toMatchObject({ status: 'failed', provider: 'freepik', outputs: [] });
  expect(task.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['freepik']);
});
