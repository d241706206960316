/**
 * The adapter against the Freepik simulator over real HTTP on loopback, with time driven by a
 * `ManualClock`: task lifecycle, playable results, outcomes, the documented 401/400/404 answers,
 * injected faults, list endpoints, and signed webhooks verified by the adapter's own verifier.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import { ManualClock } from '../../../src/core/clock.js';
import type { InboundWebhook, ProviderSimulator, SubmitContext } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { freepikProvider } from '../../../src/providers/freepik/index.js';
import { verifyFreepikWebhook } from '../../../src/providers/freepik/freepik-status.js';
import { withClientTimerHeld } from '../../support/client-timer.js';
import { heldCall } from '../../support/held-call.js';

const API_KEY = 'sim-freepik-key';
const WEBHOOK_SECRET = 'sim-freepik-webhook-secret';
const QUEUED_MS = 1_000;
const PROCESSING_MS = 4_000;
const IMG = (name: string) => `https://cdn.example.com/${name}.jpg`;

/** A local receiver for the simulator's webhooks. */
class WebhookReceiver {
  readonly received: InboundWebhook[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.received.push({ headers: flatten(req.headers), rawBody: Buffer.concat(chunks) });
      res.writeHead(204).end();
      this.waiters = this.waiters.filter((waiter) => {
        if (this.received.length < waiter.count) return true;
        waiter.resolve();
        return false;
      });
    });
  });
  url = '';

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    this.url = `http://127.0.0.1:${address.port}/v1/webhooks/freepik`;
  }

  /** Resolves once `count` webhooks have arrived in total. */
  waitFor(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function flatten(headers: IncomingHttpHeaders): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) result[name] = Array.isArray(value) ? value.join(', ') : value;
  return result;
}

let clock: ManualClock;
let simulator: ProviderSimulator;
let baseUrl: string;
const receiver = new WebhookReceiver();

beforeAll(async () => {
  clock = new ManualClock();
  simulator = freepikProvider.createSimulator({
    clock,
    apiKey: API_KEY,
    webhookSecret: WEBHOOK_SECRET,
    timing: { queuedMs: QUEUED_MS, processingMs: PROCESSING_MS },
  });
  baseUrl = await simulator.listen(0);
  await receiver.listen();
});

afterEach(() => {
  simulator.clearFaults();
});

afterAll(async () => {
  await simulator.close();
  await receiver.close();
});

function client(options: { apiKey?: string; timeoutMs?: number } = {}): HttpUpstreamClient {
  return new HttpUpstreamClient({
    provider: freepikProvider,
    baseUrl,
    apiKey: options.apiKey ?? API_KEY,
    timeoutMs: options.timeoutMs ?? 2_000,
  });
}

function context(options: { callbackUrl?: string; apiKey?: string; timeoutMs?: number } = {}): SubmitContext {
  return {
    http: client(options),
    taskId: 'task_sim',
    attemptKey: 'task_sim-1',
    ...(options.callbackUrl ? { callbackUrl: options.callbackUrl } : {}),
  };
}

function accepted(input: z.input<typeof CreateVideoRequest>) {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const { offering, reasons } = matchOffering(freepikProvider.offerings, resolved);
  if (!offering) throw new Error(reasons.join('; '));
  return { request: resolved.request, offering };
}

async function submit(input: z.input<typeof CreateVideoRequest>, options: Parameters<typeof context>[0] = {}) {
  const { request, offering } = accepted(input);
  return freepikProvider.submit(request, offering, context(options));
}

async function rawPost(path: string, body: unknown, headers: Record<string, string> = { 'x-freepik-api-key': API_KEY }) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, contentType: response.headers.get('content-type'), body: (await response.json()) as Record<string, unknown> };
}

