import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { ProviderSimulator, SubmitContext } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import {
  KlingLegacySimulator,
  KLING_LEGACY_SIM_FAILURE_MESSAGE,
  KLING_LEGACY_SIM_RISK_CONTROL_MESSAGE,
  klingLegacyErrorBody,
} from '../../../src/providers/kling-legacy/kling-legacy-simulator.js';
import { END_IMAGE, GARMENT, IMAGE, SOURCE_VIDEO, served } from './kling-legacy-fixtures.js';
import { withClientTimerHeld } from '../../support/client-timer.js';
import { heldCall } from '../../support/held-call.js';

const API_KEY = 'sim-legacy-key';
const QUEUED_MS = 1_000;
const PROCESSING_MS = 4_000;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let clock: ManualClock;
let simulator: ProviderSimulator;
let baseUrl: string;

beforeEach(async () => {
  clock = new ManualClock();
  simulator = klingLegacyProvider.createSimulator({
    clock,
    apiKey: API_KEY,
    timing: { queuedMs: QUEUED_MS, processingMs: PROCESSING_MS },
  });
  baseUrl = await simulator.listen();
});

afterEach(async () => {
  await simulator.close();
});

function http(apiKey = API_KEY, timeoutMs = 5_000): HttpUpstreamClient {
  return new HttpUpstreamClient({ provider: klingLegacyProvider, baseUrl, apiKey, timeoutMs });
}

function submitContext(extra: Partial<SubmitContext> = {}): SubmitContext {
  return { http: http(), taskId: 'task_sim', attemptKey: `task_sim-${Math.random().toString(36).slice(2)}`, ...extra };
}

