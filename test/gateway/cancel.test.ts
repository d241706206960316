import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderTaskRef, VideoProvider } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { reelhouseProvider } from '../fixtures/providers/reelhouse/index.js';
import { OTHER_TENANT_KEY, TENANT_WEBHOOK_SECRET, startTestGateway, type TestGateway } from '../support/harness.js';
import { heldCall, type HeldCall } from '../support/held-call.js';
import { MultiKeyKling3api } from '../support/multi-key-upstream.js';
import { followTaskFollowers } from '../support/task-followers.js';

/** The type of the 409 of a cancel that is kept while the create on its way is undecided. */
const CANCEL_PENDING = 'https://kling-gateway.dev/problems/cancel-pending';

const pinned = { model: 'kling-v3', prompt: 'a paper boat on a puddle', duration: 5, routing: { providers: ['kling3api'] } };

let gw: TestGateway | undefined;
let receiver: Server | undefined;
/** Upstream calls held by a test: let go before the gateway closes (a test that failed midway left them held). */
let holds: HeldCall[] = [];
afterEach(async () => {
  for (const held of holds) held.release();
  holds = [];
  await gw?.close();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  gw = undefined;
  receiver = undefined;
});

const creates = (gateway: TestGateway, provider = 'kling3api') =>
  gateway.simulator(provider).requests.filter((request) => request.method === 'POST').length;

/** A hold for the next upstream call a fault takes, released after the test (see `holds`). */
function hold(): HeldCall {
  const held = heldCall();
  holds.push(held);
  return held;
}

/** Settles once the cancel asked of a task whose create is on its way is written on the task. */
async function cancelRequested(gateway: TestGateway, id: string): Promise<void> {
  while ((await gateway.gateway.store.getTask(id))?.cancel_requested_at == null) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** The id of the one task (listed once its create was taken). */
async function theTask(gateway: TestGateway): Promise<string> {
  const id = (await gateway.request('GET', '/v1/videos')).body.data[0]?.id as string | undefined;
  expect(id).toBeDefined();
  return id!;
}

/** A gateway whose kling3api takes one task at a time, with that slot taken: the next task waits queued. */
async function withFullProvider(options: Parameters<typeof startTestGateway>[0] = {}) {
  const gateway = await startTestGateway({ ...options, config: { providers: { kling3api: { max_in_flight: 1 } }, ...options.config } });
  gw = gateway;
  const running = await gateway.create({ ...pinned, prompt: 'takes the slot' });
  expect(running.body.status).toBe('processing');
  return { gateway, running: running.body };
}

/** One create a second to kling3api, and two a minute. */
const ONE_A_SECOND = { providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 1_000 }, { limit: 2, window_ms: 60_000 }] } } };

/**
 * Eight tasks pinned to kling3api and, created last (so dispatched last: tasks go oldest first),
 * `body`, all queued behind a 429 with `Retry-After: 5`.
 */
async function queuedBehindEight(gateway: TestGateway, body: Record<string, unknown>) {
  const upstream = gateway.simulator('kling3api');
  upstream.injectFault({ kind: 'rate_limited', headers: { 'retry-after': '5' } });
  const ahead: string[] = [];
  for (let i = 0; i < 8; i++) ahead.push((await gateway.create({ ...pinned, prompt: `ahead of it ${i}` })).body.id);
  gateway.clock.set(gateway.clock.now() + 1);
  const behind = await gateway.create(body);
  expect(behind.body.status).toBe('queued');
  return { upstream, ahead, behind };
}

/**
 * A gateway whose kling3api allows one create a second (`ONE_A_SECOND`), that allowance just taken:
 * the next create (`body`)'s dispatch waits (on the gateway's clock) for the window, its task held `submitting`.
 */
async function waitingForRateAllowance(body: Record<string, unknown> = pinned) {
  const gateway = await startTestGateway({ config: ONE_A_SECOND });
  gw = gateway;
  expect((await gateway.create({ ...pinned, prompt: 'takes the allowance' })).body.status).toBe('processing');
  const creating = gateway.create(body);
  for (;;) {
    const waiting = (await gateway.request('GET', '/v1/videos?status=queued')).body.data[0];
    if (waiting && (await gateway.gateway.store.getTask(waiting.id))?.phase === 'submitting') return { gateway, id: waiting.id as string, creating };
  }
}

