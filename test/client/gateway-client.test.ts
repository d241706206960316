/**
 * The typed client against a running gateway and its simulators (real clock, ~1 s tasks). Every
 * request the client makes and every answer it reads is held to openapi/gateway.json.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  GatewayClient,
  GatewayError,
  GatewayUnreachableError,
  OutputUnavailableError,
  WaitTimeoutError,
  type CreateVideoRequest,
  type Task,
} from '../../packages/client/src/index.js';
import { GatewayWebhookError, verifyGatewayWebhook } from '../../packages/client/src/webhooks.js';
import { contractCheckingFetch, type ContractCheckingFetch } from '../support/contract-checking-fetch.js';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET } from '../support/harness.js';
import { LIVE_TASK_MS, startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const textToVideo = { model: 'kling-v3', prompt: 'a red fox running through fresh snow', duration: 5 } as const;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A problem answer as the gateway sends it, with `Retry-After`. */
function problemAnswer(status: number, type: string, title: string, retryAfter: string): Promise<Response> {
  return Promise.resolve(
    new Response(JSON.stringify({ type, title, status, detail: 'try again' }), {
      status,
      headers: { 'content-type': 'application/problem+json', 'retry-after': retryAfter, 'x-request-id': 'test' },
    }),
  );
}

/**
 * `fetch` with every `?wait=` long poll taken and never answered until the request is aborted (a
 * proxy that holds it), and every event stream closed at once, empty (a proxy that cuts streams).
 */
