/**
 * Every problem the gateway answers names its occurrence in `instance`: `urn:request:` and an id
 * of that one request, whoever answered it — a route, the problem handler's reading of a body
 * parser's error, node's HTTP server before any route, the hot webhook path. It is the answer's
 * `x-request-id` when the gateway made that up; a client's own `x-request-id` is echoed, and may
 * repeat, so the occurrence is then an id of the gateway's, on the request's log line.
 */
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { headerOf, rawRequest } from '../support/raw-answer.js';

let gw: TestGateway;
const lines: Record<string, unknown>[] = [];
beforeAll(async () => {
  const logTo = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  gw = await startTestGateway({ logTo });
});
afterAll(async () => {
  await gw.close();
});

const auth = { authorization: `Bearer ${TENANT_KEY}` };
const json = { ...auth, 'content-type': 'application/json' };

describe('instance on every problem', () => {
  it.each([
    ['404 unknown route', 'GET', '/nowhere', {}, undefined],
    ['404 OPTIONS on no route', 'OPTIONS', '/nowhere', {}, undefined],
    ['401 no key', 'GET', '/v1/videos', {}, undefined],
    ['405 wrong method', 'DELETE', '/v1/videos', auth, undefined],
    ['400 invalid body', 'POST', '/v1/videos', json, '{"model":1}'],
    ['400 malformed JSON', 'POST', '/v1/videos', json, '{"model":'],
    ['400 a NUL in the path', 'GET', '/v1/videos/a%00b', auth, undefined],
    ['413 a body past the limit', 'POST', '/v1/videos', json, `{"prompt":"${'a'.repeat(300_000)}"}`],
    ['415 an unsupported content-encoding', 'POST', '/v1/videos', { ...json, 'content-encoding': 'br2' }, '{}'],
    ['400 a body that does not decompress', 'POST', '/v1/videos', { ...json, 'content-encoding': 'gzip' }, 'not gzip'],
    ['422 no provider can serve it', 'POST', '/v1/videos', json, JSON.stringify({ model: 'kling-v1', prompt: 'p', duration: 7 })],
    ['401 a forged webhook (the hot path)', 'POST', '/v1/webhooks/freepik', { 'content-type': 'application/json' }, '{"task_id":"x","status":"COMPLETED"}'],
    ['417 an Expect node refuses', 'POST', '/v1/videos', { ...json, expect: 'something-else' }, '{}'],
  ])('%s', async (_what, method, path, headers, body) => {
    const answer = await rawRequest(gw.url, path, { method, headers: { 'x-request-id': 'occurrence-1', ...headers }, ...(body === undefined ? {} : { body }) });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(headerOf(answer, 'content-type')).toMatch(/^application\/problem\+json/);
    expect(headerOf(answer, 'x-request-id')).toBe('occurrence-1');
    expect(JSON.parse(answer.body).instance).toMatch(/^urn:request:[0-9a-f-]{36}$/);
  });

  it('a client that repeats its x-request-id: each problem its own instance, each found on its log line', async () => {
    const sent = { 'x-request-id': 'my-fixed-id' };
    const answers = [await rawRequest(gw.url, '/nowhere', { headers: sent }), await rawRequest(gw.url, '/nowhere', { headers: sent })];
    for (const answer of answers) expect(headerOf(answer, 'x-request-id')).toBe('my-fixed-id');
    const [first, second] = answers.map((answer) => String(JSON.parse(answer.body).instance));
    expect(first).not.toBe(second);
    const logged = lines.filter((line) => line.request_id === 'my-fixed-id' && line.msg === 'request completed');
    expect(logged.map((line) => `urn:request:${String(line.occurrence_id)}`)).toEqual([first, second]);
  });

  it('a fresh request id when the client sent none, the same in the header, the body and the log line', async () => {
    const answer = await rawRequest(gw.url, '/nowhere');
    const id = headerOf(answer, 'x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(answer.body).instance).toBe(`urn:request:${id}`);
    const line = lines.find((entry) => entry.request_id === id && entry.msg === 'request completed');
    expect(line).toBeDefined();
    expect(line).not.toHaveProperty('occurrence_id');
  });

  it('a request node\'s HTTP parser refuses before any route (431)', async () => {
    const { hostname, port } = new URL(gw.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(`GET /v1/videos HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 431 /);
    const id = /\r\nx-request-id: (\S+)/i.exec(head)?.[1];
    expect(JSON.parse(body).instance).toBe(`urn:request:${id}`);
  });
});
