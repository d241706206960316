/**
 * A replica that drains on SIGTERM still takes provider webhooks and callbacks. The legacy
 * Kling-API sends each callback once: refused with a 503 while the replica waits for its last
 * creates, a callback would be news of a paid task lost. New creates are still refused.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { heldCall, type HeldCall } from '../support/held-call.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
let held: HeldCall | undefined;
afterEach(async () => {
  // A case that failed midway left its create held.
  held?.release();
  held = undefined;
  await gw?.close().catch(() => undefined);
  gw = undefined;
});

/**
 * A gateway with a legacy task the upstream has finished (its own callback went to a dead
 * address: the one a test sends is the only news), and a kling3api create in flight, held by the
 * upstream until `answerCreate`, that keeps a drain going once the gateway stops.
 */
async function legacyTaskWithCreateInFlight(prompt: string) {
  const clock = new ManualClock(Date.UTC(2026, 11, 3, 3));
  const started = await startTestGateway({ clock, config: { providers: { kling3api: { timeout_ms: 10_000 } } } });
  gw = started;
  started.gateway.setPublicUrl('http://127.0.0.1:9');
  const legacy = (await started.create({ model: 'kling-v1-6', prompt })).body;
  const token = (await started.gateway.store.getTask(legacy.id))!.callback_token;
  await clock.advance(10_000);
  const kling3api = started.simulator('kling3api');
  const hold = heldCall();
  held = hold;
  kling3api.injectFault({ on: 'submit', hold: hold.hold });
  const slow = started.create({ model: 'kling-v3', prompt: 'in flight at the stop', duration: 5, routing: { providers: ['kling3api'] } });
  await hold.reached;
  return {
    gw: started,
    legacy,
    slow,
    answerCreate: hold.release,
    sendCallback: () => sendLegacyCallback(started.url, token, legacy.provider_task_id),
  };
}

/** The legacy Kling-API's callback that the task succeeded, sent once. */
function sendLegacyCallback(url: string, token: string | null, providerTaskId: string | null): Promise<Response> {
  return fetch(`${url}/v1/webhooks/kling-legacy/${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ task_id: providerTaskId, task_status: 'succeed' }),
  });
}

it('accepts and records a legacy callback that arrives while the gateway drains, and still refuses new creates', async () => {
  // The upstream has finished the video; its callback to the dead address is lost and nobody polls
  // here. A create in flight at the signal (a slow but healthy upstream) keeps the drain going.
  const { gw: started, legacy, slow, answerCreate, sendCallback } = await legacyTaskWithCreateInFlight('news that comes once');
  const { url } = started;
  expect(legacy).toMatchObject({ provider: 'kling-legacy', status: 'queued' });
  // SIGTERM.
  const closing = started.gateway.close();
  await new Promise((resolve) => setTimeout(resolve, 20));

  const callback = await sendCallback();
  const receipt = await callback.json();
  expect(callback.status).toBe(200);
  expect(receipt).toMatchObject({ received: true });
  // The news was recorded: the task is done, from the status fetch the callback asked for.
  await started.gateway.tracker.idle();
  const recorded = await started.gateway.store.getTask(legacy.id);
  expect(recorded?.status).toBe('succeeded');

  // A client's new create is still refused while the gateway drains.
  const refused = await fetch(`${url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'kling-v3', prompt: 'too late', duration: 5 }),
  });
  await refused.text();
  expect(refused.status).toBe(503);

  // The drain was still on: the create in flight at the signal is answered and recorded.
  answerCreate();
  expect((await slow).status).toBe(202);
  await closing;
  gw = undefined;
});

it('answers a callback taken during the drain whose handling outlasts the drain, before the listener closes its connections', async () => {
  // A create in flight at the signal holds the drain until the callback was taken.
  const { gw: started, slow, answerCreate, sendCallback } = await legacyTaskWithCreateInFlight('news that is slow to record');
  // The store is slow to find the callback's task (a database failing over): its handling ends
  // well after the drain, and after the moment the listener gives requests being answered.
  const store = started.gateway.store;
  const find = store.findByCallbackToken.bind(store);
  store.findByCallbackToken = async (value: string) => {
    answerCreate();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    return find(value);
  };
  const closing = started.gateway.close();
  await new Promise((resolve) => setTimeout(resolve, 20));

  const callback = await sendCallback().catch((error: unknown) => error);
  // Reset, the legacy Kling-API would not send it again.
  expect(callback).toBeInstanceOf(Response);
  expect((callback as Response).status).toBe(200);
  expect(await (callback as Response).json()).toMatchObject({ received: true });
  expect((await slow).status).toBe(202);
  await closing;
  gw = undefined;
}, 20_000);