async function post(path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` }) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

async function get(path: string) {
  const response = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

async function bytesOf(url: string): Promise<Buffer> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

async function rejection(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

describe('kling-legacy simulator: every operation over real HTTP', () => {
  const cases = [
    { name: 'text-to-video', input: { model: 'kling-v1-6', prompt: 'a fox', duration: 10 }, kind: 'video', duration: 10 },
    { name: 'text-to-video kling-v3', input: { model: 'kling-v3', prompt: 'a fox', duration: 12, audio: true }, kind: 'video', duration: 12 },
    {
      name: 'image-to-video',
      input: { model: 'kling-v2-5-turbo', start_image_url: IMAGE, end_image_url: END_IMAGE },
      kind: 'video',
      duration: 5,
    },
    { name: 'video-extend', input: { model: 'kling-v1', video_id: 'external-video', prompt: 'more' }, kind: 'video', duration: 10 },
    {
      name: 'lip-sync',
      input: { model: 'kling-v2-6', video_url: SOURCE_VIDEO, lip_sync: { text: 'Hello', voice_id: 'oversea_male1' } },
      kind: 'video',
      duration: 5,
    },
    { name: 'image-generation', input: { model: 'kling-v2-master', operation: 'image-generation', prompt: 'a lamp' }, kind: 'image' },
    {
      name: 'virtual-try-on',
      input: { model: 'kolors-virtual-try-on-v1-5', start_image_url: IMAGE, reference_images: [GARMENT] },
      kind: 'image',
    },
  ] as const;

  it.each(cases)('$name: submitted → processing → succeed with a playable result', async ({ input, kind, ...expected }) => {
    const { request, offering } = served(input);
    const submitted = await klingLegacyProvider.submit(request, offering, submitContext());
    expect(submitted.status).toBe('queued');
    expect(submitted.providerStatus).toBe('submitted');
    expect(submitted.ref.providerTaskId).toMatch(/^\d{18}$/);

    await clock.advance(QUEUED_MS);
    const processing = await klingLegacyProvider.getStatus(submitted.ref, { http: http() });
    expect(processing).toEqual({ status: 'processing', providerStatus: 'processing', outputs: [] });

    await clock.advance(PROCESSING_MS);
    const done = await klingLegacyProvider.getStatus(submitted.ref, { http: http() });
    expect(done.status).toBe('succeeded');
    expect(done.reportedCredits).toBeGreaterThan(0);
    expect(done.outputs).toHaveLength(1);
    const output = done.outputs[0]!;
    const bytes = await bytesOf(output.url);
    if (kind === 'video') {
      expect(output).toMatchObject({ type: 'video', duration: 'duration' in expected ? expected.duration : undefined });
      expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    } else {
      expect(output).toMatchObject({ type: 'image', duration: null });
      expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    }
    // The simulator saw exactly the body the adapter built, and was polled on the create action's path.
    const task = simulator.tasks.at(-1)!;
    expect(task.id).toBe(submitted.ref.providerTaskId);
    const path = `/kling/v1/${submitted.ref.tracking.family}/${submitted.ref.tracking.action}`;
    expect(task.path).toBe(path);
    expect(simulator.requests.filter((r) => r.method === 'GET' && r.path === `${path}/${task.id}`)).toHaveLength(2);
  });

  it('extends a video it generated: the video id chains and the duration grows', async () => {
    const created = await post('/kling/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'walk', duration: '5' });
    const taskId = (created.body.data as { task_id: string }).task_id;
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const done = await get(`/kling/v1/videos/text2video/${taskId}`);
    const video = done.body.data.task_result.videos[0];
    expect(video).toMatchObject({ duration: '5' });
    const extended = await post('/kling/v1/videos/video-extend', { video_id: video.id, prompt: 'keep walking' });
    const extendId = (extended.body.data as { task_id: string }).task_id;
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    expect((await get(`/kling/v1/videos/video-extend/${extendId}`)).body.data.task_result.videos[0].duration).toBe('10');
  });

  it('keeps to the seed list of action2 when told: video-extend is refused, the extension answers at text2video', async () => {
    (simulator as KlingLegacySimulator).setStatusActions('seed');
    const created = await post('/kling/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'walk', duration: '5' });
    const taskId = (created.body.data as { task_id: string }).task_id;
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const video = (await get(`/kling/v1/videos/text2video/${taskId}`)).body.data.task_result.videos[0];
    const extended = await post('/kling/v1/videos/video-extend', { video_id: video.id, prompt: 'keep walking' });
    const extendId = (extended.body.data as { task_id: string }).task_id;
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    expect(await get(`/kling/v1/videos/video-extend/${extendId}`)).toMatchObject({ status: 404, body: { code: 1202 } });
    expect((await get(`/kling/v1/videos/text2video/${extendId}`)).body.data.task_result.videos[0].duration).toBe('10');
    // Every action the seed lists still answers for its own tasks only.
    const image = await post('/kling/v1/images/generations', { prompt: 'x' });
    const imageId = (image.body.data as { task_id: string }).task_id;
    expect((await get(`/kling/v1/images/generations/${imageId}`)).status).toBe(200);
    expect(await get(`/kling/v1/videos/text2video/${imageId}`)).toMatchObject({ status: 404, body: { code: 1203 } });
  });

  it('answers the query by external_task_id too, and echoes it in task_info', async () => {
    const created = await post('/kling/v1/videos/image2video', { model_name: 'kling-v1', image: IMAGE, external_task_id: 'mine-1' });
    expect(created.body).toMatchObject({ code: 0, message: 'SUCCEED', data: { task_status: 'submitted', task_info: { external_task_id: 'mine-1' } } });
    const byExternal = await get('/kling/v1/videos/image2video/mine-1');
    expect(byExternal.status).toBe(200);
    expect(byExternal.body.data.task_id).toBe((created.body.data as { task_id: string }).task_id);
  });
});

describe('kling-legacy simulator: outcomes', () => {
  it('fails a task with the generic failure message', async () => {
    simulator.setOutcome('fail');
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    const submitted = await klingLegacyProvider.submit(request, offering, submitContext());
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const report = await klingLegacyProvider.getStatus(submitted.ref, { http: http() });
    expect(report).toEqual({
      status: 'failed',
      providerStatus: 'failed',
      outputs: [],
      error: { code: 'provider_error', message: `kling-legacy reported the task failed: ${KLING_LEGACY_SIM_FAILURE_MESSAGE}`, providerCode: 'failed' },
    });
  });

  it('fails a content-policy task with a risk-control message, read as content_policy', async () => {
    simulator.setOutcome('content_policy');
    const { request, offering } = served({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] });
    const submitted = await klingLegacyProvider.submit(request, offering, submitContext());
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const report = await klingLegacyProvider.getStatus(submitted.ref, { http: http() });
    expect(report.status).toBe('failed');
    expect(report.error).toEqual({ code: 'content_policy', message: `kling-legacy reported the task failed: ${KLING_LEGACY_SIM_RISK_CONTROL_MESSAGE}`, providerCode: 'failed' });
  });
});

describe('kling-legacy simulator: auth, validation and not found', () => {
  it('answers 401 with 1001 when the header is empty and 1000 when the key is wrong', async () => {
    const empty = await post('/kling/v1/videos/text2video', { prompt: 'x' }, {});
    expect(empty.status).toBe(401);
    expect(empty.body).toMatchObject({ code: 1001 });
    const wrong = await post('/kling/v1/videos/text2video', { prompt: 'x' }, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ code: 1000, message: 'Authentication failed' });
    expect(typeof wrong.body.request_id).toBe('string');

    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext({ http: http('wrong-key') })));
    expect(error).toMatchObject({ code: 'provider_error', statusCode: 401, providerCode: '1000' });
    expect(simulator.tasks).toHaveLength(0);
  });

  it.each([
    ['unknown model_name', '/kling/v1/videos/text2video', { model_name: 'kling-v9', prompt: 'x' }],
    ['duration not allowed for the model', '/kling/v1/videos/text2video', { model_name: 'kling-v2-6', prompt: 'x', duration: '7' }],
    ['duration as a number', '/kling/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'x', duration: 5 }],
    ['cfg_scale out of range', '/kling/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'x', cfg_scale: 1.5 }],
    ['cfg_scale on a kling-v2.x model', '/kling/v1/videos/text2video', { model_name: 'kling-v2-master', prompt: 'x', cfg_scale: 0.5 }],
    ['missing prompt', '/kling/v1/videos/text2video', { model_name: 'kling-v1' }],
    ['camera_control on kling-v1-6', '/kling/v1/videos/text2video', { model_name: 'kling-v1-6', prompt: 'x', camera_control: { type: 'down_back' } }],
    ['sound on kling-v1', '/kling/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'x', sound: 'on' }],
    ['missing image', '/kling/v1/videos/image2video', { model_name: 'kling-v1', prompt: 'x' }],
    ['image_tail on kling-v2-master', '/kling/v1/videos/image2video', { model_name: 'kling-v2-master', image: IMAGE, image_tail: END_IMAGE }],
    ['missing video_id', '/kling/v1/videos/video-extend', { prompt: 'x' }],
    ['lip-sync with two sources', '/kling/v1/videos/lip-sync', { input: { video_id: 'v', video_url: SOURCE_VIDEO, mode: 'audio2video', audio_type: 'url', audio_url: SOURCE_VIDEO } }],
    ['lip-sync text without a voice', '/kling/v1/videos/lip-sync', { input: { video_id: 'v', mode: 'text2video', text: 'hi' } }],
    ['lip-sync audio without audio_type', '/kling/v1/videos/lip-sync', { input: { video_id: 'v', mode: 'audio2video', audio_url: SOURCE_VIDEO } }],
    ['lip-sync without input', '/kling/v1/videos/lip-sync', { callback_url: 'https://x.example.com' }],
    ['image prompt over 500', '/kling/v1/images/generations', { prompt: 'x'.repeat(501) }],
    ['negative prompt with image', '/kling/v1/images/generations', { prompt: 'x', negative_prompt: 'y', image: IMAGE }],
    ['unknown try-on model', '/kling/v1/images/kolors-virtual-try-on', { model_name: 'kolors-v9', human_image: IMAGE, cloth_image: GARMENT }],
    ['try-on without a garment', '/kling/v1/images/kolors-virtual-try-on', { human_image: IMAGE }],
    ['aspect_ratio on image2video', '/kling/v1/videos/image2video', { model_name: 'kling-v1', image: IMAGE, aspect_ratio: '16:9' }],
    ['model_name on video-extend', '/kling/v1/videos/video-extend', { video_id: 'v', model_name: 'kling-v1' }],
    ['external_task_id on video-extend', '/kling/v1/videos/video-extend', { video_id: 'v', external_task_id: 'ours-1' }],
    ['lip-sync input outside input', '/kling/v1/videos/lip-sync', { video_id: 'v', input: { video_id: 'v', mode: 'audio2video', audio_type: 'url', audio_url: SOURCE_VIDEO } }],
    ['an unknown lip-sync input field', '/kling/v1/videos/lip-sync', { input: { video_id: 'v', mode: 'audio2video', audio_type: 'url', audio_url: SOURCE_VIDEO, duration: '5' } }],
    ['n on try-on', '/kling/v1/images/kolors-virtual-try-on', { human_image: IMAGE, cloth_image: GARMENT, n: 1 }],
  ])('refuses %s with 400 / 1201', async (_name, path, body) => {
    const answer = await post(path, body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ code: 1201 });
    expect(simulator.tasks).toHaveLength(0);
  });

  it('refuses a reused external_task_id', async () => {
    expect((await post('/kling/v1/videos/text2video', { prompt: 'x', external_task_id: 'same' })).status).toBe(200);
    const again = await post('/kling/v1/videos/text2video', { prompt: 'x', external_task_id: 'same' });
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ code: 1201 });
  });

  it('refuses malformed JSON with 400 / 1200', async () => {
    const answer = await post('/kling/v1/videos/text2video', '{"prompt":');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ code: 1200 });
  });

  it('answers an unknown task id, or a known one under another action, with 404 / 1203', async () => {
    expect(await get('/kling/v1/videos/text2video/123456789012345678')).toMatchObject({ status: 404, body: { code: 1203 } });
    const created = await post('/kling/v1/images/generations', { prompt: 'x' });
    const taskId = (created.body.data as { task_id: string }).task_id;
    expect((await get(`/kling/v1/images/generations/${taskId}`)).status).toBe(200);
    expect(await get(`/kling/v1/videos/text2video/${taskId}`)).toMatchObject({ status: 404, body: { code: 1203 } });
    const error = await rejection(
      klingLegacyProvider.getStatus({ providerTaskId: '1', tracking: { family: 'videos', action: 'lip-sync' } }, { http: http() }),
    );
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 404, providerCode: '1203' });
  });
});

describe('kling-legacy simulator: faults', () => {
  const served1 = () => served({ model: 'kling-v1', prompt: 'x' });

  it('rate limits with 429 / 1302 and Retry-After', async () => {
    simulator.injectFault({ kind: 'rate_limited' });
    const { request, offering } = served1();
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext()));
    expect(error).toMatchObject({ code: 'provider_error', statusCode: 429, providerCode: '1302', retryAfterMs: 1_000 });
    // The fault was used up: the next call goes through.
    expect((await klingLegacyProvider.submit(request, offering, submitContext())).status).toBe('queued');
  });

  it.each([
    ['insufficient_credits', 429, '1102', 'insufficient_credits'],
    ['server_error', 500, '5000', 'provider_error'],
    ['unavailable', 503, '5001', 'provider_error'],
    ['unauthorized', 401, '1000', 'provider_error'],
    ['invalid', 400, '1201', 'invalid_request'],
  ] as const)('%s answers HTTP %i with code %s', async (kind, status, providerCode, code) => {
    simulator.injectFault({ kind });
    const { request, offering } = served1();
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext()));
    expect(error).toMatchObject({ code, statusCode: status, providerCode });
  });

  it('refuses content at creation with 400 / 1301 (content_policy, no failover)', async () => {
    simulator.injectFault({ status: 400, body: klingLegacyErrorBody(1301) });
    const { request, offering } = served1();
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext()));
    expect(error).toMatchObject({ code: 'content_policy', statusCode: 400, providerCode: '1301' });
  });

  it('answers HTTP 200 with a non-zero code like some aggregators', async () => {
    simulator.injectFault({ status: 200, body: klingLegacyErrorBody(1102) });
    const { request, offering } = served1();
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext()));
    expect(error).toMatchObject({ code: 'insufficient_credits', statusCode: 429, providerCode: '1102' });
  });

  it('fails status calls too, only the ones targeted', async () => {
    const { request, offering } = served1();
    const submitted = await klingLegacyProvider.submit(request, offering, submitContext());
    simulator.injectFault({ on: 'status', kind: 'unavailable' });
    const error = await rejection(klingLegacyProvider.getStatus(submitted.ref, { http: http() }));
    expect(error).toMatchObject({ statusCode: 503, providerCode: '5001', operation: 'status' });
    expect((await klingLegacyProvider.getStatus(submitted.ref, { http: http() })).status).toBe('queued');
  });

  it('resets the connection', async () => {
    simulator.injectFault({ transport: 'reset' });
    const { request, offering } = served1();
    const error = await rejection(klingLegacyProvider.submit(request, offering, submitContext()));
    expect(error).toMatchObject({ code: 'provider_error', transport: 'reset' });
  });

  it('hangs until the client gives up', async () => {
    const hanging = heldCall();
    hanging.release();
    simulator.injectFault({ transport: 'hang', hold: hanging.hold });
    const { request, offering } = served1();
    const error = await withClientTimerHeld(async (runOut) => {
      const answer = rejection(klingLegacyProvider.submit(request, offering, submitContext({ http: http(API_KEY, 100) })));
      // The client's 100 ms run out once the create is with the upstream, however slow the machine.
      await hanging.reached;
      await runOut(100);
      return answer;
    });
    expect(error).toMatchObject({ code: 'timeout', transport: 'timeout' });
    expect(simulator.tasks).toHaveLength(0);
  });

  it('answers slowly but normally', async () => {
    simulator.injectFault({ delayMs: 30 });
    const { request, offering } = served1();
    expect((await klingLegacyProvider.submit(request, offering, submitContext())).status).toBe('queued');
  });
});

describe('kling-legacy simulator: callbacks', () => {
  let receiver: Server;
  let received: { body: Record<string, any>; headers: IncomingMessage['headers'] }[];
  let waiters: { count: number; resolve: () => void }[];

  beforeEach(async () => {
    received = [];
    waiters = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')), headers: req.headers });
        res.writeHead(200).end('ok');
        for (const waiter of waiters.filter((w) => received.length >= w.count)) waiter.resolve();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  function callbacks(count: number): Promise<void> {
    if (received.length >= count) return Promise.resolve();
    return new Promise((resolve) => waiters.push({ count, resolve }));
  }

  it('POSTs the task object to callback_url on each status change', async () => {
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/webhooks/kling-legacy/tok_abc`;
    const { request, offering } = served({ model: 'kling-v1', operation: 'image-generation', prompt: 'lamp' });
    const submitted = await klingLegacyProvider.submit(request, offering, submitContext({ callbackUrl }));
    expect(simulator.tasks[0]?.body).toMatchObject({ callback_url: callbackUrl });

    await clock.advance(QUEUED_MS);
    await callbacks(1);
    expect(received[0]?.body).toMatchObject({ task_id: submitted.ref.providerTaskId, task_status: 'processing' });
    expect(received[0]?.headers['content-type']).toMatch(/application\/json/);

    await clock.advance(PROCESSING_MS);
    await callbacks(2);
    const last = received[1]!.body;
    expect(last).toMatchObject({ task_id: submitted.ref.providerTaskId, task_status: 'succeed', final_unit_deduction: '0.25' });
    expect(last.task_result.images[0].url).toMatch(/\/sim-files\/\d+\.png$/);
    expect(klingLegacyProvider.readCallbackTaskId?.(last)).toBe(submitted.ref.providerTaskId);
    expect(received).toHaveLength(2);
  });

  it('calls back a failed task with its reason', async () => {
    simulator.setOutcome('content_policy');
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
    const created = await post('/kling/v1/videos/text2video', { prompt: 'x', callback_url: callbackUrl });
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    await callbacks(2);
    expect(received.map((r) => r.body.task_status)).toEqual(['processing', 'failed']);
    expect(received[1]!.body).toMatchObject({
      task_id: (created.body.data as { task_id: string }).task_id,
      task_status_msg: KLING_LEGACY_SIM_RISK_CONTROL_MESSAGE,
    });
  });
});
