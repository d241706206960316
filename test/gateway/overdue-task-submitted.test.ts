/**
 * A burst of queued tasks passing their deadline together must never reach the upstream. The
 * deadline pass (`expireOverdue`) fails at most 100 overdue tasks per pass, so with more than 100
 * the rest are still queued when the dispatcher next runs: it checks each task's deadline before
 * sending it (and `test/gateway/deadline-during-pass.test.ts` guards that check alone). This test
 * found the bug when the dispatcher did not, and sent the rest upstream (paid).
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'past its deadline', duration: 5, routing: { providers: ['kling3api'] } };

it('never sends upstream a task that is already past its deadline', async () => {
  gw = await startTestGateway({
    config: { tasks: { deadline_ms: 60_000 }, providers: { kling3api: { max_in_flight: 1 } }, sandbox: { processing_ms: 600_000 } },
  });
  // The only slot is held by a task that hangs upstream; a burst queues behind it.
  const running = await gw.create(request);
  expect(running.body.status).toBe('processing');
  const queued = await gw.create(request);
  expect(queued.body.status).toBe('queued');
  const store = gw.gateway.store;
  const template = (await store.getTask(queued.body.id))!;
  for (let i = 0; i < 149; i++) {
    await store.createTask({ ...template, id: `vid_burst_${String(i).padStart(4, '0')}`, callback_token: `tok_${i}` });
  }
  const kling3api = gw.simulator('kling3api');
  expect(kling3api.tasks).toHaveLength(1);

  // Everything passes its deadline; one worker pass runs.
  await gw.advance(61_000);

  const timedOut = (await gw.request('GET', '/v1/videos?status=failed&limit=100')).body.data.length;
  expect(timedOut).toBeGreaterThan(0);
  // No task past its deadline may be created upstream.
  expect(kling3api.tasks).toHaveLength(1);
});
