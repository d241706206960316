/**
 * Client mistakes are 4xx problem details, never a 5xx or an error-level log line: undecodable
 * path parameters, bodies whose `content-encoding` lies, clients that go away mid-upload, and
 * metadata keys that JavaScript treats specially.
 */
import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { headerOf, rawExchange, rawRequest } from '../support/raw-answer.js';

const lines: { level: number | string; msg?: string }[] = [];
let gw: TestGateway;
let upstreamCalls = 0;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  gw = await startTestGateway({ logTo: sink });
  for (const simulator of gw.simulators.values()) {
    const count = () => void (upstreamCalls += 1);
    (simulator as unknown as { onRequest?: (fn: () => void) => void }).onRequest?.(count);
  }
});

afterAll(async () => {
  await gw.close();
});

/** Error-level (50) and above lines logged since `from`. */
const errorLinesSince = (from: number) => lines.slice(from).filter((line) => ['error', 'fatal', 50, 60].includes(line.level));

const raw = (method: string, path: string, headers: Record<string, string>, body?: Buffer) =>
  fetch(`${gw.url}${path}`, { method, headers, ...(body ? { body } : {}) }).then(async (response) => ({
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: await response.text(),
  }));

describe('undecodable paths', () => {
  it.each([
    ['GET', '/v1/videos/%ff'],
    ['GET', '/v1/videos/%ff?wait=5'],
    ['GET', '/v1/videos/%ff/events'],
    ['GET', '/v1/videos/%ff/content'],
    ['POST', '/v1/videos/%ff/cancel'],
    ['POST', '/v1/webhooks/%ff'],
    ['POST', '/v1/webhooks/kling-legacy/%ff'],
  ])('%s %s is a 400 problem with a key (a 4xx without), and logs no error', async (method, path) => {
    const from = lines.length;
    for (const headers of [{ authorization: `Bearer ${TENANT_KEY}` }, {} as Record<string, string>]) {
      const answer = await raw(method, path, { ...headers, 'content-type': 'application/json' }, method === 'POST' ? Buffer.from('{}') : undefined);
      if (headers.authorization || path.startsWith('/v1/webhooks')) expect(answer.status).toBe(400);
      else expect([400, 401]).toContain(answer.status);
      expect(answer.type).toContain('application/problem+json');
    }
    expect(errorLinesSince(from)).toEqual([]);
  });
});

describe('a content-encoding that lies', () => {
  const routes: [string, Record<string, string>][] = [
    ['/v1/videos', { authorization: `Bearer ${TENANT_KEY}` }],
    ['/v1/videos/quote', { authorization: `Bearer ${TENANT_KEY}` }],
    ['/v1/videos/vid_unknown/cancel', { authorization: `Bearer ${TENANT_KEY}` }],
    ['/v1/webhooks/freepik', {}],
    ['/v1/webhooks/kling-legacy/some-token', {}],
  ];
  const cases = routes.flatMap(([path, headers]) => ['gzip', 'deflate', 'br'].map((encoding) => [path, encoding, headers] as const));

  it.each(cases)('POST %s with content-encoding %s over plain JSON is a 400 problem', async (path, encoding, headers) => {
    const from = lines.length;
    const answer = await raw('POST', path, { ...headers, 'content-type': 'application/json', 'content-encoding': encoding }, Buffer.from('{"model":"kling-v3","prompt":"x"}'));
    expect(answer.status).toBe(400);
    expect(answer.type).toContain('application/problem+json');
    expect(errorLinesSince(from)).toEqual([]);
  });

  it('still reads an honest gzip body', async () => {
    const answer = await raw(
      'POST',
      '/v1/videos/quote',
      { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      gzipSync(Buffer.from(JSON.stringify({ model: 'kling-v3', prompt: 'gzip', duration: 5 }))),
    );
    expect(answer.status).toBe(200);
  });
});

describe('a client that goes away mid-upload', () => {
  it.each([
    ['/v1/videos', { authorization: `Bearer ${TENANT_KEY}` }],
    ['/v1/webhooks/freepik', {}],
  ] as const)('POST %s is not logged at error level', async (path, headers) => {
    const from = lines.length;
    const url = new URL(`${gw.url}${path}`);
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': '5000' },
      });
      req.on('error', () => resolve());
      req.write('{"model":"kling-v3","prompt":"');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    // Give the server a moment to notice the gone client.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(errorLinesSince(from)).toEqual([]);
  });
});

