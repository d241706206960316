import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

const textToVideo = { model: 'kling-v3', prompt: 'a red fox running through fresh snow', duration: 5 };

describe('videos API over HTTP against the simulators', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    await gw.close();
  });

  it('creates a task, follows it to success, and serves a playable MP4', async () => {
    const created = await gw.create(textToVideo);
    expect(created.status).toBe(202);
    expect(created.headers.get('location')).toBe(`/v1/videos/${created.body.id}`);
    expect(created.body).toMatchObject({
      object: 'video',
      status: 'queued',
      model: 'kling-v3',
      quality: 'pro',
      operation: 'text-to-video',
      provider: 'freepik',
      provider_status: 'CREATED',
      error: null,
      request: { model: 'kling-v3', duration: 5, aspect_ratio: '16:9', audio: true, quality: 'pro' },
    });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'accepted' })]);
    expect(created.body.cost).toEqual({ credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' });

    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.provider_status).toBe('COMPLETED');
    expect(done.completed_at).not.toBeNull();
    expect(done.outputs).toHaveLength(1);
    expect(done.outputs[0]).toMatchObject({ type: 'video' });
    const video = await fetch(done.outputs[0].url);
    expect(video.headers.get('content-type')).toContain('video/mp4');
    const bytes = Buffer.from(await video.arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
  });

  it('reports an upstream FAILED task as failed with a canonical error', async () => {
    gw.simulator('freepik').setOutcome('fail');
    const created = await gw.create(textToVideo);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('failed');
    expect(done.provider_status).toBe('FAILED');
    expect(done.error).toMatchObject({ code: 'provider_error' });
    expect(done.outputs).toEqual([]);
  });

  it('refuses requests without a valid gateway key', async () => {
    const missing = await gw.request('POST', '/v1/videos', textToVideo, {}, null);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await gw.request('GET', '/v1/videos', undefined, {}, 'not-a-key');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ status: 401, title: 'Unauthorized' });
    expect(gw.simulator('freepik').tasks).toHaveLength(0);
  });

  // A no-break space (0xA0) is whitespace to a JavaScript pattern, not to HTTP (RFC 9110: spaces
  // and tabs only): a proxy in front reads such a header as one opaque credential, the gateway read a key.
  it('takes only spaces and tabs around the key of "Authorization: Bearer", as HTTP does', async () => {
    const key = TENANT_KEY;
    for (const header of [`Bearer\u00a0${key}`, `Bearer ${key}\u00a0`]) {
      const answer = await fetch(`${gw.url}/v1/videos`, { headers: { authorization: header } });
      expect(answer.status, JSON.stringify(header)).toBe(401);
    }
    for (const header of [`Bearer ${key}`, `bearer\t${key} `]) {
      expect((await fetch(`${gw.url}/v1/videos`, { headers: { authorization: header } })).status).toBe(200);
    }
  });

  it("hides one tenant's tasks from another", async () => {
    const created = await gw.create(textToVideo);
    const other = await gw.request('GET', `/v1/videos/${created.body.id}`, undefined, {}, OTHER_TENANT_KEY);
    expect(other.status).toBe(404);
    const otherList = await gw.request('GET', '/v1/videos', undefined, {}, OTHER_TENANT_KEY);
    expect(otherList.body.data).toEqual([]);
    const mine = await gw.get(created.body.id);
    expect(mine.status).toBe(200);
  });

  it('answers invalid input with field paths and creates nothing', async () => {
    const bad = await gw.create({
      model: 'kling-v9',
      prompt: '',
      duration: 20,
      cfg_scale: 3,
      start_image_url: 'ftp://example.com/a.png',
      unknown_field: true,
      metadata: { a: 'b' },
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    const paths = bad.body.errors.map((error: { path: string }) => error.path);
    expect(paths).toEqual(expect.arrayContaining(['model', 'prompt', 'duration', 'cfg_scale', 'start_image_url', 'unknown_field']));
    const malformed = await gw.request('POST', '/v1/videos', '{"model": ', {});
    expect(malformed.status).toBe(400);
    expect(malformed.body.errors).toEqual([{ path: '(body)', message: 'malformed JSON' }]);
    const notJson = await gw.request('POST', '/v1/videos', 'model=kling-v3', { 'content-type': 'text/plain' });
    expect(notJson.status).toBe(415);
    const list = await gw.request('GET', '/v1/videos');
    expect(list.body.data).toEqual([]);
    expect([...gw.simulators.values()].every((simulator) => simulator.tasks.length === 0)).toBe(true);
  });

  it('names each unknown field by its own path, in a create and a quote alike', async () => {
    const body = { ...textToVideo, sound: true, multi_shot: [{ prompt: 'a', duration: 3, camera: 'pan' }] };
    const expected = [
      { path: 'sound', message: 'unknown field' },
      { path: 'multi_shot.0.camera', message: 'unknown field' },
    ];
    for (const path of ['/v1/videos', '/v1/videos/quote']) {
      const refused = await gw.request('POST', path, body);
      expect(refused.status).toBe(400);
      expect(refused.body.errors).toEqual(expect.arrayContaining(expected));
      expect(refused.body.errors).toHaveLength(2);
    }
    expect(gw.simulator('freepik').tasks).toHaveLength(0);
  });

  it('refuses bodies over the size limit', async () => {
    const huge = await gw.create({ ...textToVideo, prompt: 'x'.repeat(300_000) });
    expect(huge.status).toBe(413);
    expect(huge.body.title).toBe('Payload too large');
  });

  it('answers 422 naming why each provider cannot serve a request, and creates nothing', async () => {
    const answer = await gw.create({ model: 'kling-v3-omni', prompt: 'p', cfg_scale: 1.5, negative_prompt: 'blur', duration: 5 });
    expect(answer.status).toBe(422);
    expect(answer.body.type).toContain('no-capable-provider');
    const byProvider = Object.fromEntries(
      answer.body.providers.map((entry: { provider: string; reasons: string[] }) => [entry.provider, entry.reasons.join(' | ')]),
    );
    expect(byProvider.freepik).toMatch(/cfg_scale/);
    expect(byProvider.kling3api).toMatch(/cfg_scale/);
    expect(byProvider['kling-legacy']).toMatch(/does not serve/);
    expect((await gw.request('GET', '/v1/videos')).body.data).toEqual([]);
  });

  it('names each field of a 422 no provider can serve in errors[], with every provider\'s reason in its own words', async () => {
    const answer = await gw.create({ model: 'kling-v3-omni', prompt: 'p', cfg_scale: 1.5, duration: 5 });
    expect(answer.status).toBe(422);
    const reasonsOf = (provider: string) => answer.body.providers.find((entry: { provider: string }) => entry.provider === provider).reasons as string[];
    const cfgOf = (provider: string) => reasonsOf(provider).filter((reason) => reason.startsWith('cfg_scale'));
    expect(cfgOf('freepik')).toHaveLength(1);
    expect(cfgOf('kling3api')).toHaveLength(1);
    expect(answer.body.errors).toEqual([
      {
        path: 'cfg_scale',
        message: `freepik: ${cfgOf('freepik')[0]} | kling3api: ${cfgOf('kling3api')[0]}`,
        providers: [
          { provider: 'freepik', reasons: cfgOf('freepik') },
          { provider: 'kling3api', reasons: cfgOf('kling3api') },
        ],
      },
    ]);
    // The same words as the detail quotes; a reason about no one field (a model a provider lacks) is in providers[] only.
    expect(answer.body.detail).toContain(`freepik: ${cfgOf('freepik')[0]}`);
    expect(reasonsOf('kling-legacy').join()).toMatch(/does not serve/);
  });

  it('names in errors[] the fields of a reason about two fields together (a source video missing or doubled, prompt with Omni shots, too many Omni references)', async () => {
    const pathsOf = async (body: Record<string, unknown>) => {
      const answer = await gw.create(body);
      expect(answer.status).toBe(422);
      // Every provider reason that is not about the model and operation shows under a field.
      const reasons = (answer.body.providers as { reasons: string[] }[]).flatMap((entry) => entry.reasons).filter((reason) => !reason.startsWith('does not serve'));
      const placed = (answer.body.errors ?? []).flatMap((entry: { providers: { reasons: string[] }[] }) => entry.providers.flatMap((p) => p.reasons));
      expect(placed.sort()).toEqual(reasons.sort());
      return (answer.body.errors ?? []).map((entry: { path: string }) => entry.path);
    };
    expect(await pathsOf({ model: 'kling-v1-6', operation: 'lip-sync', lip_sync: { text: 'hello', voice_id: 'v1' } })).toEqual(['video_id']);
    expect(
      await pathsOf({ model: 'kling-v1-6', lip_sync: { text: 'hello', voice_id: 'v1' }, video_id: 'vid-1', video_url: 'https://example.com/v.mp4' }),
    ).toEqual(['video_id']);
    expect(await pathsOf({ model: 'kling-v3-omni', prompt: 'x', multi_shot: [{ prompt: 'a', duration: 5 }] })).toEqual(['multi_shot', 'prompt']);
    const image = (n: number) => `https://example.com/i${n}.png`;
    expect(
      await pathsOf({ model: 'kling-v3-omni', prompt: 'x', reference_images: [image(1), image(2), image(3)], elements: [{ frontal_image_url: image(4) }, { frontal_image_url: image(5) }] }),
    ).toEqual(['reference_images', 'elements']);
  });

  it('names a duration and an aspect ratio the provider cannot do as two errors[] entries', async () => {
    const answer = await gw.create({ model: 'kling-v1', prompt: 'p', duration: 7, aspect_ratio: 'auto' });
    expect(answer.status).toBe(422);
    expect(answer.body.errors.map((entry: { path: string }) => entry.path)).toEqual(['duration', 'aspect_ratio']);
    for (const entry of answer.body.errors) {
      expect(entry.providers).toEqual([{ provider: 'kling-legacy', reasons: [expect.stringMatching(new RegExp(`^${entry.path} .* is not supported`))] }]);
      expect(entry.message).toBe(`kling-legacy: ${entry.providers[0].reasons[0]}`);
      expect(answer.body.detail).toContain(entry.providers[0].reasons[0]);
    }
  });

  it('echoes a sane x-request-id and makes one up otherwise', async () => {
    const echoed = await gw.request('GET', '/healthz', undefined, { 'x-request-id': 'req-123.abc' });
    expect(echoed.headers.get('x-request-id')).toBe('req-123.abc');
    const replaced = await gw.request('GET', '/healthz', undefined, { 'x-request-id': 'bad id with spaces' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('holds GET ?wait= until the task is terminal', async () => {
    const created = await gw.create(textToVideo);
    const waiting = gw.request('GET', `/v1/videos/${created.body.id}?wait=30`);
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    await gw.advanceUntil(async () => settled);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.status).toBe('succeeded');
    // 60 s is the longest wait taken: a terminal task answers it at once.
    const longest = await gw.request('GET', `/v1/videos/${created.body.id}?wait=60`);
    expect([longest.status, longest.body.status]).toEqual([200, 'succeeded']);
  });

  it('returns the current task when ?wait= runs out, and validates it', async () => {
    const created = await gw.create(textToVideo);
    const waiting = gw.request('GET', `/v1/videos/${created.body.id}?wait=1`);
    let settled = false;
    void waiting.then(() => (settled = true));
    // A wait of 1 s is a wait: with the gateway's clock standing still, nothing is answered yet.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(settled).toBe(false);
    // The wait's 1 s starts once it has read the task: on a slow machine that may be after a step
    // of the clock, so the clock is moved again until it answers (no worker runs: the task stays as it is).
    for (let step = 0; step < 500 && !settled; step++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await gw.clock.advance(1_100);
    }
    const answer = await waiting;
    expect(answer.body.status).toBe('processing');
    const invalid = await gw.request('GET', `/v1/videos/${created.body.id}?wait=61`);
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors[0].path).toBe('wait');
  });

  it('lists tasks newest first with cursor pagination and filters', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await gw.create({ ...textToVideo, prompt: `shot ${i}` });
      ids.push(created.body.id);
      await gw.clock.advance(10);
    }
    const first = await gw.request('GET', '/v1/videos?limit=2');
    expect(first.body.data.map((task: { id: string }) => task.id)).toEqual([ids[4], ids[3]]);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await gw.request('GET', `/v1/videos?limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body.data.map((task: { id: string }) => task.id)).toEqual([ids[2], ids[1]]);
    const third = await gw.request('GET', `/v1/videos?limit=2&cursor=${second.body.next_cursor}`);
    expect(third.body.data.map((task: { id: string }) => task.id)).toEqual([ids[0]]);
    expect(third.body.next_cursor).toBeNull();

    const byProvider = await gw.request('GET', '/v1/videos?provider=kling3api');
    expect(byProvider.body.data).toEqual([]);
    const byStatus = await gw.request('GET', '/v1/videos?status=queued&limit=100');
    expect(byStatus.body.data).toHaveLength(5);
    // By model, paged like the rest: a page holds only that model, however the models are mixed.
    const otherModel = await gw.create({ ...textToVideo, model: 'kling-v2-6', prompt: 'another model' });
    expect(otherModel.status).toBe(202);
    const byModel = await gw.request('GET', '/v1/videos?model=kling-v2-6&limit=1');
    expect([byModel.body.data.map((task: { id: string }) => task.id), byModel.body.next_cursor]).toEqual([[otherModel.body.id], null]);
    const notThatModel = await gw.request('GET', `/v1/videos?model=${textToVideo.model}&limit=100`);
    expect(notThatModel.body.data.map((task: { id: string }) => task.id)).toEqual([...ids].reverse());
    const misspelt = await gw.request('GET', '/v1/videos?model=kling-3');
    expect([misspelt.status, misspelt.body.errors[0].path]).toEqual([400, 'model']);
    const badCursor = await gw.request('GET', '/v1/videos?cursor=nonsense');
    expect(badCursor.status).toBe(400);
    const badLimit = await gw.request('GET', '/v1/videos?limit=500');
    expect(badLimit.status).toBe(400);
  });

  it('serves health, readiness, the OpenAPI document and the docs page', async () => {
    expect((await gw.request('GET', '/healthz', undefined, {}, null)).body).toEqual({ status: 'ok' });
    expect((await gw.request('GET', '/readyz', undefined, {}, null)).body).toEqual({ status: 'ready', store: 'sqlite' });
    const openapi = await gw.request('GET', '/openapi.json', undefined, {}, null);
    expect(openapi.body.paths['/v1/videos'].post).toBeDefined();
    const docs = await fetch(`${gw.url}/docs/`);
    expect(await docs.text()).toContain('swagger-ui');
    expect((await gw.request('GET', '/nowhere')).status).toBe(404);
  });

  it("serves the docs page's init script with the document even when it is the first thing asked for (the document is built when first needed)", async () => {
    const fresh = await startTestGateway();
    try {
      const init = await fetch(`${fresh.url}/docs/swagger-ui-init.js`);
      expect(init.status).toBe(200);
      const script = await init.text();
      expect(script).toContain('"/v1/videos"');
      expect(script).toContain('Kling Gateway');
      expect((await fresh.request('DELETE', '/v1/videos')).headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST');
    } finally {
      await fresh.close();
    }
  });
});
