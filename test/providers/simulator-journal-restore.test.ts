/**
 * Each provider's simulator started again on the journal of the one before (the sandbox
 * restarted on the same SQLite file, with new keys and a new port) answers for the tasks that
 * one created exactly as it would have: status words, outputs, charges, failure messages, the
 * legacy API's `external_task_id` lookups, Freepik's list endpoints, result files. Webhooks and
 * callbacks go out for the changes still to come, not again for those already passed.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator, VideoProvider } from '../../src/core/upstream/provider.js';
import { freepikProvider } from '../../src/providers/freepik/freepik-provider.js';
import { klingLegacyProvider } from '../../src/providers/kling-legacy/kling-legacy-provider.js';
import type { KlingLegacySimulator } from '../../src/providers/kling-legacy/kling-legacy-simulator.js';
import { kling3apiProvider } from '../../src/providers/kling3api/kling3api-provider.js';
import type { Kling3apiSimulator } from '../../src/providers/kling3api/kling3api-simulator.js';

const TIMING = { queuedMs: 1_000, processingMs: 4_000 };
const START = Date.UTC(2026, 11, 3, 12);

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const one of open.splice(0)) await one.close();
});

interface Running {
  simulator: ProviderSimulator;
  url: string;
  key: string;
  secret: string;
}

let started = 0;

/** A simulator of `provider` on `journalPath`, with keys of its own (as each sandbox start picks). */
async function simulatorOn(provider: VideoProvider, clock: ManualClock, journalPath: string, resultLifetimeMs?: number): Promise<Running> {
  started += 1;
  const key = `sim-key-${started}`;
  const secret = `webhook-secret-${started}`;
  const simulator = provider.createSimulator({
    clock,
    apiKey: key,
    webhookSecret: secret,
    timing: TIMING,
    journalPath,
    ...(resultLifetimeMs !== undefined ? { resultLifetimeMs } : {}),
  });
  const url = await simulator.listen(0);
  open.push(simulator);
  return { simulator, url, key, secret };
}

function journal(provider: string): string {
  return join(mkdtempSync(join(tmpdir(), 'kg-sim-journal-')), `gw.db.sandbox-${provider}.jsonl`);
}

