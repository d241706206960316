/**
 * The adapter through a real HttpUpstreamClient against nock: the exact upstream requests,
 * and every way an answer can fail.
 */
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import nock from 'nock';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import type { SubmitContext } from '../../../src/core/upstream/provider.js';
import { kling3apiProvider, kling3apiMinimumRunTimeMs } from '../../../src/providers/kling3api/kling3api-provider.js';
import { served } from './kling3api-fixtures.js';
import { upstreamFailure } from '../../support/upstream-failure.js';
import { REFUSED_PORT } from '../../support/refused-port.js';

const BASE = 'https://kling3api.test';
const KEY = 'sk-kling3-test';

function client(baseUrl = BASE, timeoutMs = 2_000): HttpUpstreamClient {
  return new HttpUpstreamClient({ provider: kling3apiProvider, baseUrl, apiKey: KEY, timeoutMs });
}

function submitContext(http = client()): SubmitContext {
  return { http, taskId: 'vid_1', attemptKey: 'vid_1-1' };
}

const textToVideo = served({
  model: 'kling-v3',
  prompt: 'A majestic eagle soaring through clouds at sunset',
  duration: 5,
  aspect_ratio: '16:9',
});

function submitTextToVideo(http = client()) {
  return kling3apiProvider.submit(textToVideo.request, textToVideo.offering, submitContext(http));
}

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect('127.0.0.1');
});
afterEach(() => {
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

describe('kling3apiProvider: contract', () => {
  it('is polling-only, Bearer-authenticated, with a realistic minimum run time', () => {
    expect(kling3apiProvider.id).toBe('kling3api');
    expect(kling3apiProvider.inboundWebhook).toBe('none');
    expect(kling3apiProvider.authHeaders('abc')).toEqual({ authorization: 'Bearer abc' });
    expect(kling3apiMinimumRunTimeMs(textToVideo.request)).toBe(45_000);
    expect(kling3apiMinimumRunTimeMs({ ...textToVideo.request, duration: 15 })).toBe(75_000);
    const edit = served({ model: 'kling-v3-omni', prompt: 'x', video_url: 'https://example.com/v.mp4' });
    expect(kling3apiProvider.minimumRunTimeMs(edit.request)).toBe(60_000);
  });
});

describe('kling3apiProvider.submit', () => {
  it('POSTs the exact body with the Bearer key and reads the seed answer', async () => {
    let sent: unknown;
    const scope = nock(BASE)
      .post('/api/generate', (body: unknown) => {
        sent = body;
        return true;
      })
      .matchHeader('authorization', `Bearer ${KEY}`)
      .matchHeader('content-type', /application\/json/)
      .reply(200, { code: 200, message: 'success', data: { task_id: 'n75abc123kling3', status: 'IN_PROGRESS', consumed_credits: 400 } });

    const result = await submitTextToVideo();

    expect(scope.isDone()).toBe(true);
    expect(sent).toStrictEqual({
      type: 'pro-text-to-video',
      prompt: 'A majestic eagle soaring through clouds at sunset',
      duration: 5,
      aspect_ratio: '16:9',
      sound: true,
    });
    expect(result).toStrictEqual({
      ref: { providerTaskId: 'n75abc123kling3', tracking: { type: 'pro-text-to-video', consumed_credits: '400' } },
      status: 'processing',
      providerStatus: 'IN_PROGRESS',
      outputs: [],
      reportedCredits: 400,
    });
  });

  it('keeps the O3 type on the ref and treats a missing status word as in progress', async () => {
    const edit = served({ model: 'kling-v3-omni', quality: 'std', prompt: 'Autumn', video_url: 'https://example.com/v.mp4' });
    nock(BASE)
      .post('/api/generate', { type: 'o3-std-video-edit', prompt: 'Autumn', video: 'https://example.com/v.mp4' })
      .reply(200, { code: 200, message: 'success', data: { task_id: 'n71ff00', consumed_credits: '360' } });
    const result = await kling3apiProvider.submit(edit.request, edit.offering, submitContext());
    expect(result.ref).toEqual({ providerTaskId: 'n71ff00', tracking: { type: 'o3-std-video-edit', consumed_credits: '360' } });
    expect(result.status).toBe('processing');
    expect(result.reportedCredits).toBe(360);
  });

  const documented: [number, string, string][] = [
    [400, 'INVALID_PROMPT', 'invalid_request'],
    [400, 'INVALID_DURATION', 'invalid_request'],
    [400, 'INVALID_TYPE', 'invalid_request'],
    [400, 'MISSING_IMAGE', 'invalid_request'],
    [400, 'MISSING_VIDEO', 'invalid_request'],
    [401, 'INVALID_API_KEY', 'provider_error'],
    [402, 'INSUFFICIENT_CREDITS', 'insufficient_credits'],
    [429, 'RATE_LIMITED', 'provider_error'],
    [500, 'INTERNAL_ERROR', 'provider_error'],
  ];
  for (const [status, providerCode, canonical] of documented) {
    it(`HTTP ${status} ${providerCode} → UpstreamError ${canonical}`, async () => {
      nock(BASE).post('/api/generate').reply(status, { code: providerCode, message: `upstream: ${providerCode}` });
      const error = await upstreamFailure(submitTextToVideo());
      expect(error).toMatchObject({
        provider: 'kling3api',
        operation: 'submit',
        url: '/api/generate',
        code: canonical,
        statusCode: status,
        providerCode,
        message: `kling3api (${providerCode}): upstream: ${providerCode}`,
        transport: undefined,
      });
      expect(classifyCreateFailure(error, false).outcome).toBe('failed');
    });
  }

  it('429 with Retry-After → retryAfterMs', async () => {
    nock(BASE).post('/api/generate').reply(429, { code: 'RATE_LIMITED', message: 'slow down' }, { 'Retry-After': '3' });
    const error = await upstreamFailure(submitTextToVideo());
    expect(error).toMatchObject({ code: 'provider_error', statusCode: 429, providerCode: 'RATE_LIMITED', retryAfterMs: 3_000 });
  });

  it('a content-policy rejection is content_policy (never failed over)', async () => {
    nock(BASE).post('/api/generate').reply(400, { code: 'INVALID_PROMPT', message: 'Prompt rejected by content moderation' });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({ code: 'content_policy', statusCode: 400 });
  });

  it('HTTP 200 with an error envelope → UpstreamError with the seed status for the code', async () => {
    nock(BASE).post('/api/generate').reply(200, { code: 'INSUFFICIENT_CREDITS', message: 'Not enough credits' });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 402,
      providerCode: 'INSUFFICIENT_CREDITS',
      message: 'kling3api (INSUFFICIENT_CREDITS): Not enough credits',
      url: '/api/generate',
    });

    nock(BASE).post('/api/generate').reply(200, { code: 401, error: 'INVALID_API_KEY', message: 'bad key' });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({ code: 'provider_error', statusCode: 401, providerCode: 'INVALID_API_KEY' });

    nock(BASE).post('/api/generate').reply(200, { code: 400, message: 'The prompt is invalid or empty', data: null });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({ code: 'invalid_request', statusCode: 400 });

    nock(BASE)
      .post('/api/generate')
      .reply(200, { code: 429, error: 'RATE_LIMITED', message: 'slow down' }, { 'Retry-After': '7' });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({ statusCode: 429, retryAfterMs: 7_000 });
  });

  it('a Retry-After date on an error under HTTP 200 is read against the gateway clock, as on a 429', async () => {
    const now = Date.UTC(2031, 0, 1, 12, 0, 0);
    const http = new HttpUpstreamClient({ provider: kling3apiProvider, baseUrl: BASE, apiKey: KEY, timeoutMs: 2_000, clockNow: () => now });
    const retryAfter = { 'Retry-After': new Date(now + 30_000).toUTCString() };
    nock(BASE).post('/api/generate').reply(200, { code: 'RATE_LIMITED', message: 'slow down' }, retryAfter);
    expect(await upstreamFailure(submitTextToVideo(http))).toMatchObject({ statusCode: 429, retryAfterMs: 30_000 });
    nock(BASE).post('/api/generate').reply(429, { code: 'RATE_LIMITED', message: 'slow down' }, retryAfter);
    expect(await upstreamFailure(submitTextToVideo(http))).toMatchObject({ statusCode: 429, retryAfterMs: 30_000 });
  });

  it('an error envelope whose message is a list (HTTP 200 or 4xx) keeps its code, so credits run out → fail over', async () => {
    nock(BASE).post('/api/generate').reply(200, { code: 402, message: ['Not enough credits for this operation'] });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 402,
      message: 'kling3api (code 402): Not enough credits for this operation',
      mayHaveCreated: false,
    });
    nock(BASE).post('/api/generate').reply(400, { code: 'INSUFFICIENT_CREDITS', message: ['Not enough credits'], error_code: 402 });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 400,
      providerCode: 'INSUFFICIENT_CREDITS',
      message: 'kling3api (INSUFFICIENT_CREDITS): Not enough credits',
    });
  });

  it('a create answer whose code names no error but that carries a task id is that task (failing over would pay twice)', async () => {
    nock(BASE)
      .post('/api/generate')
      .reply(200, { code: 0, message: 'success', data: { task_id: 'n75abc123kling3', status: 'IN_PROGRESS', consumed_credits: 400 } });
    expect(await submitTextToVideo()).toMatchObject({
      status: 'processing',
      reportedCredits: 400,
      ref: { providerTaskId: 'n75abc123kling3' },
    });
    // A code the seed's table or HTTP names is still the error it says, task id or not.
    nock(BASE).post('/api/generate').reply(200, { code: 402, message: 'Not enough credits', data: { task_id: 'n75abc123kling3' } });
    const refused = await upstreamFailure(submitTextToVideo());
    expect(refused).toMatchObject({ code: 'insufficient_credits', statusCode: 402 });
    expect(refused.mayHaveCreated).toBeFalsy();
    // A server error beside a task id may have made it: never sent to another provider.
    nock(BASE).post('/api/generate').reply(200, { code: 'INTERNAL_ERROR', message: 'oops', data: { task_id: 'n75abc123kling3' } });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({ statusCode: 500, mayHaveCreated: true, namedTaskId: 'n75abc123kling3' });
    nock(BASE).post('/api/generate').reply(200, { code: 'INTERNAL_ERROR', message: 'oops' });
    const unnamed = await upstreamFailure(submitTextToVideo());
    expect(unnamed.mayHaveCreated).toBeFalsy();
    expect(unnamed.namedTaskId).toBeUndefined();
  });

  it('a task id sent as a number is still the task (it exists upstream)', async () => {
    nock(BASE).post('/api/generate').reply(200, { code: 200, message: 'success', data: { task_id: 75123, status: 'IN_PROGRESS' } });
    expect((await submitTextToVideo()).ref.providerTaskId).toBe('75123');
  });

  it('a 2xx answer without a task id, or not an envelope, is an unreadable answer that may have created the task', async () => {
    const unreadable = { code: 'provider_error', statusCode: 200, providerCode: 'unreadable_answer', mayHaveCreated: true };
    nock(BASE).post('/api/generate').reply(200, { code: 200, message: 'success', data: {} });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject(unreadable);
    nock(BASE).post('/api/generate').reply(200, 'OK');
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject(unreadable);
  });

  it('an HTML error page falls back on the HTTP status, its words in the message', async () => {
    nock(BASE).post('/api/generate').reply(502, '<html><body>Bad Gateway</body></html>', { 'content-type': 'text/html' });
    expect(await upstreamFailure(submitTextToVideo())).toMatchObject({
      code: 'provider_error',
      statusCode: 502,
      message: 'kling3api (HTTP 502): an HTML page (Bad Gateway)',
    });
  });

  it('connection refused → provider_error with transport refused (certainly not accepted)', async () => {
    const port = await closedPort();
    const error = await upstreamFailure(submitTextToVideo(client(`http://127.0.0.1:${port}`)));
    expect(error).toMatchObject({ code: 'provider_error', transport: 'refused', statusCode: undefined });
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
  });

  it('no answer within the client time limit → timeout (ambiguous: may have been accepted)', async () => {
    nock(BASE)
      .post('/api/generate')
      .reply(() => new Promise<never>(() => undefined));
    const error = await upstreamFailure(submitTextToVideo(client(BASE, 50)));
    expect(error).toMatchObject({ code: 'timeout', transport: 'timeout' });
    expect(classifyCreateFailure(error, false).outcome).toBe('ambiguous');
  });
});