function holdingWaits(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.endsWith('/events')) return Promise.resolve(new Response('', { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    if (!url.includes('?wait=')) return fetch(input, init);
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    return new Promise<Response>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
  };
}

describe('typed client against a running gateway', () => {
  let live: LiveGateway;
  let checked: ContractCheckingFetch;
  let client: GatewayClient;

  beforeAll(async () => {
    live = await startLiveGateway();
  });
  afterAll(async () => {
    await live.close();
  });
  beforeEach(() => {
    checked = contractCheckingFetch(live.url);
    client = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY, fetch: checked.fetch });
  });
  afterEach(() => {
    expect(checked.problems, 'the client and the gateway answered as openapi/gateway.json says').toEqual([]);
  });

  /**
   * A gateway of its own whose tasks run two minutes upstream: a test of a wait that gives up
   * cannot see its task end first however slow the machine (the shared gateway's end in under a second).
   */
  async function withLongTasks(test: (gateway: LiveGateway, client: GatewayClient, fetch: typeof globalThis.fetch) => Promise<void>): Promise<void> {
    const gateway = await startLiveGateway({ sandbox: { queued_ms: LIVE_TASK_MS.queued, processing_ms: 120_000 } });
    try {
      const own = contractCheckingFetch(gateway.url);
      await test(gateway, new GatewayClient({ baseUrl: gateway.url, apiKey: TENANT_KEY, fetch: own.fetch }), own.fetch);
      expect(own.problems, 'the client and the gateway answered as openapi/gateway.json says').toEqual([]);
    } finally {
      await gateway.close();
    }
  }

  it('creates, follows the event stream to success, and downloads the video without sending the key to the file host', async () => {
    const created = await client.createVideo(textToVideo, { idempotencyKey: 'client-test-1' });
    expect(created).toMatchObject({ object: 'video', model: 'kling-v3', provider: 'freepik' });
    expect(['queued', 'processing']).toContain(created.status);

    const seen: string[] = [];
    const done = await client.waitForVideo(created.id, { timeoutMs: 15_000, onUpdate: (task) => seen.push(task.status) });
    expect(done.status).toBe('succeeded');
    expect(seen.at(-1)).toBe('succeeded');
    expect(checked.calls.some((call) => call.url.endsWith(`/v1/videos/${created.id}/events`))).toBe(true);
    // The stream alone delivered the end: no polling was needed.
    expect(checked.calls.filter((call) => call.url.includes(`/v1/videos/${created.id}?wait=`))).toEqual([]);

    const download = await client.downloadOutput(done.id);
    expect(download.source).toBe('upstream');
    expect(download.contentType).toContain('video/mp4');
    const bytes = Buffer.from(await new Response(download.body).arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    expect(download.size).toBe(bytes.length);
    const fileCall = checked.calls.find((call) => call.url === done.outputs[0]!.url);
    expect(fileCall).toMatchObject({ status: 200, authorization: null });
    const apiCalls = checked.calls.filter((call) => call.url.startsWith(`${live.url}/v1/`));
    expect(apiCalls.every((call) => call.authorization === `Bearer ${TENANT_KEY}`)).toBe(true);

    // The same key and body give the same task back.
    const again = await client.createVideo(textToVideo, { idempotencyKey: 'client-test-1' });
    expect(again.id).toBe(created.id);
  });

  it('waits without a limit (timeoutMs: Infinity, or longer than a timer holds) on the event stream, without a Node warning', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      for (const timeoutMs of [Number.POSITIVE_INFINITY, 40 * 24 * 3600_000]) {
        const created = await client.createVideo(textToVideo);
        const done = await client.waitForVideo(created.id, { timeoutMs });
        expect(done.status).toBe('succeeded');
        expect(checked.calls.filter((call) => call.url.includes(`/v1/videos/${created.id}?wait=`))).toEqual([]);
      }
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });

  it('falls back to long polling when the event stream cannot be opened', async () => {
    const streamless = new GatewayClient({
      baseUrl: live.url,
      apiKey: TENANT_KEY,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (url.endsWith('/events')) return Promise.reject(new TypeError('fetch failed'));
        return checked.fetch(input, init);
      },
    });
    const created = await streamless.createVideo(textToVideo);
    const done = await streamless.waitForVideo(created.id, { timeoutMs: 15_000, pollWindowSeconds: 2 });
    expect(done.status).toBe('succeeded');
    expect(checked.calls.some((call) => call.url.includes(`/v1/videos/${created.id}?wait=`))).toBe(true);
  });

  it('goes on by polling when the event stream goes silent (a connection that died without closing)', async () => {
    let dropped = false;
    const silent = new GatewayClient({
      baseUrl: live.url,
      apiKey: TENANT_KEY,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (!url.endsWith('/events')) return checked.fetch(input, init);
        // Headers arrive, then nothing ever again: not an event, not a heartbeat, not a close.
        const body = new ReadableStream<Uint8Array>({ cancel: () => void (dropped = true) });
        return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
      },
    });
    const created = await silent.createVideo(textToVideo);
    const done = await silent.waitForVideo(created.id, { timeoutMs: 8_000, pollWindowSeconds: 2, streamIdleTimeoutMs: 200 });
    expect(done.status).toBe('succeeded');
    expect(dropped).toBe(true);
    expect(checked.calls.some((call) => call.url.includes(`/v1/videos/${created.id}?wait=`))).toBe(true);
  });

  it('keeps waiting through a stopping replica, a full wait cap and a lost connection while it polls', async () => {
    const hiccups = [
      // What a stopping replica answers (stop-gate.ts), and the cap of open waits (tenant-limits.ts).
      () => problemAnswer(503, 'retry-later', 'Retry later', '0'),
      () => problemAnswer(429, 'rate-limited', 'Too many requests', '0'),
      () => Promise.reject(new TypeError('fetch failed')),
    ];
    const flaky = new GatewayClient({
      baseUrl: live.url,
      apiKey: TENANT_KEY,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (url.endsWith('/events')) return Promise.reject(new TypeError('fetch failed'));
        const hiccup = url.includes('?wait=') ? hiccups.shift() : undefined;
        return hiccup ? hiccup() : checked.fetch(input, init);
      },
    });
    const created = await flaky.createVideo(textToVideo);
    const done = await flaky.waitForVideo(created.id, { timeoutMs: 15_000, pollWindowSeconds: 2 });
    expect(done.status).toBe('succeeded');
    expect(hiccups).toEqual([]);
  });

  it('still stops waiting at once on an answer that says the wait itself is wrong', async () => {
    const error = await client.waitForVideo('vid_nothing', { timeoutMs: 15_000, transport: 'poll' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).status).toBe(404);
  });

  it('gives up with WaitTimeoutError carrying the task as last seen', async () => {
    await withLongTasks(async (_gateway, own) => {
      const created = await own.createVideo(textToVideo);
      const error = await own.waitForVideo(created.id, { timeoutMs: 150 }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(WaitTimeoutError);
      expect((error as WaitTimeoutError).task.id).toBe(created.id);
      expect(['queued', 'processing']).toContain((error as WaitTimeoutError).task.status);
    });
  });

  it('gives up at its own timeoutMs while a long poll goes unanswered (a proxy holding it), not at the client\'s answer limit', async () => {
    await withLongTasks(async (gateway, own, fetch) => {
      // The client's own answer limit is off, so only the wait's timeoutMs can end a held poll.
      const held = new GatewayClient({ baseUrl: gateway.url, apiKey: TENANT_KEY, timeoutMs: 0, fetch: holdingWaits(fetch) });
      for (const transport of ['poll', 'auto'] as const) {
        const created = await own.createVideo(textToVideo);
        const error = await held.waitForVideo(created.id, { timeoutMs: 300, transport }).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(WaitTimeoutError);
        expect((error as WaitTimeoutError).task.id).toBe(created.id);
      }
    });
  });

  it('a task that ended while every poll went unanswered is returned, not a WaitTimeoutError saying it is "still succeeded"', async () => {
    const created = await client.createVideo(textToVideo);
    await client.waitForVideo(created.id, { timeoutMs: 15_000 });
    const held = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY, timeoutMs: 0, fetch: holdingWaits(checked.fetch) });
    const done = await held.waitForVideo(created.id, { timeoutMs: 300, transport: 'poll' });
    expect(done).toMatchObject({ id: created.id, status: 'succeeded' });
  });

  it('pages through the list newest first, and quotes without creating anything', async () => {
    const other = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY, fetch: checked.fetch });
    const made: Task[] = [];
    for (let index = 0; index < 3; index += 1) made.push(await other.createVideo({ ...textToVideo, prompt: `paging ${index}` }));
    const first = await other.listVideos({ limit: 2 });
    expect(first.data.map((task) => task.id)).toEqual([made[2]!.id, made[1]!.id]);
    expect(first.next_cursor).toEqual(expect.any(String));
    const all: string[] = [];
    for await (const task of other.listAllVideos({ limit: 2 })) all.push(task.id);
    expect(all).toEqual(made.map((task) => task.id).reverse());

    const quote = await other.quote({ ...textToVideo, duration: 10 });
    expect(quote.order[0]).toBe('freepik');
    expect(quote.providers.find((provider) => provider.provider === 'freepik')).toMatchObject({ eligible: true, estimated_credits: 112 });
    expect((await other.listVideos({ limit: 100 })).data).toHaveLength(3);

    const models = await other.listModels();
    expect(models.data.map((entry) => entry.model)).toContain('kling-v3');
    const providers = await other.listProviders();
    expect(providers.data.map((provider) => provider.id).sort()).toEqual(['freepik', 'kling-legacy', 'kling3api']);
  });

  it('turns answers into GatewayError with the problem details, and a dead address into GatewayUnreachableError', async () => {
    const invalid = await client.createVideo({ ...textToVideo, duration: 99 }).catch((caught: unknown) => caught);
    expect(invalid).toBeInstanceOf(GatewayError);
    expect((invalid as GatewayError).status).toBe(400);
    expect((invalid as GatewayError).problem.errors?.map((error) => error.path)).toContain('duration');
    expect((invalid as GatewayError).requestId).toEqual(expect.any(String));
    // Logged on its own, the message says which field to fix.
    expect((invalid as GatewayError).message).toBe('Invalid request (duration: must be at most 15)');
    // The contract check saw the same thing the gateway did (so it is not a check that cannot fail).
    expect(checked.problems.splice(0)).toEqual(['POST /v1/videos: body /duration must be <= 15']);

    const missing = await client.getVideo('vid_doesnotexist').catch((caught: unknown) => caught);
    expect(missing).toMatchObject({ status: 404 });

    const wrongKey = new GatewayClient({ baseUrl: live.url, apiKey: 'not-a-key', fetch: checked.fetch });
    await expect(wrongKey.listVideos()).rejects.toMatchObject({ name: 'GatewayError', status: 401 });
    await expect(wrongKey.waitForVideo('vid_x', { timeoutMs: 5_000 })).rejects.toMatchObject({ status: 401 });

    const server = createServer();
    const deadUrl = await listen(server);
    server.close();
    await expect(new GatewayClient({ baseUrl: deadUrl, apiKey: TENANT_KEY }).listVideos()).rejects.toBeInstanceOf(GatewayUnreachableError);
  });

  it("says a 422 no provider can serve once: each provider's reasons by field, the rest by provider, the title once", async () => {
    // The gateway's detail quotes every reason again after its title, for clients that show only it.
    const noPrompt = await client.createVideo({ model: 'kling-v3' } as CreateVideoRequest).catch((caught: unknown) => caught);
    expect(noPrompt).toMatchObject({ name: 'GatewayError', status: 422 });
    expect((noPrompt as GatewayError).message).toBe(
      'No provider can serve this request (prompt: freepik: prompt or multi_shot is required for kling-v3 text-to-video | kling3api: prompt is required for kling-v3 text-to-video | kling-legacy: prompt is required for kling-v3 text-to-video)',
    );
    const pinned = await client
      .createVideo({ model: 'kling-v3', prompt: 'a fox', operation: 'video-extend', video_id: 'v-1', routing: { providers: ['freepik'], allow_fallbacks: false } })
      .catch((caught: unknown) => caught);
    const message = (pinned as GatewayError).message;
    expect(message.startsWith('No provider can serve this request (freepik: ')).toBe(true);
    expect(message.match(/No provider can serve this request/g)).toHaveLength(1);
    expect(message.match(/not listed in routing\.providers/g)).toHaveLength(2);
    expect(message).toContain(' | kling3api: not listed in routing.providers; ');
  });

  it('refuses an empty Idempotency-Key rather than creating without one', async () => {
    const before = (await client.listVideos({ limit: 100 })).data.length;
    await expect(client.createVideo(textToVideo, { idempotencyKey: '' })).rejects.toThrow(new TypeError('idempotencyKey is empty: give a key, or leave it out'));
    expect((await client.listVideos({ limit: 100 })).data.length).toBe(before);
  });

  it.each([[''], ['.'], ['..']])('refuses the task id %j, which would reach another route (the list, /v1/), sending nothing', async (id) => {
    let sent = 0;
    const counting = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY, fetch: (input, init) => ((sent += 1), checked.fetch(input, init)) });
    const refusal = new TypeError(`task id ${JSON.stringify(id)} names no task: it would send the request to another route`);
    await expect(counting.getVideo(id)).rejects.toThrow(refusal);
    await expect(counting.waitForVideo(id, { timeoutMs: 5_000 })).rejects.toThrow(refusal);
    await expect(counting.videoEvents(id).next()).rejects.toThrow(refusal);
    await expect(counting.cancelVideo(id)).rejects.toThrow(refusal);
    await expect(counting.webhookDeliveries(id)).rejects.toThrow(refusal);
    await expect(counting.downloadOutput(id)).rejects.toThrow(refusal);
    expect(sent).toBe(0);
  });

  it('refuses at once a base URL that is not http(s), rather than failing every call as unreachable', () => {
    // `localhost:8080` parses as a URL whose scheme is "localhost:".
    expect(() => new GatewayClient({ baseUrl: 'localhost:8080', apiKey: TENANT_KEY })).toThrow(
      new TypeError('baseUrl localhost:8080 is not an http(s) URL (e.g. http://localhost:8080)'),
    );
    expect(() => new GatewayClient({ baseUrl: 'ftp://gateway.example', apiKey: TENANT_KEY })).toThrow(/^baseUrl ftp:\/\/gateway\.example is not an http\(s\) URL/);
    // fetch refuses every request to a port of another protocol with a bare "bad port".
    expect(() => new GatewayClient({ baseUrl: 'http://127.0.0.1:6000', apiKey: TENANT_KEY })).toThrow(/^baseUrl http:\/\/127\.0\.0\.1:6000 has port 6000, which fetch \(as browsers\) never connects to/);
    expect(() => new GatewayClient({ baseUrl: 'http://gateway.example:70000', apiKey: TENANT_KEY })).toThrow(
      new TypeError('baseUrl http://gateway.example:70000 is not a valid URL: its port 70000 is past 65535'),
    );
    // fetch refuses every request with a key a header cannot carry, quoting the whole key.
    expect(() => new GatewayClient({ baseUrl: 'http://gateway.example', apiKey: 'sk-secret\nrest' })).toThrow(
      new TypeError('apiKey holds a line break, which an HTTP header cannot carry'),
    );
    // node's fetch refuses any other control character too ("fetch failed"), read as an unreachable gateway.
    expect(() => new GatewayClient({ baseUrl: 'http://gateway.example', apiKey: 'sk-secret\u0001rest' })).toThrow(
      new TypeError('apiKey holds a control character (U+0001), which an HTTP header cannot carry'),
    );
    expect(() => new GatewayClient({ baseUrl: 'http://gateway.example', apiKey: 'sk-secret\u007frest' })).toThrow(
      new TypeError('apiKey holds a control character (U+007F), which an HTTP header cannot carry'),
    );
    // fetch refuses every request to a URL with a password in it, and its message repeats it.
    expect(() => new GatewayClient({ baseUrl: 'https://admin:s3cret-pw@gateway.example', apiKey: TENANT_KEY })).toThrow(
      new TypeError('baseUrl https://***@gateway.example holds a user name or password: fetch cannot send them (the gateway key goes in apiKey)'),
    );
    // An unescaped `@` in the password: the user part runs to the last one.
    expect(() => new GatewayClient({ baseUrl: 'https://admin:s3cret@pw@gateway.example', apiKey: TENANT_KEY })).toThrow(
      new TypeError('baseUrl https://***@gateway.example holds a user name or password: fetch cannot send them (the gateway key goes in apiKey)'),
    );
  });

  it('finds cancel, content, usage and webhooks in the OpenAPI document, reads usage as JSON and CSV, and works without the document', async () => {
    expect(await client.hasEndpoint('cancel')).toBe(true);
    expect(await client.hasEndpoint('content')).toBe(true);
    // This gateway has GET /v1/usage (issue 15): the client reads it through the same document.
    expect(await client.hasEndpoint('usage')).toBe(true);
    expect(await client.hasEndpoint('webhooks')).toBe(true);
    await expect(client.webhookDeliveries('vid_x')).rejects.toMatchObject({ status: 404 });
    await expect(client.cancelVideo('vid_x')).rejects.toMatchObject({ status: 404 });
    const usage = await client.usage({ group_by: ['provider'] });
    expect(Array.isArray(usage.data)).toBe(true);
    expect(await client.usageCsv({ group_by: ['provider'] })).toMatch(/^provider,currency,tasks,/);

    // Without /openapi.json the endpoints are simply tried.
    const blind = new GatewayClient({
      baseUrl: live.url,
      apiKey: TENANT_KEY,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        return url.endsWith('/openapi.json') ? Promise.resolve(new Response('', { status: 404 })) : checked.fetch(input, init);
      },
    });
    expect(await blind.hasEndpoint('usage')).toBeNull();
    expect(Array.isArray((await blind.usage({ group_by: ['day'] })).data)).toBe(true);
    // A 404 for a task that does not exist stays a 404.
    await expect(blind.cancelVideo('vid_x')).rejects.toMatchObject({ status: 404 });
    await expect(blind.getVideo('vid_nope')).rejects.toMatchObject({ status: 404 });
  });

  it('verifies the outbound webhooks the gateway signs, and refuses a tampered one', async () => {
    const received: { body: string; headers: Record<string, string | string[] | undefined> }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        received.push({ body, headers: req.headers });
        res.writeHead(204).end();
      });
    });
    const receiverUrl = await listen(receiver);
    try {
      const created = await client.createVideo({ ...textToVideo, webhook_url: `${receiverUrl}/hooks` });
      await client.waitForVideo(created.id, { timeoutMs: 15_000 });
      const deadline = Date.now() + 10_000;
      while (!received.some((hook) => hook.body.includes('video.succeeded')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const succeeded = received.find((hook) => hook.body.includes('video.succeeded'))!;
      const event = verifyGatewayWebhook(succeeded.body, succeeded.headers, TENANT_WEBHOOK_SECRET);
      expect(event).toMatchObject({ type: 'video.succeeded', data: { id: created.id, status: 'succeeded' } });
      expect(() => verifyGatewayWebhook(succeeded.body.replace('succeeded', 'failed'), succeeded.headers, TENANT_WEBHOOK_SECRET)).toThrow(
        GatewayWebhookError,
      );
      expect(() => verifyGatewayWebhook(succeeded.body, succeeded.headers, 'whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==')).toThrow(
        GatewayWebhookError,
      );
    } finally {
      receiver.close();
    }
  });
});