describe('task lifecycle', () => {
  it('goes CREATED → IN_PROGRESS → COMPLETED on the clock, with a playable MP4 and signed webhooks', async () => {
    const before = receiver.received.length;
    const created = await submit(
      { model: 'kling-v3', prompt: 'A lighthouse at dusk', duration: 8 },
      { callbackUrl: receiver.url },
    );
    expect(created).toMatchObject({ status: 'queued', providerStatus: 'CREATED', outputs: [] });
    const task = simulator.tasks.at(-1);
    expect(task?.path).toBe('/v1/ai/video/kling-v3-pro');
    expect(task?.body).toEqual({
      prompt: 'A lighthouse at dusk',
      duration: '8',
      aspect_ratio: '16:9',
      generate_audio: true,
      webhook_url: receiver.url,
    });

    await clock.advance(QUEUED_MS);
    expect(await freepikProvider.getStatus(created.ref, { http: client() })).toMatchObject({
      status: 'processing',
      providerStatus: 'IN_PROGRESS',
    });
    await receiver.waitFor(before + 1);

    await clock.advance(PROCESSING_MS);
    const done = await freepikProvider.getStatus(created.ref, { http: client() });
    expect(done.status).toBe('succeeded');
    expect(done.providerStatus).toBe('COMPLETED');
    const url = done.outputs[0]?.url ?? '';
    expect(url.startsWith(baseUrl)).toBe(true);
    const file = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(file.subarray(4, 8).toString('latin1')).toBe('ftyp');

    await receiver.waitFor(before + 2);
    const [processing, completed] = receiver.received.slice(before);
    if (!processing || !completed) throw new Error('webhooks missing');
    const first = verifyFreepikWebhook(processing, WEBHOOK_SECRET, clock.now());
    expect(first).toMatchObject({ ok: true, providerTaskId: created.ref.providerTaskId, report: { status: 'processing' } });
    const second = verifyFreepikWebhook(completed, WEBHOOK_SECRET, clock.now());
    expect(second).toMatchObject({
      ok: true,
      providerTaskId: created.ref.providerTaskId,
      report: { status: 'succeeded', outputs: [{ type: 'video', url, duration: null }] },
    });
    expect(first.ok && second.ok && first.webhookId !== second.webhookId).toBe(true);
    // The same delivery with a wrong secret, or seen too late, is refused.
    expect(verifyFreepikWebhook(completed, 'wrong-secret', clock.now()).ok).toBe(false);
    expect(verifyFreepikWebhook(completed, WEBHOOK_SECRET, clock.now() + 6 * 60_000).ok).toBe(false);
  });

  it('ends FAILED with provider_error for a failing outcome', async () => {
    simulator.setOutcome('fail');
    const created = await submit({ model: 'kling-v3-omni', prompt: 'x' });
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const report = await freepikProvider.getStatus(created.ref, { http: client() });
    expect(report).toMatchObject({ status: 'failed', providerStatus: 'FAILED', outputs: [], error: { code: 'provider_error' } });
  });

  it('ends FAILED with content_policy when the task is refused for its content', async () => {
    simulator.setOutcome('content_policy');
    const created = await submit({ model: 'kling-v3-omni', prompt: 'x' });
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const report = await freepikProvider.getStatus(created.ref, { http: client() });
    expect(report).toMatchObject({ status: 'failed', error: { code: 'content_policy' } });
  });

  it.each<[string, z.input<typeof CreateVideoRequest>, string]>([
    ['kling-v3 std image-to-video with shots and elements', {
      model: 'kling-v3',
      quality: 'std',
      start_image_url: IMG('a'),
      end_image_url: IMG('b'),
      negative_prompt: 'blur',
      cfg_scale: 2,
      multi_shot: [{ prompt: 'one', duration: 5 }, { prompt: 'two', duration: 10 }],
      elements: [{ frontal_image_url: IMG('e'), reference_image_urls: [IMG('e2')] }],
      voice_ids: ['v1', 'v2'],
    }, '/v1/ai/video/kling-v3-std'],
    ['kling-v3-omni image-to-video with both frames and auto aspect', {
      model: 'kling-v3-omni',
      prompt: 'x',
      start_image_url: IMG('a'),
      end_image_url: IMG('b'),
      aspect_ratio: 'auto',
      reference_images: [IMG('r')],
    }, '/v1/ai/video/kling-v3-omni-pro'],
    ['kling-v3-omni shots', { model: 'kling-v3-omni', quality: 'std', multi_shot: [{ prompt: 'a' }, { prompt: 'b' }], duration: 10 }, '/v1/ai/video/kling-v3-omni-std'],
    ['kling-v3-omni reference images', {
      model: 'kling-v3-omni',
      prompt: '@Image1',
      reference_images: [IMG('r1'), IMG('r2')],
      elements: [{ frontal_image_url: IMG('e') }],
    }, '/v1/ai/video/kling-v3-omni-pro'],
    ['kling-v3-omni reference video std', {
      model: 'kling-v3-omni',
      quality: 'std',
      prompt: '@Video1',
      reference_video_url: 'https://cdn.example.com/v.mp4',
      start_image_url: IMG('a'),
      cfg_scale: 0,
      negative_prompt: 'noise',
      aspect_ratio: 'auto',
      duration: 15,
    }, '/v1/ai/reference-to-video/kling-v3-omni-std'],
  ])('accepts what the adapter sends for %s', async (_name, input, path) => {
    const created = await submit(input);
    expect(created.providerStatus).toBe('CREATED');
    expect(simulator.tasks.at(-1)?.path).toBe(path);
  });
});

