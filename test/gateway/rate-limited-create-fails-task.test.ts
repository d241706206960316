/**
 * An upstream `429` certainly did not create anything and asks to come back after Retry-After.
 * dispatcher.ts treats it like a hard failure: with no further provider in the plan the task
 * fails at once (SPEC §3 "429 honours Retry-After"; §3 "excess waits in queued"). And because
 * the attempt is recorded as `failed`, a task that was queued afterwards never goes back to that
 * provider (`failedBefore`), even after the Retry-After has long passed.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const base = { model: 'kling-v3', prompt: 'a busy upstream', duration: 5 };

// Regression (review): a transient 429 (Retry-After: 5) on the only provider of a request fails the task for good instead of queueing it until the Retry-After passes.
it('queues a task whose only provider answers 429, and submits it after Retry-After', async () => {
  gw = await startTestGateway();
  gw.simulator('kling3api').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '5' } });
  const created = await gw.create({ ...base, routing: { providers: ['kling3api'] } });
  expect(created.body.status).not.toBe('failed');
  await gw.advance(6_000);
  expect((await gw.get(created.body.id)).body.status).not.toBe('failed');
  expect(gw.simulator('kling3api').tasks).toHaveLength(1);
});

// Regression (review): a provider that once answered 429 is excluded for the rest of a queued task's life (failedBefore), so the task fails when the other provider fails, though the 429 provider is available again.
it('tries a provider again after its 429 Retry-After has passed, for a task that waited in the queue', async () => {
  gw = await startTestGateway({ config: { providers: { freepik: { max_in_flight: 1 } }, sandbox: { processing_ms: 600_000 } } });
  const both = { ...base, routing: { providers: ['freepik', 'kling3api'] } };
  // Freepik's only slot is taken.
  expect((await gw.create({ ...base, routing: { providers: ['freepik'] } })).body.provider).toBe('freepik');
  // The next task: Freepik full, kling3api answers 429 → waits in the queue.
  gw.simulator('kling3api').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '5' } });
  const waiting = await gw.create(both);
  expect(waiting.body.status).toBe('queued');
  // Long after the Retry-After, kling3api is healthy; Freepik still full.
  await gw.advance(10_000);
  await gw.advance(1_000);
  const task = (await gw.get(waiting.body.id)).body;
  expect(task.provider).toBe('kling3api');
  expect(task.status).toBe('processing');
});
