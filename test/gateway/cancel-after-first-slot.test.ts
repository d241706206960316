/**
 * A create whose first provider's slot and attempt are written with the task (`firstTry`) may take
 * longer than its `cancel_after` to be written (a slow database). Its create then leaves as written:
 * the task was never waiting at the gateway. Before, it ended `canceled` showing an attempt
 * `sending` that never went anywhere, and the rate allowance taken for it was never given back.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const pinned = { model: 'kling-v3', prompt: 'written slowly', duration: 5, routing: { providers: ['kling3api'] } };

it('sends the create written with its first slot even when writing it took longer than cancel_after; no attempt is left sending', async () => {
  gw = await startTestGateway();
  const gateway = gw;
  const store = gateway.gateway.store;
  const createTask = store.createTask.bind(store);
  // The create's transaction takes 1.5 s: longer than the task's cancel_after of 1 s.
  store.createTask = async (...args: Parameters<typeof store.createTask>) => {
    await gateway.clock.advance(1_500);
    return createTask(...args);
  };
  const answer = (await gateway.create({ ...pinned, cancel_after: 1 })).body;
  expect(answer).toMatchObject({ status: 'processing', provider: 'kling3api', error: null });
  expect(answer.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' })]);
  expect(gateway.simulator('kling3api').requests.filter((request) => request.method === 'POST')).toHaveLength(1);
});
