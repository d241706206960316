/**
 * `Retry-After` on a 429 or 503 reaches the app as `GatewayError.retryAfterSeconds`, in either form
 * HTTP allows (RFC 9110 §10.2.3): the gateway's own delay in seconds, or the date a proxy or load
 * balancer in front of it sends during maintenance, counted from the answer's own `Date` so the
 * two clocks need not agree.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayError } from '../../packages/client/src/index.js';

describe('Retry-After', () => {
  let server: Server;
  let url: string;
  let retryAfter: (date: Date) => string;

  beforeAll(async () => {
    // A proxy in front of a gateway under maintenance: 503, an HTML page, and when to come back.
    server = createServer((_request, response) => {
      const date = new Date(Date.UTC(2026, 11, 4, 12, 0, 0));
      response.writeHead(503, { 'content-type': 'text/html', date: date.toUTCString(), 'retry-after': retryAfter(date) });
      response.end('<html><head><title>503 Service Temporarily Unavailable</title></head></html>');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const refusal = async () => (await new GatewayClient({ baseUrl: url, apiKey: 'test-key-123' }).listVideos().catch((error: unknown) => error)) as GatewayError;

  it('as delay-seconds', async () => {
    retryAfter = () => '120';
    expect(await refusal()).toMatchObject({ status: 503, retryAfterSeconds: 120 });
  });

  it("as an HTTP date, counted from the answer's Date", async () => {
    retryAfter = (date) => new Date(date.getTime() + 90_000).toUTCString();
    const error = await refusal();
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ status: 503, retryAfterSeconds: 90 });
  });

  it('a date already past is 0, and a header that is neither form is none', async () => {
    retryAfter = (date) => new Date(date.getTime() - 5_000).toUTCString();
    expect(await refusal()).toMatchObject({ retryAfterSeconds: 0 });
    retryAfter = () => 'soon';
    expect(await refusal()).toMatchObject({ retryAfterSeconds: null });
  });
});
