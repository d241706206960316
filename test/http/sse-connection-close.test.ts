/**
 * A client that asks for its connection to be closed (`Connection: close`, or HTTP/1.0 without
 * keep-alive) has it closed once its event-stream answer is over, as with every other answer
 * (RFC 9112 §9.6). The route used to set `Connection: keep-alive` itself, which overrode the
 * client's wish: a `HEAD` of the events, or a stream of a finished task, was answered and then
 * the socket stayed open for the whole keep-alive timeout (65 s), and a client reading until the
 * connection closed (an HTTP/1.0 probe) hung that long.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

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

/**
 * Writes `raw` on a fresh connection and resolves with what came back once the server closed the
 * connection, or with `timedOut` when it was still open after `waitMs`.
 */
function untilClosed(raw: string, waitMs = 3_000): Promise<{ text: string; timedOut: boolean }> {
  const { hostname, port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(raw));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, timedOut: true });
    }, waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, timedOut: false });
    });
  });
}

const connectionHeader = (text: string) => /\r\nconnection: *([^\r]*)/i.exec(text)?.[1]?.toLowerCase();

describe('the events of a task, asked for with the connection to be closed', () => {
  it.each([
    ['HEAD, HTTP/1.1 with Connection: close, a running task', () => `HEAD /v1/videos/${running}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`],
    ['HEAD, HTTP/1.0, a running task', () => `HEAD /v1/videos/${running}/events HTTP/1.0\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`],
    ['GET, HTTP/1.1 with Connection: close, a finished task', () => `GET /v1/videos/${finished}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`],
  ])('%s: answered, then the connection is closed', async (_what, request) => {
    const { text, timedOut } = await untilClosed(request());
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/content-type: text\/event-stream/i);
    expect(connectionHeader(text)).not.toBe('keep-alive');
    expect(timedOut).toBe(false);
  });

  it('a stream a client keeps alive stays so: the next request on its connection is answered', async () => {
    const { text } = await untilClosed(
      `GET /v1/videos/${finished}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]))).toEqual([200, 200]);
    expect(text).toMatch(/event: succeeded/);
    expect(text.endsWith('{"status":"ok"}')).toBe(true);
  });
});
