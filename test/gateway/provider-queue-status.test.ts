/**
 * SPEC §2: a provider's own queue word (Freepik `CREATED`, legacy `submitted`) is `queued`. Such a
 * task has its upstream id (a provider holds it and bills it), so a cancel answers 409; it becomes
 * `processing` when the provider says it runs. One the provider ends straight from its queue is
 * written `processing` first, so clients following it see queued → processing → its end.
 */
import { afterEach, expect, it, vi } from 'vitest';
import type { StatusReport } from '../../src/core/upstream/provider.js';
import { ManualClock } from '../../src/core/clock.js';
import { postFreepikWebhook } from '../support/freepik-webhook.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { runCliCaptured } from '../support/cli-run.js';

/** Nothing listens here: deliveries are only looked at in the store. */
const NO_RECEIVER = 'http://127.0.0.1:9/hooks';

let gw: TestGateway | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await gw?.close();
  gw = undefined;
});

const eventTypes = async (gateway: TestGateway, id: string) =>
  (await gateway.gateway.store.listDeliveries(id)).map((delivery) => delivery.event_type);

it.each([
  ['freepik', 'CREATED'],
  ['kling-legacy', 'submitted'],
])('shows a task %s holds in its queue as queued with its upstream id, refuses to cancel it, and makes it processing when it runs', async (provider, word) => {
  // Jobs that wait a minute in the provider's queue.
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 60_000, processing_ms: 60_000 } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a harbour at dusk', duration: 5, routing: { providers: [provider] }, webhook_url: NO_RECEIVER });
  expect(created.status).toBe(202);
  expect(created.body).toMatchObject({ status: 'queued', provider, provider_status: word, provider_task_id: expect.any(String) });
  expect((await gw.get(created.body.id)).body.status).toBe('queued');
  // The list's status filter reads the same status.
  expect((await gw.request('GET', '/v1/videos?status=queued')).body.data.map((task: { id: string }) => task.id)).toEqual([created.body.id]);

  const cancel = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
  expect(cancel.status).toBe(409);
  expect(cancel.body.detail).toMatch(new RegExp(`accepted by ${provider}`));
  // `queued` sends no event: nothing was delivered yet.
  expect(await eventTypes(gw, created.body.id)).toEqual([]);

  // A minute on the provider runs it; the gateway learns it (Freepik's webhook, the legacy safety poll).
  await gw.advanceUntil(async () => (await gw!.get(created.body.id)).body.status === 'processing', 1_000, 90);
  expect(await eventTypes(gw, created.body.id)).toEqual(['video.processing']);
  const done = await gw.finish(created.body.id);
  expect(done.status).toBe('succeeded');
  expect(await eventTypes(gw, created.body.id)).toEqual(['video.processing', 'video.succeeded']);
});

it('writes processing first when the provider reports the end straight from its queue', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 600_000, processing_ms: 600_000 } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse', duration: 5, routing: { providers: ['freepik'] }, webhook_url: NO_RECEIVER });
  expect(created.body.status).toBe('queued');
  const answer = await postFreepikWebhook(gw, { task_id: created.body.provider_task_id, status: 'COMPLETED', generated: ['https://cdn.example.com/lighthouse.mp4'] });
  expect(answer.status).toBe(200);
  const done = await gw.finish(created.body.id);
  expect(done).toMatchObject({ status: 'succeeded', provider_status: 'COMPLETED' });
  expect(await eventTypes(gw, created.body.id)).toEqual(['video.processing', 'video.succeeded']);
});

it('writes processing first when a task in its provider queue reaches its deadline', async () => {
  gw = await startTestGateway({
    clock: new ManualClock(Date.now()),
    config: { tasks: { deadline_ms: 120_000 }, sandbox: { queued_ms: 3_600_000, processing_ms: 60_000 } },
  });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a long wait', duration: 5, routing: { providers: ['freepik'] }, webhook_url: NO_RECEIVER });
  expect(created.body.status).toBe('queued');
  const ended = await gw.finish(created.body.id, 5_000);
  expect(ended).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
  expect(await eventTypes(gw, created.body.id)).toEqual(['video.processing', 'video.failed']);
});

it('confirms a legacy progress callback on a task in its queue with one poll, so it reads processing long before the safety poll', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 1_000, processing_ms: 600_000 } } });
  const created = await gw.create({ model: 'kling-v1', prompt: 'a paper boat', duration: 5, routing: { providers: ['kling-legacy'] } });
  expect(created.body).toMatchObject({ status: 'queued', provider_status: 'submitted' });
  const statusCalls = () => gw!.simulator('kling-legacy').requests.filter((request) => request.method === 'GET').length;
  expect(statusCalls()).toBe(0);
  // The aggregator calls back once the job runs (after 1 s); the safety poll would come at 60 s.
  await gw.advanceUntil(async () => (await gw!.get(created.body.id)).body.status === 'processing', 500, 20);
  expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'processing' });
  expect(statusCalls()).toBe(1);
  // Progress news about a running task changes nothing: no further fetch.
  await gw.advance(5_000);
  expect(statusCalls()).toBe(1);
});

it('sends video.processing once when a poll and a webhook both learn that a task in its provider queue runs', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 600_000, processing_ms: 600_000 } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lantern', duration: 5, routing: { providers: ['freepik'] }, webhook_url: NO_RECEIVER });
  expect(created.body.status).toBe('queued');
  const { store, engine, tracker } = gw.gateway;
  const running: StatusReport = { status: 'processing', providerStatus: 'IN_PROGRESS', outputs: [] };
  // A webhook saying it runs is read while the task is still queued ...
  const readByWebhook = (await engine.tasks.get(created.body.id))!;
  // ... and a poll that heard the same word writes processing first.
  vi.spyOn(engine.runtimes.get('freepik')!.provider, 'getStatus').mockResolvedValueOnce(running);
  await store.updateTask(created.body.id, { next_poll_at: gw.clock.now() });
  await tracker.tick();
  expect((await gw.get(created.body.id)).body.status).toBe('processing');
  await tracker.onWebhook(readByWebhook, running);

  expect((await gw.get(created.body.id)).body.status).toBe('processing');
  expect(await eventTypes(gw, created.body.id)).toEqual(['video.processing']);
});

it('says a cancel works only while a task waits at the gateway, not while it is queued in its provider queue', async () => {
  gw = await startTestGateway();
  // The API's description of can_cancel, as the OpenAPI document and the typed client carry it.
  const document = (await gw.request('GET', '/openapi.json')).body;
  const canCancel: string = document.components.schemas.ProviderStatus.properties.can_cancel.description;
  expect(canCancel).toContain('no `provider_task_id`');
  expect(canCancel).not.toMatch(/only while they are `queued` \(no provider holds them yet\)/);
  // The CLI's cancel help.
  const help = await runCliCaptured(['cancel', '--help'], { env: {} });
  expect(help.stdout.replace(/\s+/g, ' ')).toContain('cancel a task still waiting at the gateway (queued, no provider task id)');
});
