/**
 * With `failover_on_timeout`, a task goes on from a create whose answer was lost (Freepik's
 * connection broke after it took the create) to the next provider, which says "later" (a 429):
 * the task waits in the gateway's queue, taken by no provider. Freepik's signed webhook for the
 * first create then names its upstream task: the provider holds it, and nothing else does. The
 * task is tracked there, and never sent to the next provider once its cool-down ends (the same
 * video made and paid for twice, Freepik's tracked by nobody).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { heldCall } from '../support/held-call.js';

/** Served by Freepik, then kling3api (the legacy API, which could serve it too, left out). */
const eitherProvider = { model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: ['freepik', 'kling3api'] } };

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const creates = (gateway: TestGateway, provider: string) =>
  gateway.simulator(provider).requests.filter((request) => request.method === 'POST').length;

/** Freepik's signed webhook on the path of the task's first attempt, naming `upstreamId`. */
async function webhookNaming(gateway: TestGateway, id: string, upstreamId: string): Promise<number> {
  const body = JSON.stringify({ task_id: upstreamId, status: 'IN_PROGRESS', generated: [] });
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  const answer = await fetch(`${gateway.url}/v1/webhooks/freepik/${id}-1`, {
    method: 'POST',
    headers: {
      'webhook-id': 'msg_while_queued',
      'webhook-timestamp': timestamp,
      'webhook-signature': signFreepikWebhook(secret, 'msg_while_queued', timestamp, body),
      'content-type': 'application/json',
    },
    body,
  });
  return answer.status;
}

