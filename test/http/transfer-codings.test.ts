/**
 * A request body sent with a transfer coding the gateway does not decode (`Transfer-Encoding:
 * gzip, chunked`) is refused `415`, as a `Content-Encoding` it does not decode is (a client's
 * mistake is a 4xx here, where RFC 9112 §6.1 suggests 501), as problem details, its connection closed.
 * Node takes the chunks apart and hands on what is inside them as it is: the gateway read the
 * compressed bytes as the body itself, answered a create or quote "malformed JSON", and checked a
 * webhook's signature over bytes its sender never signed, where a proxy in front that decodes the
 * coding saw another body. Plain `chunked` is read as before.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { parseAnswerText, rawExchange } from '../support/raw-answer.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

const QUOTE = JSON.stringify({ model: 'kling-v3', prompt: 'coded', duration: 5 });

/** `body` as one chunk and the last chunk. */
function chunked(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
}

async function send(path: string, codings: string, body: Buffer, extra = ''): Promise<string> {
  const head = `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: ${codings}\r\n${extra}\r\n`;
  return rawExchange(gw.url, Buffer.concat([Buffer.from(head), body]));
}

describe('a body with a transfer coding other than chunked', () => {
  it.each([
    ['gzip, chunked on a quote', '/v1/videos/quote', 'gzip, chunked', ''],
    ['gzip, chunked on a create', '/v1/videos', 'gzip, chunked', ''],
    ['deflate, chunked on a provider webhook', '/v1/webhooks/freepik', 'deflate, chunked', ''],
    ['gzip and chunked on two lines', '/v1/videos/quote', 'gzip', 'Transfer-Encoding: chunked\r\n'],
  ])('%s: 415 as problem details, connection closed, nothing made', async (_what, path, codings, extra) => {
    const answer = parseAnswerText(await send(path, codings, chunked(gzipSync(QUOTE)), extra));
    expect(answer.status).toBe(415);
    expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ status: 415, type: expect.stringMatching(/unsupported-encoding$/), detail: expect.stringContaining('chunked') });
    expect((await gw.request('GET', '/v1/videos')).body.data).toEqual([]);
  });

  it('with Expect: 100-continue: 415 at once, no 100 Continue inviting the body', async () => {
    const text = await rawExchange(
      gw.url,
      `POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(text).toMatch(/^HTTP\/1\.1 415 /);
    expect(parseAnswerText(text).headers.connection).toBe('close');
  });

  it('plain chunked is read as before', async () => {
    const answer = parseAnswerText(await send('/v1/videos/quote', 'chunked', chunked(Buffer.from(QUOTE)), 'Connection: close\r\n'));
    expect(answer.status).toBe(200);
  });
});
