/**
 * dispatcher.ts wraps the upstream call *and* the store writes that follow it in one try/catch.
 * A store error after the upstream accepted the task (e.g. a dropped PostgreSQL connection or
 * SQLITE_BUSY while writing `tracking`) is classified as an "unreadable answer": the attempt is
 * rewritten from `accepted` to `ambiguous`, the task fails, and the provider task id — which the
 * gateway had in hand — is thrown away, while the upstream renders and bills the video.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'a transient store error', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): a transient store error after an accepted create fails the task as "unreadable answer" and drops the provider_task_id; the paid upstream video is orphaned.
it('keeps tracking a task the upstream accepted when the first store write after it fails once', async () => {
  gw = await startTestGateway();
  const store = gw.gateway.store;
  const updateTask = store.updateTask.bind(store);
  let failOnce = true;
  store.updateTask = async (...args: Parameters<typeof store.updateTask>) => {
    if (failOnce && args[1].phase === 'tracking') {
      failOnce = false;
      throw Object.assign(new Error('connection terminated unexpectedly'), { code: '57P01' });
    }
    return updateTask(...args);
  };
  const pending = gw.create(request);
  // The write is tried again after a pause (on the gateway's clock) once it failed.
  for (let i = 0; i < 1_000 && failOnce; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(failOnce).toBe(false);
  await gw.advance(100);
  const created = await pending;
  expect(gw.simulator('kling3api').tasks).toHaveLength(1);
  const upstreamId = gw.simulator('kling3api').tasks[0]!.id;
  const task = (await gw.get(created.body.id)).body;
  // The gateway knew the upstream id; it must not lose it.
  expect(task.provider_task_id ?? task.attempts.at(-1)?.message ?? '').toContain(upstreamId);
  expect(task.status).not.toBe('failed');
});
