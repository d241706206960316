/**
 * A create whose first provider's slot, attempt and rate allowance are taken in the transaction
 * that writes the task (`firstTry`) may take longer to be written than the task's `cancel_after`
 * or deadline (a slow database, a wait for the provider's lock). Its create is then not sent: the
 * task ends `canceled` (or `failed` with `timeout`), its attempt reads `skipped`, not `sending` as
 * if on its way, and the rate allowance taken for it goes back to the account.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const pinned = { model: 'kling-v3', prompt: 'written slowly', duration: 5, routing: { providers: ['kling3api'] } };
/** One create a minute to kling3api: an allowance not given back holds the next create for a minute. */
const ONE_A_MINUTE = { providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 60_000 }] } } };

/** A gateway whose next create's transaction takes 1.5 s (on its clock). */
async function slowlyWritten(config: Record<string, unknown>): Promise<TestGateway> {
  const gateway = await startTestGateway({ config });
  gw = gateway;
  const store = gateway.gateway.store;
  const createTask = store.createTask.bind(store);
  let slow = true;
  store.createTask = async (...args: Parameters<typeof store.createTask>) => {
    if (slow) {
      slow = false;
      await gateway.clock.advance(1_500);
    }
    return createTask(...args);
  };
  return gateway;
}

const posts = (gateway: TestGateway) => gateway.simulator('kling3api').requests.filter((request) => request.method === 'POST').length;

it('cancels, rather than sends, a create whose cancel_after ran out while it was written; the allowance goes back', async () => {
  const gateway = await slowlyWritten(ONE_A_MINUTE);
  const answer = (await gateway.create({ ...pinned, cancel_after: 1 })).body;
  expect(answer).toMatchObject({
    status: 'canceled',
    provider: null,
    error: { code: 'canceled', message: 'still queued after cancel_after (1 s); no provider took it' },
    cost: { credits: 0, estimated: false },
  });
  expect(answer.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'skipped' })]);
  expect(posts(gateway)).toBe(0);
  // The allowance went back: the next create goes at once.
  expect((await gateway.create({ ...pinned, prompt: 'the next one' })).body.status).toBe('processing');
});

it('fails with timeout, rather than sends, a create whose deadline passed while it was written; the allowance goes back', async () => {
  const gateway = await slowlyWritten({ ...ONE_A_MINUTE, tasks: { deadline_ms: 1_000 } });
  const answer = (await gateway.create(pinned)).body;
  // Sent nowhere: it shows no provider, as a task that timed out in the queue.
  expect(answer).toMatchObject({ status: 'failed', provider: null, error: { code: 'timeout' }, cost: { credits: 0, estimated: false } });
  expect(answer.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'skipped' })]);
  expect(posts(gateway)).toBe(0);
  expect((await gateway.create({ ...pinned, prompt: 'the next one' })).body.status).toBe('processing');
});
