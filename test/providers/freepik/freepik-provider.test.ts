/**
 * The Freepik adapter through a real `HttpUpstreamClient`, with Freepik played by nock: the
 * exact request that leaves (path, `x-freepik-api-key`, JSON body), and how every kind of answer
 * and transport failure comes back.
 */
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import type { SubmitContext } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { freepikProvider } from '../../../src/providers/freepik/index.js';
import { FREEPIK_DEFAULT_PRICING } from '../../../src/providers/freepik/freepik-pricing.js';
import { REFUSED_PORT } from '../../support/refused-port.js';

const BASE = 'https://api.freepik.test';
const KEY = 'fpk_live_abc123';
const TASK_ID = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
const CREATED = { data: { task_id: TASK_ID, status: 'CREATED', generated: [] } };

function client(options: { baseUrl?: string; timeoutMs?: number } = {}): HttpUpstreamClient {
  return new HttpUpstreamClient({
    provider: freepikProvider,
    baseUrl: options.baseUrl ?? BASE,
    apiKey: KEY,
    timeoutMs: options.timeoutMs ?? 2_000,
  });
}

function accepted(input: z.input<typeof CreateVideoRequest>) {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const { offering, reasons } = matchOffering(freepikProvider.offerings, resolved);
  if (!offering) throw new Error(reasons.join('; '));
  return { request: resolved.request, offering };
}

function context(http = client(), callbackUrl?: string): SubmitContext {
  return { http, taskId: 'task_1', attemptKey: 'task_1-1', ...(callbackUrl ? { callbackUrl } : {}) };
}

/** Records what Freepik received and answers with `reply`. */
function expectCreate(path: string, reply: [number, unknown, Record<string, string>?]) {
  const seen: { key?: string | null; contentType?: string | null; body?: unknown } = {};
  const scope = nock(BASE)
    .post(path)
    .reply(async (request: Request) => {
      seen.key = request.headers.get('x-freepik-api-key');
      seen.contentType = request.headers.get('content-type');
      seen.body = await request.json();
      return reply;
    });
  return { seen, scope };
}

