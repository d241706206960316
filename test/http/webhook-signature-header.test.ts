/**
 * `POST /v1/webhooks/freepik` takes no key: anyone may send one, with any `webhook-signature`.
 * Each entry's trailing commas were cut by a pattern anchored at the end, which tried every comma
 * of a long run as the start of that end: an entry of 16,000 commas and one other character cost
 * 85 ms of the event loop per request (per account with a webhook secret), so a few senders held
 * every tenant's requests.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { cpuTimer } from '../support/cpu-time.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(() => gw.close());

const timestamp = () => String(Math.floor(gw.clock.now() / 1000));

function postWebhook(signature: string, body = '{}'): Promise<Response> {
  return fetch(`${gw.url}/v1/webhooks/freepik`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_hostile', 'webhook-timestamp': timestamp(), 'webhook-signature': signature },
    body,
  });
}

it('a signature entry of a long run of commas is refused at once: the gateway keeps answering others', async () => {
  const hostile = `v1,${','.repeat(15_500)}x`;
  const cpuMs = cpuTimer();
  const flood = Array.from({ length: 40 }, () => postWebhook(hostile).then(async (answer) => (await answer.arrayBuffer(), answer.status)));
  expect(await Promise.all(flood)).toEqual(Array(40).fill(401));
  // 40 refusals of a few kB each: tens of milliseconds, where the pattern took seconds (of CPU:
  // the wall clock also counts the time a loaded machine gives this process no core).
  expect(cpuMs()).toBeLessThan(2_000);
  expect((await gw.request('GET', '/v1/videos?limit=1')).status).toBe(200);
});

it('a genuine entry still verifies, also with the trailing comma a header sent twice leaves', async () => {
  const created = await gw.create({ model: 'kling-v3', prompt: 'a webhook to verify', duration: 5 });
  const task = (await gw.get(created.body.id)).body;
  const freepikSecret = gw.endpoints.get('freepik')?.webhookSecret;
  expect(task.provider).toBe('freepik');
  expect(freepikSecret).toBeTruthy();
  const body = JSON.stringify({ data: { task_id: task.provider_task_id, status: 'IN_PROGRESS' } });
  for (const [suffix, id] of [[',', 'msg_comma'], [',,,', 'msg_commas'], ['', 'msg_plain']] as const) {
    const ts = timestamp();
    const signature = `${signFreepikWebhook(freepikSecret!, id, ts, body)}${suffix}`;
    const answer = await fetch(`${gw.url}/v1/webhooks/freepik`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': `v1,bm9wZQ==, ${signature}` },
      body,
    });
    expect(answer.status, suffix).toBe(200);
  }
});
