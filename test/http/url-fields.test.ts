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

/**
 * Each body, on create and on quote, is a 400 whose one error names its path with a message
 * holding `message` (and `contains`, when given); nothing is made or sent upstream.
 */
async function expectRefusedEach(cases: [string, Record<string, unknown>][], message: string, contains?: string): Promise<void> {
  const tasks = await taskCount();
  const calls = upstreamCalls();
  for (const [path, body] of cases) {
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await gw.request('POST', route, body);
      expect(answer.status, `${route} ${path}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body.errors, `${route} ${path}`).toEqual([{ path, message: expect.stringContaining(message) }]);
      if (contains) expect(answer.body.errors[0].message, `${route} ${path}`).toContain(contains);
    }
  }
  expect(await taskCount()).toBe(tasks);
  expect(upstreamCalls()).toBe(calls);
}

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
  await expectRefusedEach(cases, 'control character');
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

it('a URL with a character outside the BMP (a surrogate pair) is refused for its character, with its UTF-8 escapes, not as a lone surrogate', async () => {
  const url = 'https://hooks.example.com/kling/\u{1F98A}';
  const answer = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'fox', duration: 5, start_image_url: url });
  expect(answer.status, JSON.stringify(answer.body)).toBe(400);
  expect(answer.body.errors).toEqual([{ path: 'start_image_url', message: expect.stringContaining('%F0%9F%A6%8A') }]);
  const written = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'fox', duration: 5, start_image_url: 'https://hooks.example.com/kling/%F0%9F%A6%8A' });
  expect(written.status, JSON.stringify(written.body)).toBe(200);
});

/*
 * A URL goes upstream exactly as written, and the upstreams type these fields `format: uri`
 * (RFC 3986): a URL only a browser would mend was taken here and refused there, as a failed task
 * (after failover to every provider). Each is a 400 saying how a URI writes it; nothing is rewritten.
 */
const NOT_URIS = [
  ['a space', 'https://assets.example.com/my photo.png', 'a space, which a URI writes as %20'],
  ['a non-ASCII character in the path', 'https://assets.example.com/\u00fc.png', '%C3%BC'],
  ['a non-ASCII character in the host', 'https://b\u00fccher.example/a.png', 'xn--bcher-kva.example'],
  ['a % starting no escape', 'https://assets.example.com/a%zz.png', '"%zz", which is no percent-escape'],
  ['a bare % at the end', 'https://assets.example.com/a.png?off=50%', '%25'],
  ['a backslash', 'https://assets.example.com\\a.png', 'backslash'],
  ['a |', 'https://assets.example.com/a.png?x=1|2', '%7C'],
  ['a "', 'https://assets.example.com/"a".png', '%22'],
  ['a [ in the query', 'https://assets.example.com/a.png?list[]=1', '%5B'],
  ['a third slash', 'https:///assets.example.com/a.png', 'third slash'],
  // Characters a URI holds, but not there: the fragment runs to the end (a second `#` is none of
  // its characters), and a userinfo ends at the first `@` (one more is none of the host's).
  ['a second # in the fragment', 'https://assets.example.com/a.png#one#two', '%23'],
  ['a second @ in the authority', 'https://me@home@assets.example.com/a.png', '%40'],
] as const;

it.each(NOT_URIS)('%s in any URL field is a 400 naming the field and how a URI writes it; nothing is made or sent', async (_what, url, hint) => {
  const cases: [string, Record<string, unknown>][] = [
    ['start_image_url', { model: 'kling-v3', prompt: 'uri', duration: 5, start_image_url: url }],
    ['end_image_url', { model: 'kling-v3', prompt: 'uri', duration: 5, start_image_url: 'https://assets.example.com/a.png', end_image_url: url }],
    ['reference_images.1', { model: 'kling-v3-omni', prompt: 'uri', duration: 5, reference_images: ['https://assets.example.com/a.png', url] }],
    ['reference_video_url', { model: 'kling-v3-omni', prompt: 'uri', duration: 5, reference_video_url: url }],
    ['video_url', { model: 'kling-v3-omni', prompt: 'uri', video_url: url }],
    ['elements.0.frontal_image_url', { model: 'kling-v3', prompt: 'uri', duration: 5, elements: [{ frontal_image_url: url }] }],
    ['elements.0.reference_image_urls.0', { model: 'kling-v3', prompt: 'uri', duration: 5, elements: [{ frontal_image_url: 'https://assets.example.com/a.png', reference_image_urls: [url] }] }],
    ['lip_sync.audio_url', { model: 'kling-v3', video_id: 'vid_1', lip_sync: { audio_url: url } }],
    ['webhook_url', { model: 'kling-v3', prompt: 'uri', duration: 5, webhook_url: url }],
  ];
  await expectRefusedEach(cases, 'must be a URI (RFC 3986) as written', hint);
});

it.each([
  ['an IPv6 host', 'https://[2001:db8::1]:8443/a.png'],
  ['escapes, sub-delims and an empty port', 'https://Assets.Example.com:/caf%C3%A9%201.png?v=a%7Cb&w=(1)*2;c=$,d!~#frag/?@'],
])('a URI with %s is taken as written', async (_what, url) => {
  const answer = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'uri', duration: 5, start_image_url: url });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.body.request.start_image_url).toBe(url);
});

