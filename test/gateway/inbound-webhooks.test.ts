import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { ManualClock } from '../../src/core/clock.js';
import { freepikProvider } from '../../src/providers/freepik/freepik-provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { liveEndpoint, startSandbox } from '../../src/sandbox/sandbox.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway, type TestGatewayOptions } from '../support/harness.js';
import { heldCall, type HeldCall } from '../support/held-call.js';
import { loopbackServer } from '../support/raw-answer.js';

const request = { model: 'kling-v3', prompt: 'waves on a pebble beach', duration: 5 };

/** Posts a Freepik webhook, signed with `secret` unless a signature is given. */
async function postFreepikWebhook(
  gw: TestGateway,
  body: unknown,
  options: { id?: string; timestamp?: number; secret?: string; signature?: string } = {},
) {
  const raw = JSON.stringify(body);
  const id = options.id ?? `wh_${Math.random().toString(16).slice(2)}`;
  const timestamp = String(options.timestamp ?? Math.floor(gw.clock.now() / 1000));
  const secret = options.secret ?? gw.endpoints.get('freepik')!.webhookSecret!;
  const signature = options.signature ?? signFreepikWebhook(secret, id, timestamp, raw);
  return gw.request(
    'POST',
    '/v1/webhooks/freepik',
    raw,
    { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature },
    null,
  );
}

/**
 * An upstream on loopback answering each request with the JSON `answer` gives for its method,
 * parsed body and path: for upstreams that do something (post a webhook) before they answer.
 */
function fakeJsonUpstream(answer: (method: string, body: unknown, url: string) => Promise<unknown>) {
  return loopbackServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      void answer(req.method ?? 'GET', raw === '' ? undefined : JSON.parse(raw), req.url ?? '').then((body) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      });
    });
  });
}

/** A `v1,` entry keyed with `key`'s UTF-8 bytes, as the seed's Python and JavaScript samples sign. */
function hmacEntry(key: string, id: string, at: Date, raw: string): string {
  return `v1,${createHmac('sha256', Buffer.from(key, 'utf8')).update(`${id}.${Math.floor(at.getTime() / 1000)}.${raw}`).digest('base64')}`;
}

