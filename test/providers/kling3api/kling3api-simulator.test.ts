/**
 * Adapter → simulator over real HTTP on loopback, time driven by a ManualClock: every type
 * from creation to a playable result, failures, auth, validation and injected faults.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { estimateCost } from '../../../src/core/model/pricing.js';
import type { ProviderTaskRef } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { KLING3API_ALL_TASK_TYPES } from '../../../src/providers/kling3api/kling3api-capabilities.js';
import { KLING3API_DEFAULT_PRICING } from '../../../src/providers/kling3api/kling3api-pricing.js';
import { kling3apiProvider } from '../../../src/providers/kling3api/kling3api-provider.js';
import { toKling3apiRequest } from '../../../src/providers/kling3api/kling3api-request.js';
import { KLING3API_SIM_CONTENT_POLICY_MESSAGE, KLING3API_SIM_EXPIRED_MESSAGE, KLING3API_SIM_FAILURE_MESSAGE, Kling3apiSimulator } from '../../../src/providers/kling3api/kling3api-simulator.js';
import { served } from './kling3api-fixtures.js';
import { withClientTimerHeld } from '../../support/client-timer.js';
import { heldCall } from '../../support/held-call.js';
import { upstreamFailure } from '../../support/upstream-failure.js';

const KEY = 'sk-sim-key';
const QUEUED_MS = 1_000;
const PROCESSING_MS = 4_000;
const LIFETIME_MS = QUEUED_MS + PROCESSING_MS;

const clock = new ManualClock();
let simulator: Kling3apiSimulator;
let baseUrl: string;

function client(apiKey = KEY, timeoutMs = 2_000): HttpUpstreamClient {
  return new HttpUpstreamClient({ provider: kling3apiProvider, baseUrl, apiKey, timeoutMs });
}

/** A canonical request per upstream type. */
const REQUESTS: Record<string, unknown> = {
  'pro-text-to-video': { model: 'kling-v3', prompt: 'An eagle at sunset', cfg_scale: 0.4 },
  'pro-image-to-video': {
    model: 'kling-v3',
    prompt: 'She turns and smiles',
    start_image_url: 'https://example.com/a.jpg',
    end_image_url: 'https://example.com/b.jpg',
    duration: 8,
  },
  'std-text-to-video': { model: 'kling-v3', quality: 'std', prompt: 'Rain', audio: false, duration: 10 },
  'std-image-to-video': { model: 'kling-v3', quality: 'std', prompt: 'Wind', start_image_url: 'https://example.com/a.jpg' },
  'o3-pro-text-to-video': { model: 'kling-v3-omni', prompt: 'A paper boat', aspect_ratio: '9:16' },
  'o3-pro-image-to-video': { model: 'kling-v3-omni', prompt: 'Statue moves', start_image_url: 'https://example.com/s.jpg' },
  'o3-pro-reference-to-video': {
    model: 'kling-v3-omni',
    prompt: 'Walks through a city',
    reference_images: Array.from({ length: 7 }, (_, i) => `https://example.com/ref-${i}.jpg`),
  },
  'o3-pro-video-edit': {
    model: 'kling-v3-omni',
    prompt: 'Snowy background',
    video_url: 'https://example.com/v.mp4',
    keep_original_sound: true,
  },
  'o3-std-text-to-video': { model: 'kling-v3-omni', quality: 'std', prompt: 'Fireflies', duration: 15 },
  'o3-std-image-to-video': { model: 'kling-v3-omni', quality: 'std', prompt: 'Hair', start_image_url: 'https://example.com/p.png' },
  'o3-std-reference-to-video': {
    model: 'kling-v3-omni',
    quality: 'std',
    prompt: 'Same dance',
    reference_video_url: 'https://example.com/dance.mp4',
    reference_images: ['https://example.com/dancer.png'],
  },
  'o3-std-video-edit': { model: 'kling-v3-omni', quality: 'std', prompt: 'Autumn', video_url: 'https://example.com/v.mp4' },
};

