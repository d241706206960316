/**
 * While an upstream webhook is expected, polling is only a safety net (SPEC §4): a Freepik task
 * (signed webhooks, the harness configures a secret) is not asked about before
 * `tracking.webhook_safety_poll_ms`, even when a job of its length could have finished sooner.
 * Judged from the status requests the simulator received, on the gateway's clock.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const toFreepik = { model: 'kling-v3', prompt: 'fog over a harbour', duration: 5, routing: { providers: ['freepik'] } };

it('asks Freepik about a task only at the webhook safety interval, not at the job\'s minimum run time', async () => {
  gw = await startTestGateway({
    random: () => 0,
    config: { tracking: { webhook_safety_poll_ms: 300_000, poll_jitter: 0 }, sandbox: { processing_ms: 600_000 } },
  });
  const created = await gw.create(toFreepik);
  expect(created.status).toBe(202);
  const upstream = gw.simulator('freepik');
  const statusCalls = () => upstream.requests.filter((request) => request.method === 'GET');
  const createdAt = gw.clock.now();
  for (let second = 0; second < 299; second++) await gw.advance(1_000);
  // 30 s is as soon as a Freepik job can finish; with a webhook on its way, that is no reason to ask.
  expect(statusCalls()).toEqual([]);
  for (let second = 0; second < 5; second++) await gw.advance(1_000);
  expect(statusCalls().map((request) => request.at - createdAt)).toEqual([300_000]);
});