describe('metadata keys', () => {
  it.each([['__proto__'], ['constructor'], ['prototype']])('a metadata key %s is a 400, and no task is created', async (key) => {
    const before = (await gw.request('GET', '/v1/videos')).body.data.length;
    const body = `{"model":"kling-v3","prompt":"proto","duration":5,"metadata":{"${key}":{"polluted":"yes"}}}`;
    const answer = await gw.request('POST', '/v1/videos', body);
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(JSON.stringify(answer.body)).toMatch(key === '__proto__' ? /__proto__/ : /metadata/);
    const stringValued = `{"model":"kling-v3","prompt":"proto","duration":5,"metadata":{"${key}":"x"}}`;
    expect((await gw.request('POST', '/v1/videos', stringValued)).status).toBe(400);
    expect((await gw.request('GET', '/v1/videos')).body.data.length).toBe(before);
  });

  it('a __proto__ key at the top of the body or inside routing is a 400', async () => {
    const top = '{"model":"kling-v3","prompt":"proto","duration":5,"__proto__":{"admin":true}}';
    expect((await gw.request('POST', '/v1/videos', top)).status).toBe(400);
    const nested = '{"model":"kling-v3","prompt":"proto","duration":5,"routing":{"__proto__":{"providers":["freepik"]}}}';
    expect((await gw.request('POST', '/v1/videos', nested)).status).toBe(400);
  });

  it('plain keys are kept as given', async () => {
    const answer = await gw.create({ model: 'kling-v3', prompt: 'meta', duration: 5, metadata: { order: '42', 'user.id': 'u-1' } });
    expect(answer.status).toBe(202);
    expect(answer.body.metadata).toEqual({ order: '42', 'user.id': 'u-1' });
  });
});

