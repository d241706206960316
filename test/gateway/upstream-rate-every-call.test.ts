/**
 * An upstream's rate limit counts every request it receives, not only creates and status polls:
 * the lookups that look for a create whose answer was lost count too, page by page, and a `429`
 * answered to any of them holds the whole account until its `Retry-After` has passed. Judged as
 * the upstream would: from the requests the simulator received, on the gateway's clock.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it("holds every call to an account whose lookup of a lost create was answered 429, until its Retry-After has passed", async () => {
  gw = await startTestGateway();
  const legacy = gw.simulator('kling-legacy');
  legacy.injectFault({ transport: 'reset' });
  legacy.injectFault({ on: 'status', kind: 'rate_limited', status: 429, headers: { 'retry-after': '30' } });
  const started = gw.clock.now();
  const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look', duration: 5, routing: { providers: ['kling-legacy'] } });
  expect(created.body.status).toBe('queued');
  // The create, then its lookup by external_task_id, answered 429 with Retry-After: 30.
  expect(legacy.requests.map((request) => [request.method, request.at - started])).toEqual([
    ['POST', 0],
    ['GET', 0],
  ]);
  for (let second = 0; second < 40; second++) await gw.advance(1_000);
  const after429 = legacy.requests.slice(2).map((request) => request.at - started);
  expect(after429.length).toBeGreaterThan(0);
  expect(Math.min(...after429)).toBeGreaterThanOrEqual(30_000);
});
