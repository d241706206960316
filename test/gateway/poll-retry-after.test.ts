/**
 * A status poll the upstream answers with an error carrying `Retry-After` is not asked again
 * before then, also when the answer is not a 429 (a 503 puts the account in no cool-down): the
 * task's next poll waits the Retry-After rather than its own back-off. Judged from the status
 * requests the simulator received, on the gateway's clock.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const toKling3api = { model: 'kling-v3', prompt: 'a slow tide', duration: 5, routing: { providers: ['kling3api'] } };

it('waits the Retry-After of a 503 to a status poll before polling the task again', async () => {
  gw = await startTestGateway({ config: { sandbox: { processing_ms: 600_000 } } });
  expect((await gw.create(toKling3api)).body.status).toBe('processing');
  // Well past the first poll: the task is polled at its back-off (at most 30 s apart).
  for (let second = 0; second < 120; second++) await gw.advance(1_000);
  const upstream = gw.simulator('kling3api');
  upstream.injectFault({ on: 'status', status: 503, headers: { 'retry-after': '90' } });
  const from = upstream.requests.length;
  for (let second = 0; second < 150; second++) await gw.advance(1_000);
  const polls = upstream.requests.slice(from).filter((request) => request.path === '/api/status');
  const refusedAt = polls[0]!.at;
  expect(polls.length).toBeGreaterThanOrEqual(2);
  expect(polls[1]!.at - refusedAt).toBeGreaterThanOrEqual(90_000);
});
