/**
 * An upstream's rate limit counts every request it receives, not only creates and status polls:
 * the lookups that look for a create whose answer was lost count too, page by page, and a `429`
 * answered to any of them holds the whole account until its `Retry-After` has passed. Judged as
 * the upstream would: from the requests the simulator received, on the gateway's clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { mostInAnyWindow } from '../support/request-windows.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it("counts each page of Freepik's task list read to find a lost create against the account's rate window", async () => {
  gw = await startTestGateway({ config: { providers: { freepik: { rate_limits: [{ limit: 2, window_ms: 10_000 }] } } } });
  // The reference-to-video list is the one read page by page (to its empty end page).
  const referenceToVideo = {
    model: 'kling-v3-omni',
    prompt: 'dance like @Video1',
    reference_video_url: 'https://assets.example.com/clip.mp4',
    routing: { providers: ['freepik'] },
  };
  const known = await gw.finish((await gw.create(referenceToVideo)).body.id, 5_000);
  expect(known.status).toBe('succeeded');
  await gw.advance(20_000);
  gw.simulator('freepik').injectFault({ transport: 'reset' });
  const lost = await gw.create(referenceToVideo);
  expect(lost.body.status).toBe('queued');

  const finished = await gw.finish(lost.body.id, 1_000);
  // The list of one known task proved the create was never accepted, as before.
  expect(finished.status).toBe('failed');
  expect(finished.attempts).toEqual([
    expect.objectContaining({ provider: 'freepik', message: expect.stringMatching(/not accepted upstream: every one of the 1 task\(s\) in the \/v1\/ai\/reference-to-video\/kling-v3-omni list/) }),
  ]);
  const requests = gw.simulator('freepik').requests;
  expect(requests.filter((request) => request.method === 'GET' && request.path === '/v1/ai/reference-to-video/kling-v3-omni').length).toBeGreaterThanOrEqual(2);
  expect(mostInAnyWindow(requests.map((request) => request.at), 10_000)).toBeLessThanOrEqual(2);
});

it("holds every call to an account whose lookup of a lost create was answered 429, until its Retry-After has passed", async () => {
  gw = await startTestGateway();
  const legacy = gw.simulator('kling-legacy');
  legacy.injectFault({ transport: 'reset' });
  legacy.injectFault({ on: 'status', kind: 'rate_limited', status: 429, headers: { 'retry-after': '30' } });
  const started = gw.clock.now();
  const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look', duration: 5, routing: { providers: ['kling-legacy'] } });
  expect(created.body.status).toBe('queued');
  // The create, then its lookup by external_task_id, answered 429 with Retry-After: 30.
  expect(legacy.requests.map((request) => [request.method, request.at - started])).toEqual([
    ['POST', 0],
    ['GET', 0],
  ]);
  for (let second = 0; second < 40; second++) await gw.advance(1_000);
  const after429 = legacy.requests.slice(2).map((request) => request.at - started);
  expect(after429.length).toBeGreaterThan(0);
  expect(Math.min(...after429)).toBeGreaterThanOrEqual(30_000);
});

it('looks a create in doubt up less and less often while it waits for news, instead of every few seconds for ten minutes', async () => {
  gw = await startTestGateway();
  const freepik = gw.endpoints.get('freepik')!;
  // Another client's task under the same key: the list can never prove the create was not accepted.
  await fetch(`${freepik.baseUrl}/v1/ai/video/kling-v3-pro`, {
    method: 'POST',
    headers: { 'x-freepik-api-key': freepik.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'another client', duration: '5' }),
  });
  gw.simulator('freepik').injectFault({ transport: 'reset' });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 });
  expect(created.body.status).toBe('queued');
  const sent = gw.clock.now();
  for (let second = 0; second < 11 * 60; second++) await gw.advance(1_000);

  // It waited the ten minutes a webhook could still name the task, then failed as before …
  const task = (await gw.get(created.body.id)).body;
  expect(task.status).toBe('failed');
  expect(task.error.message).toMatch(/holds 1 task\(s\) the gateway does not know/);
  // … looking the list up often at first, then at most once a minute: not 150 times.
  const lookups = gw.simulator('freepik').requests.filter((request) => request.method === 'GET').map((request) => request.at - sent);
  expect(lookups.filter((at) => at < 30_000).length).toBeGreaterThanOrEqual(5);
  expect(lookups.length).toBeLessThanOrEqual(30);
  expect(Math.max(...lookups)).toBeGreaterThanOrEqual(10 * 60_000);
});

describe('a burst of creates and the polls of the tasks in flight', () => {
  for (const [provider, request] of [
    ['freepik', { model: 'kling-v3', prompt: 'a kite over dunes', duration: 5 }],
    ['kling3api', { model: 'kling-v3', prompt: 'a kite over dunes', duration: 5 }],
    ['kling-legacy', { model: 'kling-v1', prompt: 'a kite over dunes', duration: 5 }],
  ] as const) {
    it(`keep together within every rate window of ${provider}`, async () => {
      const windows = [
        { limit: 5, window_ms: 5_000 },
        { limit: 12, window_ms: 30_000 },
      ];
      // Polled, not told: no webhook secret, so every task is followed by status polls.
      gw = await startTestGateway({
        config: { providers: { [provider]: { rate_limits: windows, max_in_flight: 100 } } },
        endpointOverrides: { [provider]: { webhookSecret: undefined } },
      });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await gw.create({ ...request, prompt: `${request.prompt} ${i}`, routing: { providers: [provider] } })).body.id);
      for (let step = 0; step < 400; step++) await gw.advance(500);
      for (const id of ids) expect((await gw.get(id)).body.status).toBe('succeeded');
      const times = gw.simulator(provider).requests.map((r) => r.at);
      expect(times.length).toBeGreaterThan(ids.length);
      for (const window of windows) expect(mostInAnyWindow(times, window.window_ms)).toBeLessThanOrEqual(window.limit);
    }, 60_000);
  }
});
