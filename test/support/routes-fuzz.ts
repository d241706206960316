/**
 * Every public route fuzzed with generated input (fast-check), the create body aside
 * (`create-fuzz.test.ts`): queries, path ids, headers, bodies and raw HTTP. Whatever arrives,
 * the gateway never answers 5xx; every refusal is problem details (type, title, status, detail,
 * and `errors[]` with path and message for a validation failure); and a refused request changes
 * nothing: no task is created, none changes, nothing reaches an upstream. The suite runs on each
 * store (`test/http/routes-fuzz*.test.ts`).
 */
import { parse as parseQueryString } from 'node:querystring';
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import type { Store } from '../../src/store/database.js';
import { OTHER_TENANT_KEY, startTestGateway, TENANT_KEY, type TestGateway } from './harness.js';
import { rawExchange } from './raw-answer.js';

/** Where the gateway keeps its tasks, and how much of each property's runs it gets. */
export interface FuzzEngine {
  /** A fresh store and how to drop it; none: the harness's in-memory SQLite. */
  openStore?: () => Promise<{ store: Store; drop(): Promise<void> }>;
  /** Share of each property's runs (a slower store gets fewer, so a file stays well under a minute). */
  runShare: number;
}

let gw: TestGateway;
/** A succeeded task with a stored output (content, events and `?wait` answer at once). */
let done: { id: string; contentUrl: string };
let share = 1;
/** `count` runs scaled by the engine's share. */
const runs = (count: number) => Math.max(10, Math.round(count * share));

const upstreamCalls = () => [...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.requests.length, 0);