describe('response headers', () => {
  it('API answers carry nosniff and no-store, errors included', async () => {
    for (const answer of [await gw.request('GET', '/v1/videos'), await gw.request('GET', '/v1/videos/vid_nope'), await gw.request('GET', '/v1/models', undefined, {}, null)]) {
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('Swagger UI is served under a content security policy that runs no inline script', async () => {
    const response = await fetch(`${gw.url}/docs/`);
    expect(response.status).toBe(200);
    const policy = response.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("script-src 'self'");
    expect(policy).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(policy).toContain("frame-ancestors 'none'");
    expect(await response.text()).not.toMatch(/<script>(?!\s*<\/script>)/);
  });
});

describe('paths under /docs that are not a page of it', () => {
  // Swagger UI's middleware answered these itself, with a plain-text "Not Found".
  it.each([['/docs/package.json'], ['/docs/../../package.json'], ['/docs/x/package.json?y=1']])('%s is a 404 problem like any unknown route', async (path) => {
    const answer = await rawRequest(gw.url, path);
    expect(answer.status).toBe(404);
    expect(headerOf(answer, 'content-type')).toContain('application/problem+json');
    expect(headerOf(answer, 'x-request-id')).toBeTruthy();
    expect(JSON.parse(answer.body)).toMatchObject({ type: expect.stringMatching(/\/not-found$/), status: 404, title: expect.any(String), detail: expect.any(String) });
  });

  it('the page and its scripts are still served', async () => {
    expect((await rawRequest(gw.url, '/docs/')).status).toBe(200);
    expect((await rawRequest(gw.url, '/docs/swagger-ui-init.js')).status).toBe(200);
    expect((await rawRequest(gw.url, '/docs/swagger-ui-bundle.js')).status).toBe(200);
  });

  // Swagger UI's middleware served its whole package (the stock demo page at index.html, its
  // initializer, source maps …) and answered any other path under /docs with the page.
  it.each([['/docs/nothing'], ['/docs/swagger-initializer.js'], ['/docs/swagger-ui.js.map'], ['/docs/oauth2-redirect.html'], ['/docs/LICENSE'], ['/docs/a/b']])(
    '%s, no file of the gateway\'s page, is a 404 problem',
    async (path) => {
      const answer = await rawRequest(gw.url, path);
      expect(answer.status).toBe(404);
      expect(headerOf(answer, 'content-type')).toContain('application/problem+json');
      expect(JSON.parse(answer.body)).toMatchObject({ type: expect.stringMatching(/\/not-found$/), status: 404, detail: `no route for GET ${path}` });
    },
  );

  it('/docs/index.html is the gateway\'s own page, the same as /docs/, not Swagger UI\'s stock one', async () => {
    const page = await rawRequest(gw.url, '/docs/');
    const index = await rawRequest(gw.url, '/docs/index.html');
    expect(index.status).toBe(200);
    expect(index.body).toBe(page.body);
    expect(index.body).toContain('<title>Kling Gateway API</title>');
    expect(index.body).toContain('./swagger-ui-init.js');
    expect(index.body).not.toContain('swagger-initializer.js');
    expect(headerOf(index, 'content-security-policy')).toContain("script-src 'self'");
  });

  it('every file the page links is served; /docs redirects to /docs/, where those links resolve', async () => {
    const page = (await rawRequest(gw.url, '/docs/')).body;
    const linked = [...page.matchAll(/(?:href|src)="\.\/([^"]+)"/g)].map((match) => match[1]);
    expect(linked).toContain('swagger-ui.css');
    for (const file of linked) expect((await rawRequest(gw.url, `/docs/${file}`)).status, file).toBe(200);
    const bare = await rawRequest(gw.url, '/docs');
    expect(bare.status).toBe(301);
    expect(headerOf(bare, 'location')).toBe('/docs/');
    expect(headerOf(await rawRequest(gw.url, '/docs?x=1'), 'location')).toBe('/docs/?x=1');
  });
});

describe('a page asked without its slash', () => {
  it.each([
    ['http://evil.example/docs', '/docs/'],
    ['http://evil.example/docs?x=1', '/docs/?x=1'],
    ['http://evil.example/console', '/console/'],
    ['https://evil.example:8443/console?x=1', '/console/?x=1'],
  ])('a request target in absolute form (GET %s) is sent to %s on this gateway, never to the host it names', async (target, location) => {
    const answer = await rawExchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gateway.example\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 301 /);
    expect(/\r\nlocation: ([^\r]*)/i.exec(answer)?.[1]).toBe(location);
    expect(answer).not.toContain('evil.example');
  });
});

describe('validation messages say what is wrong', () => {
  const valid = { model: 'kling-v3', prompt: 'messages', duration: 5 };
  const tooLong = `https://hooks.example.com/${'a'.repeat(2048)}`;

  it.each([['webhook_url'], ['start_image_url']])('an http(s) %s past 2048 characters is refused for its length, not its scheme', async (field) => {
    const answer = await gw.create({ ...valid, [field]: tooLong });
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: field, message: 'must be at most 2048 characters' }]);
  });

  it.each([
    [{ text: 'hello' }, 'lip_sync.voice_id', /^is required$/],
    [{ audio_url: 'ftp://example.com/a.mp3' }, 'lip_sync.audio_url', /http\(s\) URL/],
    [{ text: 'hello', voice_id: 'v1', voice_speed: 9 }, 'lip_sync.voice_speed', /^must be at most 2$/],
  ])('lip_sync %j, a form of neither kind, is refused naming what its closest form lacks', async (lipSync, path, reason) => {
    const answer = await gw.create({ ...valid, lip_sync: lipSync });
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path, message: expect.stringMatching(reason) }]);
  });

  it.each([
    ['k'.repeat(65), /^invalid key: must be at most 64 characters$/],
    ['', /^invalid key: must not be empty$/],
    ['constructor', /reserved name/],
  ])('a metadata key %j is refused with the reason', async (key, reason) => {
    const answer = await gw.create({ ...valid, metadata: { [key]: 'v' } });
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toHaveLength(1);
    expect(answer.body.errors[0].path).toBe(`metadata.${key}`);
    expect(answer.body.errors[0].message).toMatch(/^invalid key: /);
    expect(answer.body.errors[0].message).toMatch(reason);
  });
});

describe('metadata with too many keys', () => {
  // Read key by key before: 5 000 keys of numbers answered 5 000 errors (about 400 kB), and a
  // body near the limit cost a third of a second of the event loop on create and on quote alike.
  it.each([
    ['numbers', 1],
    ['strings', 'v'],
    ['objects', { a: 1 }],
  ])('thousands of keys (values: %s) are one error saying how many it takes, on create and quote', async (_what, value) => {
    const metadata = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, value]));
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await gw.request('POST', route, { model: 'kling-v3', prompt: 'many keys', duration: 5, metadata });
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([{ path: 'metadata', message: 'at most 16 keys' }]);
    }
  });

  it('17 keys are refused the same way; 16 are taken', async () => {
    const keys = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v']));
    const refused = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'keys', duration: 5, metadata: keys(17) });
    expect(refused.body.errors).toEqual([{ path: 'metadata', message: 'at most 16 keys' }]);
    const taken = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'keys', duration: 5, metadata: keys(16) });
    expect(taken.status).toBe(200);
  });
});