describe('a signed webhook naming a create the task was failed over from, while the task waits in the queue', () => {
  it('adopts it: tracked at Freepik, and the next provider is never sent the task', async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    gw.simulator('freepik').injectFault({ on: 'submit', transport: 'drop_after_accept' });
    gw.simulator('kling3api').injectFault({ on: 'submit', status: 429, kind: 'rate_limited', headers: { 'retry-after': '60' } });
    const created = (await gw.create(eitherProvider)).body;
    expect(created).toMatchObject({ status: 'queued', provider_task_id: null });
    expect(created.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
      ['freepik', 'ambiguous'],
      ['kling3api', 'failed'],
    ]);
    const upstream = gw.simulator('freepik').tasks;
    expect(upstream).toHaveLength(1);
    const upstreamId = upstream[0]!.id;

    expect(await webhookNaming(gw, created.id, upstreamId)).toBe(200);
    // Before: answered 200 as no task's, and the task stayed queued for kling3api.
    expect((await gw.get(created.id)).body).toMatchObject({ status: 'processing', provider: 'freepik', provider_task_id: upstreamId });

    // kling3api's cool-down ends: it is not sent the task Freepik holds.
    await gw.advance(61_000);
    await gw.advance(1_000);
    expect(creates(gw, 'kling3api')).toBe(1);
    const task = (await gw.get(created.id)).body;
    expect(task).toMatchObject({ provider: 'freepik', provider_task_id: upstreamId });
    expect(task.cost.at_risk ?? []).toEqual([]);
    expect(task.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'accepted', recovered_by: 'webhook' });
  });

  it('legacy Kling-API: a callback on the task\'s token, confirmed by a status fetch, is adopted the same way', async () => {
    // Unsigned upstream: the callback is believed only once the legacy provider's status shows
    // the task. Before, the token's task being nobody's while queued, it was answered 404
    // "unknown callback", and kling3api made the video again once its cool-down ended.
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ on: 'submit', transport: 'drop_after_accept' });
    // Its lookup by external_task_id gets no answer (a 503): the create stays in doubt as the task goes on.
    legacy.injectFault({ on: 'status', kind: 'unavailable' });
    gw.simulator('kling3api').injectFault({ on: 'submit', status: 429, kind: 'rate_limited', headers: { 'retry-after': '60' } });
    const created = (await gw.create({ ...eitherProvider, routing: { providers: ['kling-legacy', 'kling3api'] } })).body;
    expect(created).toMatchObject({ status: 'queued', provider_task_id: null });
    expect(created.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
      ['kling-legacy', 'ambiguous'],
      ['kling3api', 'failed'],
    ]);
    expect(legacy.tasks).toHaveLength(1);
    const upstreamId = legacy.tasks[0]!.id;
    const token = (await gw.gateway.store.getTask(created.id))!.callback_token;
    const callback = (taskId: string) =>
      gw!.request('POST', `/v1/webhooks/kling-legacy/${token}`, JSON.stringify({ task_id: taskId, task_status: 'processing' }), {}, null);

    // A task the provider does not show is not believed: nothing changes.
    expect((await callback('999999999999999999')).status).toBe(404);
    expect((await gw.get(created.id)).body).toMatchObject({ status: 'queued', provider: null, provider_task_id: null });

    const statusCalls = () => legacy.requests.filter((request) => request.method === 'GET' && request.path.includes(upstreamId)).length;
    const asked = statusCalls();
    expect(await callback(upstreamId)).toMatchObject({ status: 200, body: { received: true, matched: true } });
    expect(statusCalls()).toBeGreaterThan(asked);
    expect((await gw.get(created.id)).body).toMatchObject({ provider: 'kling-legacy', provider_task_id: upstreamId });

    await gw.advance(61_000);
    await gw.advance(1_000);
    expect(creates(gw, 'kling3api')).toBe(1);
    const done = await gw.finish(created.id);
    expect(done).toMatchObject({ status: 'succeeded', provider: 'kling-legacy', provider_task_id: upstreamId });
    expect(done.cost.at_risk ?? []).toEqual([]);
    expect(done.attempts[0]).toMatchObject({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'webhook' });
    expect(legacy.tasks).toHaveLength(1);
  });

  it("legacy Kling-API: a callback that comes while the next provider's create is on its way is kept, and adopted once that create is refused", async () => {
    // The legacy API documents no callback retries: a 503 here may be the last word of a video
    // it makes and bills. Before, the callback was answered 503 "retry later", the task waited
    // in the queue with its legacy task tracked by nobody, and kling3api made the video again.
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ on: 'submit', transport: 'drop_after_accept' });
    legacy.injectFault({ on: 'status', kind: 'unavailable' });
    const held = heldCall();
    gw.simulator('kling3api').injectFault({ on: 'submit', status: 429, kind: 'rate_limited', headers: { 'retry-after': '60' }, hold: held.hold });
    const pending = gw.create({ ...eitherProvider, routing: { providers: ['kling-legacy', 'kling3api'] } });
    await held.reached;
    const listed = (await gw.request('GET', '/v1/videos')).body.data;
    expect(listed).toHaveLength(1);
    const token = (await gw.gateway.store.getTask(listed[0].id))!.callback_token;
    const upstreamId = legacy.tasks[0]!.id;
    const answer = await gw.request(
      'POST',
      `/v1/webhooks/kling-legacy/${token}`,
      JSON.stringify({ task_id: upstreamId, task_status: 'processing' }),
      {},
      null,
    );
    expect(answer).toMatchObject({ status: 200, body: { received: true } });
    held.release();
    const created = (await pending).body;
    await gw.gateway.inbound.idle();
    const task = (await gw.get(created.id)).body;
    expect(task).toMatchObject({ status: 'processing', provider: 'kling-legacy', provider_task_id: upstreamId });
    expect(task.attempts[0]).toMatchObject({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'webhook' });

    await gw.advance(61_000);
    await gw.advance(1_000);
    expect(creates(gw, 'kling3api')).toBe(1);
  });

  it("legacy Kling-API: such a callback is reported as a task nobody tracks once the next provider's create is accepted", async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ on: 'submit', transport: 'drop_after_accept' });
    legacy.injectFault({ on: 'status', kind: 'unavailable' });
    const held = heldCall();
    gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
    const pending = gw.create({ ...eitherProvider, routing: { providers: ['kling-legacy', 'kling3api'] } });
    await held.reached;
    const listed = (await gw.request('GET', '/v1/videos')).body.data;
    const token = (await gw.gateway.store.getTask(listed[0].id))!.callback_token;
    const upstreamId = legacy.tasks[0]!.id;
    const answer = await gw.request('POST', `/v1/webhooks/kling-legacy/${token}`, JSON.stringify({ task_id: upstreamId, task_status: 'processing' }), {}, null);
    // Before: 503, and a callback the legacy API does not retry said nothing more.
    expect(answer.status).toBe(200);
    held.release();
    expect((await pending).body).toMatchObject({ status: 'processing', provider: 'kling3api' });
    await gw.gateway.inbound.idle();
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('kling_gateway_untracked_upstream_tasks_total{provider="kling-legacy",found_by="webhook"} 1');
  });

  it('changes nothing once the task ended (no provider took it): it stays failed, its Freepik attempt still in doubt', async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    gw.simulator('freepik').injectFault({ on: 'submit', transport: 'drop_after_accept' });
    gw.simulator('kling3api').injectFault({ on: 'submit', status: 400, kind: 'invalid' });
    const created = (await gw.create(eitherProvider)).body;
    expect(created).toMatchObject({ status: 'failed', provider: 'freepik' });
    expect(await webhookNaming(gw, created.id, gw.simulator('freepik').tasks[0]!.id)).toBe(200);
    const task = (await gw.get(created.id)).body;
    expect(task).toMatchObject({ status: 'failed', provider_task_id: null, cost: created.cost });
    expect(task.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
      ['freepik', 'ambiguous'],
      ['kling3api', 'failed'],
    ]);
  });
});

