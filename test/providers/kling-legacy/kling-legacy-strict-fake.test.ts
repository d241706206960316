/**
 * The gateway against a strict fake of the legacy Kling-API written from seed 002 alone (not the
 * repo's simulator): `GET /kling/v1/{action}/{action2}/{task_id}` with action ∈ {images, videos}
 * and action2 ∈ {generations, text2video, image2video, lip-sync, kolors-virtual-try-on}, Bearer
 * auth, and the `{code, message, request_id, data: {task_id, task_status, task_status_msg,
 * created_at, updated_at, task_result: {videos: [{id, url, duration}]}}}` answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import { startTestGateway, type TestGateway } from '../../support/harness.js';
import { gatewayAtFake, LoopbackFake } from '../../support/loopback-fake.js';

const API_KEY = 'sk-strict-fake';
const ACTION2: Record<string, string[]> = { videos: ['text2video', 'image2video', 'lip-sync'], images: ['generations', 'kolors-virtual-try-on'] };

interface FakeTask {
  task_id: string;
  task_status: string;
  task_status_msg: string;
  created_at: number;
  updated_at: number;
  task_result?: unknown;
  final_unit_deduction?: string;
}

class StrictFake extends LoopbackFake {
  creates: { path: string; body: any }[] = [];
  gets: string[] = [];
  tasks = new Map<string, FakeTask>();
  refusals: string[] = [];
  /**
   * Answers the next creates get instead of a task: [status, body]; status 0 makes the task and
   * drops the connection, status 1 makes it and answers 200 with the body's code beside it, status
   * 2 the same under HTTP 500.
   */
  createErrors: [number, unknown][] = [];
  getErrors: [number, unknown][] = [];
  private next = 1;


  private answer(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    if (req.headers.authorization !== `Bearer ${API_KEY}`) return this.answer(res, 401, { code: 1000, message: 'auth', request_id: 'r' });
    const parts = (req.url ?? '').split('?')[0]!.split('/').filter(Boolean);
    if (parts[0] !== 'kling' || parts[1] !== 'v1') return this.answer(res, 404, { code: 1203, message: 'no route', request_id: 'r' });
    const [, , family, action, taskId] = parts;
    if (req.method === 'POST' && parts.length === 4) {
      if (!/^application\/json/.test(req.headers['content-type'] ?? '')) return this.answer(res, 400, { code: 1200, message: 'content-type', request_id: 'r' });
      const body = JSON.parse(raw);
      this.creates.push({ path: `/${parts.join('/')}`, body });
      const error = this.createErrors.shift();
      if (error && error[0] === 0) {
        // Accepted, but the answer is lost.
        const id = `task-${this.next++}`;
        this.tasks.set(id, { task_id: id, task_status: 'submitted', task_status_msg: '', created_at: 1, updated_at: 1 });
        req.socket.destroy();
        return;
      }
      if (error && (error[0] === 1 || error[0] === 2)) {
        // Made, but answered with an error code (the body) beside the task.
        const id = `task-${this.next++}`;
        const task: FakeTask = { task_id: id, task_status: 'submitted', task_status_msg: '', created_at: 1, updated_at: 1 };
        this.tasks.set(id, task);
        return this.answer(res, error[0] === 1 ? 200 : 500, { ...(error[1] as object), request_id: 'req', data: task });
      }
      if (error) return this.answer(res, error[0], error[1]);
      const id = `task-${this.next++}`;
      const task: FakeTask = { task_id: id, task_status: 'submitted', task_status_msg: '', created_at: 1722769557708, updated_at: 1722769557708 };
      this.tasks.set(id, task);
      return this.answer(res, 200, { code: 0, message: 'string', request_id: 'req', data: task });
    }
    if (req.method === 'GET' && parts.length === 5) {
      this.gets.push(`/${parts.join('/')}`);
      const getError = this.getErrors.shift();
      if (getError) return this.answer(res, getError[0], getError[1]);
      if (!ACTION2[family!]?.includes(action!)) {
        this.refusals.push(`/${parts.join('/')}`);
        return this.answer(res, 404, { code: 1203, message: 'no such action2', request_id: 'r' });
      }
      const task = this.tasks.get(taskId!);
      if (!task) return this.answer(res, 404, { code: 1203, message: 'no such task', request_id: 'r' });
      return this.answer(res, 200, { code: 0, message: 'string', request_id: 'req', data: task });
    }
    return this.answer(res, 404, { code: 1202, message: 'bad method', request_id: 'r' });
  }
}