async function submit(input: unknown, http = client()) {
  const { request, offering } = served(input);
  const result = await kling3apiProvider.submit(request, offering, { http, taskId: 'vid_x', attemptKey: 'vid_x-1' });
  return { request, offering, result };
}

beforeAll(async () => {
  simulator = kling3apiProvider.createSimulator({
    clock,
    apiKey: KEY,
    timing: { queuedMs: QUEUED_MS, processingMs: PROCESSING_MS },
  }) as Kling3apiSimulator;
  expect(simulator).toBeInstanceOf(Kling3apiSimulator);
  baseUrl = await simulator.listen();
});
afterEach(() => {
  simulator.clearFaults();
});
afterAll(async () => {
  await simulator.close();
});

describe('kling3api simulator: every type end to end', () => {
  it('has a request for each of the 12 types', () => {
    expect(Object.keys(REQUESTS).sort()).toEqual([...KLING3API_ALL_TASK_TYPES].sort());
  });

  for (const type of KLING3API_ALL_TASK_TYPES) {
    it(`${type}: created IN_PROGRESS, SUCCESS after the lifetime, playable MP4, credits from the table`, async () => {
      const { request, offering, result } = await submit(REQUESTS[type]);
      const expectedCredits = estimateCost(KLING3API_DEFAULT_PRICING, request)?.credits;
      expect(expectedCredits).toBeGreaterThan(0);

      // Created: the ref, the id family, the body the simulator received.
      expect(result.ref.tracking).toEqual({ type, consumed_credits: String(expectedCredits) });
      expect(result.ref.providerTaskId).toMatch(type.startsWith('o3-') ? /^n71[0-9a-f]{24}$/ : /^n75[0-9a-f]{24}$/);
      expect(result).toMatchObject({ status: 'processing', providerStatus: 'IN_PROGRESS', reportedCredits: expectedCredits });
      const task = simulator.tasks.find((t) => t.id === result.ref.providerTaskId);
      expect(task?.body).toStrictEqual(toKling3apiRequest(request, offering));

      // Still running just before the end of its life.
      await clock.advance(LIFETIME_MS - 1);
      expect(await kling3apiProvider.getStatus(result.ref, { http: client() })).toMatchObject({
        status: 'processing',
        providerStatus: 'IN_PROGRESS',
      });

      await clock.advance(1);
      expect(task?.status).toBe('SUCCESS');
      const report = await kling3apiProvider.getStatus(result.ref, { http: client() });
      expect(report).toStrictEqual({
        status: 'succeeded',
        providerStatus: 'SUCCESS',
        outputs: [{ type: 'video', url: `${baseUrl}/sim-files/${result.ref.providerTaskId}.mp4`, duration: null }],
        reportedCredits: expectedCredits,
      });

      const video = await fetch(report.outputs[0]?.url ?? '');
      expect(video.status).toBe(200);
      const bytes = Buffer.from(await video.arrayBuffer());
      expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    });
  }

  it('answers the seed status fields (created_at, request, type, error_message)', async () => {
    const { result } = await submit(REQUESTS['pro-text-to-video']);
    const response = await client().send({
      method: 'GET',
      path: '/api/status',
      query: { task_id: result.ref.providerTaskId },
      operation: 'status',
    });
    expect(response.data).toMatchObject({
      code: 200,
      message: 'success',
      data: {
        task_id: result.ref.providerTaskId,
        status: 'IN_PROGRESS',
        consumed_credits: 400,
        created_at: new Date(clock.now()).toISOString(),
        request: { type: 'pro-text-to-video', prompt: 'An eagle at sunset' },
        response: [],
        error_message: null,
        type: 'pro-text-to-video',
      },
    });
  });
});