describe('inbound Freepik webhooks', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    await gw.close();
  });

  async function acceptedTask() {
    const created = await gw.create(request);
    expect(created.body.status).toBe('queued');
    return created.body as { id: string; provider_task_id: string };
  }

  it('applies a correctly signed webhook at once, without polling', async () => {
    const task = await acceptedTask();
    const url = 'https://cdn.example.com/result.mp4';
    const answer = await postFreepikWebhook(gw, { task_id: task.provider_task_id, status: 'COMPLETED', generated: [url] });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: true, matched: true });
    const after = (await gw.get(task.id)).body;
    expect(after.status).toBe('succeeded');
    expect(after.outputs).toEqual([
      {
        type: 'video',
        url,
        url_expires_at: null,
        duration: null,
        upstream_url: url,
        upstream_id: null,
        upstream_url_expires_at: null,
        upstream_url_gone: false,
        storage: 'passthrough',
        storage_error: null,
        sha256: null,
        bytes: null,
        content_type: null,
        stored_at: null,
        expires_at: null,
      },
    ]);
    const statusCalls = gw.simulator('freepik').requests.filter((r) => r.method === 'GET');
    expect(statusCalls).toHaveLength(0);
  });

  it('refuses a bad signature with 401 and changes nothing', async () => {
    const task = await acceptedTask();
    const answer = await postFreepikWebhook(
      gw,
      { task_id: task.provider_task_id, status: 'COMPLETED', generated: ['https://evil.example/x.mp4'] },
      { secret: 'not-the-secret' },
    );
    expect(answer.status).toBe(401);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    const after = (await gw.get(task.id)).body;
    expect(after.status).toBe('queued');
    expect(after.outputs).toEqual([]);
  });

  it('refuses a tampered body (signature over other bytes)', async () => {
    const task = await acceptedTask();
    const id = 'wh_tampered';
    const timestamp = String(Math.floor(gw.clock.now() / 1000));
    const signed = JSON.stringify({ task_id: task.provider_task_id, status: 'IN_PROGRESS', generated: [] });
    const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, id, timestamp, signed);
    const answer = await postFreepikWebhook(
      gw,
      { task_id: task.provider_task_id, status: 'FAILED', generated: [] },
      { id, timestamp: Number(timestamp), signature },
    );
    expect(answer.status).toBe(401);
    expect((await gw.get(task.id)).body.status).toBe('queued');
  });

  it('refuses stale and future timestamps outside the tolerance', async () => {
    const task = await acceptedTask();
    const body = { task_id: task.provider_task_id, status: 'FAILED', generated: [] };
    const now = Math.floor(gw.clock.now() / 1000);
    const stale = await postFreepikWebhook(gw, body, { timestamp: now - 6 * 60 });
    expect(stale.status).toBe(401);
    expect(stale.body.detail).toMatch(/too old/);
    const future = await postFreepikWebhook(gw, body, { timestamp: now + 6 * 60 });
    expect(future.status).toBe(401);
    expect((await gw.get(task.id)).body.status).toBe('queued');
    // Within the tolerance it is accepted.
    const recent = await postFreepikWebhook(gw, body, { timestamp: now - 4 * 60 });
    expect(recent.status).toBe(200);
    expect((await gw.get(task.id)).body.status).toBe('failed');
  });

  it('takes a timestamp exactly five minutes old or ahead at any point of the current second, as Standard Webhooks counts (whole seconds)', async () => {
    const task = await acceptedTask();
    const body = { task_id: task.provider_task_id, status: 'IN_PROGRESS', generated: [] };
    // 900 ms into a second: a sender's clock reads the same second.
    await gw.clock.advance(1_000 - (gw.clock.now() % 1_000) + 900);
    const now = Math.floor(gw.clock.now() / 1000);
    expect((await postFreepikWebhook(gw, body, { timestamp: now - 300 })).status).toBe(200);
    expect((await postFreepikWebhook(gw, body, { timestamp: now + 300 })).status).toBe(200);
    const stale = await postFreepikWebhook(gw, body, { timestamp: now - 301 });
    expect([stale.status, stale.body.detail]).toEqual([401, 'webhook-timestamp is too old']);
    const future = await postFreepikWebhook(gw, body, { timestamp: now + 301 });
    expect([future.status, future.body.detail]).toEqual([401, 'webhook-timestamp is in the future']);
  });

  it('ignores a replayed webhook-id even when re-signed with different content', async () => {
    const task = await acceptedTask();
    const first = await postFreepikWebhook(gw, { task_id: task.provider_task_id, status: 'IN_PROGRESS', generated: [] }, { id: 'wh_once' });
    expect(first.body).toEqual({ received: true, matched: true });
    expect((await gw.get(task.id)).body.provider_status).toBe('IN_PROGRESS');
    const replay = await postFreepikWebhook(
      gw,
      { task_id: task.provider_task_id, status: 'FAILED', generated: [] },
      { id: 'wh_once' },
    );
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ received: true, duplicate: true });
    const after = (await gw.get(task.id)).body;
    expect(after.status).toBe('processing');
    expect(after.provider_status).toBe('IN_PROGRESS');
  });

  it('knows a replay of a webhook that changed nothing, and of one that finished the task', async () => {
    const task = await acceptedTask();
    const progress = { task_id: task.provider_task_id, status: 'IN_PROGRESS', generated: [] };
    await postFreepikWebhook(gw, progress, { id: 'wh_progress_1' });
    // The same news again under a new id changes nothing, and is still remembered.
    const same = await postFreepikWebhook(gw, progress, { id: 'wh_progress_2' });
    expect(same.body).toEqual({ received: true, matched: true });
    expect((await postFreepikWebhook(gw, progress, { id: 'wh_progress_2' })).body).toEqual({ received: true, duplicate: true });
    const failed = { task_id: task.provider_task_id, status: 'FAILED', generated: [] };
    expect((await postFreepikWebhook(gw, failed, { id: 'wh_failed' })).body).toEqual({ received: true, matched: true });
    expect((await gw.get(task.id)).body.status).toBe('failed');
    expect((await postFreepikWebhook(gw, failed, { id: 'wh_failed' })).body).toEqual({ received: true, duplicate: true });
  });

  it('refuses webhooks without the three headers', async () => {
    const answer = await gw.request('POST', '/v1/webhooks/freepik', JSON.stringify({ task_id: 'x', status: 'COMPLETED' }), {}, null);
    expect(answer.status).toBe(401);
  });

  it('acknowledges a verified webhook about a task it does not know, changing nothing', async () => {
    const answer = await postFreepikWebhook(gw, { task_id: '00000000-0000-4000-8000-000000000000', status: 'COMPLETED', generated: [] });
    expect(answer.body).toEqual({ received: true, matched: false });
  });

  it('acknowledges a verified webhook that names no task (a retry would change nothing), changing nothing', async () => {
    const task = await acceptedTask();
    const answer = await postFreepikWebhook(gw, { status: 'COMPLETED', generated: ['https://cdn.example.com/x.mp4'] });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: true, matched: false });
    expect((await gw.get(task.id)).body.status).toBe('queued');
  });

  it('finishes a task from the simulator’s own signed webhooks', async () => {
    const task = await acceptedTask();
    await gw.clock.advance(5_000);
    await gw.advanceUntil(async () => (await gw.get(task.id)).body.status === 'succeeded', 10);
    const freepikStatusCalls = gw.simulator('freepik').requests.filter((r) => r.method === 'GET' && !r.path.startsWith('/sim-files'));
    // The webhook made polling unnecessary: the first poll is not due yet.
    expect(freepikStatusCalls).toHaveLength(0);
  });
});

