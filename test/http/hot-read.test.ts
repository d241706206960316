/**
 * The hot read (`GET /v1/videos/{id}` ahead of express): it answers only the plain case, with the
 * bytes express would send, and leaves every other request to express untouched.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { withHotRead } from '../../src/http/hot-read.js';
import { RequestRecording } from '../../src/http/middleware.js';
import { problems } from '../../src/core/model/problems.js';
import { createLogger } from '../../src/observability/logger.js';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { OTHER_TENANT_KEY, startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { comparable, headerOf, parseAnswerText, rawExchange, rawRequest, type RawAnswer } from '../support/raw-answer.js';

const rawGet = (base: string, path: string, headers: Record<string, string> = {}, method = 'GET') => rawRequest(base, path, { method, headers });

describe('the hot read decides what it answers', () => {
  const TASK = { id: 'vid_1', object: 'video', status: 'succeeded', outputs: [], note: 'ünïcødé ✓' };
  const calls: { tenant: string; id: string }[] = [];
  let expressCalls = 0;
  let stopping = false;
  let failRead: Error | undefined;
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const lines: { msg?: string; request_id?: string; req?: { url: string }; res?: { status: number } }[] = [];
  const logger = createLogger('info', {
    destination: new Writable({
      write(chunk, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    }),
  });
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const listener = withHotRead(
      (_req, res) => {
        expressCalls++;
        res.writeHead(299).end('express');
      },
      {
        service: {
          get: async (tenant: string, id: string) => {
            calls.push({ tenant, id });
            if (failRead) throw failRead;
            return { ...TASK, id } as never;
          },
        },
        tenantOf: (authorization) => (authorization === `Bearer ${TENANT_KEY}` ? 'acme' : undefined),
        recording: new RequestRecording(metrics, logger, new Set()),
        stopping: () => stopping,
        etag: (body) => `W/"${body.length.toString(16)}-test"`,
      },
    );
    server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  afterEach(() => {
    calls.length = 0;
    expressCalls = 0;
    stopping = false;
    failRead = undefined;
  });

  const auth = { authorization: `Bearer ${TENANT_KEY}` };

  it('answers a plain read itself: the headers express sends, in its order, the Task as JSON, metrics and a log line', async () => {
    const answer = await rawGet(base, '/v1/videos/vid_abc-1_X', { ...auth, 'x-request-id': 'trace-42' });
    const body = JSON.stringify({ ...TASK, id: 'vid_abc-1_X' });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe(body);
    expect(calls).toEqual([{ tenant: 'acme', id: 'vid_abc-1_X' }]);
    expect(expressCalls).toBe(0);
    expect(answer.rawHeaders.filter((_, at) => at % 2 === 0).slice(0, 6)).toEqual([
      'x-request-id',
      'x-content-type-options',
      'cache-control',
      'Content-Type',
      'Content-Length',
      'ETag',
    ]);
    expect(headerOf(answer, 'x-request-id')).toBe('trace-42');
    expect(headerOf(answer, 'x-content-type-options')).toBe('nosniff');
    expect(headerOf(answer, 'cache-control')).toBe('no-store');
    expect(headerOf(answer, 'content-type')).toBe('application/json; charset=utf-8');
    expect(headerOf(answer, 'content-length')).toBe(String(Buffer.byteLength(body)));
    expect(headerOf(answer, 'etag')).toBe(`W/"${Buffer.byteLength(body).toString(16)}-test"`);
    const { body: exposition } = await metrics.exposition();
    expect(exposition).toMatch(/kling_gateway_http_requests_total\{method="GET",route="\/v1\/videos\/:id",status="200"\} 1/);
    expect(lines.at(-1)).toMatchObject({ msg: 'request completed', request_id: 'trace-42', req: { url: '/v1/videos/vid_abc-1_X' }, res: { status: 200 } });
  });

  it('makes up a request id when the client sent none or a strange one', async () => {
    const answer = await rawGet(base, '/v1/videos/vid_2', { ...auth, 'x-request-id': 'not ok!' });
    expect(headerOf(answer, 'x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['HEAD', '/v1/videos/vid_1', auth, 'HEAD'],
    ['a query', '/v1/videos/vid_1?wait=0', auth, 'GET'],
    ['an empty query', '/v1/videos/vid_1?', auth, 'GET'],
    ['a trailing slash', '/v1/videos/vid_1/', auth, 'GET'],
    ['other letter case', '/V1/videos/vid_1', auth, 'GET'],
    ['an escape', '/v1/videos/vid%5F1', auth, 'GET'],
    ['a sub-resource', '/v1/videos/vid_1/events', auth, 'GET'],
    ['a body', '/v1/videos/vid_1', { ...auth, 'content-type': 'application/json', 'content-length': '2' }, 'GET'],
    ['If-None-Match', '/v1/videos/vid_1', { ...auth, 'if-none-match': 'W/"1-x"' }, 'GET'],
    ['no key', '/v1/videos/vid_1', {}, 'GET'],
    ['an unknown key', '/v1/videos/vid_1', { authorization: 'Bearer nope' }, 'GET'],
    ['a create', '/v1/videos', auth, 'POST'],
  ] as [string, string, Record<string, string>, string][])('leaves %s to express, without reading', async (_what, path, headers, method) => {
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      const request = httpRequest(base, { method, headers, path }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks).toString() }));
      });
      request.on('error', reject);
      request.end(headers['content-length'] ? '{}' : undefined);
    });
    expect(answer.status).toBe(299);
    expect(calls).toEqual([]);
    expect(expressCalls).toBe(1);
  });

  it('leaves every request to express once the gateway is stopping', async () => {
    stopping = true;
    expect((await rawGet(base, '/v1/videos/vid_1', auth)).status).toBe(299);
    expect(calls).toEqual([]);
  });

  it('hands a read that finds nothing, or fails, to express, which answers it', async () => {
    failRead = problems.notFound('video vid_1 not found');
    expect((await rawGet(base, '/v1/videos/vid_1', auth)).status).toBe(299);
    failRead = new Error('store down');
    expect((await rawGet(base, '/v1/videos/vid_1', auth)).status).toBe(299);
    expect(calls).toHaveLength(2);
    expect(expressCalls).toBe(2);
  });
});

describe('the hot read against express on a real gateway', () => {
  let gw: TestGateway;
  let expressOnly: Server;
  let expressBase: string;
  let taskId: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    const created = await gw.create({ model: 'kling-v3', prompt: 'a red fox running through fresh snow', duration: 5, metadata: { order: 'ü-42' } });
    taskId = created.body.id;
    await gw.finish(taskId);
    // The same app without the hot read in front: what express alone answers.
    expressOnly = gw.gateway.app.listen(0, '127.0.0.1');
    expressOnly.keepAliveTimeout = gw.config.server.keep_alive_timeout_ms;
    await new Promise((resolve) => expressOnly.once('listening', resolve));
    expressBase = `http://127.0.0.1:${(expressOnly.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => expressOnly.close(resolve));
    await gw.close();
  });

  const auth = { authorization: `Bearer ${TENANT_KEY}` };

  it('sends the bytes express sends: status, headers in order, body', async () => {
    const hot = await rawGet(gw.url, `/v1/videos/${taskId}`, auth);
    const viaExpress = await rawGet(expressBase, `/v1/videos/${taskId}`, auth);
    expect(hot.status).toBe(200);
    expect(JSON.parse(hot.body)).toMatchObject({ id: taskId, status: 'succeeded', metadata: { order: 'ü-42' } });
    expect(hot.body).toBe(viaExpress.body);
    expect(comparable(hot)).toEqual(comparable(viaExpress));
  });

  it('answers a plain read without express, and a read with a query through it', async () => {
    // express's own entry point (not in its types): every request express answers goes through it.
    const handle = vi.spyOn(gw.gateway.app as unknown as { handle: (...args: unknown[]) => void }, 'handle');
    try {
      expect((await rawGet(gw.url, `/v1/videos/${taskId}`, auth)).status).toBe(200);
      expect(handle).not.toHaveBeenCalled();
      expect((await rawGet(gw.url, `/v1/videos/${taskId}?wait=0`, auth)).status).toBe(200);
      expect(handle).toHaveBeenCalledTimes(1);
    } finally {
      handle.mockRestore();
    }
  });

  it('answers any mix of headers and ids exactly as express alone does (fast-check)', { timeout: 60_000 }, async () => {
    const printable = fc.string({ maxLength: 30 }).filter((text) => /^[\x20-\x7e]*$/.test(text));
    const headers = fc.record(
      {
        authorization: fc.oneof(
          fc.constantFrom(`Bearer ${TENANT_KEY}`, `bearer ${TENANT_KEY}`, `BEARER  ${TENANT_KEY} `, `Bearer\t${TENANT_KEY}`, `Bearer ${OTHER_TENANT_KEY}`, `Bearer ${TENANT_KEY}x`, `Basic ${TENANT_KEY}`, 'Bearer', ''),
          printable,
        ),
        'x-request-id': fc.oneof(fc.constantFrom('ok-1', 'a b', 'x'.repeat(129)), printable),
        accept: fc.constantFrom('application/json', 'text/html', '*/*', ''),
        'cache-control': fc.constantFrom('no-cache', 'max-age=0'),
        'if-modified-since': fc.constantFrom('Thu, 01 Jan 1970 00:00:00 GMT', 'Fri, 01 Jan 2100 00:00:00 GMT', 'garbage'),
        'if-match': fc.constantFrom('*', '"x"'),
        range: fc.constantFrom('bytes=0-1', 'bytes=5-'),
        connection: fc.constantFrom('close', 'keep-alive'),
        'content-length': fc.constant('0'),
      },
      { requiredKeys: [] },
    );
    const id = fc.constantFrom('TASK', 'TASK', 'vid_missing', 'A'.repeat(300), '-_-');
    // What differs between any two answers: fresh request ids, which a problem names (its
    // instance), so its ETag too; and a problem's instance, the request id as the client sent it.
    const problem = (answer: RawAnswer) => answer.body.includes('"instance":"urn:request:');
    const same = (answer: RawAnswer) => ({
      status: answer.status,
      body: answer.body.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'uuid'),
      headers: comparable(answer).map(([name, value]) => [name, problem(answer) && name.toLowerCase() === 'etag' ? '…' : value]),
    });
    await fc.assert(
      fc.asyncProperty(id, headers, async (which, sent) => {
        const path = `/v1/videos/${which.replace('TASK', taskId)}`;
        const hot = await rawGet(gw.url, path, sent);
        const viaExpress = await rawGet(expressBase, path, sent);
        expect(same(hot), JSON.stringify(sent)).toEqual(same(viaExpress));
      }),
      { numRuns: 150 },
    );
  });

  it('leaves errors and conditional requests to express: the same problems, a 304 for its own ETag', async () => {
    for (const [path, headers] of [
      [`/v1/videos/${taskId}`, {}],
      [`/v1/videos/${taskId}`, { authorization: 'Bearer nope' }],
      ['/v1/videos/vid_missing', auth],
    ] as const) {
      // One request id for both, yet two occurrences: a problem names its own (its instance, so its ETag).
      const hot = await rawGet(gw.url, path, { ...headers, 'x-request-id': 'same-1' });
      const viaExpress = await rawGet(expressBase, path, { ...headers, 'x-request-id': 'same-1' });
      expect(hot.status).toBeGreaterThanOrEqual(400);
      expect(hot.status).toBe(viaExpress.status);
      const occurrenceAside = (answer: RawAnswer) => ({
        body: answer.body.replace(/"instance":"urn:request:[0-9a-f-]{36}"/, '"instance":"…"'),
        headers: comparable(answer).map(([name, value]) => [name, name.toLowerCase() === 'etag' ? '…' : value]),
      });
      expect(occurrenceAside(hot)).toEqual(occurrenceAside(viaExpress));
      expect(headerOf(hot, 'x-request-id')).toBe('same-1');
    }
    const other = await rawGet(gw.url, `/v1/videos/${taskId}`, { authorization: `Bearer ${OTHER_TENANT_KEY}` });
    expect(other.status).toBe(404);
    // Authorization sent twice (node keeps the first; a proxy in front may have judged the other):
    // refused 400 naming the header, never read as the first key's tenant.
    const twice = (base: string) =>
      rawExchange(base, `GET /v1/videos/${taskId} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TENANT_KEY}\r\nAuthorization: Bearer ${OTHER_TENANT_KEY}\r\nConnection: close\r\n\r\n`).then(parseAnswerText);
    for (const answer of [await twice(gw.url), await twice(expressBase)]) {
      expect(answer.status).toBe(400);
      expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(JSON.parse(answer.body).errors).toEqual([{ path: 'header.authorization', message: 'given more than once; give it once' }]);
    }
    const first = await rawGet(gw.url, `/v1/videos/${taskId}`, auth);
    const again = await rawGet(gw.url, `/v1/videos/${taskId}`, { ...auth, 'if-none-match': headerOf(first, 'etag') ?? '' });
    expect(again.status).toBe(304);
  });
});