describe('kling3api simulator: how tasks end', () => {
  async function endOf(setUp: () => void) {
    setUp();
    const { result } = await submit(REQUESTS['o3-pro-text-to-video']);
    await clock.advance(LIFETIME_MS);
    return kling3apiProvider.getStatus(result.ref, { http: client() });
  }

  it('fail → FAILED with error_message → provider_error', async () => {
    expect(await endOf(() => simulator.setOutcome('fail'))).toStrictEqual({
      status: 'failed',
      providerStatus: 'FAILED',
      outputs: [],
      reportedCredits: 240,
      error: { code: 'provider_error', message: `kling3api reported the task FAILED: ${KLING3API_SIM_FAILURE_MESSAGE}`, providerCode: 'FAILED' },
    });
  });

  it('content_policy → FAILED with a safety message → content_policy', async () => {
    const report = await endOf(() => simulator.setOutcome('content_policy'));
    expect(report.error).toEqual({ code: 'content_policy', message: `kling3api reported the task FAILED: ${KLING3API_SIM_CONTENT_POLICY_MESSAGE}`, providerCode: 'FAILED' });
  });

  it('expireNext → EXPIRED → expired', async () => {
    const report = await endOf(() => simulator.expireNext());
    expect(report).toMatchObject({ status: 'failed', providerStatus: 'EXPIRED' });
    expect(report.error).toEqual({ code: 'expired', message: `kling3api expired the task: ${KLING3API_SIM_EXPIRED_MESSAGE}`, providerCode: 'EXPIRED' });
    // Only the next task: the one after succeeds.
    expect((await endOf(() => undefined)).status).toBe('succeeded');
  });
});

describe('kling3api simulator: auth and unknown tasks', () => {
  it('401 INVALID_API_KEY on a wrong key, for generate and status', async () => {
    const error = await upstreamFailure(submit(REQUESTS['pro-text-to-video'], client('sk-wrong')));
    expect(error).toMatchObject({ code: 'provider_error', statusCode: 401, providerCode: 'INVALID_API_KEY' });
    const ref: ProviderTaskRef = { providerTaskId: 'n75whatever', tracking: {} };
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client('sk-wrong') }))).toMatchObject({
      statusCode: 401,
      providerCode: 'INVALID_API_KEY',
    });
  });

  it('an unknown task id answers 404 TASK_NOT_FOUND', async () => {
    const ref: ProviderTaskRef = { providerTaskId: 'n75doesnotexist', tracking: {} };
    expect(await upstreamFailure(kling3apiProvider.getStatus(ref, { http: client() }))).toMatchObject({
      code: 'invalid_request',
      statusCode: 404,
      providerCode: 'TASK_NOT_FOUND',
    });
  });
});