describe('typed client against a gateway that has cancel, content and usage', () => {
  let server: Server;
  let url: string;
  const seen: { method: string; path: string; authorization: string | undefined }[] = [];
  const task = (status: string): Record<string, unknown> => ({
    id: 'vid_newer',
    object: 'video',
    status,
    model: 'kling-v3',
    quality: 'pro',
    operation: 'text-to-video',
    created_at: '2026-11-22T12:00:00.000Z',
    updated_at: '2026-11-22T12:00:01.000Z',
    completed_at: status === 'canceled' ? '2026-11-22T12:00:01.000Z' : null,
    provider: null,
    provider_task_id: null,
    provider_status: null,
    outputs: [{ type: 'video', url: 'https://files.provider.example/v.mp4', duration: 5 }],
    error: null,
    cost: { credits: 0, estimated: false, currency_amount: 0, currency: 'USD' },
    attempts: [],
    warnings: [],
    metadata: {},
    request: {},
  });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
      const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (path === '/openapi.json') {
        return json(200, {
          paths: {
            '/v1/videos/{id}': { get: {} },
            '/v1/videos/{id}/cancel': { post: {} },
            '/v1/videos/{id}/content': { get: {} },
            '/v1/usage': { get: {} },
          },
        });
      }
      if (req.method === 'GET' && path === '/v1/videos/vid_newer') return json(200, task('succeeded'));
      if (req.method === 'POST' && path === '/v1/videos/vid_newer/cancel') return json(200, task('canceled'));
      if (req.method === 'POST' && path === '/v1/videos/vid_held/cancel') {
        return res
          .writeHead(409, { 'content-type': 'application/problem+json' })
          .end(JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, detail: 'a provider holds it' }));
      }
      if (req.method === 'GET' && path === '/v1/videos/vid_presigned') return json(200, task('succeeded'));
      if (path === '/v1/videos/vid_presigned/content') {
        // The stored copy is served from object storage: a redirect to a presigned URL elsewhere.
        return res.writeHead(302, { location: `${fileHost}/bucket/vid_presigned-0.mp4?X-Amz-Expires=60` }).end();
      }
      if (path === '/v1/videos/vid_newer/content') {
        return res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': '4' }).end(Buffer.from('mp4!'));
      }
      if (path === '/v1/usage') {
        return json(200, { data: [{ provider: 'freepik', tasks: 2, currency_amount: 1.12, currency: 'USD' }] });
      }
      return json(404, { type: 'about:blank', title: 'Not found', status: 404, detail: `no route for ${req.method} ${path}` });
    });
    url = await listen(server);
    files = createServer((req, res) => {
      fileHostSaw.push(req.headers.authorization);
      // A presigned link past its time (or signed by a clock that is off): S3 answers 403 in XML.
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    });
    fileHost = await listen(files);
  });
  afterAll(() => {
    server.close();
    files.close();
  });
  let files: Server;
  let fileHost = '';
  const fileHostSaw: (string | undefined)[] = [];

  it('a download the gateway redirects to another host that refuses it is OutputUnavailableError, not a refusal of the key', async () => {
    const client = new GatewayClient({ baseUrl: url, apiKey: TENANT_KEY });
    const error = await client.downloadOutput('vid_presigned').catch((caught: unknown) => caught);
    // A GatewayError 403 reads as "the gateway key is not valid" (the CLI's exit 4).
    expect(error).toBeInstanceOf(OutputUnavailableError);
    expect(error).toMatchObject({ id: 'vid_presigned', index: 0, status: 403 });
    expect((error as Error).message).toBe(
      `output 0 of video vid_presigned cannot be downloaded: ${fileHost}, where the gateway sent the download, answered 403 (its copy is gone or its link expired)`,
    );
    // The key went to the gateway only.
    expect(fileHostSaw).toEqual([undefined]);
  });

  it('a /openapi.json it could not read is read again at the next call, not taken as "no document" for the client\'s life', async () => {
    let documentReads = 0;
    const client = new GatewayClient({
      baseUrl: url,
      apiKey: TENANT_KEY,
      fetch: (input, init) => {
        const target = input instanceof Request ? input.url : String(input);
        // The first read of the document meets a gateway that is restarting.
        if (target.endsWith('/openapi.json') && ++documentReads === 1) return Promise.resolve(new Response('', { status: 503 }));
        return fetch(input, init);
      },
    });
    expect(await client.hasEndpoint('cancel')).toBeNull();
    expect(await client.hasEndpoint('cancel')).toBe(true);
    expect(await client.hasEndpoint('webhooks')).toBe(false);
    // Read once more, then kept.
    expect(documentReads).toBe(2);
  });

  it('cancels, downloads the stored copy with the key, and reads usage', async () => {
    const client = new GatewayClient({ baseUrl: url, apiKey: TENANT_KEY });
    expect(await client.hasEndpoint('cancel')).toBe(true);
    expect(await client.cancelVideo('vid_newer')).toMatchObject({ id: 'vid_newer', status: 'canceled' });
    await expect(client.cancelVideo('vid_held')).rejects.toMatchObject({ status: 409, problem: { detail: 'a provider holds it' } });

    const download = await client.downloadOutput('vid_newer', { index: 0 });
    expect(download).toMatchObject({ source: 'gateway', size: 4, contentType: 'video/mp4' });
    expect(Buffer.from(await new Response(download.body).arrayBuffer()).toString()).toBe('mp4!');

    const usage = await client.usage({ group_by: ['provider', 'day'], from: '2026-11-01' });
    expect(usage.data[0]).toMatchObject({ provider: 'freepik', currency_amount: 1.12 });
    expect(seen.find((call) => call.path.startsWith('/v1/usage'))?.path).toBe('/v1/usage?group_by=provider%2Cday&from=2026-11-01');
    expect(seen.filter((call) => call.path.startsWith('/v1/')).every((call) => call.authorization === `Bearer ${TENANT_KEY}`)).toBe(true);
  });

  it('reads usage grouped as the API writes it, a comma-separated group_by (plain JavaScript copying the curl examples)', async () => {
    const client = new GatewayClient({ baseUrl: url, apiKey: TENANT_KEY });
    const before = seen.length;
    const usage = await client.usage({ group_by: 'provider,model', from: '2026-11-01' });
    expect(usage.data[0]).toMatchObject({ provider: 'freepik' });
    await client.usageCsv({ group_by: 'day' });
    expect(seen.slice(before).map((call) => call.path).filter((path) => path.startsWith('/v1/usage'))).toEqual([
      '/v1/usage?group_by=provider%2Cmodel&from=2026-11-01',
      '/v1/usage?group_by=day&format=csv',
    ]);
  });
});

