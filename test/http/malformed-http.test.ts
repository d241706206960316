/**
 * Requests node's HTTP parser refuses before any route sees them (headers past the size limit, a
 * malformed request line or header), and those node's HTTP server refuses after parsing (no Host
 * in HTTP/1.1, an Expect it cannot meet), are answered as every other refusal is: problem details with
 * the status node chose and a request id, then the connection is closed. The gateway keeps serving.
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

describe('requests the HTTP parser refuses', () => {
  it.each([
    ['headers past the size limit', 431, `GET /v1/videos HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['an id past the size limit', 431, `GET /v1/videos/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ['a malformed Content-Length', 400, 'POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['a header with no colon', 400, 'GET /v1/videos HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n'],
    ['a malformed request line', 400, 'GET /v1/videos HTTP/9.Z\r\nHost: x\r\n\r\n'],
    ['both Content-Length and Transfer-Encoding', 400, 'POST /v1/webhooks/freepik HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    // Refused by node's HTTP server after parsing, before the application.
    ['an HTTP/1.1 request without Host', 400, 'GET /healthz HTTP/1.1\r\n\r\n'],
    // Node read about the first thousand header lines and silently dropped the rest: a key, or the
    // second Authorization of two (refused 400 when both are read), went unseen past them.
    ['more than 1,000 header lines', 431, `GET /healthz HTTP/1.1\r\nHost: x\r\n${'a: b\r\n'.repeat(1_000)}\r\n`],
    ['a second Authorization past 1,000 header lines', 431, `GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n${'a: b\r\n'.repeat(1_500)}Authorization: Bearer other-secret-key\r\n\r\n`],
    // RFC 9112 §3.2: more than one Host, or one that is no host, is a 400 as a missing one is; a
    // proxy in front may route by another of them than the gateway reads.
    ['Host given twice', 400, 'GET /healthz HTTP/1.1\r\nHost: gateway.example\r\nHost: elsewhere.example\r\n\r\n'],
    ['Host given twice, in other letter cases', 400, 'GET /healthz HTTP/1.1\r\nHost: gateway.example\r\nHOST: gateway.example\r\n\r\n'],
    ['a Host with user information', 400, 'GET /healthz HTTP/1.1\r\nHost: user@elsewhere.example\r\n\r\n'],
    ['a Host with a space', 400, 'GET /healthz HTTP/1.1\r\nHost: gateway.example elsewhere.example\r\n\r\n'],
    ['a Host with a path', 400, 'GET /healthz HTTP/1.1\r\nHost: gateway.example/x\r\n\r\n'],
    ['an Expect other than 100-continue', 417, 'POST /v1/videos HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'],
  ])('%s: %i as problem details, connection closed', async (_what, status, raw) => {
    const answer = parseAnswerText(await exchange(raw));
    expect(answer.status).toBe(status);
    expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers.connection).toBe('close');
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
    expect(JSON.parse(answer.body)).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
    // The gateway still answers.
    expect((await gw.request('GET', '/healthz', undefined, {}, null)).status).toBe(200);
  });
});

describe('a request refused before any route, with Expect: 100-continue', () => {
  const ask = `Authorization: Bearer ${TENANT_KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n`;
  it.each([
    ['Host given twice', 400, `POST /v1/videos/quote HTTP/1.1\r\nHost: gateway.example\r\nHost: elsewhere.example\r\n${ask}\r\n`],
    ['a Host with user information', 400, `POST /v1/videos/quote HTTP/1.1\r\nHost: user@elsewhere.example\r\n${ask}\r\n`],
    ['more than 1,000 header lines', 431, `POST /v1/videos/quote HTTP/1.1\r\nHost: x\r\n${'a: b\r\n'.repeat(1_000)}${ask}\r\n`],
  ])('%s: its %i at once, never 100 Continue (an invitation to send the body it will not read)', async (_what, status, raw) => {
    const { text, timedOut } = await untilClosed(gw.url, raw);
    expect(timedOut).toBe(false);
    expect(text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(parseAnswerText(text).headers.connection).toBe('close');
  });
});

describe('many header lines, up to 1,000', () => {
  it('are read, the last one included', async () => {
    const answer = parseAnswerText(await exchange(`GET /v1/videos HTTP/1.1\r\nHost: x\r\n${'a: b\r\n'.repeat(997)}Authorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`));
    expect(answer.status).toBe(200);
  });
});

describe('a Host that names one host', () => {
  it.each([
    ['a name', 'gateway.example'],
    ['a name and port', 'gateway.example:8080'],
    ['an IPv4 address and port', '127.0.0.1:8080'],
    ['an IPv6 literal and port', '[::1]:8080'],
    ['empty (a target with no authority)', ''],
    // What node's own HTTP client writes for a link-local address (RFC 6874 zone id, raw or escaped).
    ['an IPv6 link-local literal with a zone id', '[fe80::1%eth0]:8080'],
    ['an IPv6 link-local literal with an escaped zone id', '[fe80::1%25eth0]'],
    ['an IPvFuture literal (RFC 3986)', '[v1.fe80::a+en1]:8080'],
    ['an upper-case name with a trailing dot and an empty port', 'GATEWAY.EXAMPLE.:'],
  ])('%s is served', async (_what, host) => {
    const answer = parseAnswerText(await exchange(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    expect(answer.status).toBe(200);
  });
});

describe('a refusal queued behind an answer still being written on the same connection', () => {
  it('is problem details, not a bodiless 499 as if the client had gone', async () => {
    // Two requests in one packet (pipelined, or a client that sent the next one as soon as it read
    // the first answer, before the server saw that answer's write finish): node gives the second
    // answer no socket until the first is done, and the path the router cannot decode fails at once.
    const first = `GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`;
    const second = `GET /v1/videos/vid_%C0%80/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\nConnection: close\r\n\r\n`;
    const answers = await exchange(first + second);
    const statuses = [...answers.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
    expect(statuses).toEqual([200, 400]);
    const secondAnswer = parseAnswerText(answers.slice(answers.lastIndexOf('HTTP/1.1 ')));
    expect(secondAnswer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(JSON.parse(secondAnswer.body)).toMatchObject({ status: 400, type: expect.stringMatching(/bad-request$/) });
  });
});

// The gateway is no proxy. Node hands a CONNECT to the server's `connect` listener and, with none,
// closed the connection without a word: no status, no request id.
describe('CONNECT', () => {
  it.each([
    ['to a host (authority form), without a key', 404, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'],
    ['to an API route, with a key', 405, `CONNECT /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TENANT_KEY}\r\n\r\n`],
    ['to an API route, without a key', 401, 'CONNECT /v1/videos HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['to a webhook route', 405, 'CONNECT /v1/webhooks/freepik HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('%s: answered as any method the path does not take (%i), as problem details, connection closed', async (_what, status, raw) => {
    const answer = parseAnswerText(await exchange(raw));
    expect(answer.status).toBe(status);
    expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
    if (status === 405) expect(answer.headers.allow).toContain('OPTIONS');
    expect((await gw.request('GET', '/healthz', undefined, {}, null)).status).toBe(200);
  });

  it('a client-sent request id is echoed, as on every other answer', async () => {
    const answer = parseAnswerText(await exchange('CONNECT /v1/videos HTTP/1.1\r\nHost: x\r\nX-Request-Id: tunnel-1\r\n\r\n'));
    expect(answer.headers['x-request-id']).toBe('tunnel-1');
  });
});
