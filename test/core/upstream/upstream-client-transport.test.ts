/**
 * Whether a failed request may have reached the upstream, told by real TCP servers (no request
 * interception here: an intercepted socket cannot show what was written). Only a failure before
 * the last byte of the request was written proves nothing was sent (issue 11, defect 1).
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import { AXIOS_KEEP_ALIVE_PROBE_MS, HttpUpstreamClient, type UpstreamCallRecord } from '../../../src/core/upstream/upstream-client.js';
import { upstreamFailure } from '../../support/upstream-failure.js';

const fakeProvider = {
  id: 'fake',
  authHeaders: (key: string) => ({ authorization: `Bearer ${key}` }),
  mapHttpError: (status: number) => ({ code: 'provider_error' as const, message: `fake answered ${status}` }),
};

function client(baseUrl: string, timeoutMs: number) {
  const calls: UpstreamCallRecord[] = [];
  const http = new HttpUpstreamClient({ provider: fakeProvider, baseUrl, apiKey: 'k-123456', timeoutMs, onCall: (record) => calls.push(record) });
  return { http, calls };
}

describe('a connection that breaks', () => {
/** A real TCP server whose connections are handled by `onConnection`; closed after `run`. */
async function withTcpServer(onConnection: (socket: Socket) => void, run: (baseUrl: string) => Promise<void>): Promise<void> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await run(`http://127.0.0.1:${port}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Reads one HTTP request to its last body byte (by Content-Length), then calls `then`. */
function afterWholeRequest(socket: Socket, then: () => void): void {
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    const headerEnd = received.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const length = Number(/content-length: *(\d+)/i.exec(received.subarray(0, headerEnd).toString())?.[1] ?? 0);
    if (received.length >= headerEnd + 4 + length) then();
  });
}

it('a connection dropped after the whole request was read is transport "reset": ambiguous, never failed over by default', async () => {
  await withTcpServer(
    (socket) => afterWholeRequest(socket, () => socket.destroy()),
    async (baseUrl) => {
      const { http, calls } = client(baseUrl, 2_000);
      const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: { prompt: 'x'.repeat(10_000) }, operation: 'submit' }));
      expect(error).toMatchObject({
        transport: 'reset',
        code: 'provider_error',
        message: 'fake closed the connection without an answer after the request was sent',
      });
      expect(classifyCreateFailure(error, false)).toMatchObject({ failover: false, outcome: 'ambiguous', reason: 'connection_reset' });
      expect(calls.map((call) => call.outcome)).toEqual(['reset']);
    },
  );
});

it('a connection reset before the request was fully written is transport "not_sent": certain, failed over', async () => {
  // The server resets every connection before reading anything; the body is far larger than
  // the socket buffers, so the client is still writing when the reset arrives.
  await withTcpServer(
    (socket) => socket.resetAndDestroy(),
    async (baseUrl) => {
      // Time enough to serialize the body on a busy machine: the reset, not the limit, must end it.
      const { http, calls } = client(baseUrl, 30_000);
      const error = await upstreamFailure(
        http.send({ method: 'POST', path: '/v', body: { prompt: 'x'.repeat(16 * 1024 * 1024) }, operation: 'submit' }),
      );
      expect(error).toMatchObject({ transport: 'not_sent', code: 'provider_error' });
      expect(classifyCreateFailure(error, false)).toMatchObject({ failover: true, outcome: 'failed', reason: 'not_sent' });
      expect(calls.map((call) => call.outcome)).toEqual(['not_sent']);
    },
  );
});


it('time running out before the request was fully written is "not_sent" with code timeout: certain, failed over', async () => {
  // The server takes the connection and never reads: the large body stays in the socket buffers
  // until the time limit cuts the request.
  const held: Socket[] = [];
  await withTcpServer(
    (socket) => {
      socket.pause();
      held.push(socket);
    },
    async (baseUrl) => {
      const { http, calls } = client(baseUrl, 1_000);
      const error = await upstreamFailure(
        http.send({ method: 'POST', path: '/v', body: { prompt: 'x'.repeat(16 * 1024 * 1024) }, operation: 'submit' }),
      );
      for (const socket of held) socket.destroy();
      expect(error).toMatchObject({ transport: 'not_sent', code: 'timeout' });
      expect(classifyCreateFailure(error, false)).toMatchObject({ failover: true, outcome: 'failed', reason: 'not_sent', code: 'timeout' });
      expect(calls.map((call) => call.outcome)).toEqual(['not_sent']);
    },
  );
});

});

it('a pooled connection keeps one TCP keep-alive setting: later requests on it change nothing at the socket', async () => {
  const server = createHttpServer((_req, res) => res.setHeader('content-type', 'application/json').end('{"ok":true}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const settings = vi.spyOn(Socket.prototype, 'setKeepAlive');
  try {
    const address = server.address();
    const { http } = client(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, 2_000);
    for (let round = 0; round < 3; round++) {
      expect((await http.send({ method: 'GET', path: '/status', operation: 'status' })).status).toBe(200);
    }
    // axios asks for its probe delay on every request and the pool for its own whenever a socket
    // goes back to it; the socket only makes a system call when the asked delay differs.
    const delays = settings.mock.calls.filter(([enable]) => enable).map(([, delay]) => delay);
    expect(delays.length).toBeGreaterThanOrEqual(3);
    expect(new Set(delays)).toEqual(new Set([AXIOS_KEEP_ALIVE_PROBE_MS]));
  } finally {
    settings.mockRestore();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

});