describe('webhook verification', () => {
  it('accepts what standardwebhooks signs with the secret and refuses an old timestamp', () => {
    const body = JSON.stringify({ type: 'video.failed', timestamp: new Date().toISOString(), data: { id: 'vid_1', status: 'failed' } });
    const webhook = new Webhook(TENANT_WEBHOOK_SECRET);
    const now = new Date();
    const headers = new Headers({
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': webhook.sign('msg_1', now, body),
    });
    expect(verifyGatewayWebhook(new TextEncoder().encode(body), headers, TENANT_WEBHOOK_SECRET).type).toBe('video.failed');

    const old = new Date(Date.now() - 3600_000);
    const stale = {
      'webhook-id': 'msg_2',
      'webhook-timestamp': String(Math.floor(old.getTime() / 1000)),
      'webhook-signature': webhook.sign('msg_2', old, body),
    };
    expect(() => verifyGatewayWebhook(body, stale, TENANT_WEBHOOK_SECRET)).toThrow(GatewayWebhookError);
  });

  it('takes several secrets (a rotation): accepts a webhook any one of them verifies, in either signature of the header', () => {
    const next = `whsec_${Buffer.from('the next signing key').toString('base64')}`;
    const retired = `whsec_${Buffer.from('a retired signing key').toString('base64')}`;
    const body = JSON.stringify({ type: 'video.succeeded', timestamp: new Date().toISOString(), data: { id: 'vid_1', status: 'succeeded' } });
    const now = new Date();
    const signed = (...secrets: string[]) => ({
      'webhook-id': 'msg_rotated',
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': secrets.map((secret) => new Webhook(secret).sign('msg_rotated', now, body)).join(' '),
    });
    // The gateway mid-rotation signs with both; a receiver mid-rotation holds both; either side may be ahead.
    expect(verifyGatewayWebhook(body, signed(next, TENANT_WEBHOOK_SECRET), [TENANT_WEBHOOK_SECRET]).type).toBe('video.succeeded');
    expect(verifyGatewayWebhook(body, signed(TENANT_WEBHOOK_SECRET), [next, TENANT_WEBHOOK_SECRET]).type).toBe('video.succeeded');
    expect(verifyGatewayWebhook(body, signed(next), [next, TENANT_WEBHOOK_SECRET]).data.id).toBe('vid_1');
    expect(() => verifyGatewayWebhook(body, signed(next, TENANT_WEBHOOK_SECRET), [retired])).toThrow(GatewayWebhookError);
    expect(() => verifyGatewayWebhook(body, signed(next), [])).toThrow(GatewayWebhookError);
  });
});