let gw: TestGateway | undefined;
let fake: StrictFake | undefined;
afterEach(async () => {
  await gw?.close();
  await fake?.close();
  gw = undefined;
  fake = undefined;
});

async function start() {
  fake = new StrictFake();
  gw = await gatewayAtFake(klingLegacyProvider, fake, { apiKey: API_KEY });
  return { gw, fake };
}

function succeed(task: FakeTask, result: unknown, units = '10') {
  task.task_status = 'succeed';
  task.task_result = result;
  task.final_unit_deduction = units;
}

describe('the gateway against a fake that keeps to seed 002', () => {
  it('text-to-video: the body, the status path of its action, an output duration sent as text, the reported charge', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'a fox', duration: 5 });
    expect(created.status).toBe(202);
    expect(fake.creates[0]!.path).toBe('/kling/v1/videos/text2video');
    const body = fake.creates[0]!.body;
    expect(body).toMatchObject({ model_name: 'kling-v1', prompt: 'a fox', mode: 'std', duration: '5', aspect_ratio: '16:9' });
    expect(body.callback_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/webhooks\/kling-legacy\/[\w-]+$/);
    expect(typeof body.external_task_id).toBe('string');
    succeed(fake.tasks.get(created.body.provider_task_id)!, { videos: [{ id: 'vid-1', url: 'https://cdn.example.com/a.mp4', duration: '5.1' }] });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.provider_status).toBe('succeed');
    expect(done.outputs[0]).toMatchObject({ type: 'video', url: 'https://cdn.example.com/a.mp4', duration: 5.1 });
    expect(done.cost).toMatchObject({ credits: 10, estimated: false });
    expect(fake.gets.length).toBeGreaterThan(0);
    expect(new Set(fake.gets)).toEqual(new Set([`/kling/v1/videos/text2video/${created.body.provider_task_id}`]));
  });

  it('image-to-video with a start and an end frame', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({
      model: 'kling-v1-6',
      quality: 'pro',
      prompt: 'go',
      start_image_url: 'https://img.example.com/a.png',
      end_image_url: 'https://img.example.com/b.png',
      duration: 10,
    });
    expect(created.status).toBe(202);
    expect(fake.creates[0]).toMatchObject({
      path: '/kling/v1/videos/image2video',
      body: { model_name: 'kling-v1-6', image: 'https://img.example.com/a.png', image_tail: 'https://img.example.com/b.png', mode: 'pro', duration: '10' },
    });
    expect(fake.creates[0]!.body.aspect_ratio).toBeUndefined();
    succeed(fake.tasks.get(created.body.provider_task_id)!, { videos: [{ id: 'v', url: 'https://cdn.example.com/b.mp4', duration: '10' }] }, '7');
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cost).toMatchObject({ credits: 7, estimated: false });
    expect(new Set(fake.gets)).toEqual(new Set([`/kling/v1/videos/image2video/${created.body.provider_task_id}`]));
  });

  it('video-extend by video_id: polled at text2video once the seed\'s list of action2 refuses video-extend', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v1', operation: 'video-extend', video_id: 'vid-1', prompt: 'more' });
    expect(created.status).toBe(202);
    expect(fake.creates[0]).toEqual({ path: '/kling/v1/videos/video-extend', body: { video_id: 'vid-1', prompt: 'more', callback_url: expect.any(String) } });
    succeed(fake.tasks.get(created.body.provider_task_id)!, { videos: [{ id: 'v2', url: 'https://cdn.example.com/c.mp4', duration: '9.5' }] }, '5');
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ duration: 9.5 });
    expect(done.cost).toMatchObject({ credits: 5, estimated: false });
    expect(fake.refusals).toEqual([`/kling/v1/videos/video-extend/${created.body.provider_task_id}`]);
  });

  it('lip-sync with text and a voice, and with an audio URL', async () => {
    const { gw, fake } = await start();
    const text = await gw.create({
      model: 'kling-v1',
      operation: 'lip-sync',
      video_id: 'vid-1',
      lip_sync: { text: 'hello', voice_id: 'genshin_vindi2', voice_language: 'en', voice_speed: 1 },
    });
    const audio = await gw.create({ model: 'kling-v1', operation: 'lip-sync', video_url: 'https://cdn.example.com/v.mp4', lip_sync: { audio_url: 'https://cdn.example.com/a.mp3' } });
    expect([text.status, audio.status]).toEqual([202, 202]);
    expect(fake.creates[0]).toEqual({
      path: '/kling/v1/videos/lip-sync',
      body: { input: { video_id: 'vid-1', mode: 'text2video', text: 'hello', voice_id: 'genshin_vindi2', voice_language: 'en', voice_speed: 1 }, callback_url: expect.any(String) },
    });
    expect(fake.creates[1]).toEqual({
      path: '/kling/v1/videos/lip-sync',
      body: { input: { video_url: 'https://cdn.example.com/v.mp4', mode: 'audio2video', audio_type: 'url', audio_url: 'https://cdn.example.com/a.mp3' }, callback_url: expect.any(String) },
    });
    succeed(fake.tasks.get(text.body.provider_task_id)!, { videos: [{ id: 'v3', url: 'https://cdn.example.com/d.mp4', duration: '3' }] }, '1');
    const done = await gw.finish(text.body.id);
    expect(done.status).toBe('succeeded');
    expect(fake.gets).toContain(`/kling/v1/videos/lip-sync/${text.body.provider_task_id}`);
    expect(fake.refusals).toEqual([]);
  });

  it('image generation and virtual try-on, polled under images/', async () => {
    const { gw, fake } = await start();
    const image = await gw.create({ model: 'kling-v1', operation: 'image-generation', prompt: 'a cat', aspect_ratio: '1:1' });
    const tryOn = await gw.create({
      model: 'kolors-virtual-try-on-v1',
      operation: 'virtual-try-on',
      start_image_url: 'https://img.example.com/h.png',
      reference_images: ['https://img.example.com/c.png'],
    });
    expect([image.status, tryOn.status]).toEqual([202, 202]);
    expect(fake.creates[0]).toEqual({ path: '/kling/v1/images/generations', body: { model_name: 'kling-v1', prompt: 'a cat', aspect_ratio: '1:1', n: 1, callback_url: expect.any(String) } });
    expect(fake.creates[1]).toEqual({
      path: '/kling/v1/images/kolors-virtual-try-on',
      body: { model_name: 'kolors-virtual-try-on-v1', human_image: 'https://img.example.com/h.png', cloth_image: 'https://img.example.com/c.png', callback_url: expect.any(String) },
    });
    succeed(fake.tasks.get(image.body.provider_task_id)!, { images: [{ index: 0, url: 'https://cdn.example.com/i.png' }] }, '1');
    succeed(fake.tasks.get(tryOn.body.provider_task_id)!, { images: [{ index: 0, url: 'https://cdn.example.com/t.png' }] }, '1');
    expect((await gw.finish(image.body.id)).outputs).toEqual([expect.objectContaining({ type: 'image', url: 'https://cdn.example.com/i.png' })]);
    expect((await gw.finish(tryOn.body.id)).outputs).toEqual([expect.objectContaining({ type: 'image', url: 'https://cdn.example.com/t.png' })]);
    expect(new Set(fake.gets)).toEqual(
      new Set([`/kling/v1/images/generations/${image.body.provider_task_id}`, `/kling/v1/images/kolors-virtual-try-on/${tryOn.body.provider_task_id}`]),
    );
  });

  it('a task that failed the risk control is content_policy, charged the 0 it reported', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'bad', duration: 5 });
    const task = fake.tasks.get(created.body.provider_task_id)!;
    task.task_status = 'failed';
    task.task_status_msg = 'Failure to pass the risk control system';
    task.final_unit_deduction = '0';
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'content_policy', provider_code: 'failed' });
    expect(done.cost).toMatchObject({ credits: 0, estimated: false });
  });

  it('a callback carrying the task object is confirmed by one poll and ends the task', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'a fox', duration: 5 });
    const task = fake.tasks.get(created.body.provider_task_id)!;
    succeed(task, { videos: [{ id: 'v', url: 'https://cdn.example.com/cb.mp4', duration: '5' }] }, '2.5');
    const before = fake.gets.length;
    const body = { ...task, task_info: { external_task_id: fake.creates[0]!.body.external_task_id } };
    const answer = await gw.request('POST', new URL(fake.creates[0]!.body.callback_url).pathname, body, {}, null);
    expect(answer.status).toBe(200);
    await gw.gateway.runOnce();
    const after = (await gw.get(created.body.id)).body;
    expect(fake.gets.length - before).toBe(1);
    expect(after.status).toBe('succeeded');
    expect(after.cost).toMatchObject({ credits: 2.5, estimated: false });
  });

  it('a callback naming another task on a task\'s token is refused and changes neither', async () => {
    const { gw, fake } = await start();
    const a = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'a', duration: 5 });
    const b = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'b', duration: 5 });
    const taskB = fake.tasks.get(b.body.provider_task_id)!;
    succeed(taskB, { videos: [{ id: 'v', url: 'https://cdn.example.com/b.mp4', duration: '5' }] });
    const answer = await gw.request('POST', new URL(fake.creates[0]!.body.callback_url).pathname, taskB, {}, null);
    expect(answer.status).toBe(400);
    await gw.gateway.runOnce();
    // Both still wait in the aggregator's queue (`submitted`), as before the refused callback.
    expect((await gw.get(a.body.id)).body.status).toBe('queued');
    expect((await gw.get(b.body.id)).body.status).toBe('queued');
  });

  it('a create accepted but unanswered is adopted by its callback, not sent again', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push([0, null]);
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'lost', duration: 5 });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'ambiguous' })]);
    await gw.advance(5_000);
    // The seed documents no query by external_task_id: its lookup finds nothing, which proves nothing.
    expect(fake.gets.every((path) => path === `/kling/v1/videos/text2video/${fake.creates[0]!.body.external_task_id}`)).toBe(true);
    const task = fake.tasks.get('task-1')!;
    succeed(task, { videos: [{ id: 'v', url: 'https://cdn.example.com/lost.mp4', duration: '5' }] }, '3');
    const answer = await gw.request('POST', new URL(fake.creates[0]!.body.callback_url).pathname, task, {}, null);
    expect(answer.status).toBe(200);
    await gw.advance(5_000);
    const after = (await gw.get(created.body.id)).body;
    expect(after).toMatchObject({ status: 'succeeded', provider_task_id: 'task-1', cost: { credits: 3, estimated: false } });
    expect(fake.creates).toHaveLength(1);
  });

  it.each([
    ['HTTP 200', 1],
    ['HTTP 500', 2],
  ] as const)('a create answered with a server code beside its task (%s) is not sent to another provider: adopted once its status shows it, finished by its callback', async (_, planned) => {
    fake = new StrictFake();
    const baseUrl = await fake.listen();
    gw = await startTestGateway({ endpointOverrides: { 'kling-legacy': { baseUrl, apiKey: API_KEY, simulated: false } } });
    fake.createErrors.push([planned, { code: 5000, message: 'Server internal error' }]);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['kling-legacy', 'freepik'] } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling-legacy', provider_task_id: 'task-1', error: null });
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', provider_code: '5000', recovered_by: 'answer' }),
    ]);
    const task = fake.tasks.get('task-1')!;
    succeed(task, { videos: [{ id: 'v', url: 'https://cdn.example.com/made.mp4', duration: '5' }] }, '3');
    const answer = await gw.request('POST', new URL(fake.creates[0]!.body.callback_url).pathname, task, {}, null);
    expect(answer.status).toBe(200);
    await gw.advance(5_000);
    const after = (await gw.get(created.body.id)).body;
    expect(after).toMatchObject({ status: 'succeeded', provider: 'kling-legacy', provider_task_id: 'task-1', cost: { credits: 3, estimated: false } });
    expect(after.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['kling-legacy']);
    expect(fake.creates).toHaveLength(1);
  });

  it('polls that fail (1302, a 5000 in a 200, a 500, 1004) do not end the task; the next answer does', async () => {
    const { gw, fake } = await start();
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'x', duration: 5 });
    fake.getErrors.push([429, { code: 1302, message: 'rate' }], [200, { code: 5000, message: 'oops' }], [500, 'x'], [401, { code: 1004, message: 'expired' }]);
    succeed(fake.tasks.get(created.body.provider_task_id)!, { videos: [{ id: 'v', url: 'https://cdn.example.com/p.mp4', duration: '5' }] });
    const done = await gw.finish(created.body.id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(fake.gets.length).toBeGreaterThanOrEqual(5);
  });

  it('a create refused with 1303 (concurrency) alone waits queued and is sent again with a new external_task_id', async () => {
    const { gw, fake } = await start();
    fake.createErrors.push([429, { code: 1303, message: 'parallel task over resource pack limit' }]);
    const created = await gw.create({ model: 'kling-v1', quality: 'std', prompt: 'y', duration: 5 });
    expect(created.body).toMatchObject({ status: 'queued', error: null });
    expect(created.body.attempts).toEqual([expect.objectContaining({ outcome: 'failed', error_code: 'provider_error', provider_code: '1303', http_status: 429 })]);
    // Waiting at the gateway has no upstream id; once sent again the aggregator holds it.
    for (let i = 0; i < 20 && !(await gw.get(created.body.id)).body.provider_task_id; i++) await gw.advance(5_000);
    const later = (await gw.get(created.body.id)).body;
    expect(later).toMatchObject({ status: 'queued', provider_status: 'submitted', provider_task_id: expect.any(String) });
    expect(later.attempts.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['failed', 'accepted']);
    expect(fake.creates).toHaveLength(2);
    expect(fake.creates[1]!.body.external_task_id).not.toBe(fake.creates[0]!.body.external_task_id);
  });

  it.each([
    [400, { code: 1201, message: 'invalid value' }, 'invalid_request'],
    [429, { code: 1303, message: 'parallel' }, 'provider_error'],
    [429, { code: 1102, message: 'pack' }, 'insufficient_credits'],
    [200, { code: 1101, message: 'arrears' }, 'insufficient_credits'],
    [401, { code: 1000, message: 'auth' }, 'provider_error'],
    [403, { code: 1103, message: 'no access' }, 'provider_error'],
    [503, { code: 5001, message: 'unavailable' }, 'provider_error'],
    [402, { error: { message: 'insufficient user quota', code: 'insufficient_user_quota' } }, 'insufficient_credits'],
  ])('a create refused with HTTP %s %j fails over to the next provider (%s)', async (status, body, code) => {
    fake = new StrictFake();
    const baseUrl = await fake.listen();
    gw = await startTestGateway({ endpointOverrides: { 'kling-legacy': { baseUrl, apiKey: API_KEY, simulated: false } } });
    fake.createErrors.push([status, body]);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['kling-legacy', 'freepik'] } });
    expect(created.body).toMatchObject({ status: 'queued', provider: 'freepik', provider_task_id: expect.any(String) });
    expect(created.body.attempts.map((attempt: { provider: string; error_code: string | null }) => [attempt.provider, attempt.error_code])).toEqual([
      ['kling-legacy', code],
      ['freepik', null],
    ]);
  });

  it('a create refused with 1301 (content policy) is not failed over', async () => {
    fake = new StrictFake();
    const baseUrl = await fake.listen();
    gw = await startTestGateway({ endpointOverrides: { 'kling-legacy': { baseUrl, apiKey: API_KEY, simulated: false } } });
    fake.createErrors.push([400, { code: 1301, message: 'policy' }]);
    const created = await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, routing: { providers: ['kling-legacy', 'freepik'] } });
    expect(created.body).toMatchObject({ status: 'failed', provider: 'kling-legacy', error: { code: 'content_policy', provider_code: '1301' } });
    expect(created.body.attempts).toHaveLength(1);
  });

  it('sends sound on where the model and quality make it, off where a defaulted audio cannot be', async () => {
    const { gw, fake } = await start();
    await gw.create({ model: 'kling-v2-6', prompt: 'x', duration: 5 });
    await gw.create({ model: 'kling-v3', prompt: 'x', duration: 5, quality: 'std' });
    const silent = await gw.create({ model: 'kling-v2-6', quality: 'std', prompt: 'x', duration: 5 });
    await gw.create({ model: 'kling-v1', prompt: 'x', duration: 5 });
    expect(fake.creates.map((create) => create.body.sound)).toEqual(['on', 'on', 'off', undefined]);
    expect(silent.body.warnings).toEqual([expect.stringMatching(/the video will be silent/)]);
  });
});