describe('legacy Kling-API callbacks', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    await gw.close();
  });

  it('answers 404 for an unknown token and changes nothing', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    expect(created.body.provider).toBe('kling-legacy');
    const answer = await gw.request(
      'POST',
      '/v1/webhooks/kling-legacy/not-a-token',
      JSON.stringify({ task_id: created.body.provider_task_id, task_status: 'succeed' }),
      {},
      null,
    );
    expect(answer.status).toBe(404);
    expect((await gw.get(created.body.id)).body.status).toBe('queued');
  });

  it('answers 404 to a callback on the token of a task another provider holds, and asks no upstream', async () => {
    // Every task has a token; only a task the legacy Kling-API holds is its callbacks' to name.
    const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse at dusk', routing: { providers: ['freepik'] } });
    expect(created.body.provider).toBe('freepik');
    const task = await gw.gateway.store.getTask(created.body.id);
    const statusCalls = () => gw.simulator('freepik').requests.filter((r) => r.method === 'GET').length;
    const before = statusCalls();
    const answer = await gw.request(
      'POST',
      `/v1/webhooks/kling-legacy/${task!.callback_token}`,
      JSON.stringify({ task_id: created.body.provider_task_id, task_status: 'succeed' }),
      {},
      null,
    );
    expect(answer.status).toBe(404);
    await gw.gateway.runOnce();
    expect(statusCalls()).toBe(before);
  });

  it('does not believe a callback body: it confirms with a status fetch', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    const task = await gw.gateway.store.getTask(created.body.id);
    const path = `/v1/webhooks/kling-legacy/${task!.callback_token}`;
    const before = gw.simulator('kling-legacy').requests.filter((r) => r.method === 'GET').length;
    // A forged "succeed" while the upstream task is still processing.
    const answer = await gw.request(
      'POST',
      path,
      JSON.stringify({ task_id: created.body.provider_task_id, task_status: 'succeed', task_result: { videos: [{ url: 'https://evil.example/x.mp4' }] } }),
      {},
      null,
    );
    expect(answer.status).toBe(200);
    await gw.gateway.runOnce();
    const after = (await gw.get(created.body.id)).body;
    expect(after.status).toBe('queued');
    expect(after.outputs).toEqual([]);
    const fetched = gw.simulator('kling-legacy').requests.filter((r) => r.method === 'GET').length;
    expect(fetched).toBe(before + 1);
  });

  it('checks a progress callback with one upstream call while the task waits in the queue, and spends none once it runs', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    const task = await gw.gateway.store.getTask(created.body.id);
    const statusCalls = () => gw.simulator('kling-legacy').requests.filter((r) => r.method === 'GET').length;
    const claimProgress = async () => {
      const answer = await gw.request(
        'POST',
        `/v1/webhooks/kling-legacy/${task!.callback_token}`,
        JSON.stringify({ task_id: created.body.provider_task_id, task_status: 'processing' }),
        {},
        null,
      );
      expect(answer.status).toBe(200);
      await gw.gateway.runOnce();
    };
    const before = statusCalls();
    await claimProgress();
    expect(statusCalls()).toBe(before + 1);
    // The aggregator still says `submitted`: the callback's word is not believed.
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'queued', provider_status: 'submitted' });

    await gw.advanceUntil(async () => (await gw.get(created.body.id)).body.status === 'processing', 500, 20);
    const running = statusCalls();
    await claimProgress();
    expect(statusCalls()).toBe(running);
  });

  it('refuses a callback naming another task id', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    const task = await gw.gateway.store.getTask(created.body.id);
    const answer = await gw.request(
      'POST',
      `/v1/webhooks/kling-legacy/${task!.callback_token}`,
      JSON.stringify({ task_id: 'someone-else', task_status: 'succeed' }),
      {},
      null,
    );
    expect(answer.status).toBe(400);
  });

  it('finishes a task from the simulator’s real callbacks, confirmed by fetching', async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    const done = await gw.finish(created.body.id, 500);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0].type).toBe('video');
    const bytes = Buffer.from(await (await fetch(done.outputs[0].url)).arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
  });
});

