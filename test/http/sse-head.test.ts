/**
 * `HEAD /v1/videos/{id}/events` is answered as a `GET` would be (its status and headers) and then
 * ends: a `HEAD` answer has no body, so a client takes it as done once its head arrives. Before,
 * the gateway kept the answer open as a stream until the task ended: the next request the client
 * sent on that connection was never answered, and each `HEAD` held one of the tenant's open
 * streams (a real `GET` of the stream was then refused 429).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  // One stream per tenant: a HEAD that held one would leave none for the GET below.
  gw = await startTestGateway({ config: { limits: { open_streams: 1 }, sandbox: { processing_ms: 600_000 } } });
});
afterAll(async () => {
  await gw.close();
});

const statusLines = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));

/**
 * Writes `raw` (pipelined requests) on one kept-alive connection and resolves with what came back
 * once `answers` status lines arrived, or whatever came when the connection stayed quiet for `quietMs`.
 */
function pipelined(raw: string, answers: number, quietMs = 10_000): Promise<string> {
  const { hostname, port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(raw));
    let text = '';
    const done = () => {
      clearTimeout(quiet);
      socket.destroy();
      resolve(text);
    };
    let quiet = setTimeout(done, quietMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
      if (statusLines(text).length >= answers && text.endsWith('{"status":"ok"}')) done();
    });
    socket.on('error', reject);
  });
}

it('a HEAD of a live task’s events is a complete answer: the next request on its connection is answered', async () => {
  const created = await gw.create({ model: 'kling-v3', prompt: 'a long one', duration: 5 });
  expect(created.status).toBe(202);
  const head = `HEAD /v1/videos/${created.body.id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`;
  const answer = await pipelined(`${head}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`, 2);
  expect(statusLines(answer)).toEqual([200, 200]);
  expect(answer).toMatch(/content-type: text\/event-stream/i);
  expect(answer.endsWith('{"status":"ok"}')).toBe(true);
});

it('a HEAD of a live task’s events holds none of the tenant’s open streams', async () => {
  const created = await gw.create({ model: 'kling-v3', prompt: 'another long one', duration: 5 });
  const head = `HEAD /v1/videos/${created.body.id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`;
  // The HEAD's connection stays open (kept alive) while the GET asks for the tenant's one stream.
  const { hostname, port } = new URL(gw.url);
  const socket = connect(Number(port), hostname, () => socket.write(head));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  try {
    const client = new AbortController();
    const stream = await fetch(`${gw.url}/v1/videos/${created.body.id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, signal: client.signal });
    expect(stream.status).toBe(200);
    client.abort();
  } finally {
    socket.destroy();
  }
});

it('a HEAD of the events of a task another tenant owns is still a 404', async () => {
  const created = await gw.create({ model: 'kling-v3', prompt: 'a third long one', duration: 5 });
  const answer = await fetch(`${gw.url}/v1/videos/${created.body.id}/events`, { method: 'HEAD', headers: { authorization: 'Bearer other-secret-key' } });
  expect(answer.status).toBe(404);
  expect(answer.headers.get('x-request-id')).toBeTruthy();
});
