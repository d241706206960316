/**
 * The primary's port hands connections to workers over IPC, one at a time: a connection handed
 * while the previous one is not yet acknowledged waits in Node's queue for that worker. A worker
 * that dies then (kill -9 under load) never takes it; the connection must go to a worker that
 * serves, not stay open in the primary with nobody to answer it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Worker } from 'node:cluster';
import { connect } from 'node:net';
import { afterEach, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { SharedPort } from '../../src/workers/shared-port.js';

/** A worker stuck in a long synchronous task: it reads nothing, so acknowledges no connection. */
const STUCK = 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)';
/** A worker that answers every connection it is handed with a 200. */
const ANSWERING =
  "process.on('message', (m, socket) => socket && socket.end('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\nok'))";

const children: ChildProcess[] = [];

function child(code: string): Promise<ChildProcess> {
  const started = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.push(started);
  return new Promise((resolve, reject) => {
    started.once('spawn', () => resolve(started));
    started.once('error', reject);
  });
}

afterEach(() => {
  for (const each of children.splice(0)) each.kill('SIGKILL');
});

/** Sends a request on a new connection; resolves with the status line, or how the connection ended. */
function request(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'));
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const ended = () => resolve(received.split('\r\n')[0] || 'closed without an answer');
    socket.on('error', ended);
    socket.on('close', ended);
    setTimeout(() => {
      resolve(received.split('\r\n')[0] || 'left hanging');
      socket.destroy();
    }, 5_000).unref();
  });
}

it('gives a connection queued for a worker that died to a worker that serves', { timeout: 20_000 }, async () => {
  const stuck = await child(STUCK);
  const answering = await child(ANSWERING);
  const send = vi.spyOn(stuck, 'send');
  const port = new SharedPort(
    () => [(stuck.connected ? stuck : answering) as unknown as Worker],
    createLogger('silent'),
  );
  stuck.once('exit', () => port.lost(stuck as unknown as Worker));
  const url = await port.listen(0, '127.0.0.1');
  const portNumber = Number(new URL(url).port);
  // The first is written to the stuck worker and awaits its acknowledgement; the second queues behind it.
  const first = request(portNumber);
  await vi.waitFor(() => expect(send).toHaveBeenCalledTimes(1), { timeout: 10_000 });
  const second = request(portNumber);
  await vi.waitFor(() => expect(send).toHaveBeenCalledTimes(2), { timeout: 10_000 });
  stuck.kill('SIGKILL');
  // The first was on its way into the worker that died: it is closed, never left open.
  expect(await first).not.toBe('left hanging');
  expect(await second).toBe('HTTP/1.1 200 OK');
  await port.close();
});

/** Sends a request on a new connection; resolves with all that came back once the connection ends. */
function fullAnswer(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1', () => socket.write('POST /v1/videos HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}'));
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(received));
  });
}

/** Resolves once the port has accepted `count` connections it holds for a worker. */
async function held(port: SharedPort, count: number): Promise<void> {
  await vi.waitFor(() => expect(port.heldCount).toBe(count), { timeout: 10_000 });
}

it('answers a connection held with no worker serving 503 with Retry-After and problem details after the hold time, and closes it', { timeout: 20_000 }, async () => {
  const clock = new ManualClock();
  const port = new SharedPort(() => [], createLogger('silent'), { clock, holdMs: 10_000, maxHeld: 100 });
  const portNumber = Number(new URL(await port.listen(0, '127.0.0.1')).port);
  const answer = fullAnswer(portNumber);
  await held(port, 1);
  await clock.advance(9_000);
  expect(port.heldCount).toBe(1);
  await clock.advance(1_000);

  const [head, body] = (await answer).split('\r\n\r\n');
  const lines = head!.split('\r\n');
  expect(lines[0]).toBe('HTTP/1.1 503 Service Unavailable');
  expect(lines).toContain('retry-after: 2');
  expect(lines).toContain('content-type: application/problem+json; charset=utf-8');
  expect(lines).toContain('connection: close');
  const problem = JSON.parse(body!) as { type: string; status: number; detail: string; instance: string };
  expect(problem).toMatchObject({ type: expect.stringMatching(/retry-later$/), status: 503, instance: expect.stringMatching(/^urn:request:/) });
  expect(problem.detail).toMatch(/no worker of the gateway serves/);
  expect(port.heldCount).toBe(0);
  await port.close();
});

it('answers 503 at once a connection beyond the most it holds with no worker serving', { timeout: 20_000 }, async () => {
  const clock = new ManualClock();
  const port = new SharedPort(() => [], createLogger('silent'), { clock, holdMs: 10_000, maxHeld: 2 });
  const portNumber = Number(new URL(await port.listen(0, '127.0.0.1')).port);
  const first = fullAnswer(portNumber);
  const second = fullAnswer(portNumber);
  await held(port, 2);
  const third = await fullAnswer(portNumber);
  expect(third.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
  expect(port.heldCount).toBe(2);
  // The two held are answered 503 at the hold time, no worker having come.
  await clock.advance(10_000);
  expect((await first).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
  expect((await second).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
  await port.close();
});

it('hands a held connection to the worker that starts serving before the hold time, and answers it only once', { timeout: 20_000 }, async () => {
  const answering = await child(ANSWERING);
  const clock = new ManualClock();
  let serving: Worker[] = [];
  const port = new SharedPort(() => serving, createLogger('silent'), { clock, holdMs: 10_000, maxHeld: 100 });
  const portNumber = Number(new URL(await port.listen(0, '127.0.0.1')).port);
  const answer = fullAnswer(portNumber);
  await held(port, 1);
  await clock.advance(5_000);
  serving = [answering as unknown as Worker];
  port.resume();
  expect((await answer).split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
  await clock.advance(10_000);
  expect(port.heldCount).toBe(0);
  await port.close();
});

it('hands the connections to the serving workers in turn, not all to one', { timeout: 20_000 }, async () => {
  const one = await child(ANSWERING);
  const two = await child(ANSWERING);
  const sentToOne = vi.spyOn(one, 'send');
  const sentToTwo = vi.spyOn(two, 'send');
  const port = new SharedPort(() => [one, two] as unknown as Worker[], createLogger('silent'));
  const portNumber = Number(new URL(await port.listen(0, '127.0.0.1')).port);
  for (let index = 0; index < 4; index++) expect(await request(portNumber)).toBe('HTTP/1.1 200 OK');
  expect(sentToOne).toHaveBeenCalledTimes(2);
  expect(sentToTwo).toHaveBeenCalledTimes(2);
  await port.close();
});

it('logs the 503s for want of a worker once while none serves, and again once one served in between', { timeout: 20_000 }, async () => {
  const warn = vi.fn();
  const logger = { warn, info: vi.fn(), error: vi.fn(), debug: vi.fn() } as unknown as ReturnType<typeof createLogger>;
  const port = new SharedPort(() => [], logger, { maxHeld: 0 });
  const portNumber = Number(new URL(await port.listen(0, '127.0.0.1')).port);
  for (let index = 0; index < 3; index++) expect((await fullAnswer(portNumber)).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
  expect(warn).toHaveBeenCalledTimes(1);
  port.resume();
  expect((await fullAnswer(portNumber)).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
  expect(warn).toHaveBeenCalledTimes(2);
  await port.close();
});