describe('news that arrives while its create is still being recorded', () => {
  let gw: TestGateway;
  let held: HeldCall | undefined;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    // A case that failed midway left its create held.
    held?.release();
    held = undefined;
    await gw.close();
  });

  /** Starts a create the provider holds until `release`; resolves once the request has reached it. */
  async function createInFlight(provider: string, body: unknown) {
    const hold = heldCall();
    held = hold;
    gw.simulator(provider).injectFault({ hold: hold.hold });
    const created = gw.create(body);
    await hold.reached;
    return { created, release: hold.release };
  }

  it('asks Freepik to retry a webhook it cannot match yet (503, Retry-After), and acknowledges it once nothing is in flight', async () => {
    const { created, release } = await createInFlight('freepik', request);
    const unknown = { task_id: '00000000-0000-4000-8000-000000000000', status: 'COMPLETED', generated: [] };
    const early = await postFreepikWebhook(gw, unknown, { id: 'wh_early' });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('5');
    release();
    expect((await created).body.status).toBe('queued');

    // The retry (same webhook-id) is not taken for a replay: the first was never applied.
    const retried = await postFreepikWebhook(gw, unknown, { id: 'wh_early' });
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual({ received: true, matched: false });
  });

  it('applies a Freepik webhook that arrives before the answer of its own create, once that answer is recorded', async () => {
    // An upstream that finishes at once may post the task's webhooks before answering the create.
    const upstreamId = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
    const video = 'https://cdn.example.com/early.mp4';
    const statusCalls: string[] = [];
    const webhookAnswers: number[] = [];
    const fake = await fakeJsonUpstream(async (method, body, url) => {
      if (method !== 'POST') {
        statusCalls.push(url);
        return { data: { task_id: upstreamId, status: 'COMPLETED', generated: [video] } };
      }
      const { webhook_url: webhookUrl } = body as { webhook_url: string };
      const payload = JSON.stringify({ task_id: upstreamId, status: 'COMPLETED', generated: [video] });
      const timestamp = String(Math.floor(gw.clock.now() / 1000));
      const secret = gw.endpoints.get('freepik')!.webhookSecret!;
      const answer = await fetch(webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': 'msg_before_answer',
          'webhook-timestamp': timestamp,
          'webhook-signature': signFreepikWebhook(secret, 'msg_before_answer', timestamp, payload),
        },
        body: payload,
      });
      webhookAnswers.push(answer.status);
      return { data: { task_id: upstreamId, status: 'CREATED', generated: [] } };
    });
    const local = gw;
    try {
      gw = await startTestGateway({ endpointOverrides: { freepik: { baseUrl: fake.base } } });
      const created = await gw.create({ ...request, routing: { providers: ['freepik'] } });
      expect(created.status).toBe(202);
      expect(webhookAnswers).toEqual([200]);

      // Well before the first safety poll (10 s here): the webhook's news is applied, not dropped.
      let task: any;
      await gw.advanceUntil(async () => {
        task = (await gw.get(created.body.id)).body;
        return task.status === 'succeeded';
      }, 100, 50);
      expect(task).toMatchObject({ status: 'succeeded', provider_status: 'COMPLETED', provider_task_id: upstreamId });
      expect(task.outputs).toEqual([expect.objectContaining({ upstream_url: video })]);
      expect(statusCalls).toEqual([]);
      // The create's answer came: nothing was recovered.
      expect(task.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', http_status: 200, recovered_by: null })]);
    } finally {
      await gw.close();
      gw = local;
      await fake.close();
    }
  });

  /**
   * A legacy Kling-API upstream whose task is done at once and that posts its one callback
   * (`callbackOf` its task id) before it answers the create; `callbackAnswers` are the statuses
   * the gateway gave that callback, `statusCalls` the task fetches it made. The create is answered
   * once `answerAfter` settles, if given.
   */
  async function legacyCallingBackFirst(callbackOf: (upstreamId: string) => unknown, options: { answerAfter?: Promise<void>; database?: string } = {}) {
    const upstreamId = '831922345719271433';
    const video = 'https://cdn.example.com/lighthouse.mp4';
    const callbackAnswers: number[] = [];
    let calledBack!: () => void;
    const sentCallback = new Promise<void>((resolve) => (calledBack = resolve));
    const statusCalls: string[] = [];
    const done = { task_id: upstreamId, task_status: 'succeed', task_status_msg: '', task_result: { videos: [{ id: 'v1', url: video, duration: '5' }] } };
    const fake = await fakeJsonUpstream(async (method, body, url) => {
      if (method !== 'POST') {
        statusCalls.push(url);
        return { code: 0, message: 'SUCCEED', request_id: 'r2', data: done };
      }
      const { callback_url: callbackUrl } = body as { callback_url: string };
      const answer = await fetch(callbackUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(callbackOf(upstreamId)),
      });
      callbackAnswers.push(answer.status);
      calledBack();
      await options.answerAfter;
      return { code: 0, message: 'SUCCEED', request_id: 'r1', data: { task_id: upstreamId, task_status: 'submitted' } };
    });
    const local = await startTestGateway({
      endpointOverrides: { 'kling-legacy': { baseUrl: fake.base } },
      ...(options.database ? { config: { database: { url: options.database } } } : {}),
    });
    let stopped = false;
    const stop = () => {
      stopped = true;
      return local.close();
    };
    const close = async () => {
      if (!stopped) await local.close();
      await fake.close();
    };
    return { gw: local, upstreamId, video, callbackAnswers, sentCallback, statusCalls, stop, close };
  }

  const legacyRequest = { model: 'kling-v1-6', prompt: 'a lighthouse at dusk', routing: { providers: ['kling-legacy'] } };

  it('acts on a legacy callback that arrives before the answer of its own create, once that answer is recorded', async () => {
    // The legacy Kling-API sends each callback once: a "retry later" would leave the task to the safety poll.
    const upstream = await legacyCallingBackFirst((upstreamId) => ({ task_id: upstreamId, task_status: 'succeed' }));
    try {
      const created = await upstream.gw.create(legacyRequest);
      expect(created.status).toBe(202);
      expect(upstream.callbackAnswers).toEqual([200]);

      // Well before the first safety poll (10 s here): the callback's claim is confirmed by a fetch.
      let task: any;
      await upstream.gw.advanceUntil(async () => {
        task = (await upstream.gw.get(created.body.id)).body;
        return task.status === 'succeeded';
      }, 100, 50);
      expect(task).toMatchObject({ status: 'succeeded', provider_status: 'succeed', provider_task_id: upstream.upstreamId });
      expect(task.outputs).toEqual([expect.objectContaining({ upstream_url: upstream.video })]);
      expect(upstream.statusCalls).toHaveLength(1);
      expect(task.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: null })]);
    } finally {
      await upstream.close();
    }
  });

  it('does not act on a callback that arrived during the create but names another task than its answer', async () => {
    const upstream = await legacyCallingBackFirst(() => ({ task_id: '999999999999999999', task_status: 'succeed' }));
    try {
      const created = await upstream.gw.create(legacyRequest);
      expect(upstream.callbackAnswers).toEqual([200]);
      const metrics = async () => (await upstream.gw.request('GET', '/metrics', undefined, {}, null)).body as string;
      // Once the create's answer is recorded the callback is checked against it, and not believed.
      await upstream.gw.advanceUntil(async () => /inbound_webhooks_total\{provider="kling-legacy",outcome="mismatch"\} 1/.test(await metrics()), 100, 50);
      expect(upstream.statusCalls).toEqual([]);
      expect((await upstream.gw.get(created.body.id)).body.status).toBe('queued');
    } finally {
      await upstream.close();
    }
  });

  it('stops gracefully only once a callback that came before its create was recorded has been acted on', async () => {
    let answerCreate!: () => void;
    const database = tempDatabaseUrl();
    const upstream = await legacyCallingBackFirst((upstreamId) => ({ task_id: upstreamId, task_status: 'succeed' }), {
      answerAfter: new Promise<void>((resolve) => (answerCreate = resolve)),
      database,
    });
    try {
      const creating = upstream.gw.create(legacyRequest);
      await upstream.sentCallback;
      expect(upstream.callbackAnswers).toEqual([200]);
      // The store is slow from here on (a database failing over): acting on the callback outlasts
      // the rest of the stop, which must not close the store under it.
      const store = upstream.gw.gateway.store;
      const getTask = store.getTask.bind(store);
      store.getTask = async (id: string) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return getTask(id);
      };
      // SIGTERM with the create still unanswered: the drain waits for it, then for the callback's news.
      const stopping = upstream.stop();
      answerCreate();
      const created = await creating;
      expect(created.status).toBe(202);
      await stopping;

      expect(upstream.statusCalls).toHaveLength(1);
      const reopened = await openStore(database);
      try {
        expect(await new TaskStore(reopened).getTask(created.body.id)).toMatchObject({ status: 'succeeded', provider_task_id: upstream.upstreamId });
      } finally {
        await reopened.close();
      }
    } finally {
      await upstream.close();
    }
  });
});

