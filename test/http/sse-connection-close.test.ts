/**
 * A client that asks for its connection to be closed (`Connection: close`, or HTTP/1.0 without
 * keep-alive) has it closed once its event-stream answer is over, as with every other answer
 * (RFC 9112 §9.6). The route used to set `Connection: keep-alive` itself, which overrode the
 * client's wish: a `HEAD` of the events, or a stream of a finished task, was answered and then
 * the socket stayed open for the whole keep-alive timeout (65 s), and a client reading until the
 * connection closed (an HTTP/1.0 probe) hung that long.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { untilClosed } from '../support/raw-answer.js';

let gw: TestGateway;
let finished: string;
let running: string;
beforeAll(async () => {
  gw = await startTestGateway();
  const done = await gw.create({ model: 'kling-v3', prompt: 'a short one', duration: 5 });
  finished = (await gw.finish(done.body.id)).id;
  const live = await gw.create({ model: 'kling-v3', prompt: 'a running one', duration: 5 });
  running = live.body.id;
});
afterAll(async () => {
  await gw.close();
});


const connectionHeader = (text: string) => /\r\nconnection: *([^\r]*)/i.exec(text)?.[1]?.toLowerCase();

describe('the events of a task, asked for with the connection to be closed', () => {
  it.each([
    ['HEAD, HTTP/1.1 with Connection: close, a running task', () => `HEAD /v1/videos/${running}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`],
    ['HEAD, HTTP/1.0, a running task', () => `HEAD /v1/videos/${running}/events HTTP/1.0\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`],
    ['GET, HTTP/1.1 with Connection: close, a finished task', () => `GET /v1/videos/${finished}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`],
  ])('%s: answered, then the connection is closed', async (_what, request) => {
    const { text, timedOut } = await untilClosed(gw.url, request());
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/content-type: text\/event-stream/i);
    expect(connectionHeader(text)).not.toBe('keep-alive');
    expect(timedOut).toBe(false);
  });

  it('a stream a client keeps alive stays so: the next request on its connection is answered', async () => {
    const { text } = await untilClosed(gw.url, 
      `GET /v1/videos/${finished}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]))).toEqual([200, 200]);
    expect(text).toMatch(/event: succeeded/);
    expect(text.endsWith('{"status":"ok"}')).toBe(true);
  });
});