/*
 * Signed links as the storage services write them: their signatures cover the text as written,
 * so each must be taken, and sent upstream, byte for byte (`%2F`, `+`, `=`, `~`, `(` `)`).
 */
it.each([
  ['an S3 SigV4 presigned URL', 'https://examplebucket.s3.amazonaws.com/in%2Fcat.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2B%3D&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'],
  ['an S3 SigV2 presigned URL with a + and ( )', 'https://s3.eu-west-1.amazonaws.com/my.bucket/dir/My+Photo%20(1).png?AWSAccessKeyId=AKIA&Expires=1700000000&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D'],
  ['a GCS V4 signed URL', 'https://storage.googleapis.com/example-bucket/cat.jpeg?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=example%40example-project.iam.gserviceaccount.com%2F20181026%2Fus-central1%2Fstorage%2Fgoog4_request&X-Goog-Date=20181026T181309Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=247a2aa45f16'],
  ['an Azure SAS URL with : in its times and a raw + / =', 'https://myaccount.blob.core.windows.net/container/photo.png?sv=2021-08-06&se=2024-01-01T00:00:00Z&sp=r&spr=https&sig=abc+def/ghi='],
  ['a CloudFront signed URL with ~ and _', 'https://d111111abcdef8.cloudfront.net/image.jpg?Policy=eyJTdGF0ZW1lbnQiOlt7fV19__&Signature=nitfHRCrtziwO2HwPfWw~yYDhUF5Ew-j19DzZ&Key-Pair-Id=K2JCJMDEHXQW5F'],
])('%s is taken as written, on quote and create', async (_what, url) => {
  for (const route of ['/v1/videos/quote', '/v1/videos']) {
    const answer = await gw.request('POST', route, { model: 'kling-v3', prompt: 'signed', duration: 5, start_image_url: url });
    expect(answer.status, `${route}: ${JSON.stringify(answer.body)}`).toBe(route === '/v1/videos' ? 202 : 200);
    expect(answer.body.request.start_image_url).toBe(url);
  }
});

/*
 * Idempotency compares bodies as written, the key first. `ü` and its URI `%C3%BC` are never two
 * spellings of one accepted body: the first is refused (400) on its own, and under a key that
 * made a task from the second it is another body (409, no replay, no second task). So is
 * `%c3%bc` (RFC 3986 calls it equivalent to `%C3%BC`; the gateway rewrites neither).
 */
