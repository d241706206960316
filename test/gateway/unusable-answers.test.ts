import { afterEach, describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

/** kling3api serves it first once Freepik is excluded; the legacy API does not serve kling-v3. */
const kling3apiRequest = {
  model: 'kling-v3',
  prompt: 'a lighthouse in a storm',
  duration: 5,
  routing: { providers: ['kling3api'] },
};

/** A kling3api status answer saying SUCCESS with nothing to download. */
function emptyKling3apiSuccess(taskId: string) {
  return { code: 200, message: 'success', data: { task_id: taskId, status: 'SUCCESS', response: [] } };
}

describe('a provider that says "done" but gives nothing to download', () => {
  it('kling3api: the same SUCCESS without a URL twice fails the task as provider_error, naming the upstream word', async () => {
    gw = await startTestGateway();
    const created = await gw.create(kling3apiRequest);
    expect(created.status).toBe(202);
    const simulator = gw.simulator('kling3api');
    simulator.injectFault({ on: 'status', status: 200, times: 2, body: emptyKling3apiSuccess(simulator.tasks[0]!.id) });
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(task.outputs).toEqual([]);
    expect(task.error).toMatchObject({ code: 'provider_error', provider_code: 'SUCCESS' });
    expect(task.error.message).toMatch(/gave no result to download/);
    const statusCalls = simulator.requests.filter((r) => r.method === 'GET' && r.path === '/api/status');
    expect(statusCalls).toHaveLength(2);
  });

  it('kling3api: a SUCCESS whose URL lands on the next poll is a success (one confirming poll)', async () => {
    gw = await startTestGateway();
    const created = await gw.create(kling3apiRequest);
    const simulator = gw.simulator('kling3api');
    // Let the simulated task really finish, then have its first status answer lag behind.
    await gw.clock.advance(10_000);
    simulator.injectFault({ on: 'status', status: 200, body: emptyKling3apiSuccess(simulator.tasks[0]!.id) });
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('succeeded');
    expect(task.outputs).toHaveLength(1);
    expect(task.provider_status).toBe('SUCCESS');
  });

  it('legacy: succeed without videos, twice, fails the task the same way', async () => {
    gw = await startTestGateway();
    const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look' });
    expect(created.body.provider).toBe('kling-legacy');
    const taskId = gw.simulator('kling-legacy').tasks[0]!.id;
    gw.simulator('kling-legacy').injectFault({
      on: 'status',
      status: 200,
      times: 5,
      body: {
        code: 0,
        message: 'SUCCEED',
        request_id: 'req-1',
        data: { task_id: taskId, task_status: 'succeed', task_result: { videos: [] }, created_at: 1, updated_at: 2 },
      },
    });
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(task.error).toMatchObject({ code: 'provider_error', provider_code: 'succeed' });
  });

  it('freepik: a signed COMPLETED webhook without files is confirmed by a poll before anything is decided', async () => {
    // The simulated task stays queued long enough that its own webhooks do not interleave.
    gw = await startTestGateway({ config: { sandbox: { queued_ms: 60_000 } } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5 });
    expect(created.body.provider).toBe('freepik');
    const providerTaskId = created.body.provider_task_id;
    const raw = JSON.stringify({ task_id: providerTaskId, status: 'COMPLETED', generated: [] });
    const timestamp = String(Math.floor(gw.clock.now() / 1000));
    const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, 'wh_empty', timestamp, raw);
    const headers = { 'webhook-id': 'wh_empty', 'webhook-timestamp': timestamp, 'webhook-signature': signature };
    expect((await gw.request('POST', '/v1/webhooks/freepik', raw, headers, null)).status).toBe(200);
    // Not believed yet: still processing, a confirming poll is due.
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'COMPLETED' });

    const simulator = gw.simulator('freepik');
    simulator.injectFault({ on: 'status', status: 200, body: { data: { task_id: providerTaskId, status: 'COMPLETED', generated: [] } } });
    await gw.advance(1_000);
    const task = (await gw.get(created.body.id)).body;
    expect(task.status).toBe('failed');
    expect(task.error).toMatchObject({ code: 'provider_error', provider_code: 'COMPLETED' });
    expect(simulator.requests.filter((r) => r.method === 'GET' && !r.path.startsWith('/sim-files'))).toHaveLength(1);
  });
});

describe('a task whose status polls fail to its deadline', () => {
  it('fails with timeout, saying what the last poll heard (the upstream no longer knows the task), not only that it ran late', async () => {
    gw = await startTestGateway();
    const created = await gw.create(kling3apiRequest);
    expect(created.body.provider).toBe('kling3api');
    gw.simulator('kling3api').injectFault({ on: 'status', status: 404, times: 1_000, body: { code: 'TASK_NOT_FOUND', message: 'Task not found' } });
    const task = await gw.finish(created.body.id, 60_000);
    expect(task.status).toBe('failed');
    expect(task.error.code).toBe('timeout');
    expect(task.error.message).toMatch(/^the task did not finish within the 30-minute deadline/);
    expect(task.error.message).toContain('the last status poll failed: kling3api (TASK_NOT_FOUND): Task not found');
  });
});

describe('cost of a task no provider accepted', () => {
  it('is zero and no longer an estimate', async () => {
    gw = await startTestGateway();
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'x', duration: 5 });
    expect(quote.status).toBe(200);
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    gw.simulator('kling3api').injectFault({ kind: 'server_error', status: 500 });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.status).toBe('failed');
    expect(created.body.cost).toMatchObject({ credits: 0, estimated: false, currency_amount: 0 });
    expect((await gw.get(created.body.id)).body.cost).toEqual(created.body.cost);
  });

  it('a task the provider accepted and then failed keeps its estimate', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').setOutcome('fail');
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5 });
    expect(created.body.provider).toBe('freepik');
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(task.cost).toEqual(created.body.cost);
    expect(task.cost.credits).toBeGreaterThan(0);
  });
});

describe('requests Freepik would reject', () => {
  it('aspect_ratio auto on an Omni reference video without a start image is refused before any upstream call', async () => {
    gw = await startTestGateway();
    const created = await gw.create({
      model: 'kling-v3-omni',
      prompt: 'dance like @Video1',
      reference_video_url: 'https://assets.example.com/clip.mp4',
      aspect_ratio: 'auto',
      routing: { providers: ['freepik'] },
    });
    expect(created.status).toBe(422);
    expect(JSON.stringify(created.body)).toMatch(/needs start_image_url/);
    expect(gw.simulator('freepik').tasks).toHaveLength(0);
  });
});

describe('upstream keys never reach the caller', () => {
  it('a key echoed in an upstream error body is redacted from the task and its attempts', async () => {
    gw = await startTestGateway();
    const key = gw.endpoints.get('freepik')!.apiKey;
    gw.simulator('freepik').injectFault({ status: 500, body: { message: `internal error for key ${key}` } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5 });
    expect(created.body.provider).toBe('kling3api');
    const shown = JSON.stringify((await gw.get(created.body.id)).body);
    expect(shown).not.toContain(key);
    expect(created.body.attempts[0].message).toContain('[redacted]');
  });
});