/** A POST or GET with `running`'s key in `header`, its answer with the simulator's own URL and request ids left out. */
async function call(running: Running, header: (key: string) => Record<string, string>, path: string, body?: unknown) {
  const answer = await fetch(`${running.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...header(running.key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = (await answer.text()).replaceAll(running.url, '<simulator>').replace(/"request_id":"[^"]*"/g, '"request_id":"…"');
  return { status: answer.status, body: JSON.parse(text) as Record<string, any> };
}

/** A receiver of webhooks and callbacks: each body it got, in order. */
async function receiver(): Promise<{ url: string; bodies: Record<string, any>[] }> {
  const bodies: Record<string, any>[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      bodies.push(JSON.parse(text) as Record<string, any>);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, bodies };
}

/** Until every delivery the clock started has been answered. */
async function delivered(bodies: unknown[], count: number): Promise<void> {
  for (let i = 0; i < 400 && bodies.length < count; i++) await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 2_000 && bodies.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** At each moment, the simulator started on the journal answers `paths` as the one that wrote it does. */
async function answersAlike(clock: ManualClock, before: Running, after: Running, header: (key: string) => Record<string, string>, paths: string[], steps: number[]) {
  for (const step of steps) {
    await clock.advance(step);
    for (const path of paths) {
      const expected = await call(before, header, path);
      const got = await call(after, header, path);
      expect({ at: clock.now() - START, path, ...got }).toEqual({ at: clock.now() - START, path, ...expected });
    }
  }
}

describe('kling3api simulator on the journal of the one before', () => {
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  it('answers each task as before: IN_PROGRESS, then SUCCESS with its video, FAILED with its message, EXPIRED, with the credits charged', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling3api');
    const before = await simulatorOn(kling3apiProvider, clock, path);
    const create = async (body: unknown) => (await call(before, bearer, '/api/generate', body)).body.data.task_id as string;
    const ok = await create({ type: 'pro-text-to-video', prompt: 'a heron', duration: 10, sound: false });
    before.simulator.setOutcome('content_policy');
    const blocked = await create({ type: 'o3-std-text-to-video', prompt: 'a storm', duration: 7 });
    (before.simulator as Kling3apiSimulator).expireNext();
    await clock.advance(2_000);
    const expired = await create({ type: 'o3-pro-video-edit', prompt: 'snow', video: 'https://example.com/v.mp4' });

    const after = await simulatorOn(kling3apiProvider, clock, path);
    expect(after.simulator.tasks.map((task) => task.id)).toEqual([ok, blocked, expired]);
    const paths = [ok, blocked, expired].map((id) => `/api/status?task_id=${id}`);
    await answersAlike(clock, before, after, bearer, paths, [0, 500, 3_000, 2_000]);
    const words = await Promise.all(paths.map(async (one) => (await call(after, bearer, one)).body.data.status as string));
    expect(words).toEqual(['SUCCESS', 'FAILED', 'EXPIRED']);
    // Its video plays from the new simulator.
    const video = await fetch(`${after.url}/sim-files/${ok}.mp4`);
    expect([video.status, video.headers.get('content-type')]).toEqual([200, 'video/mp4']);
  });

  it('sets the status word of a task taken back as its phases pass, as the one before did', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling3api');
    const before = await simulatorOn(kling3apiProvider, clock, path);
    const id = (await call(before, bearer, '/api/generate', { type: 'std-text-to-video', prompt: 'a kite' })).body.data.task_id as string;
    await before.simulator.close();
    const after = await simulatorOn(kling3apiProvider, clock, path);
    expect(after.simulator.tasks[0]!.status).toBe('IN_PROGRESS');
    await clock.advance(TIMING.queuedMs + TIMING.processingMs);
    expect(after.simulator.tasks.map((task) => [task.id, task.status])).toEqual([[id, 'SUCCESS']]);
  });
});

describe('Freepik simulator on the journal of the one before', () => {
  const keyed = (key: string) => ({ 'x-freepik-api-key': key });

  it('answers each task and each list as before, in each family', async () => {
    const clock = new ManualClock(START);
    const path = journal('freepik');
    const before = await simulatorOn(freepikProvider, clock, path);
    const create = async (route: string, body: unknown) => (await call(before, keyed, route, body)).body.data.task_id as string;
    const first = await create('/v1/ai/video/kling-v3-pro', { prompt: 'a lynx', duration: '5' });
    before.simulator.setOutcome('content_policy');
    const omni = await create('/v1/ai/video/kling-v3-omni-std', { prompt: 'a tram' });
    await clock.advance(1_500);
    before.simulator.setOutcome('fail');
    const reference = await create('/v1/ai/reference-to-video/kling-v3-omni-pro', { prompt: 'dance', video_url: 'https://example.com/v.mp4' });
    const second = await create('/v1/ai/video/kling-v3-std', { prompt: 'a wolf' });

    const after = await simulatorOn(freepikProvider, clock, path);
    const paths = [
      `/v1/ai/video/kling-v3/${first}`,
      `/v1/ai/video/kling-v3-omni/${omni}`,
      `/v1/ai/reference-to-video/kling-v3-omni/${reference}`,
      `/v1/ai/video/kling-v3/${second}`,
      // Known only to its own family.
      `/v1/ai/video/kling-v3-omni/${first}`,
      '/v1/ai/video/kling-v3',
      '/v1/ai/video/kling-v3-omni',
      '/v1/ai/reference-to-video/kling-v3-omni?page=1&page_size=1',
    ];
    await answersAlike(clock, before, after, keyed, paths, [0, 1_000, 3_000, 2_000]);
    const list = await call(after, keyed, '/v1/ai/video/kling-v3');
    expect(list.body.data).toEqual([
      { task_id: second, status: 'COMPLETED' },
      { task_id: first, status: 'COMPLETED' },
    ]);
    expect((await call(after, keyed, `/v1/ai/video/kling-v3-omni/${omni}`)).body.data.error).toMatch(/content policy/);
  });

  it('sends the webhooks of the changes still to come, signed with its own secret, and not again those passed before', async () => {
    const clock = new ManualClock(START);
    const path = journal('freepik');
    const hooks = await receiver();
    const before = await simulatorOn(freepikProvider, clock, path);
    const id = (await call(before, keyed, '/v1/ai/video/kling-v3-pro', { prompt: 'a lynx', webhook_url: hooks.url })).body.data.task_id as string;
    await clock.advance(TIMING.queuedMs);
    await delivered(hooks.bodies, 1);
    expect(hooks.bodies.map((body) => body.status)).toEqual(['IN_PROGRESS']);
    await before.simulator.close();

    const after = await simulatorOn(freepikProvider, clock, path);
    await clock.advance(TIMING.processingMs);
    await delivered(hooks.bodies, 2);
    expect(hooks.bodies.map((body) => [body.task_id, body.status])).toEqual([
      [id, 'IN_PROGRESS'],
      [id, 'COMPLETED'],
    ]);
    expect(hooks.bodies[1]!.generated).toEqual([`${after.url}/sim-files/${id}.mp4`]);
    expect(after.simulator.callbacks!.map((callback) => [callback.task_id, callback.status])).toEqual([[id, 200]]);
  });
});

describe('legacy Kling simulator on the journal of the one before', () => {
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  it('answers each task as before, by its task id and its external_task_id, with its units, images and failure message', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling-legacy');
    const before = await simulatorOn(klingLegacyProvider, clock, path);
    const create = async (route: string, body: unknown) => (await call(before, bearer, route, body)).body.data.task_id as string;
    const video = await create('/kling/v1/videos/text2video', { model_name: 'kling-v1-6', prompt: 'a lynx', mode: 'pro', duration: '10', external_task_id: 'gw-task-1' });
    const images = await create('/kling/v1/images/generations', { prompt: 'a fox', n: 3 });
    before.simulator.setOutcome('content_policy');
    await clock.advance(1_500);
    const refused = await create('/v1/videos/image2video', { model_name: 'kling-v2-6', image: 'https://example.com/a.png', external_task_id: 'gw-task-2' });

    const after = await simulatorOn(klingLegacyProvider, clock, path);
    const paths = [
      `/kling/v1/videos/text2video/${video}`,
      '/kling/v1/videos/text2video/gw-task-1',
      `/kling/v1/images/generations/${images}`,
      `/v1/videos/image2video/${refused}`,
      '/v1/videos/image2video/gw-task-2',
      // At another action: not found, as before.
      `/kling/v1/videos/image2video/${video}`,
    ];
    await answersAlike(clock, before, after, bearer, paths, [0, 1_000, 4_000]);
    const done = await call(after, bearer, '/kling/v1/videos/text2video/gw-task-1');
    expect(done.body.data).toMatchObject({ task_id: video, task_status: 'succeed', final_unit_deduction: '7', task_info: { external_task_id: 'gw-task-1' } });
    expect((await call(after, bearer, `/v1/videos/image2video/${refused}`)).body.data.task_status).toBe('failed');
    const image = await fetch(`${after.url}/sim-files/${images}-2.png`);
    expect([image.status, image.headers.get('content-type')]).toEqual([200, 'image/png']);
  });

  it('refuses an external_task_id a task created before already has, and extends a video made before by its length', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling-legacy');
    const before = await simulatorOn(klingLegacyProvider, clock, path);
    const video = (await call(before, bearer, '/kling/v1/videos/text2video', { prompt: 'a lynx', duration: '10', external_task_id: 'gw-task-1' })).body.data.task_id as string;
    await clock.advance(TIMING.queuedMs + TIMING.processingMs);
    await before.simulator.close();

    const after = await simulatorOn(klingLegacyProvider, clock, path);
    const again = await call(after, bearer, '/kling/v1/videos/text2video', { prompt: 'a lynx', external_task_id: 'gw-task-1' });
    expect([again.status, again.body.code]).toEqual([400, 1201]);
    const extended = (await call(after, bearer, '/kling/v1/videos/video-extend', { video_id: `${video}-video` })).body.data.task_id as string;
    await clock.advance(TIMING.queuedMs + TIMING.processingMs);
    const done = await call(after, bearer, `/kling/v1/videos/video-extend/${extended}`);
    expect(done.body.data.task_result.videos[0].duration).toBe('15');
  });

  it('sends the callbacks of the changes still to come, and not again those passed before', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling-legacy');
    const hooks = await receiver();
    const before = await simulatorOn(klingLegacyProvider, clock, path);
    const id = (await call(before, bearer, '/kling/v1/videos/text2video', { prompt: 'a lynx', callback_url: hooks.url })).body.data.task_id as string;
    await clock.advance(TIMING.queuedMs);
    await delivered(hooks.bodies, 1);
    await before.simulator.close();

    const after = await simulatorOn(klingLegacyProvider, clock, path);
    (after.simulator as KlingLegacySimulator).setStatusActions('official');
    await clock.advance(TIMING.processingMs);
    await delivered(hooks.bodies, 2);
    expect(hooks.bodies.map((body) => [body.task_id, body.task_status])).toEqual([
      [id, 'processing'],
      [id, 'succeed'],
    ]);
    expect(after.simulator.callbacks!.map((callback) => [callback.task_id, callback.status])).toEqual([[id, 200]]);
  });

  it('serves the result files of tasks taken back for as long as the provider keeps them', async () => {
    const clock = new ManualClock(START);
    const path = journal('kling-legacy');
    const lifetime = 60_000;
    const before = await simulatorOn(klingLegacyProvider, clock, path, lifetime);
    const id = (await call(before, bearer, '/kling/v1/videos/text2video', { prompt: 'a lynx' })).body.data.task_id as string;
    await before.simulator.close();
    const after = await simulatorOn(klingLegacyProvider, clock, path, lifetime);
    await clock.advance(TIMING.queuedMs + TIMING.processingMs + lifetime);
    expect((await fetch(`${after.url}/sim-files/${id}.mp4`)).status).toBe(200);
    await clock.advance(1);
    expect((await fetch(`${after.url}/sim-files/${id}.mp4`)).status).toBe(404);
  });
});