describe('POST /v1/videos/{id}/cancel', () => {
  it('cancels a queued task at no cost; it is never sent upstream and stays canceled', async () => {
    const { gateway } = await withFullProvider();
    const queued = await gateway.create(pinned);
    expect(queued.body.status).toBe('queued');
    const answer = await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      id: queued.body.id,
      status: 'canceled',
      provider: null,
      provider_task_id: null,
      error: { code: 'canceled', message: 'canceled by the caller before any provider took it', provider_code: null },
      cost: { credits: 0, estimated: false, currency_amount: 0 },
      outputs: [],
    });
    expect(answer.body.completed_at).not.toBeNull();
    // The slot frees, time passes: the canceled task is not dispatched.
    await gateway.advance(60_000);
    expect(creates(gateway)).toBe(1);
    expect((await gateway.get(queued.body.id)).body.status).toBe('canceled');
    // Listed under its status, and canceling again answers the same task.
    const listed = await gateway.request('GET', '/v1/videos?status=canceled');
    expect(listed.body.data.map((task: { id: string }) => task.id)).toEqual([queued.body.id]);
    const again = await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('canceled');
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/kling_gateway_tasks_finished_total\{provider="none",model="kling-v3",status="canceled",error_code="canceled"\} 1/);
  });

  // Ignored before: `{"reason": "duplicate"}` canceled the task as if the reason were kept.
  it.each([
    ['a field it does not take', '{"reason":"duplicate"}', 'application/json', [{ path: 'reason', message: 'unknown field (this route takes no body)' }]],
    ['a JSON array', '["now"]', 'application/json', [{ path: '(body)', message: 'this route takes no body' }]],
  ])('refuses a body with %s (400, the field named) and leaves the task queued', async (_what, body, type, errors) => {
    const { gateway } = await withFullProvider();
    const queued = await gateway.create(pinned);
    const answer = await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`, body, { 'content-type': type });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body.errors).toEqual(errors);
    expect((await gateway.get(queued.body.id)).body.status).toBe('queued');
  });

  it('refuses a body that is not JSON (415) and leaves the task queued; no body or {} cancels', async () => {
    const { gateway } = await withFullProvider();
    const queued = await gateway.create(pinned);
    const refused = await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`, 'reason=duplicate', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(refused.status).toBe(415);
    expect((await gateway.get(queued.body.id)).body.status).toBe('queued');
    expect((await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`, '{}')).body.status).toBe('canceled');
    const other = await gateway.create(pinned);
    expect((await gateway.request('POST', `/v1/videos/${other.body.id}/cancel`)).body.status).toBe('canceled');
  });

  it('answers 409 for a task a provider accepted, which then runs to the end', async () => {
    gw = await startTestGateway();
    const created = await gw.create(pinned);
    expect(created.body.status).toBe('processing');
    const answer = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
    expect(answer.status).toBe(409);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body.detail).toBe(
      `video ${created.body.id} was accepted by kling3api, which documents no way to cancel a task; it runs to the end and is billed as usual.`,
    );
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
  });

  it('answers 409 for a finished task, and 404 for an unknown or another tenant\'s task', async () => {
    gw = await startTestGateway();
    const done = await gw.finish((await gw.create(pinned)).body.id);
    const finished = await gw.request('POST', `/v1/videos/${done.id}/cancel`);
    expect(finished.status).toBe(409);
    expect(finished.body.detail).toMatch(/already succeeded/);
    // The cancel's 409s keep the generic type: only a create's Idempotency-Key 409s have their own.
    expect(finished.body.type).toBe('https://kling-gateway.dev/problems/conflict');
    expect((await gw.request('POST', '/v1/videos/vid_nope/cancel')).status).toBe(404);
    const theirs = await gw.request('POST', `/v1/videos/${done.id}/cancel`, undefined, {}, OTHER_TENANT_KEY);
    expect(theirs.status).toBe(404);
    expect((await gw.request('POST', `/v1/videos/${done.id}/cancel`, undefined, {}, null)).status).toBe(401);
  });

  it('waits out a submission in flight: a task the provider accepts meanwhile is not canceled', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
    const creating = gw.create(pinned);
    // The upstream holds the create until the cancel waits for its answer.
    await held.reached;
    const id = await theTask(gw);
    expect((await gw.gateway.store.getTask(id))?.phase).toBe('submitting');
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    await cancelRequested(gw, id);
    held.release();
    const answer = await canceling;
    expect(answer.status).toBe(409);
    expect(answer.body.detail).toMatch(/accepted by kling3api/);
    expect((await creating).body.status).toBe('processing');
    expect((await gw.get(id)).body.status).toBe('processing');
  });

  it('cancels a task whose submission ended back in the queue (the provider asked to wait)', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('kling3api').injectFault({ on: 'submit', kind: 'rate_limited', headers: { 'retry-after': '30' }, hold: held.hold });
    const creating = gw.create(pinned);
    // The cancel is asked while the create is on its way; then the provider asks to wait.
    await held.reached;
    const id = await theTask(gw);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    await cancelRequested(gw, id);
    held.release();
    const answer = await canceling;
    expect(answer.status).toBe(200);
    expect(answer.body.status).toBe('canceled');
    expect((await creating).status).toBe(202);
    await gw.advance(60_000);
    expect(creates(gw)).toBe(1);
    expect((await gw.get(id)).body.status).toBe('canceled');
  });

  it('cancels a task whose create waits for a rate allowance: 200 canceled at no cost, and nothing is sent', async () => {
    const { gateway, id, creating } = await waitingForRateAllowance();
    const asked = gateway.clock.now();
    const canceling = gateway.request('POST', `/v1/videos/${id}/cancel`);
    // The window has room again: the dispatcher's wait ends (before, the cancel waited for it, and the create went).
    await gateway.advance(2_000);
    const answer = await canceling;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      id,
      status: 'canceled',
      provider: null,
      provider_task_id: null,
      error: { code: 'canceled', message: 'canceled by the caller before any provider took it' },
      cost: { credits: 0, estimated: false, currency_amount: 0 },
      attempts: [],
    });
    // Canceled as it was asked, not once the wait was over.
    expect(Date.parse(answer.body.completed_at)).toBe(asked);
    expect((await creating).body).toMatchObject({ id, status: 'canceled', attempts: [] });
    expect(creates(gateway)).toBe(1);
    // The allowance its dispatch took went back: the next create goes at once (the second of the minute).
    expect((await gateway.create({ ...pinned, prompt: 'the next one' })).body.status).toBe('processing');
    await gateway.advance(60_000);
    expect(creates(gateway)).toBe(2);
    expect((await gateway.get(id)).body).toMatchObject({ status: 'canceled', attempts: [] });
  });

  it('a cancel that read the task just before its request left loses: the create goes and the cancel answers 409', async () => {
    const { gateway, id, creating } = await waitingForRateAllowance();
    gateway.simulator('kling3api').injectFault({ on: 'submit', delayMs: 400 });
    const { tasks } = gateway.gateway.engine;
    const read = tasks.getWithAttempts.bind(tasks);
    // The cancel reads the task (nothing sent yet); then the dispatcher's wait ends and its request
    // reaches the upstream (which answers a little later) before the cancel writes on what it read.
    let stale = true;
    vi.spyOn(tasks, 'getWithAttempts').mockImplementation(async (taskId) => {
      const found = await read(taskId);
      if (taskId === id && stale) {
        stale = false;
        await gateway.clock.advance(2_000);
        while (creates(gateway) < 2) await new Promise((resolve) => setImmediate(resolve));
      }
      return found;
    });
    const answer = await gateway.request('POST', `/v1/videos/${id}/cancel`);
    expect(stale).toBe(false);
    expect(answer.status).toBe(409);
    expect(answer.body.detail).toMatch(/accepted by kling3api/);
    expect((await creating).body).toMatchObject({ id, status: 'processing', attempts: [{ provider: 'kling3api', outcome: 'accepted' }] });
    expect(creates(gateway)).toBe(2);
  });

  it('sends video.canceled to the webhook and ends waits and event streams', async () => {
    const received: { headers: Record<string, string>; body: string }[] = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
    const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    const { gateway } = await withFullProvider({ clock: new ManualClock(Date.now()) });
    const queued = await gateway.create({ ...pinned, webhook_url: hook });
    expect(queued.body.status).toBe('queued');

    const followers = followTaskFollowers(gateway);
    const waiting = gateway.request('GET', `/v1/videos/${queued.body.id}?wait=30`);
    const stream = fetch(`${gateway.url}/v1/videos/${queued.body.id}/events`, { headers: { authorization: 'Bearer acme-secret-key' } }).then((r) => r.text());
    // The wait and the stream both follow the task before it is canceled.
    await followers.until(queued.body.id, 2);
    expect((await gateway.request('POST', `/v1/videos/${queued.body.id}/cancel`)).status).toBe(200);
    expect((await waiting).body.status).toBe('canceled');
    const events = await stream;
    expect(events).toMatch(/event: queued/);
    expect(events).toMatch(/event: canceled\n/);

    await gateway.advanceUntil(async () => received.length >= 1, 100);
    const event = new Webhook(TENANT_WEBHOOK_SECRET).verify(received[0]!.body, received[0]!.headers) as any;
    expect(event.type).toBe('video.canceled');
    expect(event.data).toMatchObject({ id: queued.body.id, status: 'canceled', error: { code: 'canceled' } });
  });
});

/** Served by Freepik (priority 1) and then kling3api (priority 2). */
const eitherProvider = { model: 'kling-v3', prompt: 'a paper boat on a puddle', duration: 5 };

/** The id of the one task once `provider` holds its create (`held`), which no other provider was sent. */
async function onItsWay(gateway: TestGateway, provider: string, held: HeldCall): Promise<string> {
  await held.reached;
  expect(creates(gateway, provider)).toBe(1);
  return theTask(gateway);
}

describe('a cancel while a create is on its way', () => {
  it('is kept: the provider turns the create down (402), and the task ends canceled instead of going to the next provider', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402, hold: held.hold });
    const creating = gw.create({ ...eitherProvider, webhook_url: 'http://127.0.0.1:9/hooks' });
    const id = await onItsWay(gw, 'freepik', held);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    // Freepik turns the create down once the cancel waits for its answer.
    await cancelRequested(gw, id);
    held.release();
    const answer = await canceling;
    // Before: the create went on to kling3api, which took it (and billed it), and the cancel answered 409.
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      id,
      status: 'canceled',
      provider: null,
      provider_task_id: null,
      error: { code: 'canceled', message: 'canceled by the caller while its create was on its way; no provider took it' },
      cost: { credits: 0, estimated: false, currency_amount: 0 },
      attempts: [{ provider: 'freepik', outcome: 'failed', http_status: 402, error_code: 'insufficient_credits' }],
    });
    expect((await creating).body).toMatchObject({ id, status: 'canceled' });
    await gw.advance(60_000);
    expect(creates(gw, 'freepik')).toBe(1);
    expect(creates(gw, 'kling3api')).toBe(0);
    expect((await gw.get(id)).body).toMatchObject({ status: 'canceled', attempts: [{ provider: 'freepik', outcome: 'failed' }] });
    expect((await gw.gateway.store.listDeliveries(id)).map((delivery) => delivery.event_type)).toEqual(['video.canceled']);
  });

  it("is kept: the provider's first account turns the create down, and its second account is never asked", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const keys = { east: 'key-east-0001', west: 'key-west-0002' };
    const upstream = await MultiKeyKling3api.start(clock, Object.values(keys));
    try {
      const accounts = Object.entries(keys).map(([id, key]) => ({ id, api_key: key, max_in_flight: 5 }));
      gw = await startTestGateway({ clock, config: { providers: { kling3api: { base_url: upstream.url, accounts } } } });
      const held = hold();
      upstream.simulator.injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402, hold: held.hold });
      const creating = gw.create(pinned);
      await held.reached;
      expect(upstream.simulator.requests.filter((request) => request.method === 'POST')).toHaveLength(1);
      const id = await theTask(gw);
      const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
      // The first account turns the create down once the cancel waits for its answer.
      await cancelRequested(gw, id);
      held.release();
      const answer = await canceling;
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ status: 'canceled', cost: { credits: 0, estimated: false } });
      expect(answer.body.attempts).toHaveLength(1);
      expect(answer.body.attempts[0]).toMatchObject({ outcome: 'failed', http_status: 402 });
      expect((await creating).body.status).toBe('canceled');
      await gw.advance(60_000);
      expect(upstream.simulator.requests.filter((request) => request.method === 'POST')).toHaveLength(1);
      expect([...upstream.created.values()].flat()).toEqual([]);
    } finally {
      await gw?.close();
      gw = undefined;
      await upstream.close();
    }
  });

  it('answers 409 when the provider accepts the create; the task runs on to the end', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', hold: held.hold });
    const creating = gw.create(eitherProvider);
    const id = await onItsWay(gw, 'freepik', held);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    // Freepik accepts once the cancel waits for its answer.
    await cancelRequested(gw, id);
    held.release();
    const answer = await canceling;
    expect(answer.status).toBe(409);
    expect(answer.body.detail).toMatch(/accepted by freepik/);
    // Final: asking again changes nothing.
    expect(answer.body.type).toBe('https://kling-gateway.dev/problems/conflict');
    expect(answer.headers.get('retry-after')).toBeNull();
    expect((await creating).body).toMatchObject({ id, status: 'queued', provider: 'freepik' });
    expect((await gw.finish(id)).status).toBe('succeeded');
    expect(creates(gw, 'kling3api')).toBe(0);
  });

  it('is kept when its wait runs out (409): a create the provider then asks to wait for ends the task canceled at once, not queued until the pause ends', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('kling3api').injectFault({ on: 'submit', kind: 'rate_limited', headers: { 'retry-after': '30' }, hold: held.hold });
    void gw.create(pinned);
    await held.reached;
    const id = await theTask(gw);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    await cancelRequested(gw, id);
    await gw.clock.advance(40_000);
    expect((await canceling).status).toBe(409);
    held.release();
    for (let i = 0; i < 1_000 && (await gw.get(id)).body.status !== 'canceled'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await gw.get(id)).body).toMatchObject({ status: 'canceled', cost: { credits: 0, estimated: false } });
    expect(creates(gw)).toBe(1);
  });

  it('is kept when its wait runs out (409): a create turned down after that still ends the task canceled, sent nowhere else', async () => {
    gw = await startTestGateway();
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402, hold: held.hold });
    void gw.create(eitherProvider);
    const id = await onItsWay(gw, 'freepik', held);
    const canceling = gw.request('POST', `/v1/videos/${id}/cancel`);
    await cancelRequested(gw, id);
    // The cancel's wait (the upstream time limit + 2 s, on the gateway's clock) runs out before the answer comes.
    await gw.clock.advance(10_000);
    const answer = await canceling;
    expect(answer.status).toBe(409);
    expect(answer.body.detail).toMatch(/whether it accepts is not known yet\. The cancel is kept: if the provider turns the create down, the task ends canceled and is sent nowhere else/);
    // A client tells this 409, to be asked again, from the final ones by its type, and knows when to ask again.
    expect(answer.body.type).toBe(CANCEL_PENDING);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Not before the submission's lease runs out (its answer written by then, or recovery taking it
    // over): tens of seconds here, not the least wait of 2 s, which would only be answered 409 again.
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(10);
    // Freepik turns it down: no create goes to kling3api.
    held.release();
    for (let i = 0; i < 1_000 && (await gw.get(id)).body.status !== 'canceled'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await gw.get(id)).body).toMatchObject({ status: 'canceled', cost: { credits: 0, estimated: false } });
    await gw.advance(60_000);
    expect(creates(gw, 'kling3api')).toBe(0);
    // Canceling again answers the canceled task.
    expect((await gw.request('POST', `/v1/videos/${id}/cancel`)).body.status).toBe('canceled');
  });
});

describe('a cancel of a task whose create answer was lost', () => {
  it('answers 409 cancel-pending at once, saying the create is being looked for, not that it is on its way; the cancel is kept', async () => {
    gw = await startTestGateway();
    // Freepik makes the task, and the connection drops before its answer: the task is in doubt.
    gw.simulator('freepik').injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create({ ...pinned, routing: { providers: ['freepik'] } });
    expect(created.body).toMatchObject({ status: 'queued', provider_task_id: null });
    expect(created.body.attempts.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['ambiguous']);
    // No create is on its way, so there is nothing to wait for: the answer comes without the gateway's clock moving.
    const canceling = gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
    const answer = await Promise.race([canceling, new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 3_000))]);
    expect(answer).not.toBe('still waiting');
    const pending = answer as Awaited<typeof canceling>;
    expect(pending.status).toBe(409);
    expect(pending.body.type).toBe(CANCEL_PENDING);
    expect(pending.body.detail).toMatch(/the answer to its create at freepik was lost, and whether freepik holds video vid_\S+ is being looked up\. The cancel is kept/);
    expect(pending.body.detail).not.toMatch(/right now/);
    expect(Number(pending.headers.get('retry-after'))).toBeGreaterThanOrEqual(2);
    expect((await gw.gateway.store.getTask(created.body.id))?.cancel_requested_at).not.toBeNull();
    // Freepik's webhook shows it holds the task: tracked there and billed, so a cancel now is final.
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('succeeded');
    expect((await gw.request('POST', `/v1/videos/${created.body.id}/cancel`)).status).toBe(409);
  });
});

describe('cancel_after', () => {
  it('cancels a task still queued when the time runs out', async () => {
    const { gateway, running } = await withFullProvider();
    const queued = await gateway.create({ ...pinned, cancel_after: 3 });
    expect(queued.body.request.cancel_after).toBe(3);
    await gateway.advance(2_000);
    expect((await gateway.get(queued.body.id)).body.status).toBe('queued');
    await gateway.advance(1_500);
    const canceled = (await gateway.get(queued.body.id)).body;
    expect(canceled).toMatchObject({ status: 'canceled', error: { code: 'canceled', message: 'still queued after cancel_after (3 s); no provider took it' } });
    expect(canceled.cost).toMatchObject({ credits: 0, estimated: false });
    expect((await gateway.finish(running.id)).status).toBe('succeeded');
    await gateway.advance(10_000);
    expect(creates(gateway)).toBe(1);
  });

  it('cancels, rather than sends, a task whose time ran out while the dispatcher sent the tasks ahead of it', async () => {
    gw = await startTestGateway();
    const gateway = gw;
    const { upstream, ahead, behind } = await queuedBehindEight(gateway, { ...pinned, cancel_after: 10 });
    // Each create the next pass sends takes the upstream 2 s: the eight ahead of it take 16.
    upstream.onRequest((request) => {
      if (request.method === 'POST') gateway.clock.set(gateway.clock.now() + 2_000);
    });
    await gateway.advance(6_000);
    for (const id of ahead) expect((await gateway.get(id)).body.provider_task_id).toEqual(expect.any(String));
    const canceled = (await gateway.get(behind.body.id)).body;
    expect(canceled).toMatchObject({ status: 'canceled', error: { code: 'canceled', message: 'still queued after cancel_after (10 s); no provider took it' } });
    expect(canceled.cost).toMatchObject({ credits: 0, estimated: false });
    expect(creates(gateway)).toBe(1 + ahead.length);
  });

  it('never sends a task canceled while the dispatcher sent the tasks ahead of it in the same pass', async () => {
    gw = await startTestGateway();
    const gateway = gw;
    const { upstream, ahead, behind } = await queuedBehindEight(gateway, pinned);
    // The eight ahead of it go out first and are held upstream; it is canceled once the first of
    // them is there (the pass read it queued before), and the eight answer only after that.
    const eight = hold();
    upstream.injectFault({ hold: eight.hold, times: 8 });
    const passing = gateway.advance(6_000);
    await eight.reached;
    expect((await gateway.request('POST', `/v1/videos/${behind.body.id}/cancel`)).status).toBe(200);
    eight.release();
    await passing;
    await gateway.gateway.dispatcher.idle();
    for (const id of ahead) expect((await gateway.get(id)).body.provider_task_id).toEqual(expect.any(String));
    expect((await gateway.get(behind.body.id)).body).toMatchObject({ status: 'canceled', provider_task_id: null, cost: { credits: 0 } });
    expect(creates(gateway)).toBe(1 + ahead.length);
  });

  it('cancels, rather than sends to the next provider, a task whose time ran out while the first provider had its create and then turned it down', async () => {
    // freepik's time limit (30 s) is longer than the cancel_after (5 s): it answers 503 after the time ran out.
    gw = await startTestGateway({ config: { providers: { freepik: { timeout_ms: 30_000 } } } });
    const held = hold();
    gw.simulator('freepik').injectFault({ on: 'submit', status: 503, hold: held.hold });
    const creating = gw.create({ ...eitherProvider, cancel_after: 5 });
    await held.reached;
    await gw.clock.advance(6_000);
    held.release();
    const answer = (await creating).body;
    expect(answer).toMatchObject({ status: 'canceled', provider_task_id: null, error: { code: 'canceled', message: 'still queued after cancel_after (5 s); no provider took it' } });
    expect(answer.cost).toMatchObject({ credits: 0, estimated: false });
    expect(answer.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['freepik']);
    await gw.advance(2_000);
    expect(creates(gw, 'kling3api') + creates(gw, 'kling-legacy')).toBe(0);
  });

  it('cancels, rather than sends, a task whose time ran out while its create waited for a rate allowance; the allowance goes back', async () => {
    const { gateway, id, creating } = await waitingForRateAllowance({ ...pinned, cancel_after: 1 });
    // The window has room again a second later, when its cancel_after has run out.
    await gateway.advance(2_000);
    expect((await creating).body).toMatchObject({
      id,
      status: 'canceled',
      provider: null,
      error: { code: 'canceled', message: 'still queued after cancel_after (1 s); no provider took it' },
      cost: { credits: 0, estimated: false },
      attempts: [],
    });
    expect(creates(gateway)).toBe(1);
    // The allowance its dispatch took went back: the next create goes at once (the second of the minute).
    expect((await gateway.create({ ...pinned, prompt: 'the next one' })).body.status).toBe('processing');
  });

  it('leaves a task a provider took in time alone', async () => {
    gw = await startTestGateway();
    const created = await gw.create({ ...pinned, cancel_after: 1 });
    expect(created.body.status).toBe('processing');
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
  });

  it('refuses a cancel_after out of range without creating anything', async () => {
    gw = await startTestGateway();
    for (const value of [0, -5, 1.5, 'soon', 8 * 24 * 3600]) {
      const answer = await gw.create({ ...pinned, cancel_after: value });
      expect(answer.status).toBe(400);
      expect(answer.body.errors[0].path).toBe('cancel_after');
    }
    expect(creates(gw)).toBe(0);
  });
});

describe('a provider that can cancel', () => {
  it('cancels a task it holds there and reports it canceled', async () => {
    const canceledUpstream: ProviderTaskRef[] = [];
    const cancellable: VideoProvider = {
      ...reelhouseProvider,
      cancel: async (ref) => {
        canceledUpstream.push(ref);
      },
    };
    gw = await startTestGateway({ providers: [...PROVIDERS, cancellable] });
    // GET /v1/providers says which can cancel a task they accepted: this one, none of the three shipped.
    const providers = await gw.request('GET', '/v1/providers');
    expect(Object.fromEntries(providers.body.data.map((entry: { id: string; can_cancel: boolean }) => [entry.id, entry.can_cancel]))).toEqual({
      freepik: false,
      kling3api: false,
      'kling-legacy': false,
      reelhouse: true,
    });
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10, routing: { providers: ['reelhouse'] } });
    expect(created.body.status).toBe('queued');
    const answer = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'canceled', provider: 'reelhouse', error: { code: 'canceled', message: 'canceled by the caller; reelhouse confirmed' } });
    expect(canceledUpstream).toEqual([{ providerTaskId: created.body.provider_task_id, tracking: {} }]);
    // Later news from the upstream changes nothing.
    await gw.advance(30_000);
    expect((await gw.get(created.body.id)).body.status).toBe('canceled');
  });

  it('keeps a task the provider did not cancel: the cancel answers 502, and the task runs on to its result', async () => {
    const cancellable: VideoProvider = {
      ...reelhouseProvider,
      cancel: async () => {
        throw new Error('the task is already rendering and cannot be canceled');
      },
    };
    gw = await startTestGateway({ providers: [...PROVIDERS, cancellable] });
    const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10, routing: { providers: ['reelhouse'] } });
    expect(created.body.status).toBe('queued');
    const answer = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
    expect(answer.status).toBe(502);
    expect(answer.body.detail).toMatch(/reelhouse did not cancel/);
    expect((await gw.get(created.body.id)).body.status).toBe('queued');
    // The provider goes on and bills it: its result is delivered, not dropped.
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs).toHaveLength(1);
  });
});
