/**
 * A signed Freepik webhook on the attempt's own path names the upstream task while the create is
 * still on its way; then the create's own answer is an error (a proxy's 502 in front of an
 * upstream that did take the task, or a timeout with `failover_on_timeout`). The webhook proved
 * Freepik holds the task: it is tracked there, never sent to another provider (paid twice), and
 * a cancel asked for meanwhile never ends it `canceled` at no cost while Freepik bills it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { heldCall, type HeldCall } from '../support/held-call.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

/** Served by Freepik (priority 1) and then kling3api (priority 2). */
const eitherProvider = { model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5 };

let gw: TestGateway | undefined;
/** Upstream calls held by a case: let go before the gateway closes (a case that failed midway left them held). */
let holds: HeldCall[] = [];
afterEach(async () => {
  for (const held of holds) held.release();
  holds = [];
  await gw?.close();
  gw = undefined;
});

/** A hold for the next upstream call a fault takes, released after the case (see `holds`). */
function hold(): HeldCall {
  const held = heldCall();
  holds.push(held);
  return held;
}

const creates = (gateway: TestGateway, provider: string) =>
  gateway.simulator(provider).requests.filter((request) => request.method === 'POST').length;

/** The id of the one task once `provider` (Freepik unless said) holds its create (`held`). */
async function onItsWay(gateway: TestGateway, held: HeldCall, provider = 'freepik'): Promise<string> {
  await held.reached;
  expect(creates(gateway, provider)).toBe(1);
  const id = (await gateway.request('GET', '/v1/videos')).body.data[0]?.id as string | undefined;
  expect(id).toBeDefined();
  return id!;
}

/** Freepik's signed webhook, on the path of the task's first attempt, naming `upstreamId`. */
async function webhookNaming(gateway: TestGateway, id: string, upstreamId: string): Promise<number> {
  const body = JSON.stringify({ task_id: upstreamId, status: 'CREATED', generated: [] });
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  const answer = await fetch(`${gateway.url}/v1/webhooks/freepik/${id}-1`, {
    method: 'POST',
    headers: {
      'webhook-id': 'msg_before_answer',
      'webhook-timestamp': timestamp,
      'webhook-signature': signFreepikWebhook(secret, 'msg_before_answer', timestamp, body),
      'content-type': 'application/json',
    },
    body,
  });
  return answer.status;
}

describe('a create whose upstream task a signed webhook named before its answer, then answered with an error', () => {
  it('is tracked at Freepik, not sent to the next provider', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', status: 502, hold: held.hold });
    const creating = gw.create(eitherProvider);
    const id = await onItsWay(gw, held);
    expect(await webhookNaming(gw, id, 'fp-named-by-webhook')).toBe(200);
    // Then the create's own answer: a 502.
    held.release();
    const created = (await creating).body;
    // Before: the 502 wiped the noted acceptance and kling3api was sent the create too (paid twice).
    expect(created).toMatchObject({ id, status: 'processing', provider: 'freepik', provider_task_id: 'fp-named-by-webhook' });
    expect(creates(gw, 'kling3api')).toBe(0);
    expect(created.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'accepted', recovered_by: 'webhook' })]);
  });

  it('with failover_on_timeout: a create that then times out is tracked at Freepik, not sent to the next provider', async () => {
    // The upstream time limit runs on real time: long enough for the webhook to come first on a slow machine.
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 2_000 } } } });
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', transport: 'hang', hold: held.hold });
    const creating = gw.create(eitherProvider);
    const id = await onItsWay(gw, held);
    expect(await webhookNaming(gw, id, 'fp-named-by-webhook')).toBe(200);
    // Before: the timeout failed it over to kling3api although Freepik was known to hold it.
    expect((await creating).body).toMatchObject({ id, status: 'processing', provider: 'freepik', provider_task_id: 'fp-named-by-webhook' });
    expect(creates(gw, 'kling3api')).toBe(0);
  });

  it('with a cancel asked for meanwhile: not canceled at no cost while Freepik holds it', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', status: 502, hold: held.hold });
    const creating = gw.create(eitherProvider);
    const id = await onItsWay(gw, held);
    expect(await webhookNaming(gw, id, 'fp-named-by-webhook')).toBe(200);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    // The 502 comes once the cancel was answered or waits for the create's answer.
    let answered = false;
    void canceling.finally(() => (answered = true));
    while (!answered && (await gw.gateway.store.getTask(id))?.cancel_requested_at == null) await new Promise((resolve) => setTimeout(resolve, 5));
    held.release();
    const canceled = await canceling;
    // Before: 200, canceled at cost 0, while Freepik ran the video and billed it.
    expect(canceled.status).toBe(409);
    expect((await creating).body).toMatchObject({ id, status: 'processing', provider: 'freepik', provider_task_id: 'fp-named-by-webhook' });
    expect(creates(gw, 'kling3api')).toBe(0);
  });
});

describe('a signed webhook naming a create the task was failed over from, while the next provider\'s create is on its way', () => {
  it('is not adopted then: the task is tracked where the next create went, and Freepik is listed as what may also bill', async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 300 } } } });
    // Freepik takes the create and its answer never comes; kling3api takes the next one and holds its answer.
    gw.simulator('freepik').injectFault({ on: 'submit', transport: 'hang' });
    const held = hold();
    gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
    const creating = gw.create(eitherProvider);
    const id = await onItsWay(gw, held, 'kling3api');
    // Freepik's webhook for the first create comes while kling3api's is answered: asked again later.
    expect(await webhookNaming(gw, id, 'fp-failed-over-from')).toBe(503);
    held.release();
    const created = (await creating).body;
    // Before: adopted at Freepik, the task's kling3api create (accepted, billed) tracked by nobody and counted nowhere.
    expect(created).toMatchObject({ id, status: 'processing', provider: 'kling3api' });
    expect(created.cost.at_risk).toEqual([expect.objectContaining({ provider: 'freepik' })]);
    expect(created.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
      ['freepik', 'ambiguous'],
      ['kling3api', 'accepted'],
    ]);
  });
});
