/**
 * A request node's HTTP server parsed and the gateway refused before any route (an HTTP/1.1
 * request without Host, Host twice or naming no host, more than 1,000 header lines, an Expect
 * other than 100-continue, a CONNECT to a host), or a CONNECT to a path, is a request like any other: its answer carries a
 * request id, and its one log line (found by that id) and its HTTP metrics say what it got.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { parseAnswerText } from '../support/raw-answer.js';

let gw: TestGateway;
const logs = capturedLogs();
beforeAll(async () => {
  gw = await startTestGateway({ logTo: logs.sink });
});
afterAll(async () => {
  await gw.close();
});

/** Writes `raw` on a fresh connection; resolves with everything read until the server closes it. */
function exchange(raw: string): Promise<string> {
  const { hostname, port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(raw));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

const requestLines = () =>
  logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => line.msg === 'request completed');

it.each([
  ['an HTTP/1.1 request without Host', 'GET', '/v1/videos', '/v1/videos', 400, 'GET /v1/videos HTTP/1.1\r\n'],
  ['Host given twice', 'GET', '/v1/videos/vid_abc', '/v1/videos/:id', 400, 'GET /v1/videos/vid_abc HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n'],
  ['a Host naming no host', 'GET', '/v1/nothing-here', 'unmatched', 400, 'GET /v1/nothing-here HTTP/1.1\r\nHost: user@b.example\r\n'],
  ['more than 1,000 header lines', 'GET', '/v1/videos', '/v1/videos', 431, `GET /v1/videos HTTP/1.1\r\nHost: x\r\n${'a: b\r\n'.repeat(1_000)}`],
  ['an Expect other than 100-continue', 'POST', '/v1/videos', '/v1/videos', 417, 'POST /v1/videos HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Type: application/json\r\nContent-Length: 2\r\n'],
  // Not refused at the door, but answered on a connection node hands over whole (`answerConnect`).
  ['a CONNECT to a path', 'CONNECT', '/v1/videos/vid_abc', '/v1/videos/:id', 405, 'CONNECT /v1/videos/vid_abc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-secret-key\r\n'],
  ['a CONNECT to a host', 'CONNECT', 'example.com:443', 'unmatched', 404, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n'],
])('%s: its one line and its count', async (_what, method, url, route, status, head) => {
  const counted = async () => {
    const exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const series = `kling_gateway_http_requests_total{method="${method}",route="${route}",status="${status}"} `;
    const line = exposition.split('\n').find((entry) => entry.startsWith(series));
    return line === undefined ? 0 : Number(line.slice(series.length));
  };
  const countedBefore = await counted();
  const before = requestLines().length;
  const answer = parseAnswerText(await exchange(`${head}\r\n${method === 'POST' ? '{}' : ''}`));
  expect(answer.status).toBe(status);
  const lines = await vi.waitFor(() => {
    const added = requestLines().slice(before);
    expect(added).toHaveLength(1);
    return added;
  });
  expect(lines[0]).toMatchObject({ request_id: answer.headers['x-request-id'], level: 'warn', req: { method, url }, res: { status } });
  expect(await counted()).toBe(countedBefore + 1);
});

it.each([
  ['a malformed header line', 400, 'HPE_INVALID_HEADER_TOKEN', 'GET /v1/videos HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n'],
  ['headers past the size limit', 431, 'HPE_HEADER_OVERFLOW', `GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-secret-key\r\nX-Big: ${'a'.repeat(20_000)}\r\n`],
])("%s (refused by node's parser): its one line, with the parser's code and none of its bytes, and its count", async (_what, status, reason, head) => {
  const counted = async () => {
    const exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const series = `kling_gateway_http_requests_total{method="unknown",route="unparsed",status="${status}"} `;
    const line = exposition.split('\n').find((entry) => entry.startsWith(series));
    return line === undefined ? 0 : Number(line.slice(series.length));
  };
  const countedBefore = await counted();
  const before = requestLines().length;
  const answer = parseAnswerText(await exchange(`${head}\r\n`));
  expect(answer.status).toBe(status);
  const lines = await vi.waitFor(() => {
    const added = requestLines().slice(before);
    expect(added).toHaveLength(1);
    return added;
  });
  expect(lines[0]).toMatchObject({ request_id: answer.headers['x-request-id'], level: 'warn', req: { method: null, url: null }, res: { status }, reason });
  expect(logs.text()).not.toContain('acme-secret-key');
  expect(await counted()).toBe(countedBefore + 1);
});