/**
 * A gateway whose Freepik provider has two accounts, `main` and `spare`: both reach the simulator
 * (it takes one key), and each signs its webhooks with its own secret (`secret-of-<account>`).
 */
async function twoFreepikAccounts(clock: ManualClock, config?: TestGatewayOptions['config']) {
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  const freepik = sandbox.endpoints.get('freepik')!;
  const endpoints = new Map(sandbox.endpoints).set('freepik', {
    ...freepik,
    accounts: [
      { id: 'main', apiKey: freepik.apiKey, webhookSecrets: ['secret-of-main'] },
      { id: 'spare', apiKey: freepik.apiKey, webhookSecrets: ['secret-of-spare'] },
    ],
  });
  const gw = await startTestGateway({ clock, endpoints, simulators: sandbox.simulators, ...(config ? { config } : {}) });
  return { gw, closeSandbox: sandbox.close };
}

describe('inbound Freepik webhooks with several accounts', () => {
  let gw: TestGateway;
  let closeSandbox: () => Promise<void>;
  afterEach(async () => {
    await gw.close();
    await closeSandbox();
  });

  it("believes a webhook about a task only when the secret of the account holding it signed it", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    ({ gw, closeSandbox } = await twoFreepikAccounts(clock, { providers: { freepik: { max_in_flight: 1 } } }));
    const pinned = { ...request, routing: { providers: ['freepik'] } };
    const first = (await gw.create(pinned)).body;
    const second = (await gw.create({ ...pinned, prompt: 'a second beach' })).body;
    const accountOf = (task: { attempts: { account: string }[] }) => task.attempts[0]!.account;
    expect([accountOf(first), accountOf(second)].sort()).toEqual(['main', 'spare']);
    const secretOf = (account: string) => `secret-of-${account}`;
    const otherOf = (account: string) => (account === 'main' ? 'spare' : 'main');

    const url = 'https://cdn.example.com/beach.mp4';
    const forged = await postFreepikWebhook(
      gw,
      { task_id: first.provider_task_id, status: 'COMPLETED', generated: [url] },
      { secret: secretOf(otherOf(accountOf(first))) },
    );
    expect(forged.status).toBe(401);
    expect((await gw.get(first.id)).body.status).toBe('queued');

    const genuine = await postFreepikWebhook(
      gw,
      { task_id: first.provider_task_id, status: 'COMPLETED', generated: [url] },
      { secret: secretOf(accountOf(first)) },
    );
    expect(genuine.body).toEqual({ received: true, matched: true });
    expect((await gw.get(first.id)).body.status).toBe('succeeded');
    expect((await gw.get(second.id)).body.status).toBe('queued');
  });
});