describe('kling3apiProvider.getStatus', () => {
  const ref = { providerTaskId: 'n75abc123kling3', tracking: { type: 'pro-text-to-video' } };

  it('GETs /api/status?task_id= with the Bearer key and maps the seed answer', async () => {
    const scope = nock(BASE)
      .get('/api/status')
      .query({ task_id: 'n75abc123kling3' })
      .matchHeader('authorization', `Bearer ${KEY}`)
      .reply(200, {
        code: 200,
        message: 'success',
        data: {
          task_id: 'n75abc123kling3',
          status: 'SUCCESS',
          consumed_credits: 400,
          created_at: '2026-02-05T10:30:00Z',
          request: { type: 'pro-text-to-video', prompt: 'A majestic eagle soaring through clouds at sunset', duration: 5, aspect_ratio: '16:9' },
          response: ['https://cdn.example.com/videos/abc123.mp4'],
          error_message: null,
          type: 'pro-text-to-video',
        },
      });
    const report = await kling3apiProvider.getStatus(ref, { http: client() });
    expect(scope.isDone()).toBe(true);
    expect(report).toStrictEqual({
      status: 'succeeded',
      providerStatus: 'SUCCESS',
      outputs: [{ type: 'video', url: 'https://cdn.example.com/videos/abc123.mp4', duration: null }],
      reportedCredits: 400,
      // Kept with the task (the create's answer in `ref` said nothing).
      tracking: { type: 'pro-text-to-video', consumed_credits: '400' },
    });
  });

  it('a status answer without consumed_credits reports what the create charged', async () => {
    nock(BASE)
      .get('/api/status')
      .query({ task_id: 'n75abc123kling3' })
      .reply(200, {
        code: 200,
        message: 'success',
        data: { task_id: 'n75abc123kling3', status: 'SUCCESS', response: ['https://cdn.example.com/videos/abc123.mp4'] },
      });
    const charged = { providerTaskId: 'n75abc123kling3', tracking: { type: 'pro-text-to-video', consumed_credits: '400' } };
    const report = await kling3apiProvider.getStatus(charged, { http: client() });
    expect(report).toMatchObject({ status: 'succeeded', reportedCredits: 400 });
  });

  it('keeps the latest consumed_credits a status answer reported, which a task ended without a last answer is charged', async () => {
    nock(BASE)
      .get('/api/status')
      .query({ task_id: 'n75abc123kling3' })
      .reply(200, { code: 200, message: 'success', data: { task_id: 'n75abc123kling3', status: 'IN_PROGRESS', consumed_credits: 240 } });
    const charged = { providerTaskId: 'n75abc123kling3', tracking: { type: 'pro-text-to-video', consumed_credits: '400' } };
    expect(kling3apiProvider.chargedCredits?.(charged)).toBe(400);
    const report = await kling3apiProvider.getStatus(charged, { http: client() });
    expect(report).toMatchObject({ status: 'processing', reportedCredits: 240 });
    expect(report.tracking).toEqual({ type: 'pro-text-to-video', consumed_credits: '240' });
    expect(kling3apiProvider.chargedCredits?.({ ...charged, tracking: report.tracking! })).toBe(240);
  });

  it('encodes the task id in the query', async () => {
    const scope = nock(BASE)
      .get('/api/status')
      .query({ task_id: 'n71a b&c' })
      .reply(200, { code: 200, message: 'success', data: { task_id: 'n71a b&c', status: 'EXPIRED' } });
    const report = await kling3apiProvider.getStatus({ providerTaskId: 'n71a b&c', tracking: {} }, { http: client() });
    expect(scope.isDone()).toBe(true);
    expect(report.error).toEqual({ code: 'expired', message: 'kling3api expired the task', providerCode: 'EXPIRED' });
  });

  it('an error envelope on status is an UpstreamError carrying the status url', async () => {
    nock(BASE).get('/api/status').query(true).reply(200, { code: 'INTERNAL_ERROR', message: 'try later' });
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({
      operation: 'status',
      url: '/api/status?task_id=n75abc123kling3',
      code: 'provider_error',
      statusCode: 500,
      providerCode: 'INTERNAL_ERROR',
    });
  });

  it('a status answer whose code names no error but that carries a status word is that status, as a create answer is', async () => {
    // An upstream whose create answers `code: 0` (taken as the task, see submit) answers its polls so too:
    // read as a 502, every poll would fail and the task, made and charged upstream, would end at its deadline.
    nock(BASE)
      .get('/api/status')
      .query(true)
      .reply(200, {
        code: 0,
        message: 'success',
        data: { task_id: 'n75abc123kling3', status: 'SUCCESS', response: ['https://cdn.example.com/videos/abc123.mp4'] },
      });
    expect(await kling3apiProvider.getStatus(ref, { http: client() })).toMatchObject({
      status: 'succeeded',
      outputs: [{ type: 'video', url: 'https://cdn.example.com/videos/abc123.mp4', duration: null }],
    });
    // A code the seed's table or HTTP names is still the error it says, status word or not.
    nock(BASE).get('/api/status').query(true).reply(200, { code: 402, message: 'Not enough credits', data: { status: 'SUCCESS' } });
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 402,
    });
    // And without a status word there is nothing to read: still an answer that is no success.
    nock(BASE).get('/api/status').query(true).reply(200, { code: 0, message: 'success', data: { task_id: 'n75abc123kling3' } });
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({ statusCode: 502 });
  });

  it('an unknown task id answer (404) maps by status', async () => {
    nock(BASE).get('/api/status').query(true).reply(404, { code: 'TASK_NOT_FOUND', message: 'Task not found' });
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({
      code: 'invalid_request',
      statusCode: 404,
      providerCode: 'TASK_NOT_FOUND',
    });
  });

  it('reads a status answer whose fields it only reports come in other types (epoch created_at, numeric id, object message)', async () => {
    nock(BASE)
      .get('/api/status')
      .query(true)
      .reply(200, {
        code: 200,
        message: 'success',
        data: {
          task_id: 75123,
          status: 'SUCCESS',
          consumed_credits: 400,
          created_at: 1770287400,
          type: { family: 'kling-3' },
          response: ['https://cdn.example.com/videos/abc123.mp4'],
          error_message: { detail: 'none' },
        },
      });
    expect(await kling3apiProvider.getStatus(ref, { http: client() })).toStrictEqual({
      status: 'succeeded',
      providerStatus: 'SUCCESS',
      outputs: [{ type: 'video', url: 'https://cdn.example.com/videos/abc123.mp4', duration: null }],
      reportedCredits: 400,
      // Kept with the task (the create's answer in `ref` said nothing).
      tracking: { type: 'pro-text-to-video', consumed_credits: '400' },
    });
  });

  it('a FAILED answer whose error_message is a list of strings keeps their text', async () => {
    nock(BASE)
      .get('/api/status')
      .query(true)
      .reply(200, { code: 200, message: 'success', data: { status: 'FAILED', error_message: ['Content violates the safety policy'] } });
    expect((await kling3apiProvider.getStatus(ref, { http: client() })).error).toEqual({
      code: 'content_policy',
      message: 'kling3api reported the task FAILED: Content violates the safety policy',
      providerCode: 'FAILED',
    });
  });

  it('a 200 envelope without data is unreadable', async () => {
    nock(BASE).get('/api/status').query(true).reply(200, { code: 200, message: 'success' });
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({
      statusCode: 200,
      providerCode: 'unreadable_answer',
      mayHaveCreated: false,
    });
  });
});

/** A loopback port nobody listens on (not one just freed, which another test file may take meanwhile). */
async function closedPort(): Promise<number> {
  return REFUSED_PORT;
}
