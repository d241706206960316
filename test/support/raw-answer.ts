/**
 * An HTTP answer as it came off the wire (status, raw headers in order, body), for tests that hold
 * a path answering ahead of express to express's own bytes.
 */
import { createServer, request as httpRequest, type RequestListener } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface RawAnswer {
  status: number;
  rawHeaders: string[];
  body: string;
}

/** Sends one request and reads its answer whole. */
export function rawRequest(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(base, { method: options.method ?? 'GET', headers: options.headers ?? {}, path }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

/** The value of a header (any letter case), or undefined. */
export function headerOf(answer: RawAnswer, name: string): string | undefined {
  const index = answer.rawHeaders.findIndex((header, at) => at % 2 === 0 && header.toLowerCase() === name);
  return index === -1 ? undefined : answer.rawHeaders[index + 1];
}

/** Header names and values in order, without those that differ between any two answers. */
export function comparable(answer: RawAnswer): [string, string][] {
  const pairs: [string, string][] = [];
  for (let at = 0; at < answer.rawHeaders.length; at += 2) {
    const name = answer.rawHeaders[at] ?? '';
    pairs.push([name, ['x-request-id', 'date'].includes(name.toLowerCase()) ? '…' : (answer.rawHeaders[at + 1] ?? '')]);
  }
  return pairs;
}

/** An HTTP server on a free loopback port: its base URL, and a close that drops kept connections. */
export async function loopbackServer(listener: RequestListener): Promise<{ base: string; close: () => Promise<void> }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A create written on a raw connection of its own (no client library to retry or pool it):
 * `written` resolves once its bytes are handed to the socket; `answer` with the status code of
 * the answer, or how the connection ended without one (`ECONNRESET`, `closed without an answer`).
 */
export function sendRawCreate(base: string, key: string, body: string): { written: Promise<void>; answer: Promise<string> } {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  const request =
    `POST /v1/videos HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${key}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const written = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write(request, (error) => (error ? reject(error) : resolve())));
    socket.once('error', reject);
  });
  const answer = new Promise<string>((resolve) => {
    let received = '';
    const status = () => received.match(/^HTTP\/1\.1 (\d{3})/)?.[1];
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(status() ?? error.code ?? 'error'));
    socket.on('close', () => resolve(status() ?? 'closed without an answer'));
  });
  return { written, answer };
}

/**
 * Writes `raw` on a fresh connection to `base`; resolves with everything read until the server
 * closes it (or 3 s pass). `halfClose` ends the client's side once written: node then drops
 * answers not yet ready, so only tests that look at no particular answer do it.
 */
export function rawExchange(base: string, raw: string | Buffer, halfClose = false): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => (halfClose ? socket.end(raw) : socket.write(raw)));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 3_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/**
 * Writes `raw` on a fresh connection to `base` and never more (a head announcing a body that is
 * never sent, a stream asked to close); resolves with what came back once the server closed the
 * connection, or with `timedOut` when it was still open after `waitMs`.
 */
export function untilClosed(base: string, raw: string, waitMs = 3_000): Promise<{ text: string; timedOut: boolean }> {
  const { hostname, port } = new URL(base);
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

/** One answer read off the wire as text: its status, its headers (names in lower case, the last of a name kept), its body. */
export function parseAnswerText(text: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}