describe('kling3api simulator: validation', () => {
  function post(body: unknown) {
    return client().send({ method: 'POST', path: '/api/generate', body, operation: 'submit' });
  }
  const t2v = { type: 'pro-text-to-video', prompt: 'x' };

  const cases: [string, unknown, string][] = [
    ['empty prompt', { ...t2v, prompt: '  ' }, 'INVALID_PROMPT'],
    ['missing prompt', { type: 'pro-text-to-video' }, 'INVALID_PROMPT'],
    ['2001-character prompt', { ...t2v, prompt: 'a'.repeat(2001) }, 'INVALID_PROMPT'],
    ['duration 2', { ...t2v, duration: 2 }, 'INVALID_DURATION'],
    ['duration 16', { ...t2v, duration: 16 }, 'INVALID_DURATION'],
    ['duration 5.5', { ...t2v, duration: 5.5 }, 'INVALID_DURATION'],
    ['duration on video edit', { type: 'o3-pro-video-edit', prompt: 'x', video: 'https://e.com/v.mp4', duration: 5 }, 'INVALID_DURATION'],
    ['unknown type', { ...t2v, type: 'pro-video-edit' }, 'INVALID_TYPE'],
    ['image-to-video without image', { type: 'std-image-to-video', prompt: 'x' }, 'MISSING_IMAGE'],
    ['reference-to-video without references', { type: 'o3-std-reference-to-video', prompt: 'x' }, 'MISSING_IMAGE'],
    ['video edit without video', { type: 'o3-std-video-edit', prompt: 'x' }, 'MISSING_VIDEO'],
    ['cfg_scale 1.5', { ...t2v, cfg_scale: 1.5 }, 'INVALID_PARAMETER'],
    ['cfg_scale on O3', { type: 'o3-pro-text-to-video', prompt: 'x', cfg_scale: 0.5 }, 'INVALID_PARAMETER'],
    [
      '8 images',
      { type: 'o3-pro-reference-to-video', prompt: 'x', images: Array.from({ length: 8 }, (_, i) => `https://e.com/${i}.png`) },
      'INVALID_PARAMETER',
    ],
    ['images on text-to-video', { ...t2v, images: ['https://e.com/a.png'] }, 'INVALID_PARAMETER'],
    ['end_image on text-to-video', { ...t2v, end_image: 'https://e.com/a.png' }, 'INVALID_PARAMETER'],
    ['sound on video edit', { type: 'o3-pro-video-edit', prompt: 'x', video: 'https://e.com/v.mp4', sound: true }, 'INVALID_PARAMETER'],
    ['aspect ratio auto', { ...t2v, aspect_ratio: 'auto' }, 'INVALID_PARAMETER'],
    ['a field outside the schema', { ...t2v, watermark: false }, 'INVALID_PARAMETER'],
    ['a body that is not JSON', '{"type": ', 'INVALID_PARAMETER'],
    // `format: uri` (RFC 3986) on image, end_image, video and images: what only a browser would mend is refused.
    ['a space in image', { type: 'pro-image-to-video', prompt: 'x', image: 'https://e.com/my photo.png' }, 'INVALID_PARAMETER'],
    ['a non-ASCII end_image', { type: 'pro-image-to-video', prompt: 'x', image: 'https://e.com/a.png', end_image: 'https://e.com/\u00fc.png' }, 'INVALID_PARAMETER'],
    ['a bad escape in video', { type: 'o3-pro-video-edit', prompt: 'x', video: 'https://e.com/v%zz.mp4' }, 'INVALID_PARAMETER'],
    ['a | in images', { type: 'o3-pro-reference-to-video', prompt: 'x', images: ['https://e.com/a.png?x=1|2'] }, 'INVALID_PARAMETER'],
    ['a third slash in image', { type: 'pro-image-to-video', prompt: 'x', image: 'https:///e.com/a.png' }, 'INVALID_PARAMETER'],
  ];
  for (const [name, body, providerCode] of cases) {
    it(`${name} → 400 ${providerCode}`, async () => {
      const before = simulator.tasks.length;
      expect(await upstreamFailure(post(body))).toMatchObject({ code: 'invalid_request', statusCode: 400, providerCode });
      expect(simulator.tasks.length).toBe(before);
    });
  }

  it('accepts the boundaries: duration 3 and 15, cfg_scale 0 and 1, 7 images', async () => {
    for (const body of [
      { ...t2v, duration: 3, cfg_scale: 0 },
      { ...t2v, duration: 15, cfg_scale: 1 },
      { type: 'o3-pro-reference-to-video', prompt: 'x', images: Array.from({ length: 7 }, (_, i) => `https://e.com/${i}.png`) },
      { type: 'pro-image-to-video', prompt: 'x', image: 'https://E.com:443/./my%20photo%C3%BC.png?x=1%7C2&y=(1)#f', end_image: 'https://[2001:db8::1]:8443/b.png' },
    ]) {
      expect((await post(body)).status).toBe(200);
    }
  });
});