describe('a body nested too deeply to read', () => {
  it('is a 400 saying so, not "malformed JSON", and creates nothing', async () => {
    const depth = 50_000;
    const body = `{"model":"kling-v3","prompt":"deep","duration":5,"metadata":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const answer = await gw.request('POST', '/v1/videos', body);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: '(body)', message: 'nested too deeply' }]);
    expect(answer.body.detail).toBe('The body is nested too deeply to read.');
  });
});

describe('a body that is JSON but not an object', () => {
  it('is a 400 saying the body must be a JSON object, as an array is, not "malformed JSON"', async () => {
    for (const body of ['null', ' null ', '5', '"a lighthouse in a storm"', 'true', '[]']) {
      for (const path of ['/v1/videos', '/v1/videos/quote']) {
        const answer = await gw.request('POST', path, body);
        expect(answer.status, `${path} ${body}`).toBe(400);
        expect(answer.body.errors, `${path} ${body}`).toEqual([{ path: '(body)', message: 'expected a JSON object' }]);
        expect(answer.body.detail, `${path} ${body}`).toBe('The body must be a JSON object.');
      }
    }
    // Text that is not JSON at all is still malformed.
    for (const body of ['nul', '{"model":', 'kling-v3']) {
      const answer = await gw.request('POST', '/v1/videos/quote', body);
      expect(answer.body.errors, body).toEqual([{ path: '(body)', message: 'malformed JSON' }]);
    }
  });
});

describe('an Authorization header sent twice', () => {
  /** The status line and body of a request written with the given header lines, on a connection of its own. */
  const exchange = async (requestLine: string, headerLines: string[]) => {
    const { host } = new URL(gw.url);
    const answer = await rawExchange(gw.url, `${requestLine}\r\nhost: ${host}\r\nconnection: close\r\n${headerLines.join('\r\n')}\r\n\r\n`, true);
    return { status: Number(answer.slice(9, 12)), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
  };
  const twice = [`authorization: Bearer ${TENANT_KEY}`, 'authorization: Bearer not-a-key'];

  it.each([
    ['a list', 'GET /v1/videos HTTP/1.1'],
    ['a read of one task (answered ahead of express when plain)', 'GET /v1/videos/vid_unknown HTTP/1.1'],
    ['a content download', 'GET /v1/videos/vid_unknown/content?index=0 HTTP/1.1'],
    ['the catalog', 'GET /v1/models HTTP/1.1'],
  ])('is a 400 naming the header on %s, whichever of the two is the key (a proxy may read the other)', async (_route, requestLine) => {
    for (const lines of [twice, [...twice].reverse()]) {
      const { status, body } = await exchange(requestLine, lines);
      expect(status, body).toBe(400);
      expect(JSON.parse(body)).toMatchObject({ status: 400, errors: [{ path: 'header.authorization', message: 'given more than once; give it once' }] });
    }
  });

  it('once, it is read as before', async () => {
    expect((await exchange('GET /v1/videos HTTP/1.1', [twice[0]!])).status).toBe(200);
  });
});

describe('an Idempotency-Key or Content-Type header sent twice', () => {
  // Node joins two Idempotency-Key lines into one value ("a, b") and keeps the first Content-Type
  // of two: the first was refused as "not 1-255 visible ASCII characters" though each line was
  // one, the second read as JSON a body a proxy in front may have judged as text by the other.
  const body = JSON.stringify({ model: 'kling-v3', prompt: 'twice', duration: 5 });
  const exchange = async (requestLine: string, headerLines: string[]) => {
    const { host } = new URL(gw.url);
    const head = [`host: ${host}`, 'connection: close', `authorization: Bearer ${TENANT_KEY}`, `content-length: ${Buffer.byteLength(body)}`, ...headerLines];
    const answer = await rawExchange(gw.url, `${requestLine}\r\n${head.join('\r\n')}\r\n\r\n${body}`);
    return { status: Number(answer.slice(9, 12)), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
  };

  it.each([
    ['Idempotency-Key, the same key twice, on a create', 'POST /v1/videos HTTP/1.1', ['content-type: application/json', 'idempotency-key: key-1', 'idempotency-key: key-1'], 'idempotency-key'],
    ['Idempotency-Key, two keys, on a create', 'POST /v1/videos HTTP/1.1', ['content-type: application/json', 'idempotency-key: key-1', 'Idempotency-Key: key-2'], 'idempotency-key'],
    ['Content-Type, on a create', 'POST /v1/videos HTTP/1.1', ['content-type: application/json', 'content-type: text/plain'], 'content-type'],
    ['Content-Type, on a quote', 'POST /v1/videos/quote HTTP/1.1', ['content-type: application/json', 'Content-Type: application/json'], 'content-type'],
  ])('%s: a 400 naming the header, nothing made', async (_what, requestLine, lines, header) => {
    const before = (await gw.request('GET', '/v1/videos')).body.data.length;
    const { status, body: answer } = await exchange(requestLine, lines);
    expect(status, answer).toBe(400);
    expect(JSON.parse(answer)).toMatchObject({ status: 400, errors: [{ path: `header.${header}`, message: 'given more than once; give it once' }] });
    expect((await gw.request('GET', '/v1/videos')).body.data.length).toBe(before);
  });

  it('once each, a create is taken as before', async () => {
    const { status } = await exchange('POST /v1/videos HTTP/1.1', ['content-type: application/json', 'idempotency-key: key-once']);
    expect(status).toBe(202);
  });
});

describe('a long path in a 404', () => {
  // A 404 quoted the whole path or id it was given: a 5,000-character id came back whole in the
  // detail, so any client could make the gateway echo kilobytes of its own choosing.
  it.each([['/v1/videos/'], ['/v1/nothing/']])('%s<5,000 characters> names the start of it, cut short', async (prefix) => {
    const long = 'a'.repeat(5000);
    const answer = await rawRequest(gw.url, `${prefix}${long}`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    expect(answer.status).toBe(404);
    const { detail } = JSON.parse(answer.body) as { detail: string };
    expect(detail).toMatch(/(video |no route for GET \/v1\/nothing\/)a{50}/);
    expect(detail.length).toBeLessThan(400);
    expect(detail.endsWith('…')).toBe(true);
  });
});

describe('a JSON key given twice', () => {
  // JSON.parse keeps the last of two same-named keys and drops the first without a word: a proxy or
  // a log reading the first would see another request than the one served. Like a header or a query
  // parameter given twice, it is refused, naming where.
  it.each([
    ['at the top', '{"model":"kling-v3","prompt":"one","prompt":"two","duration":5}', 'prompt'],
    ['spelled with an escape', '{"model":"kling-v3","prompt":"one","\\u0070rompt":"two","duration":5}', 'prompt'],
    ['inside metadata', '{"model":"kling-v3","prompt":"x","duration":5,"metadata":{"a":"1","b":"2","a":"3"}}', 'metadata.a'],
    ['inside an array item', '{"model":"kling-v3","prompt":"x","multi_shot":[{"prompt":"a","duration":3},{"prompt":"b","duration":3,"duration":4}]}', 'multi_shot.1.duration'],
  ])('%s is a 400 naming the key, and no task is created', async (_where, body, path) => {
    const before = (await gw.request('GET', '/v1/videos')).body.data.length;
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await gw.request('POST', route, body);
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body.errors).toEqual([{ path, message: 'given more than once; give it once' }]);
    }
    expect((await gw.request('GET', '/v1/videos')).body.data.length).toBe(before);
  });

  it('the same key in two different objects, and keys that only look alike, are fine', async () => {
    const body = '{"model":"kling-v3","prompt":"x","duration":5,"metadata":{"prompt":"p","Prompt":"q","a\\"b":"r","a":"s"}}';
    const answer = await gw.request('POST', '/v1/videos/quote', body);
    expect(answer.status).toBe(200);
    expect(answer.body.request.metadata).toEqual({ prompt: 'p', Prompt: 'q', 'a"b': 'r', a: 's' });
  });
});

describe('a body that is not UTF-8', () => {
  // Bytes that are no UTF-8 were read as U+FFFD and sent on: a prompt or a URL other than the one
  // the caller wrote (as a lone surrogate in a URL field, which is refused too).
  it.each([
    ['a stray byte in the prompt', Buffer.from([0xff, 0xfe])],
    ['an overlong "/"', Buffer.from([0xc0, 0xaf])],
    ['an encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
    ['a sequence cut short', Buffer.from([0xe2, 0x82])],
  ])('%s is a 400 problem, and no task is created', async (_what, bytes) => {
    const before = (await gw.request('GET', '/v1/videos')).body.data.length;
    const body = Buffer.concat([Buffer.from('{"model":"kling-v3","duration":5,"prompt":"a'), bytes, Buffer.from('b"}')]);
    for (const route of ['/v1/videos', '/v1/videos/quote']) {
      const answer = await raw('POST', route, { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' }, body);
      expect(answer.status).toBe(400);
      expect(answer.type).toContain('application/problem+json');
      expect(JSON.parse(answer.body).errors).toEqual([{ path: '(body)', message: 'not valid UTF-8' }]);
    }
    expect((await gw.request('GET', '/v1/videos')).body.data.length).toBe(before);
  });

  it('UTF-8 beyond ASCII, a byte order mark first, is read as written', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"kling-v3","duration":5,"prompt":"é 😀 ✓"}')]);
    const answer = await raw('POST', '/v1/videos/quote', { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' }, body);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).request.prompt).toBe('é 😀 ✓');
  });
});