describe('HTTP contract', () => {
  it('answers 401 Missing API key without a key and Invalid API key with a wrong one', async () => {
    expect(await rawPost('/v1/ai/video/kling-v3-pro', { prompt: 'x' }, {})).toMatchObject({
      status: 401,
      body: { message: 'Missing API key' },
    });
    const error = await submit({ model: 'kling-v3', prompt: 'x' }, { apiKey: 'wrong' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ code: 'provider_error', providerCode: 'unauthorized', statusCode: 401 });
    expect((error as UpstreamError).message).toContain('Invalid API key');
  });

  it.each<[string, string, Record<string, unknown>, string]>([
    ['an unknown field', '/v1/ai/video/kling-v3-pro', { prompt: 'x', image_list: [] }, 'image_list'],
    ['a duration outside the enum', '/v1/ai/video/kling-v3-pro', { prompt: 'x', duration: '20' }, 'duration'],
    ['a numeric duration', '/v1/ai/video/kling-v3-std', { prompt: 'x', duration: 5 }, 'duration'],
    ['a prompt over 2500 characters', '/v1/ai/video/kling-v3-pro', { prompt: 'a'.repeat(2501) }, 'prompt'],
    ['no prompt and no shots', '/v1/ai/video/kling-v3-pro', { duration: '5' }, 'prompt'],
    ['7 shots', '/v1/ai/video/kling-v3-pro', { multi_prompt: Array.from({ length: 7 }, () => ({ prompt: 'a', duration: '3' })) }, 'multi_prompt'],
    ['shots over 15 s', '/v1/ai/video/kling-v3-pro', { multi_prompt: [{ prompt: 'a', duration: '10' }, { prompt: 'b', duration: '6' }] }, 'multi_prompt'],
    ['3 voices', '/v1/ai/video/kling-v3-pro', { prompt: 'x', voice_ids: ['a', 'b', 'c'] }, 'voice_ids'],
    ['cfg_scale over 2', '/v1/ai/video/kling-v3-pro', { prompt: 'x', cfg_scale: 2.5 }, 'cfg_scale'],
    ['auto aspect on kling-v3', '/v1/ai/video/kling-v3-pro', { prompt: 'x', aspect_ratio: 'auto' }, 'aspect_ratio'],
    ['an end frame without a start frame on kling-v3', '/v1/ai/video/kling-v3-std', { prompt: 'x', end_image_url: IMG('b') }, 'start_image_url'],
    ['cfg_scale on Omni', '/v1/ai/video/kling-v3-omni-pro', { prompt: 'x', cfg_scale: 1 }, 'cfg_scale'],
    ['negative_prompt on Omni', '/v1/ai/video/kling-v3-omni-std', { prompt: 'x', negative_prompt: 'y' }, 'negative_prompt'],
    ['timed shots on Omni', '/v1/ai/video/kling-v3-omni-pro', { multi_prompt: [{ prompt: 'a', duration: '5' }] }, 'multi_prompt.0'],
    ['intelligent shots on Omni', '/v1/ai/video/kling-v3-omni-pro', { multi_prompt: ['a'], shot_type: 'intelligent' }, 'shot_type'],
    ['5 images and elements on Omni', '/v1/ai/video/kling-v3-omni-pro', {
      prompt: 'x',
      image_urls: [IMG('1'), IMG('2'), IMG('3')],
      elements: [{ frontal_image_url: IMG('4') }, { frontal_image_url: IMG('5') }],
    }, 'image_urls'],
    ['auto aspect without an image on Omni', '/v1/ai/video/kling-v3-omni-pro', { prompt: 'x', aspect_ratio: 'auto' }, 'aspect_ratio'],
    ['start and end frames without image_url on Omni', '/v1/ai/video/kling-v3-omni-pro', {
      prompt: 'x',
      start_image_url: IMG('a'),
      end_image_url: IMG('b'),
    }, 'image_url'],
    ['an end frame alone on Omni', '/v1/ai/video/kling-v3-omni-std', { prompt: 'x', end_image_url: IMG('b') }, 'image_url'],
    ['auto aspect without an image on the reference endpoint', '/v1/ai/reference-to-video/kling-v3-omni-pro', {
      video_url: 'https://cdn.example.com/v.mp4',
      aspect_ratio: 'auto',
    }, 'aspect_ratio'],
    ['a reference request without video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { prompt: '@Video1' }, 'video_url'],
    ['multi_prompt on the reference endpoint', '/v1/ai/reference-to-video/kling-v3-omni-std', {
      video_url: 'https://cdn.example.com/v.mp4',
      multi_prompt: ['a'],
    }, 'multi_prompt'],
    // `format: uri` (RFC 3986) on `video_url` and `webhook_url`: what only a browser would mend is refused.
    ['a space in video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://cdn.example.com/my clip.mp4' }, 'video_url'],
    ['a non-ASCII video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://cdn.example.com/\u00fc.mp4' }, 'video_url'],
    ['an IDN host in video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://b\u00fccher.example/v.mp4' }, 'video_url'],
    ['a bad escape in video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://cdn.example.com/v%zz.mp4' }, 'video_url'],
    ['a backslash in video_url', '/v1/ai/reference-to-video/kling-v3-omni-pro', { video_url: 'https://cdn.example.com\\v.mp4' }, 'video_url'],
    ['a | in webhook_url', '/v1/ai/video/kling-v3-pro', { prompt: 'x', webhook_url: 'https://hooks.example.com/h?a=1|2' }, 'webhook_url'],
  ])('answers 400 problem+json naming the param for %s', async (_name, path, body, param) => {
    const answer = await rawPost(path, body);
    expect(answer.status).toBe(400);
    expect(answer.contentType).toContain('application/problem+json');
    // Seed 001's schema (`get_all_style_transfer_tasks_400_response_1`): everything under `problem`.
    expect(Object.keys(answer.body)).toEqual(['problem']);
    const problem = answer.body.problem as { message: string; invalid_params: { name: string; reason: string }[] };
    expect(problem.message).toBe("Your request parameters didn't validate.");
    const names = problem.invalid_params.map((entry) => entry.name);
    expect(names).toContain(param);
  });

  it('answers 400 {message} for a body that is not JSON', async () => {
    expect(await rawPost('/v1/ai/video/kling-v3-pro', '{"prompt": ')).toEqual({
      status: 400,
      contentType: expect.stringContaining('application/json') as unknown as string,
      body: { message: 'Request body is not valid JSON' },
    });
  });

  it('surfaces its 400 through the client as invalid_request naming the params', async () => {
    const error = await client()
      .send({ method: 'POST', path: '/v1/ai/video/kling-v3-omni-pro', body: { prompt: 'x', cfg_scale: 1 }, operation: 'submit' })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 400 });
    expect((error as UpstreamError).message).toContain("cfg_scale: Parameter 'cfg_scale' is not allowed");
  });

  it('answers the injected invalid fault with the plain 400 body', async () => {
    simulator.injectFault({ kind: 'invalid' });
    const error = await submit({ model: 'kling-v3', prompt: 'x' }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 400 });
    expect((error as UpstreamError).message).toContain("Parameter ':attribute' is not valid");
  });

  it('answers 404 for a task polled at another family, and for an unknown id', async () => {
    const created = await submit({ model: 'kling-v3-omni', prompt: 'x' });
    expect(created.ref.tracking.family).toBe('/v1/ai/video/kling-v3-omni');
    const wrongFamily = await freepikProvider
      .getStatus({ ...created.ref, tracking: { family: '/v1/ai/video/kling-v3' } }, { http: client() })
      .catch((caught: unknown) => caught);
    expect(wrongFamily).toMatchObject({ statusCode: 404, code: 'invalid_request' });
    const unknown = await freepikProvider
      .getStatus({ providerTaskId: crypto.randomUUID(), tracking: { family: '/v1/ai/video/kling-v3-omni' } }, { http: client() })
      .catch((caught: unknown) => caught);
    expect(unknown).toMatchObject({ statusCode: 404 });
    // The right family still answers.
    expect(await freepikProvider.getStatus(created.ref, { http: client() })).toMatchObject({ status: 'queued', providerStatus: 'CREATED' });
  });

  it('lists the tasks of one family, newest first, and checks page', async () => {
    const created = await submit({ model: 'kling-v3-omni', prompt: 'listed', reference_video_url: 'https://cdn.example.com/v.mp4' });
    const headers = { 'x-freepik-api-key': API_KEY };
    const list = (await (await fetch(`${baseUrl}/v1/ai/reference-to-video/kling-v3-omni?page_size=1`, { headers })).json()) as {
      data: { task_id: string; status: string }[];
    };
    expect(list.data).toEqual([{ task_id: created.ref.providerTaskId, status: 'CREATED' }]);
    const other = (await (await fetch(`${baseUrl}/v1/ai/video/kling-v3`, { headers })).json()) as { data: { task_id: string }[] };
    expect(other.data.map((task) => task.task_id)).not.toContain(created.ref.providerTaskId);
    const bad = await fetch(`${baseUrl}/v1/ai/reference-to-video/kling-v3-omni?page=0`, { headers });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ problem: { invalid_params: [{ name: 'page' }] } });
    // The Kling 3 and Kling 3 Omni lists document no parameters at all (seeds 000, 001).
    const undocumented = await fetch(`${baseUrl}/v1/ai/video/kling-v3-omni?page=1&page_size=100`, { headers });
    expect(undocumented.status).toBe(400);
    expect(await undocumented.json()).toEqual({
      problem: {
        message: "Your request parameters didn't validate.",
        invalid_params: [
          { name: 'page', reason: "Parameter 'page' is not valid" },
          { name: 'page_size', reason: "Parameter 'page_size' is not valid" },
        ],
      },
    });
    expect((await fetch(`${baseUrl}/v1/ai/video/kling-v3`)).status).toBe(401);
  });
});