it('with an Idempotency-Key, a repeat whose URL is spelled otherwise is another body (409), never a replay or a second task', async () => {
  const key = 'url-fields-idempotency-1';
  const body = (start_image_url: string) => ({ model: 'kling-v3', prompt: 'same key', duration: 5, start_image_url });
  const first = await gw.create(body('https://assets.example.com/%C3%BC.png'), { 'idempotency-key': key });
  expect(first.status, JSON.stringify(first.body)).toBe(202);
  const tasks = await taskCount();

  const alone = await gw.create(body('https://assets.example.com/\u00fc.png'));
  expect(alone.status).toBe(400);
  expect(alone.body.errors).toEqual([{ path: 'start_image_url', message: expect.stringContaining('%C3%BC') }]);
  const browserSpelling = await gw.create(body('https://assets.example.com/\u00fc.png'), { 'idempotency-key': key });
  expect(browserSpelling.status).toBe(409);
  expect(browserSpelling.body.type).toContain('idempotency-key-reused');

  const lowerEscapes = await gw.create(body('https://assets.example.com/%c3%bc.png'), { 'idempotency-key': key });
  expect(lowerEscapes.status).toBe(409);
  expect(lowerEscapes.body.type).toContain('idempotency-key-reused');

  const repeat = await gw.create(body('https://assets.example.com/%C3%BC.png'), { 'idempotency-key': key });
  expect(repeat.status).toBe(first.status);
  expect(repeat.headers.get('idempotent-replayed')).toBe('true');
  expect(repeat.body.id).toBe(first.body.id);
  expect(repeat.body.request.start_image_url).toBe('https://assets.example.com/%C3%BC.png');
  expect(await taskCount()).toBe(tasks);
});

/*
 * What each provider's simulator receives is the URL as the task's `request` shows it, to the
 * byte: a URI is not rewritten on its way (its host's case, an empty or default port, `.`
 * segments and escapes kept), in a `format: uri` field or a plain one.
 */
it.each([
  ['freepik', { model: 'kling-v3', operation: 'image-to-video', start_image_url: 'START', end_image_url: 'END', elements: [{ frontal_image_url: 'FRONT', reference_image_urls: ['REF'] }] }],
  ['freepik', { model: 'kling-v3-omni', operation: 'reference-to-video', reference_video_url: 'VIDEO', start_image_url: 'START' }],
  ['kling3api', { model: 'kling-v3', operation: 'image-to-video', start_image_url: 'START', end_image_url: 'END' }],
  ['kling3api', { model: 'kling-v3-omni', operation: 'reference-to-video', reference_images: ['START', 'REF'] }],
  ['kling-legacy', { model: 'kling-v3', operation: 'image-to-video', start_image_url: 'START', end_image_url: 'END' }],
] as const)('%s receives every URL of %j exactly as written', async (provider, shape) => {
  const written: Record<string, string> = {
    START: 'https://Assets.Example.com:443/in/./caf%C3%A9%201.png?v=a%7Cb&w=(1)',
    END: 'https://assets.example.com:/out/../end.png#frame',
    FRONT: 'https://[2001:db8::1]/front.png',
    REF: 'https://assets.example.com/r%c3%a9f.png',
    VIDEO: 'https://Assets.Example.com:443/v/./clip%20one.mp4?',
  };
  const body = JSON.parse(JSON.stringify(shape), (_key, value) => (typeof value === 'string' && value in written ? written[value] : value));
  const simulator = gw.simulator(provider);
  const before = simulator.tasks.length;
  const created = await gw.create({ ...body, prompt: 'every url as written', duration: 5, routing: { providers: [provider] } });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  await gw.advanceUntil(async () => simulator.tasks.length > before, 100, 50);
  const sent = JSON.stringify(simulator.tasks.at(-1)!.body);
  const echoed = JSON.stringify(created.body.request);
  for (const [placeholder, url] of Object.entries(written)) {
    if (!JSON.stringify(shape).includes(`"${placeholder}"`)) continue;
    expect(echoed, `request ${placeholder}`).toContain(JSON.stringify(url));
    expect(sent, `${provider} ${placeholder}`).toContain(JSON.stringify(url));
  }
});
