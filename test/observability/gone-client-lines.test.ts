/**
 * A request whose client leaves before its answer is finished (an event stream the client
 * closes, which is how a watcher stops watching; a `?wait` given up on) is still a request: it
 * gets its one log line, with its request and task ids, and is counted and timed in the HTTP
 * metrics, as 499 when nothing of an answer was sent, else with the status its client was sent.
 */
import type { IncomingMessage, Server } from 'node:http';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
let taskId: string;
const logs = capturedLogs();
const requestLine = (id: string) =>
  logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => line.request_id === id && line.msg === 'request completed');
const metrics = async () => (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;

beforeAll(async () => {
  // A task that stays processing for as long as the test looks; one wait open at a time, so a
  // second shows when the first is held.
  gw = await startTestGateway({ logTo: logs.sink, config: { sandbox: { processing_ms: 600_000 }, limits: { open_waits: 1 } } });
  taskId = (await gw.create({ model: 'kling-v3', prompt: 'watched', duration: 5 })).body.id;
});
afterAll(async () => {
  await gw.close();
});

it('an event stream its client closes gets its line and is counted, with the status it was sent', async () => {
  const client = new AbortController();
  const answer = await fetch(`${gw.url}/v1/videos/${taskId}/events`, {
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'x-request-id': 'req-stream-closed' },
    signal: client.signal,
  });
  expect(answer.status).toBe(200);
  await answer.body!.getReader().read();
  client.abort();
  await vi.waitFor(() => expect(requestLine('req-stream-closed')).toHaveLength(1), { timeout: 10_000 });
  expect(requestLine('req-stream-closed')[0]).toMatchObject({ level: 'info', task_id: taskId, req: { method: 'GET', url: `/v1/videos/${taskId}/events` }, res: { status: 200 } });
  const exposition = await metrics();
  expect(exposition).toMatch(/^kling_gateway_http_requests_total\{method="GET",route="\/v1\/videos\/:id\/events",status="200"\} 1$/m);
  expect(exposition).toMatch(/^kling_gateway_http_request_duration_seconds_count\{method="GET",route="\/v1\/videos\/:id\/events",status="200"\} 1$/m);
});

it('a ?wait its client gives up on gets its line as 499 and is counted', async () => {
  const client = new AbortController();
  const waiting = fetch(`${gw.url}/v1/videos/${taskId}?wait=30`, {
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'x-request-id': 'req-wait-abandoned' },
    signal: client.signal,
  }).catch((error: unknown) => error);
  // The wait is held open (another is refused: one at a time) before the client leaves.
  await vi.waitFor(async () => expect((await gw.request('GET', `/v1/videos/${taskId}?wait=1`)).status).toBe(429), { timeout: 10_000 });
  client.abort();
  await waiting;
  await vi.waitFor(() => expect(requestLine('req-wait-abandoned')).toHaveLength(1), { timeout: 10_000 });
  expect(requestLine('req-wait-abandoned')[0]).toMatchObject({ level: 'info', task_id: taskId, res: { status: 499 } });
  expect(await metrics()).toMatch(/^kling_gateway_http_requests_total\{method="GET",route="\/v1\/videos\/:id\?wait",status="499"\} 1$/m);
});

it('a plain read whose client leaves while the task is being read gets its line as 499 and is counted', async () => {
  // The connection the read comes on, seen closed by the gateway before the read is answered.
  const server = (gw.gateway as unknown as { listenerStop: { server: Server } }).listenerStop.server;
  let gone = false;
  server.once('request', (req: IncomingMessage) => req.socket.once('close', () => (gone = true)));
  const client = new AbortController();
  const service = gw.gateway.service;
  const get = service.get.bind(service);
  vi.spyOn(service, 'get').mockImplementationOnce(async (...args: Parameters<typeof service.get>) => {
    client.abort();
    await vi.waitFor(() => expect(gone).toBe(true), { timeout: 10_000 });
    return get(...args);
  });
  await fetch(`${gw.url}/v1/videos/${taskId}`, {
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'x-request-id': 'req-read-abandoned' },
    signal: client.signal,
  }).catch((error: unknown) => error);
  await vi.waitFor(() => expect(requestLine('req-read-abandoned')).toHaveLength(1), { timeout: 10_000 });
  expect(requestLine('req-read-abandoned')[0]).toMatchObject({ level: 'info', task_id: taskId, res: { status: 499 } });
  expect(await metrics()).toMatch(/^kling_gateway_http_requests_total\{method="GET",route="\/v1\/videos\/:id",status="499"\} 1$/m);
});