/** Every task of both tenants as the API shows them: a refused request must leave this alone. */
async function snapshot(): Promise<string> {
  const pages = await Promise.all(
    [TENANT_KEY, OTHER_TENANT_KEY].map((key) => gw.request('GET', '/v1/videos?limit=100', undefined, {}, key).then((answer) => answer.body)),
  );
  return JSON.stringify(pages.map((page) => page.data.map((task: { id: string; status: string; updated_at: string }) => [task.id, task.status, task.updated_at])));
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** What every answer must hold: no 5xx, a request id, and a refusal as problem details. */
function checkAnswer(answer: Answer, what: string): void {
  expect(answer.status, `${what}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
  expect(answer.headers.get('x-request-id'), what).toBeTruthy();
  if (answer.status < 400) return;
  expect(answer.headers.get('content-type') ?? '', `${what}: ${answer.status} ${JSON.stringify([...answer.headers])} ${answer.text.slice(0, 300)}`).toContain('application/problem+json');
  const problem = JSON.parse(answer.text);
  expect(problem, what).toMatchObject({ type: expect.any(String), title: expect.any(String), status: answer.status, detail: expect.any(String) });
  if (String(problem.type).endsWith('/validation')) {
    expect(Array.isArray(problem.errors), what).toBe(true);
    for (const error of problem.errors) expect(error, what).toMatchObject({ path: expect.any(String), message: expect.any(String) });
  }
}

async function send(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  const response = await fetch(`${gw.url}${path}`, { method, headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Sends and checks the answer; a refusal reaches no upstream. */
async function sendAndCheck(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  const beforeCalls = upstreamCalls();
  const answer = await send(method, path, init);
  const what = `${method} ${path} ${JSON.stringify(init.headers ?? {})}`;
  checkAnswer(answer, what);
  if (answer.status >= 400) expect(upstreamCalls(), what).toBe(beforeCalls);
  return answer;
}

/** Runs `fuzz` (whose requests create nothing) and checks that no task was created or changed. */
async function unchanged(fuzz: () => Promise<void>): Promise<void> {
  const before = await snapshot();
  await fuzz();
  expect(await snapshot()).toBe(before);
}

/** `sendAndCheck`, and a refused request leaves every task as it was (for requests that may create). */
async function sendAndCheckEach(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  const before = await snapshot();
  const answer = await sendAndCheck(method, path, init);
  if (answer.status >= 400) expect(await snapshot(), `${method} ${path}`).toBe(before);
  return answer;
}

const auth = (key = TENANT_KEY) => ({ authorization: `Bearer ${key}` });

// Text of every kind: ASCII, any unicode (lone surrogates included), control characters, long runs.
const anyText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: fc.constantFrom('\u0000', '\u0001', '\n', '\r', '\t', ' ', '%', '&', '=', '[', ']', '#', '?', '/', '\\', '"', "'", '.', '+'), maxLength: 10 }),
  fc.constantFrom('', '0', '-1', '1e308', '1e999', 'NaN', 'Infinity', '-0', '0x10', '9007199254740993', '99999999999999999999999', 'true', 'null', '__proto__', 'constructor', 'toString'),
  fc.string({ minLength: 200, maxLength: 3000 }),
);

/** A query value as a client might spell it: encoded, or raw (then only what a URL can carry). */
const encodedText = anyText.map((text) => encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, 'x')));

/**
 * A refused query names parameters it was sent (as the gateway's `simple` query parser reads
 * them; a long name by its first 200 characters), or the whole URL (a NUL anywhere in it), never the body a GET does not have.
 */
function expectNamedParameters(answer: Answer, pairs: [string, string][] | undefined): void {
  if (answer.status !== 400) return;
  const problem = JSON.parse(answer.text);
  if (!String(problem.type).endsWith('/validation')) return;
  const names = Object.keys(parseQueryString(queryOf(pairs ?? []).slice(1)));
  for (const { path } of problem.errors as { path: string }[]) {
    // A name longer than 200 characters is given by its first 200 and an ellipsis.
    const named = (name: string) => path === name || path.startsWith(`${name}.`) || (path.endsWith('…') && path.length === 201 && name.startsWith(path.slice(0, -1)));
    expect([...names, '(url)'].some(named), answer.text).toBe(true);
  }
}

function queryOf(pairs: [string, string][]): string {
  return pairs.length === 0 ? '' : `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`;
}

/** Query pairs over `names` (each may repeat, or come as `name[]`, `name[x]`), and now and then an unknown one. */
function queryPairs(names: readonly string[], values: fc.Arbitrary<string>): fc.Arbitrary<[string, string][]> {
  const name = fc.oneof(
    { arbitrary: fc.constantFrom(...names), weight: 8 },
    { arbitrary: fc.constantFrom(...names).map((n) => `${n}[]`), weight: 1 },
    { arbitrary: fc.constantFrom(...names).map((n) => `${n}[a]`), weight: 1 },
    { arbitrary: encodedText, weight: 1 },
  );
  return fc.array(fc.tuple(name, values), { maxLength: 4 });
}

// Task ids as a client might spell them in a path (escaped where they must be).
const pathId = fc.oneof(
  fc.constantFrom('vid_unknown', 'x', '-', '_', 'A'.repeat(64), 'A'.repeat(2000), '%2e%2e', '%2F', '%00'.slice(1), '..%2f..', 'vid_%C0%80', '%E2%80%AE'),
  // A whole "." or ".." is a dot-segment fetch removes before sending, escaped or not (the URL
  // standard reads `%2e` as a dot: `/v1/videos/%2E/cancel` goes out as `/v1/videos/cancel`, a 405),
  // so fetch cannot send such an id at all; "raw HTTP" below sends them. Here they get a letter.
  fc.string({ minLength: 1, maxLength: 80 }).map((text) => encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, 'x')).replace(/^\.{1,2}$/, (dots) => `${dots}x`)),
  fc.constant('DONE'),
);
const realId = (id: string) => (id === 'DONE' ? done.id : id);

const FUZZ_TIMEOUT = 60_000;

/** Writes `raw` on a fresh connection to the gateway (see `rawExchange`). */
const exchange = (raw: string | Buffer, halfClose = false) => rawExchange(gw.url, raw, halfClose);

const statusesOf = (answer: string) => [...answer.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((match) => Number(match[1]));

/** Defines the whole suite on one engine (one gateway and store for all of it). */
export function describeRoutesFuzz(engine: FuzzEngine): void {
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    share = engine.runShare;
    const opened = engine.openStore ? await engine.openStore() : undefined;
    drop = opened?.drop;
    // Room for every task the properties create, so a later create is still sent at once.
    const roomy = { max_in_flight: 10_000 };
    gw = await startTestGateway({
      ...(opened ? { store: opened.store } : {}),
      config: { limits: { creates_per_minute: 100_000 }, storage: { mode: 'copy' }, providers: { freepik: roomy, kling3api: roomy, 'kling-legacy': roomy } },
    });
    const created = await gw.create({ model: 'kling-v3', prompt: 'the fuzzed one', duration: 5 });
    expect(created.status).toBe(202);
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('succeeded');
    done = { id: task.id, contentUrl: task.outputs[0].url };
  });
  afterAll(async () => {
    await gw.close();
    await drop?.();
  });

  describe('GET /v1/videos, fuzzed query', () => {
    const values = fc.oneof(
      encodedText,
      fc.constantFrom('queued', 'processing', 'succeeded', 'failed', 'canceled', 'freepik', 'kling3api', 'kling-legacy', '1', '100', '101', '0', '-5', '2.5', '1e2'),
      fc.constantFrom(
        Buffer.from('{"c":1e400,"i":"x"}').toString('base64url'),
        Buffer.from('{"c":9007199254740993,"i":"x"}').toString('base64url'),
        Buffer.from('{"c":1,"i":"\\u0000"}').toString('base64url'),
        Buffer.from('{"c":-1,"i":"a"}').toString('base64url'),
        Buffer.from('{"c":1,"i":"a"}').toString('base64url'),
        Buffer.from('[]').toString('base64url'),
        Buffer.from('null').toString('base64url'),
        Buffer.from('{"__proto__":{"c":1}}').toString('base64url'),
      ),
    );
    it('never a 5xx; refusals are validation problems naming the parameter', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(queryPairs(['status', 'provider', 'limit', 'cursor'], values), async (pairs) => {
          const answer = await sendAndCheck('GET', `/v1/videos${queryOf(pairs)}`, { headers: auth() });
          expectNamedParameters(answer, pairs);
          if (answer.status === 200) expect(JSON.parse(answer.text)).toMatchObject({ data: expect.any(Array) });
          else expect(answer.status).toBe(400);
        }),
        { numRuns: runs(60) },
      ));
    });
  });

  describe('GET /v1/videos/{id}, fuzzed id and ?wait', () => {
    const wait = fc.oneof(encodedText, fc.constantFrom('0', '1', '60', '61', '-1', '1.5', '1e1', '', ' 5', '0x1', '5&wait=6'));
    it('never a 5xx and never a hang', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(pathId, fc.option(queryPairs(['wait'], wait), { nil: undefined }), async (id, pairs) => {
          const answer = await sendAndCheck('GET', `/v1/videos/${realId(id)}${pairs ? queryOf(pairs) : ''}`, { headers: auth() });
          expectNamedParameters(answer, pairs);
          expect([200, 400, 404, 431]).toContain(answer.status);
        }),
        { numRuns: runs(80) },
      ));
    });
  });

  describe('GET /v1/videos/{id}/events, fuzzed id and Last-Event-ID', () => {
    const lastEventId = fc.oneof(
      fc.constantFrom('0', '1', '2', '3', '999999999999999', '9999999999999999', '-1', '1.0', ' 2 ', '00000000000000000000000000003', '1e3'),
      fc.string({ unit: fc.constantFrom(...'0123456789 -+.eE,x'), maxLength: 25 }),
      fc.string({ maxLength: 40 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
    );
    it('never a 5xx; a stream is an event stream, a refusal a problem', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(pathId, fc.option(lastEventId, { nil: undefined }), async (id, last) => {
          const headers = { ...auth(), ...(last !== undefined ? { 'last-event-id': last } : {}) };
          const answer = await sendAndCheck('GET', `/v1/videos/${realId(id)}/events`, { headers });
          expect([200, 204, 400, 404, 431]).toContain(answer.status);
          if (answer.status === 200) expect(answer.headers.get('content-type')).toContain('text/event-stream');
        }),
        { numRuns: runs(70) },
      ));
    });
  });

  describe('GET /v1/videos/{id}/webhooks and POST /v1/videos/{id}/cancel, fuzzed', () => {
    it('the webhooks of any id: never a 5xx', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(pathId, fc.constantFrom(TENANT_KEY, OTHER_TENANT_KEY), async (id, key) => {
          const answer = await sendAndCheck('GET', `/v1/videos/${realId(id)}/webhooks`, { headers: auth(key) });
          expect([200, 400, 404, 431]).toContain(answer.status);
        }),
        { numRuns: runs(80) },
      ));
    });

    it('cancel of any id with any body: never a 5xx, and a finished task stays as it was', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(
          pathId,
          fc.constantFrom(TENANT_KEY, OTHER_TENANT_KEY),
          fc.option(fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)), anyText), { nil: undefined }),
          fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-16'),
          async (id, key, body, type) => {
            const answer = await sendAndCheck('POST', `/v1/videos/${realId(id)}/cancel`, { headers: { ...auth(key), 'content-type': type }, ...(body !== undefined ? { body } : {}) });
            expect([200, 400, 404, 409, 413, 415, 431]).toContain(answer.status);
          },
        ),
        { numRuns: runs(60) },
      ));
      expect((await gw.get(done.id)).body.status).toBe('succeeded');
    });
  });

  describe('GET /v1/videos/{id}/content, fuzzed query and conditional headers', () => {
    const link = () => new URL(done.contentUrl);
    const index = fc.oneof(fc.constantFrom('0', '1', '-1', '1000', '1001', '0.5', '1e3', '', '00', '+0'), encodedText);
    const rangeHeader = fc.oneof(
      fc.constantFrom('bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=-0', 'bytes=5-2', 'bytes=0-99999999999', 'bytes=99999999999-', 'bytes=0-1,3-4', 'bytes=', 'items=0-1', 'bytes=a-b', 'bytes=-', 'bytes=1e3-'),
      fc.tuple(fc.nat({ max: 1 << 22 }), fc.nat({ max: 1 << 22 })).map(([a, b]) => `bytes=${a}-${b}`),
      fc.string({ maxLength: 30 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
    );
    const validator = fc.oneof(fc.constantFrom('*', '"x"', 'W/"x"', '', ',,,', 'W/'), fc.string({ maxLength: 80 }).filter((text) => /^[\x20-\x7e]*$/.test(text)));

    it('with the key: never a 5xx; 200, 206, 304, or a problem', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(
          pathId,
          fc.option(queryPairs(['index'], index), { nil: undefined }),
          fc.record({ range: rangeHeader, 'if-none-match': validator, 'if-range': validator }, { requiredKeys: [] }),
          async (id, pairs, conditional) => {
            const answer = await sendAndCheck('GET', `/v1/videos/${realId(id)}/content${pairs ? queryOf(pairs) : ''}`, { headers: { ...auth(), ...conditional } });
            expectNamedParameters(answer, pairs);
            expect([200, 206, 304, 307, 400, 404, 416, 431]).toContain(answer.status);
          },
        ),
        { numRuns: runs(80) },
      ));
    });

    it('without the key, with forged or altered link parameters: never a 5xx, never the file', { timeout: FUZZ_TIMEOUT }, async () => {
      const real = link().searchParams;
      const value = fc.oneof(
        encodedText,
        fc.constantFrom(real.get('expires') ?? '', real.get('signature') ?? '', `${real.get('signature')}x`, '9'.repeat(30), '1e21', '-1', '0'),
      );
      await unchanged(() => fc.assert(
        fc.asyncProperty(queryPairs(['index', 'expires', 'signature'], value), async (pairs) => {
          const answer = await sendAndCheck('GET', `/v1/videos/${done.id}/content${queryOf(pairs)}`);
          expectNamedParameters(answer, pairs);
          const query = new URLSearchParams(queryOf(pairs).slice(1));
          const genuine = query.getAll('expires').join() === real.get('expires') && query.getAll('signature').join() === real.get('signature');
          if (!genuine) expect([400, 401]).toContain(answer.status);
        }),
        { numRuns: runs(80) },
      ));
    });
  });

  describe('GET /v1/usage, fuzzed query', () => {
    const values = fc.oneof(
      encodedText,
      fc.constantFrom('provider', 'model', 'operation', 'quality', 'day', 'tenant', 'provider,day', 'day,day', ',', 'csv', 'json', 'xml', 'acme', 'other'),
      fc.constantFrom('2026-11-01', '2026-11-01T00:00:00Z', '2026-02-30', '0000-01-01', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00Z', '-000001-01-01', '1', '1e15', 'yesterday'),
    );
    it('never a 5xx; refusals are validation problems', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(queryPairs(['group_by', 'from', 'to', 'format', 'tenant'], values), async (pairs) => {
          const answer = await sendAndCheck('GET', `/v1/usage${queryOf(pairs)}`, { headers: auth() });
          expectNamedParameters(answer, pairs);
          expect([200, 400, 403]).toContain(answer.status);
        }),
        { numRuns: runs(60) },
      ));
    });
  });

  describe('POST /v1/videos/quote, fuzzed body', () => {
    it('any JSON value, under any content type: never a 5xx, never a task', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)), anyText),
          fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/JSON', 'text/json', 'application/merge-patch+json'),
          async (body, type) => {
            const answer = await sendAndCheck('POST', '/v1/videos/quote', { headers: { ...auth(), 'content-type': type }, body });
            expect([200, 400, 402, 413, 415, 422]).toContain(answer.status);
          },
        ),
        { numRuns: runs(80) },
      ));
    });
  });

  describe('POST /v1/videos, bodies in transit', () => {
    const valid = JSON.stringify({ model: 'kling-v3', prompt: 'in transit', duration: 5 });
    it.each([
      ['gzip', () => gzipSync(valid)],
      ['deflate', () => deflateSync(valid)],
      ['gzip, twice', () => gzipSync(gzipSync(valid))],
      ['identity', () => Buffer.from(valid)],
    ] as const)('content-encoding %s: never a 5xx', async (encoding, bytes) => {
      const header = encoding === 'gzip, twice' ? 'gzip, gzip' : encoding;
      await sendAndCheckEach('POST', '/v1/videos', { headers: { ...auth(), 'content-type': 'application/json', 'content-encoding': header }, body: bytes() });
    });

    it('a gzip bomb (a small body that inflates past the limit) is a 413 and creates nothing', async () => {
      const bomb = gzipSync(Buffer.from(`{"model":"kling-v3","prompt":"${'a'.repeat(8 * 1024 * 1024)}","duration":5}`));
      const answer = await sendAndCheckEach('POST', '/v1/videos', { headers: { ...auth(), 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: bomb });
      expect(answer.status).toBe(413);
    });

    it('duplicate keys: never a 5xx', async () => {
      const answer = await sendAndCheckEach('POST', '/v1/videos', {
        headers: { ...auth(), 'content-type': 'application/json' },
        body: '{"model":"kling-v3","prompt":"dup","duration":5,"duration":999,"model":"nope"}',
      });
      expect(answer.status).toBe(400);
    });

    it('fuzzed content types and charsets: never a 5xx', { timeout: FUZZ_TIMEOUT }, async () => {
      const type = fc.oneof(
        fc.constantFrom(
          'application/json; charset=utf-16',
          'application/json; charset=UTF-8',
          'application/json; charset="utf-8"',
          'application/json; charset=iso-8859-1',
          'application/json; charset=',
          'application/json;;;',
          'application/json; boundary=x',
          'application/*',
          '*/*',
          'application',
          'multipart/form-data; boundary=x',
          ';',
        ),
        fc.string({ maxLength: 40 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
      );
      await unchanged(() => fc.assert(
        fc.asyncProperty(type, async (contentType) => {
          await sendAndCheck('POST', '/v1/videos/quote', { headers: { ...auth(), 'content-type': contentType }, body: valid });
        }),
        { numRuns: runs(80) },
      ));
    });
  });

  describe('headers', () => {
    const headerText = fc.oneof(
      fc.string({ maxLength: 300 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
      fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code)), maxLength: 20 }),
      fc.constantFrom('', ' ', 'Bearer', 'Bearer ', `Bearer  ${TENANT_KEY}`, `bearer ${TENANT_KEY}`, `BEARER\t${TENANT_KEY}`, `Bearer ${TENANT_KEY} x`, `Basic ${Buffer.from(`acme:${TENANT_KEY}`).toString('base64')}`, `Bearer ${TENANT_KEY}\u00ff`, `Token ${TENANT_KEY}`),
    );
    it('any Authorization: never a 5xx; without a valid key, a 401 with WWW-Authenticate', { timeout: FUZZ_TIMEOUT }, async () => {
      const routes = ['GET /v1/videos', 'GET /v1/videos/DONE', 'GET /v1/videos/DONE/events', 'GET /v1/videos/DONE/webhooks', 'POST /v1/videos/DONE/cancel', 'GET /v1/usage', 'GET /v1/models', 'POST /v1/videos/quote', 'POST /v1/videos'];
      await unchanged(() => fc.assert(
        fc.asyncProperty(fc.constantFrom(...routes), headerText, async (route, authorization) => {
          const [method = 'GET', path = '/'] = route.replace('DONE', done.id).split(' ');
          const answer = await sendAndCheck(method, path, { headers: { authorization, 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) });
          if (!/^Bearer\s+acme-secret-key\s*$/i.test(authorization)) {
            expect(answer.status).toBe(401);
            expect(answer.headers.get('www-authenticate')).toBe('Bearer');
          }
        }),
        { numRuns: runs(80) },
      ));
    });

    it('any Idempotency-Key: never a 5xx; a refused one creates nothing', { timeout: FUZZ_TIMEOUT }, async () => {
      const key = fc.oneof(
        headerText,
        fc.constantFrom('a'.repeat(255), 'a'.repeat(256), 'a'.repeat(8000), ' key ', 'k\u00e9y', '\t'),
      );
      await fc.assert(
        fc.asyncProperty(key, async (idempotencyKey) => {
          const answer = await sendAndCheckEach('POST', '/v1/videos', {
            headers: { ...auth(), 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
            body: JSON.stringify({ model: 'kling-v3', prompt: 'idempotency fuzz', duration: 5 }),
          });
          expect([202, 400, 409, 422, 431]).toContain(answer.status);
        }),
        { numRuns: runs(80) },
      );
    });

    it('any x-request-id: never a 5xx, and a sane one is echoed', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(headerText, fc.constantFrom('/v1/videos', `/v1/videos/${'DONE'}`, '/v1/videos/vid_unknown', '/v1/nothing'), async (requestId, path) => {
          const answer = await sendAndCheck('GET', path.replace('DONE', done.id), { headers: { ...auth(), 'x-request-id': requestId } });
          const echoed = answer.headers.get('x-request-id') ?? '';
          if (/^[A-Za-z0-9._:-]{1,128}$/.test(requestId)) expect(echoed).toBe(requestId);
          else expect(echoed).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
        }),
        { numRuns: runs(60) },
      ));
    });
  });

  describe('inbound webhooks, fuzzed', () => {
    const webhookHeaders = fc.record(
      {
        'webhook-id': fc.oneof(fc.constantFrom('msg_1', '', 'a'.repeat(5000)), fc.string({ maxLength: 60 }).filter((text) => /^[\x20-\x7e]*$/.test(text))),
        'webhook-timestamp': fc.oneof(
          fc.constantFrom('0', '-1', '1e10', '99999999999999999999', 'NaN', '', String(Math.floor(Date.UTC(2026, 10, 22, 12) / 1000))),
          fc.string({ maxLength: 20 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
        ),
        'webhook-signature': fc.oneof(
          fc.constantFrom('v1,', 'v1,AAAA', 'v1,!!!', 'v2,abc', 'v1', ',', 'v1,a v1,b v1,c', `v1,${'A'.repeat(5000)}`),
          fc.string({ maxLength: 120 }).filter((text) => /^[\x20-\x7e]*$/.test(text)),
        ),
        'content-type': fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'application/json; charset=utf-16'),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
      fc.constantFrom('{"task_id":"x","status":"COMPLETED"}', '{"data":{"task_id":"x","status":"COMPLETED","generated":["http://127.0.0.1/x.mp4"]}}', '', 'null', '{"__proto__":{"a":1}}'),
      anyText,
    );

    it('signed-provider webhooks with any headers and body: never a 5xx, never a change', { timeout: FUZZ_TIMEOUT }, async () => {
      const path = fc.oneof(fc.constant('/v1/webhooks/freepik'), pathId.map((token) => `/v1/webhooks/freepik/${token}`), pathId.map((provider) => `/v1/webhooks/${provider}`));
      await unchanged(() => fc.assert(
        fc.asyncProperty(path, webhookHeaders, body, async (target, headers, text) => {
          const answer = await sendAndCheck('POST', target.replace('DONE', done.id), { headers, body: text });
          // Nothing here is signed with the provider's secret.
          expect(answer.status).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: runs(80) },
      ));
    });

    it('legacy callbacks with any token and body: never a 5xx, never a change', { timeout: FUZZ_TIMEOUT }, async () => {
      await unchanged(() => fc.assert(
        fc.asyncProperty(pathId, body, fc.constantFrom('application/json', 'text/plain'), async (token, text, type) => {
          const answer = await sendAndCheck('POST', `/v1/webhooks/kling-legacy/${realId(token)}`, { headers: { 'content-type': type }, body: text });
          expect(answer.status).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: runs(70) },
      ));
    });
  });

  describe('authentic senders with fuzzed bodies', () => {
    const word = fc.oneof(fc.constantFrom('CREATED', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'submitted', 'processing', 'succeed', 'failed', 'completed', ''), fc.string({ maxLength: 20 }));
    const junk = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, [], {}, 1e308, -1, '', 'https://cdn.example.com/x.mp4'));
    const urls = fc.oneof(
      fc.array(fc.oneof(fc.constantFrom('https://cdn.example.com/a.mp4', '', 'not a url', 'javascript:alert(1)', 'http://[::1', `https://cdn.example.com/${'a'.repeat(5000)}.mp4`), junk), { maxLength: 3 }),
      junk,
    );

    it('signed Freepik webhooks about a live task: never a 5xx, and the task still reads', { timeout: FUZZ_TIMEOUT }, async () => {
      const created = await gw.create({ model: 'kling-v3', prompt: 'signed fuzz', duration: 5, routing: { providers: ['freepik'] } });
      expect(created.body.provider).toBe('freepik');
      const providerTaskId = created.body.provider_task_id as string;
      const secret = gw.endpoints.get('freepik')!.webhookSecret!;
      const body = fc.oneof(
        fc.record({ task_id: fc.oneof(fc.constant(providerTaskId), junk), status: fc.oneof(word, junk), generated: urls }, { requiredKeys: [] }),
        fc.record({ data: fc.record({ task_id: fc.oneof(fc.constant(providerTaskId), junk), status: fc.oneof(word, junk), generated: urls, error: junk }, { requiredKeys: [] }) }),
        junk,
      );
      let n = 0;
      await fc.assert(
        fc.asyncProperty(body, async (value) => {
          const raw = JSON.stringify(value) ?? 'null';
          const id = `wh_fuzz_${n++}`;
          const timestamp = String(Math.floor(gw.clock.now() / 1000));
          const answer = await send('POST', '/v1/webhooks/freepik', {
            headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, id, timestamp, raw) },
            body: raw,
          });
          checkAnswer(answer, raw);
          const task = await gw.get(created.body.id);
          expect(task.status, raw).toBe(200);
        }),
        { numRuns: runs(60) },
      );
    });

    it("legacy callbacks on a live task's own token: never a 5xx, and the task still reads", { timeout: FUZZ_TIMEOUT }, async () => {
      const created = await gw.create({ model: 'kling-v1-6', prompt: 'callback fuzz' });
      expect(created.body.provider).toBe('kling-legacy');
      const token = (await gw.gateway.store.getTask(created.body.id))!.callback_token;
      const providerTaskId = created.body.provider_task_id as string;
      const body = fc.oneof(
        fc.record(
          {
            task_id: fc.oneof(fc.constant(providerTaskId), junk),
            task_status: fc.oneof(word, junk),
            task_status_msg: junk,
            task_result: fc.oneof(fc.record({ videos: fc.oneof(fc.array(fc.record({ id: junk, url: urls, duration: junk }, { requiredKeys: [] }), { maxLength: 2 }), junk) }), junk),
          },
          { requiredKeys: [] },
        ).map((value) => JSON.stringify(value)),
        fc.record({ code: junk, data: junk }).map((value) => JSON.stringify(value)),
        anyText,
      );
      await fc.assert(
        fc.asyncProperty(body, async (raw) => {
          const answer = await send('POST', `/v1/webhooks/kling-legacy/${token}`, { headers: { 'content-type': 'application/json' }, body: raw });
          checkAnswer(answer, raw);
          await gw.gateway.runOnce();
          const task = await gw.get(created.body.id);
          expect(task.status, raw).toBe(200);
        }),
        { numRuns: runs(60) },
      );
    });
  });

  describe('raw HTTP', () => {
    it('HTTP/1.0, without Host, is answered', async () => {
      const answer = await exchange(`GET /v1/videos/${done.id} HTTP/1.0\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`);
      expect(statusesOf(answer)).toEqual([200]);
    });

    it('an id that is a whole "." or "..", escaped, is an id like any other: 404, never another route', async () => {
      for (const id of ['%2E', '%2e%2E']) {
        for (const [method, path] of [['POST', `/v1/videos/${id}/cancel`], ['GET', `/v1/videos/${id}/webhooks`], ['GET', `/v1/videos/${id}`]] as const) {
          const answer = await exchange(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
          expect(statusesOf(answer), `${method} ${path}`).toEqual([404]);
          expect(answer, `${method} ${path}`).toContain(`not found`);
        }
      }
    });

    it('pipelined requests are each answered, in order', async () => {
      const one = `GET /v1/videos/${done.id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`;
      const refused = 'GET /v1/videos HTTP/1.1\r\nHost: x\r\n\r\n';
      const body = '{"model":1}';
      const quote = `POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const last = `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
      const answer = await exchange(one + refused + quote + one + last);
      expect(statusesOf(answer)).toEqual([200, 401, 400, 200, 200]);
    });

    it('any request line or header bytes: never a 5xx, a request id on every answer, and the gateway keeps serving', { timeout: FUZZ_TIMEOUT }, async () => {
      const method = fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'CONNECT', 'get', 'BREW', ''), fc.string({ maxLength: 8 }));
      const target = fc.oneof(
        fc.constantFrom('/v1/videos', `/v1/videos/${'DONE'}`, '/v1/videos/DONE/content', '/v1/webhooks/freepik', '*', 'http://x/v1/videos', '//v1/videos', '/v1/../v1/videos', '/%', '/v1/videos?%', '/v1/videos#x'),
        fc.string({ maxLength: 40 }).map((text) => `/${text}`),
      );
      const version = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', '', 'http/1.1', 'HTTP/1.10');
      const header = fc.oneof(
        fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 })),
        fc.tuple(fc.constantFrom('Expect', 'Upgrade', 'Content-Length', 'Transfer-Encoding', 'Content-Encoding', 'Content-Type', 'Host', 'If-None-Match', 'Range'), fc.string({ maxLength: 20 })),
      );
      const extra = fc.array(header, { maxLength: 3 });
      await unchanged(() => fc.assert(
        fc.asyncProperty(method, target, version, fc.boolean(), extra, async (m, t, v, host, headers) => {
          const lines = [`${m} ${t.replace('DONE', done.id)} ${v}`, ...(host ? ['Host: x'] : []), `Authorization: Bearer ${TENANT_KEY}`, ...headers.map(([name, value]) => `${name}: ${value}`), 'Connection: close'];
          const answer = await exchange(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), true);
          const heads = answer.split(/(?=HTTP\/1\.[01] \d{3} )/).filter((head) => /^HTTP\/1\.[01] \d{3} /.test(head) && !head.startsWith('HTTP/1.1 100 '));
          for (const head of heads) {
            expect(statusesOf(head)[0], JSON.stringify(lines)).toBeLessThan(500);
            expect(head.split('\r\n\r\n')[0], JSON.stringify(lines)).toMatch(/\r\nx-request-id: /i);
          }
        }),
        { numRuns: runs(70) },
      ));
      expect((await send('GET', '/healthz')).status).toBe(200);
    });

    it('a chunked create body with extensions, trailers and bad sizes: never a 5xx', async () => {
      const body = '{"model":"kling-v3","prompt":"chunked","duration":5}';
      const head = `POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
      for (const chunks of [
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        `${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nX-Trailer: y\r\n\r\n`,
        `zz\r\n${body}\r\n0\r\n\r\n`,
        `${(body.length + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        `ffffffffffffffff\r\n${body}\r\n0\r\n\r\n`,
      ]) {
        const answer = await exchange(head + chunks, true);
        for (const status of statusesOf(answer)) expect(status, chunks).toBeLessThan(500);
      }
    });
  });
}
