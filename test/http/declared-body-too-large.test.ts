/**
 * A request whose `Content-Length` is over the limit of its route (`server.body_limit`; 256 KiB on
 * the webhook routes) is refused `413` at once, before its body is read, and its connection closed.
 * Before, express's body parser saw the length was too large and then read the whole body anyway
 * before answering: a client got its `413` only after sending every byte, or, when the body did not
 * come within `server.body_timeout_ms`, a `408` saying the body was late. With
 * `Expect: 100-continue` the gateway even answered `100 Continue`, asking for the body it was going
 * to refuse; now such a request gets the `413` instead, and a body within the limit still gets its
 * `100 Continue`.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { parseAnswerText, untilClosed } from '../support/raw-answer.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

/** Over both limits (256 KiB); nothing of it is ever sent. */
const TEN_MB = 10 * 1024 * 1024;

const KEY = `Authorization: Bearer ${TENANT_KEY}\r\n`;
const JSON_TYPE = 'Content-Type: application/json\r\n';

describe('a body announced over its route’s limit', () => {
  it.each([
    ['a create', `POST /v1/videos HTTP/1.1\r\nHost: x\r\n${KEY}${JSON_TYPE}Content-Length: ${TEN_MB}\r\n\r\n`],
    ['a create with Expect: 100-continue', `POST /v1/videos HTTP/1.1\r\nHost: x\r\n${KEY}${JSON_TYPE}Content-Length: ${TEN_MB}\r\nExpect: 100-continue\r\n\r\n`],
    ['a quote', `POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\n${KEY}${JSON_TYPE}Content-Length: ${TEN_MB}\r\n\r\n`],
    ['a provider webhook', `POST /v1/webhooks/freepik HTTP/1.1\r\nHost: x\r\n${JSON_TYPE}Content-Length: ${TEN_MB}\r\n\r\n`],
    ['a provider webhook with Expect: 100-continue', `POST /v1/webhooks/freepik HTTP/1.1\r\nHost: x\r\n${JSON_TYPE}Content-Length: ${TEN_MB}\r\nExpect: 100-continue\r\n\r\n`],
    ['a legacy callback, one byte over 256 KiB', `POST /v1/webhooks/kling-legacy/abc HTTP/1.1\r\nHost: x\r\n${JSON_TYPE}Content-Length: ${256 * 1024 + 1}\r\n\r\n`],
  ])('%s: 413 as problem details at once, no 100 Continue, connection closed', async (_what, head) => {
    const { text, timedOut } = await untilClosed(gw.url, head);
    expect(timedOut).toBe(false);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    const answer = parseAnswerText(text);
    expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ status: 413, type: expect.stringMatching(/too-large$/), detail: 'The body exceeds 262144 bytes.' });
  });

  it('changes nothing: no task was made', async () => {
    await untilClosed(gw.url, `POST /v1/videos HTTP/1.1\r\nHost: x\r\n${KEY}${JSON_TYPE}Content-Length: ${TEN_MB}\r\n\r\n`);
    const list = await gw.request('GET', '/v1/videos');
    expect(list.body.data).toEqual([]);
  });
});

describe('a body within the limit, with Expect: 100-continue', () => {
  it('gets 100 Continue, and its answer once sent', async () => {
    const body = JSON.stringify({ model: 'kling-v3', prompt: 'a quote' });
    const { hostname, port } = new URL(gw.url);
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () =>
        socket.write(`POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\n${KEY}${JSON_TYPE}Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`),
      );
      let received = '';
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (received === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
    expect(text).toMatch(/"eligible":true/);
  });
});
