import nock from 'nock';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SubmitContext } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { KLING_LEGACY_DEFAULT_PRICING } from '../../../src/providers/kling-legacy/kling-legacy-pricing.js';
import { klingLegacyMinimumRunTimeMs, klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import { CALLBACK, END_IMAGE, GARMENT, IMAGE, served } from './kling-legacy-fixtures.js';
import { REFUSED_PORT } from '../../support/refused-port.js';

const BASE_URL = 'https://legacy.example.com';
const API_KEY = 'sk-legacy-test';
const TASK_ID = '831922345719271433';

function client(baseUrl = BASE_URL, timeoutMs = 2_000): HttpUpstreamClient {
  return new HttpUpstreamClient({ provider: klingLegacyProvider, baseUrl, apiKey: API_KEY, timeoutMs });
}

function context(http = client()): SubmitContext {
  return { http, taskId: 'task_abc', attemptKey: 'task_abc-1', callbackUrl: CALLBACK };
}

function created(data: Record<string, unknown> = {}) {
  return {
    code: 0,
    message: 'SUCCEED',
    request_id: 'req-create',
    data: { task_id: TASK_ID, task_status: 'submitted', created_at: 1722769557708, updated_at: 1722769557708, ...data },
  };
}

/** Intercepts one create call, keeping the JSON body it received. */
function interceptCreate(path: string, reply: { status?: number; body?: unknown; headers?: Record<string, string> } = {}) {
  const seen: { body?: unknown } = {};
  const scope = nock(BASE_URL)
    .matchHeader('authorization', `Bearer ${API_KEY}`)
    .matchHeader('content-type', /application\/json/)
    .post(path, (body) => {
      seen.body = body;
      return true;
    })
    .reply(reply.status ?? 200, (reply.body ?? created()) as nock.Body, reply.headers);
  return { scope, seen };
}

async function rejection(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('klingLegacyProvider.submit over HttpUpstreamClient', () => {
  it('POSTs text2video with Bearer auth, callback_url and external_task_id = attempt key', async () => {
    const { request, offering } = served({ model: 'kling-v1-6', prompt: 'a fox', quality: 'std', duration: 10 });
    const { scope, seen } = interceptCreate('/kling/v1/videos/text2video', {
      body: created({ task_info: { external_task_id: 'task_abc-1' } }),
    });
    const result = await klingLegacyProvider.submit(request, offering, context());
    expect(scope.isDone()).toBe(true);
    expect(seen.body).toEqual({
      model_name: 'kling-v1-6',
      prompt: 'a fox',
      mode: 'std',
      aspect_ratio: '16:9',
      duration: '10',
      callback_url: CALLBACK,
      external_task_id: 'task_abc-1',
    });
    expect(result).toEqual({
      status: 'queued',
      providerStatus: 'submitted',
      outputs: [],
      ref: { providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'text2video' } },
    });
  });

  it('sends no callback_url when the gateway has none, and no external_task_id where the page has none', async () => {
    const { request, offering } = served({ model: 'kling-v1', video_id: 'vid-1' });
    const { scope, seen } = interceptCreate('/kling/v1/videos/video-extend');
    await klingLegacyProvider.submit(request, offering, { http: client(), taskId: 't', attemptKey: 't-1' });
    expect(scope.isDone()).toBe(true);
    expect(seen.body).toEqual({ video_id: 'vid-1' });
  });

  it('treats a create answer without a status word as queued', async () => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body: { code: 0, data: { task_id: 12345 } } });
    const result = await klingLegacyProvider.submit(request, offering, context());
    expect(result.status).toBe('queued');
    expect(result.ref.providerTaskId).toBe('12345');
  });

  it('refuses a 2xx answer without a task id as an unreadable answer that may have created the task', async () => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body: { code: 0, message: 'SUCCEED', data: null } });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({
      code: 'provider_error',
      statusCode: 200,
      providerCode: 'unreadable_answer',
      mayHaveCreated: true,
      operation: 'submit',
      url: '/kling/v1/videos/text2video',
    });
  });

  it.each(['', '   '])('refuses a create answer with an empty task id (%j) as unreadable, so the task is looked for, not tracked', async (taskId) => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body: created({ task_id: taskId }) });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({ providerCode: 'unreadable_answer', mayHaveCreated: true, operation: 'submit' });
  });
  it.each([5000, 5001, 5002])(
    'reads a create answer with server code %i beside a task id as one that may have made it (looked for, never sent elsewhere)',
    async (code) => {
      const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
      interceptCreate('/kling/v1/videos/text2video', { body: { code, message: 'something went wrong', data: { task_id: TASK_ID, task_status: 'submitted' } } });
      const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
      expect(error).toMatchObject({ mayHaveCreated: true, namedTaskId: TASK_ID, operation: 'submit', providerCode: String(code) });
    },
  );

  it.each([
    ['a server code and no task', { code: 5000, message: 'Server internal error', data: null }, 500],
    ['a refusal of the request beside a task id', { code: 1201, message: 'invalid value', data: { task_id: TASK_ID } }, 400],
    ['credits gone beside a task id', { code: 1102, message: 'pack used up', data: { task_id: TASK_ID } }, 429],
  ])('reads a create answer with %s as a refusal that made nothing', async (_name, body, statusCode) => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({ statusCode, providerCode: String(body.code) });
    expect(error.mayHaveCreated).toBeFalsy();
    expect(error.namedTaskId).toBeUndefined();
  });
});