describe('injected faults', () => {
  it.each([
    [{ kind: 'rate_limited' as const }, { code: 'provider_error', providerCode: 'rate_limited', statusCode: 429, retryAfterMs: 1_000 }],
    [{ kind: 'insufficient_credits' as const }, { code: 'insufficient_credits', statusCode: 402 }],
    [{ kind: 'server_error' as const }, { code: 'provider_error', providerCode: 'server_error', statusCode: 500 }],
    [{ kind: 'unavailable' as const }, { code: 'provider_error', providerCode: 'unavailable', statusCode: 503 }],
    [{ status: 429 }, { providerCode: 'rate_limited', retryAfterMs: 1_000 }],
    [{ transport: 'reset' as const }, { code: 'provider_error', transport: 'reset' }],
  ])('%o on submit → %o', async (fault, expected) => {
    simulator.injectFault(fault);
    const error = await submit({ model: 'kling-v3', prompt: 'x' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject(expected);
    // The fault was used up: the next call goes through.
    expect((await submit({ model: 'kling-v3', prompt: 'x' })).providerStatus).toBe('CREATED');
  });

  it('sends the seed bodies for 500 and 503', async () => {
    simulator.injectFault({ kind: 'server_error' });
    expect(await rawPost('/v1/ai/video/kling-v3-pro', { prompt: 'x' })).toMatchObject({ status: 500, body: { message: 'Internal Server Error' } });
    simulator.injectFault({ kind: 'unavailable' });
    expect(await rawPost('/v1/ai/video/kling-v3-pro', { prompt: 'x' })).toMatchObject({
      status: 503,
      body: { message: 'Service Unavailable. Please try again later.' },
    });
  });

  it('a hanging answer → timeout', async () => {
    const hanging = heldCall();
    hanging.release();
    simulator.injectFault({ transport: 'hang', hold: hanging.hold });
    const error = await withClientTimerHeld(async (runOut) => {
      const answer = submit({ model: 'kling-v3', prompt: 'x' }, { timeoutMs: 150 }).catch((caught: unknown) => caught);
      // The client's 150 ms run out once the create is with the upstream, however slow the machine.
      await hanging.reached;
      await runOut(150);
      return answer;
    });
    expect(error).toMatchObject({ code: 'timeout', transport: 'timeout' });
  });

  it('a slow answer still succeeds', async () => {
    simulator.injectFault({ delayMs: 30 });
    expect((await submit({ model: 'kling-v3', prompt: 'x' })).providerStatus).toBe('CREATED');
  });

  it('hits status calls only when told to', async () => {
    simulator.injectFault({ on: 'status', kind: 'unavailable' });
    const created = await submit({ model: 'kling-v3', prompt: 'x' });
    const error = await freepikProvider.getStatus(created.ref, { http: client() }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ statusCode: 503, operation: 'status' });
    expect((await freepikProvider.getStatus(created.ref, { http: client() })).providerStatus).toBe('CREATED');
  });
});
