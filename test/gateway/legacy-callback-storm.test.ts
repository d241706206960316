/**
 * A legacy Kling-API callback is unsigned: whoever holds a task's callback URL (the aggregator,
 * or anyone it leaked to) may post to it as often as they like, and each callback that claims the
 * task finished (or any while it waits in the queue) makes the gateway ask the provider. Each
 * such callback used to cost one status call on the account, so a storm of them used up the
 * account's rate windows that every tenant's creates and polls share. Now a task's callbacks ask
 * the provider at most once per `tracking.poll_min_interval_ms`; one that comes sooner is
 * confirmed when that interval has passed, not dropped.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeEach(async () => {
  gw = await startTestGateway();
});
afterEach(() => gw.close());

const statusCalls = () => gw.simulator('kling-legacy').requests.filter((r) => r.method === 'GET').length;

async function legacyTask() {
  const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
  expect(created.body.provider).toBe('kling-legacy');
  const task = await gw.gateway.store.getTask(created.body.id);
  return { id: created.body.id as string, providerTaskId: created.body.provider_task_id as string, path: `/v1/webhooks/kling-legacy/${task!.callback_token}` };
}

async function callback(path: string, body: unknown) {
  const answer = await gw.request('POST', path, JSON.stringify(body), {}, null);
  expect(answer.status).toBe(200);
  await gw.gateway.runOnce();
}

it('asks the provider once for a storm of "succeed" callbacks on one task, not once per callback', async () => {
  const task = await legacyTask();
  const before = statusCalls();
  for (let i = 0; i < 20; i++) await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect(statusCalls() - before).toBe(1);
});

it('asks the provider once for a storm of progress callbacks while the task waits in the queue', async () => {
  const task = await legacyTask();
  const before = statusCalls();
  for (let i = 0; i < 20; i++) await callback(task.path, { task_id: task.providerTaskId, task_status: 'submitted' });
  expect(statusCalls() - before).toBe(1);
});

it('confirms a "succeed" that came right behind a confirmed callback once the interval has passed, not at the safety poll', async () => {
  const task = await legacyTask();
  const minIntervalMs = gw.config.tracking.poll_min_interval_ms;
  // The simulator finishes a task 5 s after its create; just before, a callback is confirmed: still running.
  await gw.clock.advance(4_900);
  await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect((await gw.get(task.id)).body.status).toBe('processing');
  // The task finishes upstream, and its "succeed" comes within the interval of the last confirmation.
  await gw.clock.advance(200);
  const before = statusCalls();
  await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect(statusCalls()).toBe(before);
  // Confirmed once the interval has passed (the safety poll is a minute away).
  await gw.advance(minIntervalMs);
  expect((await gw.get(task.id)).body.status).toBe('succeeded');
});
