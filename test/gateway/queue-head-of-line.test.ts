/**
 * The dispatcher only ever looks at the 200 oldest waiting tasks (dispatcher.ts
 * `listDispatchable(now, 200)`), and a new task queues behind *any* older waiting task
 * (`hasOlderWaitingTask`), whatever provider it waits for. 200 tasks waiting for one full
 * provider therefore starve every later task, even for an idle provider, until its deadline.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const base = { model: 'kling-v3', prompt: 'head of line', duration: 5 };

// Regression (review): with ≥200 tasks queued for a full provider, a new task for an idle provider is never listed by listDispatchable(…, 200) and times out in the queue.
it('dispatches a task for an idle provider while 200 older tasks wait for a full one', async () => {
  gw = await startTestGateway({
    config: { providers: { kling3api: { max_in_flight: 1 } }, sandbox: { processing_ms: 3_600_000 } },
  });
  const pinned = { ...base, routing: { providers: ['kling3api'] } };
  expect((await gw.create(pinned)).body.status).toBe('processing');
  const waiting = await gw.create(pinned);
  expect(waiting.body.status).toBe('queued');

  // 199 more tasks waiting for kling3api (written directly: the same rows a burst of creates makes).
  const store = gw.gateway.store;
  const template = (await store.getTask(waiting.body.id))!;
  for (let i = 0; i < 199; i++) {
    await store.createTask({ ...template, id: `vid_burst_${String(i).padStart(4, '0')}`, callback_token: `tok_${i}` });
  }
  await gw.clock.advance(1_000);

  // Freepik is idle and this request may go there.
  const created = await gw.create({ ...base, routing: { providers: ['freepik'] } });
  for (let i = 0; i < 5; i++) await gw.advance(1_000);

  const task = (await gw.get(created.body.id)).body;
  expect(gw.simulator('freepik').tasks).toHaveLength(1);
  expect(task.status).toBe('processing');
});