describe('klingLegacyProvider: one create and one poll per operation', () => {
  const video = { videos: [{ id: 'vid-9', url: 'https://cdn.example.com/vid-9.mp4', duration: '5.1' }] };
  const image = { images: [{ index: 0, url: 'https://cdn.example.com/img-0.png' }] };
  const cases = [
    { name: 'text-to-video', input: { model: 'kling-v2-master', prompt: 'x' }, path: '/kling/v1/videos/text2video', result: video },
    {
      name: 'image-to-video',
      input: { model: 'kling-v1', start_image_url: IMAGE, end_image_url: END_IMAGE },
      path: '/kling/v1/videos/image2video',
      result: video,
    },
    { name: 'video-extend', input: { model: 'kling-v1-6', video_id: 'vid-1' }, path: '/kling/v1/videos/video-extend', result: video },
    {
      name: 'lip-sync',
      input: { model: 'kling-v2-6', video_id: 'vid-1', lip_sync: { audio_url: 'https://a.example.com/a.mp3' } },
      path: '/kling/v1/videos/lip-sync',
      result: video,
    },
    {
      name: 'image-generation',
      input: { model: 'kling-v1', operation: 'image-generation', prompt: 'x' },
      path: '/kling/v1/images/generations',
      result: image,
    },
    {
      name: 'virtual-try-on',
      input: { model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] },
      path: '/kling/v1/images/kolors-virtual-try-on',
      result: image,
    },
  ];

  it.each(cases)('$name: polls GET $path/<task_id> and reads outputs and final_unit_deduction', async ({ input, path, result }) => {
    const { request, offering } = served(input);
    const create = interceptCreate(path);
    const submitted = await klingLegacyProvider.submit(request, offering, context());
    expect(create.scope.isDone()).toBe(true);

    const poll = nock(BASE_URL)
      .matchHeader('authorization', `Bearer ${API_KEY}`)
      .get(`${path}/${TASK_ID}`)
      .reply(200, {
        code: 0,
        message: 'SUCCEED',
        request_id: 'req-poll',
        data: { task_id: TASK_ID, task_status: 'succeed', task_status_msg: '', task_result: result, final_unit_deduction: '2.5' },
      });
    const report = await klingLegacyProvider.getStatus(submitted.ref, { http: client() });
    expect(poll.isDone()).toBe(true);
    const isImage = 'images' in result;
    expect(report).toEqual({
      status: 'succeeded',
      providerStatus: 'succeed',
      outputs: isImage
        ? [{ type: 'image', url: 'https://cdn.example.com/img-0.png', duration: null }]
        : [{ type: 'video', url: 'https://cdn.example.com/vid-9.mp4', duration: 5.1, id: 'vid-9' }],
      reportedCredits: 2.5,
      // The figure is kept with the task, as any answer's is.
      tracking: { ...submitted.ref.tracking, final_unit_deduction: '2.5' },
    });
  });

  it('reports a failed task with a content-policy message as content_policy', async () => {
    nock(BASE_URL)
      .get(`/kling/v1/videos/image2video/${TASK_ID}`)
      .reply(200, {
        code: 0,
        data: { task_id: TASK_ID, task_status: 'failed', task_status_msg: 'Failure to pass the risk control system' },
      });
    const report = await klingLegacyProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'image2video' } },
      { http: client() },
    );
    expect(report.status).toBe('failed');
    expect(report.error).toEqual({ code: 'content_policy', message: 'kling-legacy reported the task failed: Failure to pass the risk control system', providerCode: 'failed' });
  });

  it('reads a finished task whose informational fields come as other JSON types', async () => {
    // Numbers where the seed shows strings and the other way round; none of them says anything
    // about the task's state, so none may make a finished, paid task unreadable.
    nock(BASE_URL)
      .get(`/kling/v1/images/generations/${TASK_ID}`)
      .reply(200, {
        code: 0,
        message: { en: 'SUCCEED' },
        request_id: 8_302_218_119,
        data: {
          task_id: TASK_ID,
          task_status: 'succeed',
          task_status_msg: 0,
          task_info: { external_task_id: 42 },
          created_at: { seconds: 1722769557 },
          task_result: { images: [{ index: '0', url: 'https://cdn.example.com/img-0.png' }, { index: 1, url: { href: 'x' } }] },
          final_unit_deduction: '1',
        },
      });
    const report = await klingLegacyProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { family: 'images', action: 'generations' } },
      { http: client() },
    );
    expect(report).toEqual({
      status: 'succeeded',
      providerStatus: 'succeed',
      outputs: [{ type: 'image', url: 'https://cdn.example.com/img-0.png', duration: null }],
      reportedCredits: 1,
      tracking: { family: 'images', action: 'generations', final_unit_deduction: '1' },
    });
  });

  it('keeps a status that is no word (a number) as an unknown status, not an unreadable answer', async () => {
    nock(BASE_URL)
      .get(`/kling/v1/videos/text2video/${TASK_ID}`)
      .reply(200, { code: 0, data: { task_id: TASK_ID, task_status: 2 } });
    const report = await klingLegacyProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'text2video' } },
      { http: client() },
    );
    expect(report).toEqual({ status: 'unknown', providerStatus: '2', outputs: [] });
  });

  it('reads the failure reason of a failed task when it comes as a number', async () => {
    nock(BASE_URL)
      .get(`/kling/v1/videos/text2video/${TASK_ID}`)
      .reply(200, { code: 0, request_id: 7, data: { task_id: TASK_ID, task_status: 'failed', task_status_msg: 1301 } });
    const report = await klingLegacyProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'text2video' } },
      { http: client() },
    );
    expect(report.status).toBe('failed');
    expect(report.error).toEqual({ code: 'content_policy', message: 'kling-legacy reported the task failed: 1301', providerCode: 'failed' });
  });

  it('refuses to poll a task whose tracking has no known route', async () => {
    await expect(
      klingLegacyProvider.getStatus({ providerTaskId: TASK_ID, tracking: { family: 'videos', action: '../admin' } }, { http: client() }),
    ).rejects.toThrow(/no status route/);
  });
});

