/**
 * `KLING_GATEWAY_URL=https://…` for a gateway that serves plain http (the sandbox, a gateway
 * behind no TLS proxy) fails the TLS handshake: nothing is sent. The error is one line naming
 * what went wrong and the http:// URL to use, not OpenSSL's internal record (with its source
 * file and a line break before the closing parenthesis); and `generate` says no video was made
 * rather than naming a key to run again with for a video that cannot exist.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GatewayClient, GatewayUnreachableError } from '../../packages/client/src/index.js';
import { runCliCaptured } from '../support/cli-run.js';

let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((_request, response) => response.end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

it('the client says in one line that the server is not TLS, and which URL to use', async () => {
  const client = new GatewayClient({ baseUrl: `https://127.0.0.1:${port}`, apiKey: 'test-key-123' });
  const error = await client.listVideos().catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(GatewayUnreachableError);
  const unreachable = error as GatewayUnreachableError;
  expect(unreachable.code).toBe('ERR_SSL_WRONG_VERSION_NUMBER');
  expect(unreachable.message).toBe(
    `cannot reach https://127.0.0.1:${port}: ERR_SSL_WRONG_VERSION_NUMBER (wrong version number: the server does not speak TLS there; is its URL http://127.0.0.1:${port}?)`,
  );
});

it('generate against an http gateway given as https says so in one line, and that no video was made', async () => {
  const pauses: number[] = [];
  const result = await runCliCaptured(['generate', 'a fox', '--model', 'kling-v3'], {
    env: { KLING_GATEWAY_URL: `https://127.0.0.1:${port}`, KLING_GATEWAY_API_KEY: 'test-key-123' },
    pause: async (ms) => void pauses.push(ms),
  });
  expect(result.code).toBe(9);
  expect(result.stderr).not.toContain('may have created');
  expect(result.stderr).not.toContain('openssl');
  expect(result.stderr.endsWith(
    'no create reached the gateway (no connection could be made to it): no video was made\n' +
      `error: cannot reach https://127.0.0.1:${port}: ERR_SSL_WRONG_VERSION_NUMBER (wrong version number: the server does not speak TLS there; is its URL http://127.0.0.1:${port}?)\n`,
  )).toBe(true);
});