describe('a Freepik webhook on the path of a create whose answer was lost, with several accounts', () => {
  let gw: TestGateway;
  let closeSandbox: () => Promise<void>;
  afterEach(async () => {
    await gw.close();
    await closeSandbox();
  });

  it('adopts the upstream task only when the secret of the account that sent the create signed it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    ({ gw, closeSandbox } = await twoFreepikAccounts(clock));
    // Freepik takes the create and the connection drops before its answer: the task waits for news.
    gw.simulator('freepik').injectFault({ transport: 'drop_after_accept' });
    const created = (await gw.create({ ...request, routing: { providers: ['freepik'] } })).body;
    expect(created.status).toBe('queued');
    const account = created.attempts[0].account as string;
    const other = account === 'main' ? 'spare' : 'main';
    const upstreamId = gw.simulator('freepik').tasks[0]!.id;
    const body = JSON.stringify({ task_id: upstreamId, status: 'IN_PROGRESS', generated: [] });
    const timestamp = String(Math.floor(clock.now() / 1000));
    const post = (webhookId: string, secret: string) =>
      gw.request(
        'POST',
        `/v1/webhooks/freepik/${created.id}-1`,
        body,
        { 'webhook-id': webhookId, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, webhookId, timestamp, body) },
        null,
      );

    // Signed by the other account: it proves nothing about a create this account sent, and is
    // refused as on the plain path (401), not put off as news still to come (503, sent again).
    const foreign = await post('msg_other_account', `secret-of-${other}`);
    expect(foreign.status).toBe(401);
    expect(foreign.body.detail).toBe('signed by another account than the one that sent the create');
    const after = (await gw.get(created.id)).body;
    expect(after.status).toBe('queued');
    expect(after.provider_task_id).toBeNull();
    expect(after.attempts[0].recovered_by ?? null).toBeNull();
    // Counted as a refused webhook, as on the plain path.
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/kling_gateway_inbound_webhooks_total\{provider="freepik",outcome="rejected"\} 1\b/);

    const genuine = await post('msg_own_account', `secret-of-${account}`);
    expect(genuine.status).toBe(200);
    const adopted = (await gw.get(created.id)).body;
    expect(adopted.status).toBe('processing');
    expect(adopted.provider_task_id).toBe(upstreamId);
    expect(adopted.attempts).toEqual([expect.objectContaining({ account, outcome: 'accepted', recovered_by: 'webhook' })]);
  });
});