describe('klingLegacyProvider errors', () => {
  const families = [
    { code: 1000, http: 401, canonical: 'provider_error' },
    { code: 1004, http: 401, canonical: 'provider_error' },
    { code: 1102, http: 429, canonical: 'insufficient_credits' },
    { code: 1103, http: 403, canonical: 'provider_error' },
    { code: 1201, http: 400, canonical: 'invalid_request' },
    { code: 1203, http: 404, canonical: 'invalid_request' },
    { code: 1301, http: 400, canonical: 'content_policy' },
    { code: 1302, http: 429, canonical: 'provider_error' },
    { code: 1303, http: 429, canonical: 'provider_error' },
    { code: 5000, http: 500, canonical: 'provider_error' },
    { code: 5001, http: 503, canonical: 'provider_error' },
    { code: 5002, http: 504, canonical: 'provider_error' },
  ] as const;

  it.each(families)('non-2xx HTTP $http with code $code → $canonical', async ({ code, http, canonical }) => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', {
      status: http,
      body: { code, message: 'refused', request_id: 'r' },
      headers: http === 429 ? { 'retry-after': '7' } : {},
    });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({ code: canonical, statusCode: http, providerCode: String(code), provider: 'kling-legacy' });
    expect(error.transport).toBeUndefined();
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
    if (http === 429) expect(error.retryAfterMs).toBe(7_000);
  });

  it.each(families)('HTTP 200 with code $code → $canonical carrying the official status $http', async ({ code, http, canonical }) => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', {
      body: { code, message: 'refused', request_id: 'r' },
      headers: { 'retry-after': '3' },
    });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({
      code: canonical,
      statusCode: http,
      providerCode: String(code),
      operation: 'submit',
      url: '/kling/v1/videos/text2video',
      retryAfterMs: 3_000,
    });
    expect(error.responseBody).toEqual({ code, message: 'refused', request_id: 'r' });
  });

  it.each([200, 1, -1])('reads a 2xx create answer with code %i outside the official scheme that names a task as that task, never failing it over', async (code) => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body: { ...created(), code, message: 'success' } });
    const result = await klingLegacyProvider.submit(request, offering, context());
    expect(result).toMatchObject({ status: 'queued', ref: { providerTaskId: TASK_ID } });
  });

  it('still refuses a 2xx answer with an unknown code and no task', async () => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { body: { code: 1, message: 'balance not enough', data: null } });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({ providerCode: '1', statusCode: 500 });
  });

  it('maps a non-2xx answer without an envelope by its status', async () => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    interceptCreate('/kling/v1/videos/text2video', { status: 502, body: 'Bad Gateway' });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context()));
    expect(error).toMatchObject({ code: 'provider_error', statusCode: 502 });
    expect(error.providerCode).toBeUndefined();
  });

  it('maps the not-found answer of a poll (404, 1203)', async () => {
    nock(BASE_URL)
      .get(`/kling/v1/images/generations/${TASK_ID}`)
      .reply(404, { code: 1203, message: 'task not found', request_id: 'r' });
    const error = await rejection(
      klingLegacyProvider.getStatus({ providerTaskId: TASK_ID, tracking: { family: 'images', action: 'generations' } }, { http: client() }),
    );
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 404, providerCode: '1203', operation: 'status' });
  });

  it('classifies a refused connection as a transport failure before sending', async () => {
    const port = REFUSED_PORT;
    nock.enableNetConnect('127.0.0.1');
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    const error = await rejection(klingLegacyProvider.submit(request, offering, context(client(`http://127.0.0.1:${port}`))));
    expect(error).toMatchObject({ code: 'provider_error', transport: 'refused' });
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
  });

  it('classifies no answer within the client time limit as an ambiguous timeout', async () => {
    const { request, offering } = served({ model: 'kling-v1', prompt: 'x' });
    nock(BASE_URL)
      .post('/kling/v1/videos/text2video')
      // Never answers: the client's AbortSignal.timeout ends the call.
      .reply(() => new Promise<never>(() => undefined));
    const error = await rejection(klingLegacyProvider.submit(request, offering, context(client(BASE_URL, 50))));
    expect(error).toMatchObject({ code: 'timeout', transport: 'timeout' });
    expect(classifyCreateFailure(error, false).outcome).toBe('ambiguous');
  });
});

describe('klingLegacyProvider contract details', () => {
  it('authenticates with a Bearer header, takes token callbacks and ships placeholder prices', () => {
    expect(klingLegacyProvider.authHeaders('k')).toEqual({ authorization: 'Bearer k' });
    expect(klingLegacyProvider.inboundWebhook).toBe('token');
    expect(klingLegacyProvider.id).toBe('kling-legacy');
    expect(klingLegacyProvider.defaultPricing).toBe(KLING_LEGACY_DEFAULT_PRICING);
  });

  it('gives realistic minimum run times per operation', () => {
    expect(klingLegacyMinimumRunTimeMs(served({ model: 'kling-v1', prompt: 'x' }).request)).toBe(40_000);
    expect(klingLegacyMinimumRunTimeMs(served({ model: 'kling-v3', prompt: 'x', duration: 15 }).request)).toBe(80_000);
    expect(klingLegacyMinimumRunTimeMs(served({ model: 'kling-v1', video_id: 'v' }).request)).toBe(40_000);
    expect(
      klingLegacyMinimumRunTimeMs(served({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] }).request),
    ).toBe(8_000);
  });
});