async function submitError(input: z.input<typeof CreateVideoRequest>): Promise<UpstreamError> {
  const { request, offering } = accepted(input);
  const error = await freepikProvider.submit(request, offering, context()).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

beforeAll(() => {
  nock.disableNetConnect();
  // Only the refused-connection test talks to a real (closed) local port.
  nock.enableNetConnect('127.0.0.1');
});

afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

afterAll(() => {
  nock.enableNetConnect();
});

describe('submit', () => {
  it('POSTs kling-v3 text-to-video to /v1/ai/video/kling-v3-pro with the key header and the exact body', async () => {
    const { seen } = expectCreate('/v1/ai/video/kling-v3-pro', [200, CREATED]);
    const { request, offering } = accepted({
      model: 'kling-v3',
      prompt: 'A paper boat on a rainy street',
      negative_prompt: 'blur, distort, and low quality',
      cfg_scale: 0.5,
      duration: 6,
    });
    const result = await freepikProvider.submit(request, offering, context());
    expect(seen).toEqual({
      key: KEY,
      contentType: 'application/json',
      body: {
        prompt: 'A paper boat on a rainy street',
        negative_prompt: 'blur, distort, and low quality',
        cfg_scale: 0.5,
        duration: '6',
        aspect_ratio: '16:9',
        generate_audio: true,
      },
    });
    expect(result).toEqual({
      status: 'queued',
      providerStatus: 'CREATED',
      outputs: [],
      ref: { providerTaskId: TASK_ID, tracking: { family: '/v1/ai/video/kling-v3' } },
    });
  });

  it('adds the gateway callback as webhook_url only when there is one', async () => {
    const callbackUrl = 'https://gateway.example.com/v1/webhooks/freepik';
    const withCallback = expectCreate('/v1/ai/video/kling-v3-omni-std', [200, CREATED]);
    const { request, offering } = accepted({ model: 'kling-v3-omni', quality: 'std', prompt: 'Sunrise' });
    await freepikProvider.submit(request, offering, context(client(), callbackUrl));
    expect(withCallback.seen.body).toEqual({
      prompt: 'Sunrise',
      duration: '5',
      aspect_ratio: '16:9',
      generate_audio: true,
      webhook_url: callbackUrl,
    });

    const without = expectCreate('/v1/ai/video/kling-v3-omni-std', [200, CREATED]);
    await freepikProvider.submit(request, offering, context());
    expect(without.seen.body).not.toHaveProperty('webhook_url');
  });

  it('sends the callback as the URI webhook_url is (format: uri) when the public URL is written as no URI', async () => {
    // `server.public_url` is checked as a URL: an internationalized host or a space passes that.
    const callbackUrl = 'https://passerelle.vidéo.example/kling gateway/v1/webhooks/freepik/task_1-1';
    const { seen } = expectCreate('/v1/ai/video/kling-v3-pro', [200, CREATED]);
    const { request, offering } = accepted({ model: 'kling-v3', prompt: 'Sunrise' });
    await freepikProvider.submit(request, offering, context(client(), callbackUrl));
    expect(seen.body).toMatchObject({
      webhook_url: 'https://passerelle.xn--vido-dpa.example/kling%20gateway/v1/webhooks/freepik/task_1-1',
    });
  });

  it('never sends the app webhook_url upstream', async () => {
    const { seen } = expectCreate('/v1/ai/video/kling-v3-omni-pro', [200, CREATED]);
    const { request, offering } = accepted({ model: 'kling-v3-omni', prompt: 'x', webhook_url: 'https://app.example.com/hook' });
    await freepikProvider.submit(request, offering, context());
    expect(seen.body).not.toHaveProperty('webhook_url');
  });

  it('POSTs a reference video to /v1/ai/reference-to-video/kling-v3-omni-pro and tracks that family', async () => {
    const { seen } = expectCreate('/v1/ai/reference-to-video/kling-v3-omni-pro', [200, CREATED]);
    const { request, offering } = accepted({
      model: 'kling-v3-omni',
      prompt: 'Dance like @Video1',
      reference_video_url: 'https://cdn.example.com/dance.mp4',
      start_image_url: 'https://cdn.example.com/dancer.jpg',
    });
    const result = await freepikProvider.submit(request, offering, context());
    expect(seen.body).toEqual({
      video_url: 'https://cdn.example.com/dance.mp4',
      image_url: 'https://cdn.example.com/dancer.jpg',
      prompt: 'Dance like @Video1',
      duration: '5',
      aspect_ratio: '16:9',
    });
    expect(result.ref.tracking).toEqual({ family: '/v1/ai/reference-to-video/kling-v3-omni' });
  });

  it('accepts a bare task object as the create answer', async () => {
    expectCreate('/v1/ai/video/kling-v3-omni-pro', [200, { task_id: TASK_ID, status: 'CREATED' }]);
    const { request, offering } = accepted({ model: 'kling-v3-omni', prompt: 'x', start_image_url: 'https://cdn.example.com/a.jpg' });
    const result = await freepikProvider.submit(request, offering, context());
    expect(result.ref).toEqual({ providerTaskId: TASK_ID, tracking: { family: '/v1/ai/video/kling-v3-omni' } });
  });

  it('treats a 200 without a task_id as a provider error', async () => {
    expectCreate('/v1/ai/video/kling-v3-pro', [200, { data: { status: 'CREATED' } }]);
    const error = await submitError({ model: 'kling-v3', prompt: 'x' });
    expect(error.code).toBe('provider_error');
    expect(error.providerCode).toBe('unreadable_answer');
  });
});

describe('getStatus', () => {
  it('GETs the task at the family it was created in and reads a completed video', async () => {
    const video = 'https://ai-statics.freepik.com/v.mp4';
    nock(BASE, { reqheaders: { 'x-freepik-api-key': KEY } })
      .get(`/v1/ai/reference-to-video/kling-v3-omni/${TASK_ID}`)
      .reply(200, { data: { task_id: TASK_ID, status: 'COMPLETED', generated: [video] } });
    const report = await freepikProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { family: '/v1/ai/reference-to-video/kling-v3-omni' } },
      { http: client() },
    );
    expect(report).toEqual({ status: 'succeeded', providerStatus: 'COMPLETED', outputs: [{ type: 'video', url: video, duration: null }] });
  });

  it('reports an unknown status word as unknown', async () => {
    nock(BASE).get(`/v1/ai/video/kling-v3/${TASK_ID}`).reply(200, { data: { task_id: TASK_ID, status: 'PAUSED', generated: [] } });
    const report = await freepikProvider.getStatus({ providerTaskId: TASK_ID, tracking: { family: '/v1/ai/video/kling-v3' } }, { http: client() });
    expect(report.status).toBe('unknown');
    expect(report.providerStatus).toBe('PAUSED');
  });

  it('polls a task id that holds "/", "?" or "#" as one path segment, so it reads that task and no other', async () => {
    const odd = 'abc/../def?x=1#y';
    const video = 'https://ai-statics.freepik.com/odd.mp4';
    nock(BASE)
      .get('/v1/ai/video/kling-v3/abc%2F..%2Fdef%3Fx%3D1%23y')
      .reply(200, { data: { task_id: odd, status: 'COMPLETED', generated: [video] } });
    const report = await freepikProvider.getStatus({ providerTaskId: odd, tracking: { family: '/v1/ai/video/kling-v3' } }, { http: client() });
    expect(report).toEqual({ status: 'succeeded', providerStatus: 'COMPLETED', outputs: [{ type: 'video', url: video, duration: null }] });
  });

  it('maps a 404 for a task it does not know', async () => {
    nock(BASE).get(`/v1/ai/video/kling-v3-omni/${TASK_ID}`).reply(404, { message: 'Not found' });
    const error = await freepikProvider
      .getStatus({ providerTaskId: TASK_ID, tracking: { family: '/v1/ai/video/kling-v3-omni' } }, { http: client() })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 404, operation: 'status' });
  });

  it('refuses tracking data that names no known family, without calling out', async () => {
    await expect(
      freepikProvider.getStatus({ providerTaskId: TASK_ID, tracking: { family: 'https://evil.example.com' } }, { http: client() }),
    ).rejects.toThrow(/no known status family/);
    await expect(freepikProvider.getStatus({ providerTaskId: TASK_ID, tracking: {} }, { http: client() })).rejects.toThrow();
  });
});