describe('kling3api simulator: injected faults', () => {
  it('429 RATE_LIMITED with Retry-After', async () => {
    simulator.injectFault({ kind: 'rate_limited' });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'provider_error',
      statusCode: 429,
      providerCode: 'RATE_LIMITED',
      retryAfterMs: 2_000,
    });
  });

  it('402 INSUFFICIENT_CREDITS, 500 INTERNAL_ERROR, 503', async () => {
    simulator.injectFault({ status: 402 });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 402,
      providerCode: 'INSUFFICIENT_CREDITS',
    });
    simulator.injectFault({ kind: 'server_error' });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'provider_error',
      statusCode: 500,
      providerCode: 'INTERNAL_ERROR',
    });
    simulator.injectFault({ kind: 'unavailable' });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'provider_error',
      statusCode: 503,
      retryAfterMs: 5_000,
    });
  });

  it('an error envelope inside HTTP 200', async () => {
    simulator.injectFault({ status: 200, body: { code: 'INSUFFICIENT_CREDITS', message: 'Not enough credits' } });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'insufficient_credits',
      statusCode: 402,
    });
  });

  it('faults on status calls only when asked', async () => {
    const { result } = await submit(REQUESTS['pro-text-to-video']);
    simulator.injectFault({ on: 'status', kind: 'rate_limited', times: 2 });
    for (let i = 0; i < 2; i++) {
      expect(await upstreamFailure(kling3apiProvider.getStatus(result.ref, { http: client() }))).toMatchObject({ statusCode: 429 });
    }
    expect((await kling3apiProvider.getStatus(result.ref, { http: client() })).status).toBe('processing');
  });

  it('reset → transport reset, hang → timeout', async () => {
    simulator.injectFault({ transport: 'reset' });
    expect(await upstreamFailure(submit(REQUESTS['pro-text-to-video']))).toMatchObject({
      code: 'provider_error',
      transport: 'reset',
    });
    const hanging = heldCall();
    hanging.release();
    simulator.injectFault({ transport: 'hang', hold: hanging.hold });
    const failure = await withClientTimerHeld(async (runOut) => {
      const answer = upstreamFailure(submit(REQUESTS['pro-text-to-video'], client(KEY, 100)));
      // The client's 100 ms run out once the create is with the upstream, however slow the machine.
      await hanging.reached;
      await runOut(100);
      return answer;
    });
    expect(failure).toMatchObject({ code: 'timeout', transport: 'timeout' });
  });

  it('a slow answer times out a short client and then answers normally', async () => {
    const before = simulator.tasks.length;
    const slow = heldCall();
    simulator.injectFault({ hold: slow.hold });
    const failing = withClientTimerHeld(async (runOut) => {
      const answer = upstreamFailure(submit(REQUESTS['pro-text-to-video'], client(KEY, 50)));
      // The client's 50 ms run out once the create is with the upstream, however slow the machine.
      await slow.reached;
      await runOut(50);
      return answer;
    });
    expect(await failing).toMatchObject({ transport: 'timeout' });
    slow.release();
    simulator.injectFault({ delayMs: 20 });
    expect((await submit(REQUESTS['pro-text-to-video'])).result.status).toBe('processing');
    // The create the client gave up on had arrived: the simulator makes its task once the hold is
    // released (as a real upstream would, answering late). Waited for here, or on a busy machine it
    // lands in the next test's count.
    await vi.waitFor(() => expect(simulator.tasks).toHaveLength(before + 2), { timeout: 10_000 });
  });

  it('holds a create until the test releases it, then answers as the fault says', async () => {
    const held = heldCall();
    simulator.injectFault({ on: 'submit', kind: 'rate_limited', hold: held.hold });
    const tasksBefore = simulator.tasks.length;
    let settled = false;
    const submitting = upstreamFailure(submit(REQUESTS['pro-text-to-video'])).finally(() => (settled = true));
    await held.reached;
    // Received, not answered, for as long as the test likes.
    expect(simulator.requests.at(-1)).toMatchObject({ method: 'POST', path: '/api/generate' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    held.release();
    expect(await submitting).toMatchObject({ statusCode: 429 });
    // A hold with nothing else answers normally once released.
    const second = heldCall();
    simulator.injectFault({ on: 'submit', hold: second.hold });
    const accepted = submit(REQUESTS['pro-text-to-video']);
    await second.reached;
    expect(simulator.tasks).toHaveLength(tasksBefore);
    second.release();
    expect((await accepted).result.status).toBe('processing');
    expect(simulator.tasks).toHaveLength(tasksBefore + 1);
  });

  it('logs every request it received', async () => {
    const before = simulator.requests.length;
    await submit(REQUESTS['o3-std-text-to-video']);
    expect(simulator.requests.slice(before)).toEqual([{ method: 'POST', path: '/api/generate', at: clock.now() }]);
  });
});
