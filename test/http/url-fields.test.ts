/**
 * The URL fields of a create (`webhook_url`, the image and video URLs, `lip_sync.audio_url`, the
 * elements' images) are taken as given or refused: a control character anywhere in one, tab and
 * line breaks included, is a 400 naming the field, never quietly cut out of the URL (which would
 * make the task call or send something else than the caller wrote); so is a lone surrogate, which
 * would be stored and sent as U+FFFD.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ config: { limits: { creates_per_minute: 100_000 } } });
});
afterAll(async () => {
  await gw.close();
});

const upstreamCalls = () => [...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.requests.length, 0);
const taskCount = async () => (await gw.request('GET', '/v1/videos?limit=100')).body.data.length as number;

const SPELLINGS = [
  ['a tab', 'https://hooks.exa\tmple.com/kling'],
  ['a line feed', 'https://hooks.example.com/kl\ning'],
  ['a carriage return and line feed', 'https://hooks.example.com/kling\r\nX-Injected: 1'],
  ['a leading tab', '\thttps://hooks.example.com/kling'],
  ['a trailing line feed', 'https://hooks.example.com/kling\n'],
  ['a trailing vertical tab', 'https://hooks.example.com/kling\u000b'],
  ['a leading form feed', '\u000chttps://hooks.example.com/kling'],
] as const;

it.each(SPELLINGS)('%s in a URL field is a 400 naming the field, on create and quote, and creates nothing', async (_what, url) => {
  const cases: [string, Record<string, unknown>][] = [
    ['webhook_url', { model: 'kling-v3', prompt: 'control', duration: 5, webhook_url: url }],
    ['start_image_url', { model: 'kling-v3', prompt: 'control', duration: 5, start_image_url: url }],
    ['reference_images.0', { model: 'kling-v3-omni', prompt: 'control', duration: 5, reference_images: [url] }],
    ['video_url', { model: 'kling-v3-omni', prompt: 'control', video_url: url }],
  ];
  const tasks = await taskCount();
  const calls = upstreamCalls();
  for (const [path, body] of cases) {
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await gw.request('POST', route, body);
      expect(answer.status, `${route} ${path}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body.errors).toEqual([{ path, message: expect.stringContaining('control character') }]);
    }
  }
  expect(await taskCount()).toBe(tasks);
  expect(upstreamCalls()).toBe(calls);
});

it('a URL without control characters is kept exactly as written', async () => {
  const url = 'https://hooks.example.com/kling?a=1&b=%20';
  const answer = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'kept', duration: 5, start_image_url: url });
  expect(answer.status).toBe(200);
  expect(answer.body.request.start_image_url).toBe(url);
});

it.each([
  ['a lone high surrogate', 'https://hooks.example.com/kling/\ud800'],
  ['a lone low surrogate in the query', 'https://hooks.example.com/kling?a=\udfff'],
])('%s in a URL field is a 400 naming the field, never stored or sent as U+FFFD', async (_what, url) => {
  const tasks = await taskCount();
  const calls = upstreamCalls();
  for (const [path, body] of [
    ['webhook_url', { model: 'kling-v3', prompt: 'surrogate', duration: 5, webhook_url: url }],
    ['start_image_url', { model: 'kling-v3', prompt: 'surrogate', duration: 5, start_image_url: url }],
  ] as const) {
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await gw.request('POST', route, body);
      expect(answer.status, `${route} ${path}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.body.errors).toEqual([{ path, message: expect.stringContaining('Unicode') }]);
    }
  }
  expect(await taskCount()).toBe(tasks);
  expect(upstreamCalls()).toBe(calls);
});

it('a URL with a character outside the BMP (a surrogate pair) is taken as written', async () => {
  const url = 'https://hooks.example.com/kling/\u{1F98A}';
  const answer = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'fox', duration: 5, start_image_url: url });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.body.request.start_image_url).toBe(url);
});