describe('error answers on create', () => {
  const input = { model: 'kling-v3', prompt: 'x' } as const;
  const path = '/v1/ai/video/kling-v3-pro';

  it('400 {message} → invalid_request', async () => {
    expectCreate(path, [400, { message: "Parameter ':attribute' is not valid" }]);
    const error = await submitError(input);
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 400, transport: undefined });
    expect(error.message).toContain("Parameter ':attribute' is not valid");
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
  });

  it('400 problem+json with invalid_params at the top level → invalid_request naming the params', async () => {
    expectCreate(path, [
      400,
      { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'duration', reason: 'must be 3-15' }] },
      { 'content-type': 'application/problem+json' },
    ]);
    const error = await submitError(input);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('duration: must be 3-15');
  });

  it('400 problem+json nested under problem → invalid_request naming the params', async () => {
    expectCreate(path, [
      400,
      { problem: { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'prompt', reason: 'too long' }] } },
      { 'content-type': 'application/problem+json' },
    ]);
    const error = await submitError(input);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('prompt: too long');
  });

  it.each(['Invalid API key', 'Missing API key'])('401 %s → provider_error (unauthorized)', async (message) => {
    expectCreate(path, [401, { message }]);
    const error = await submitError(input);
    expect(error).toMatchObject({ code: 'provider_error', providerCode: 'unauthorized', statusCode: 401 });
    expect(error.message).toContain(message);
    expect(error.message).not.toContain(KEY);
  });

  it('402 → insufficient_credits', async () => {
    expectCreate(path, [402, { message: 'Not enough credits' }]);
    expect(await submitError(input)).toMatchObject({ code: 'insufficient_credits', statusCode: 402 });
  });

  it('429 with Retry-After → provider_error (rate_limited) with retryAfterMs', async () => {
    expectCreate(path, [429, { message: 'Too many requests' }, { 'retry-after': '7' }]);
    expect(await submitError(input)).toMatchObject({ code: 'provider_error', providerCode: 'rate_limited', retryAfterMs: 7_000 });
  });

  it('500 → provider_error', async () => {
    expectCreate(path, [500, { message: 'Internal Server Error' }]);
    expect(await submitError(input)).toMatchObject({ code: 'provider_error', providerCode: 'server_error', statusCode: 500 });
  });

  it('503 → provider_error', async () => {
    expectCreate(path, [503, { message: 'Service Unavailable. Please try again later.' }]);
    expect(await submitError(input)).toMatchObject({ code: 'provider_error', providerCode: 'unavailable', statusCode: 503 });
  });

  it('400 about content policy → content_policy', async () => {
    expectCreate(path, [400, { message: 'The prompt violates the content policy' }]);
    expect(await submitError(input)).toMatchObject({ code: 'content_policy', statusCode: 400 });
  });
});

describe('transport failures', () => {
  it('a closed port → refused', async () => {
    const port = REFUSED_PORT;
    const { request, offering } = accepted({ model: 'kling-v3', prompt: 'x' });
    const error = await freepikProvider
      .submit(request, offering, context(client({ baseUrl: `http://127.0.0.1:${port}` })))
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'provider_error', transport: 'refused' });
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
  });

  it('no answer within the client time limit → timeout', async () => {
    nock(BASE)
      .post('/v1/ai/video/kling-v3-pro')
      .reply(() => new Promise(() => undefined));
    const { request, offering } = accepted({ model: 'kling-v3', prompt: 'x' });
    const error = await freepikProvider
      .submit(request, offering, context(client({ timeoutMs: 100 })))
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'timeout', transport: 'timeout' });
    expect(classifyCreateFailure(error, false).outcome).toBe('ambiguous');
  });
});

describe('provider description', () => {
  it('authenticates with x-freepik-api-key, takes signed webhooks and ships placeholder prices', () => {
    expect(freepikProvider.authHeaders('k')).toEqual({ 'x-freepik-api-key': 'k' });
    expect(freepikProvider.inboundWebhook).toBe('signed');
    expect(freepikProvider.defaultPricing).toBe(FREEPIK_DEFAULT_PRICING);
  });

  it('never expects a video sooner than the 30 s the seed calls typical', () => {
    expect(freepikProvider.minimumRunTimeMs(accepted({ model: 'kling-v3', prompt: 'x', duration: 3 }).request)).toBe(30_000);
    expect(freepikProvider.minimumRunTimeMs(accepted({ model: 'kling-v3-omni', prompt: 'x', duration: 15 }).request)).toBe(30_000);
  });
});
