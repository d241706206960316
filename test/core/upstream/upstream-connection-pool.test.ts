/**
 * The upstream client's connection pool, against a real loopback server (nock replaces the
 * sockets, so it cannot show reuse): every call of a provider, whatever its `withContext`
 * copy, goes over the provider's kept-alive connections instead of opening one per call.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';

const fakeProvider = {
  id: 'fake',
  authHeaders: (apiKey: string) => ({ authorization: `Bearer ${apiKey}` }),
  mapHttpError: (status: number) => ({ code: 'provider_error' as const, message: `fake answered ${status}` }),
};

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function countingServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, connections: () => connections };
}

describe('upstream connection pool', () => {
  it.each([
    ['without', undefined],
    ['with', 1_000],
  ])('reuses one kept-alive connection across calls and withContext copies (%s a connect limit)', async (_label, connectTimeoutMs) => {
    const upstream = await countingServer();
    const http = new HttpUpstreamClient({
      provider: fakeProvider,
      baseUrl: `http://127.0.0.1:${upstream.port}`,
      apiKey: 'sk_test_pool',
      timeoutMs: 2_000,
      ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
    });
    for (let index = 0; index < 5; index++) {
      const response = await http.withContext({ task_id: `t${index}` }).send({ method: 'GET', path: `/tasks/t${index}`, operation: 'status' });
      expect(response.data).toEqual({ ok: true });
    }
    expect(upstream.connections()).toBe(1);
  });
});