describe('inbound Freepik webhooks with the secrets a live Freepik is configured with', () => {
  let gw: TestGateway;
  let closeSandbox: () => Promise<void>;
  afterEach(async () => {
    await gw.close();
    await closeSandbox();
  });

  /** A gateway whose Freepik (the sandbox's simulator) verifies webhooks with `secrets` only. */
  const withFreepikSecrets = async (secrets: string[]) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    closeSandbox = sandbox.close;
    const simulator = sandbox.endpoints.get('freepik')!;
    const endpoints = new Map(sandbox.endpoints).set('freepik', { ...simulator, webhookSecret: undefined, webhookSecrets: secrets });
    gw = await startTestGateway({ clock, endpoints, simulators: sandbox.simulators });
    return simulator;
  };
  const pinned = { ...request, routing: { providers: ['freepik'] } };
  const done = (task: { provider_task_id: string }) => ({ task_id: task.provider_task_id, status: 'COMPLETED', generated: ['https://cdn.example.com/beach.mp4'] });

  it('while Freepik rotates its secret: accepts a webhook signed with either configured secret, refuses one signed with neither (401, nothing changed), and takes a replay once', async () => {
    const simulator = await withFreepikSecrets(['freepik-new-secret', 'freepik-old-secret']);
    // What `providers.freepik.webhook_secret: [new, old]` makes of a live Freepik: both secrets verify.
    const configured = testConfig({ providers: { freepik: { api_key: simulator.apiKey, base_url: simulator.baseUrl, webhook_secret: ['freepik-new-secret', 'freepik-old-secret'] } } });
    expect(liveEndpoint(configured, freepikProvider)?.webhookSecrets).toEqual(['freepik-new-secret', 'freepik-old-secret']);
    const byOld = (await gw.create(pinned)).body;
    const byNew = (await gw.create({ ...pinned, prompt: 'a second beach' })).body;

    const forged = await postFreepikWebhook(gw, done(byOld), { secret: 'freepik-other-secret' });
    expect(forged.status).toBe(401);
    expect((await gw.get(byOld.id)).body).toMatchObject({ status: 'queued', outputs: [] });

    const old = await postFreepikWebhook(gw, done(byOld), { id: 'wh_by_old', secret: 'freepik-old-secret' });
    expect(old.body).toEqual({ received: true, matched: true });
    expect((await gw.get(byOld.id)).body.status).toBe('succeeded');
    const fresh = await postFreepikWebhook(gw, done(byNew), { id: 'wh_by_new', secret: 'freepik-new-secret' });
    expect(fresh.body).toEqual({ received: true, matched: true });
    expect((await gw.get(byNew.id)).body.status).toBe('succeeded');
    // Replay protection is the same whichever secret signed.
    const replay = await postFreepikWebhook(gw, done(byOld), { id: 'wh_by_old', secret: 'freepik-old-secret' });
    expect(replay.body).toEqual({ received: true, duplicate: true });
  });

  it.each([
    ['a short whsec_ secret, signed by the Standard Webhooks library', `whsec_${Buffer.from('fp-test-key').toString('base64')}`, (secret: string, id: string, at: Date, raw: string) => new Webhook(secret).sign(id, at, raw)],
    ['a short base64 secret given without whsec_, signed by the Standard Webhooks library', Buffer.from('fp-test-key').toString('base64'), (secret: string, id: string, at: Date, raw: string) => new Webhook(secret).sign(id, at, raw)],
    ['a secret given with whsec_, signed with the UTF-8 bytes of what follows it', 'whsec_freepik-dashboard-secret', (secret: string, id: string, at: Date, raw: string) => hmacEntry(secret.slice('whsec_'.length), id, at, raw)],
    ['a secret given without whsec_, signed with the UTF-8 bytes of the whole whsec_ secret', 'freepik-dashboard-secret', (secret: string, id: string, at: Date, raw: string) => hmacEntry(`whsec_${secret}`, id, at, raw)],
  ])('takes a webhook signed with %s (200, the task moves)', async (_case, secret, sign) => {
    await withFreepikSecrets([secret]);
    const task = (await gw.create(pinned)).body;
    const raw = JSON.stringify(done(task));
    const at = new Date(gw.clock.now());
    const headers = { 'webhook-id': 'wh_short', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': sign(secret, 'wh_short', at, raw) };
    const answer = await gw.request('POST', '/v1/webhooks/freepik', raw, headers, null);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: true, matched: true });
    expect((await gw.get(task.id)).body.status).toBe('succeeded');
  });

  it('while no Freepik webhook secret is configured: answers a signed webhook 404 (not configured), not 500, and changes nothing; its tasks are followed by polling', async () => {
    // A live Freepik configured without `webhook_secret`.
    const simulator = await withFreepikSecrets([]);
    const task = (await gw.create(pinned)).body;
    const answer = await postFreepikWebhook(gw, done(task), { secret: simulator.webhookSecret! });
    expect(answer.status).toBe(404);
    expect(answer.body.detail).toMatch(/no webhook secret/);
    expect((await gw.get(task.id)).body).toMatchObject({ status: 'queued', outputs: [] });
  });
});
