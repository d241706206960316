import { afterEach, describe, expect, it } from 'vitest';
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

describe('a provider that says "done" but gives nothing to download', () => {
  it('kling3api SUCCESS without a URL fails the task as provider_error, naming the upstream word', async () => {
    gw = await startTestGateway();
    const created = await gw.create(kling3apiRequest);
    expect(created.status).toBe(202);
    const taskId = gw.simulator('kling3api').tasks[0]!.id;
    gw.simulator('kling3api').injectFault({
      on: 'status',
      status: 200,
      body: { code: 200, message: 'success', data: { task_id: taskId, status: 'SUCCESS', response: [] } },
    });
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(task.outputs).toEqual([]);
    expect(task.error).toMatchObject({ code: 'provider_error', provider_code: 'SUCCESS' });
    expect(task.error.message).toMatch(/gave no result to download/);
  });

  it('legacy succeed without videos fails the task the same way', async () => {
    gw = await startTestGateway();
    const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look' });
    expect(created.body.provider).toBe('kling-legacy');
    const taskId = gw.simulator('kling-legacy').tasks[0]!.id;
    gw.simulator('kling-legacy').injectFault({
      on: 'status',
      status: 200,
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
