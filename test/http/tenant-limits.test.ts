/**
 * Per-tenant limits at the door: creates per minute (429 with Retry-After, per tenant, held
 * across replicas on PostgreSQL), event streams and `?wait` requests open at once (429), a time
 * limit on request bodies (408, webhook routes included), and who may read `/metrics`.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';
import { followTaskFollowers } from '../support/task-followers.js';
import { rawExchange } from '../support/raw-answer.js';

let gateways: TestGateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.map((gw) => gw.close()));
  gateways = [];
});

async function start(config: Record<string, unknown>): Promise<TestGateway> {
  const gw = await startTestGateway({ config });
  gateways.push(gw);
  return gw;
}

const request = { model: 'kling-v3', prompt: 'limited', duration: 5 };

describe('creates per minute', () => {
  it('answers 429 with Retry-After past the tenant limit, sends nothing upstream, and leaves other tenants alone', async () => {
    const gw = await start({ limits: { creates_per_minute: 3 }, tenants: { other: { limits: { creates_per_minute: 5 } } } });
    for (let i = 0; i < 3; i++) expect((await gw.create(request)).status).toBe(202);
    const upstreamBefore = [...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.requests.length, 0);
    const refused = await gw.create(request);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body.detail).toMatch(/3 videos per minute/);
    expect([...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.requests.length, 0)).toBe(upstreamBefore);
    // The other tenant has a limit of its own.
    for (let i = 0; i < 5; i++) expect((await gw.request('POST', '/v1/videos', request, {}, OTHER_TENANT_KEY)).status).toBe(202);
    expect((await gw.request('POST', '/v1/videos', request, {}, OTHER_TENANT_KEY)).status).toBe(429);
    // Reads are not creates.
    expect((await gw.request('GET', '/v1/videos')).status).toBe(200);
    expect((await gw.request('POST', '/v1/videos/quote', request)).status).toBe(200);
  });

  it('says "1 video per minute" for a limit of one', async () => {
    const gw = await start({ limits: { creates_per_minute: 1 } });
    expect((await gw.create(request)).status).toBe(202);
    const refused = await gw.create(request);
    expect(refused.status).toBe(429);
    expect(refused.body.detail).toMatch(/^This key's tenant may create 1 video per minute; retry in \d+ s\.$/);
  });

  it('does not count a create refused as bad input: bad input changes nothing, the allowance included', async () => {
    const gw = await start({ limits: { creates_per_minute: 2 } });
    const refusals = [
      await gw.create({ model: 'kling-v9', prompt: 'no such model' }),
      await gw.create({ ...request, duration: 'five' }),
      await gw.request('POST', '/v1/videos', 'model=kling-v3', { 'content-type': 'application/x-www-form-urlencoded' }),
      await gw.create({ ...request, model: 'kling-v1', quality: 'std', duration: 15 }),
    ];
    expect(refusals.map((answer) => answer.status)).toEqual([400, 400, 415, 422]);
    // The tenant's two creates of the minute are all still there.
    expect((await gw.create(request)).status).toBe(202);
    expect((await gw.create(request)).status).toBe(202);
    expect((await gw.create(request)).status).toBe(429);
  });

  it("counts a create refused by the budget (402): it depends on the tenant's spend, not on what was asked, so a client retrying it in a loop is limited", async () => {
    const gw = await start({ limits: { creates_per_minute: 2 }, tenants: { acme: { budget: { amount: 0.1, currency: 'USD', period: 'month' } } } });
    const answers = [await gw.create(request), await gw.create(request), await gw.create(request)];
    expect(answers.map((answer) => answer.status)).toEqual([402, 402, 429]);
  });

  it('lets a repeat of a create past the limit through to its task: the repeat makes no video', async () => {
    const gw = await start({ limits: { creates_per_minute: 2 } });
    const first = await gw.create(request, { 'idempotency-key': 'order-1' });
    expect(first.status).toBe(202);
    expect((await gw.create(request)).status).toBe(202);
    // At the limit: a new key is refused, the repeat of a key that made a task gets that task.
    expect((await gw.create(request, { 'idempotency-key': 'order-2' })).status).toBe(429);
    const repeat = await gw.create(request, { 'idempotency-key': 'order-1' });
    expect(repeat.status).toBe(202);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.body.id).toBe(first.body.id);
    // The same key with another body is still the documented conflict, and creates nothing.
    const other = await gw.create({ ...request, prompt: 'something else' }, { 'idempotency-key': 'order-1' });
    expect(other.status).toBe(409);
    expect((await gw.request('GET', '/v1/videos')).body.data).toHaveLength(2);
  });

  it("does not count a repeat answered with its key's task under the limit either: one video, one create of the minute", async () => {
    const gw = await start({ limits: { creates_per_minute: 2 } });
    const first = await gw.create(request, { 'idempotency-key': 'order-1' });
    expect(first.status).toBe(202);
    // The client lost the answer and sends the create again: the same task, no video made.
    const repeat = await gw.create(request, { 'idempotency-key': 'order-1' });
    expect(repeat.status).toBe(202);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.body.id).toBe(first.body.id);
    // One video made so far: the tenant's second create of the minute is still there.
    const second = await gw.create(request, { 'idempotency-key': 'order-2' });
    expect(second.status).toBe(202);
    expect((await gw.create(request, { 'idempotency-key': 'order-3' })).status).toBe(429);
  });
});

describe('open event streams and waits', () => {
  it('refuses a stream or a wait past the tenant cap with 429, and gives the place back when the client goes', async () => {
    const gw = await start({ limits: { open_streams: 1, open_waits: 1 } });
    const task = (await gw.create(request)).body;
    // A stream or a wait follows the task once it holds its place, and stops after giving it back.
    const followers = followTaskFollowers(gw);

    const first = new AbortController();
    const stream = await fetch(`${gw.url}/v1/videos/${task.id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, signal: first.signal });
    expect(stream.status).toBe(200);
    const second = await gw.request('GET', `/v1/videos/${task.id}/events`);
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
    // Another tenant's streams are its own.
    expect((await gw.request('GET', `/v1/videos/${task.id}/events`, undefined, {}, OTHER_TENANT_KEY)).status).toBe(404);

    const waiting = new AbortController();
    const wait = fetch(`${gw.url}/v1/videos/${task.id}?wait=30`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, signal: waiting.signal }).catch(() => undefined);
    await followers.until(task.id, 2);
    expect((await gw.request('GET', `/v1/videos/${task.id}?wait=30`)).status).toBe(429);
    expect((await gw.request('GET', `/v1/videos/${task.id}`)).status).toBe(200);

    first.abort();
    waiting.abort();
    await wait;
    await followers.until(task.id, 0);
    const again = new AbortController();
    const reopened = await fetch(`${gw.url}/v1/videos/${task.id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, signal: again.signal });
    expect(reopened.status).toBe(200);
    again.abort();
  });
});

describe('request body time limit', () => {
  /** Starts a POST that sends part of its body and then nothing; resolves with the answer's status and body. */
  function slowPost(gw: TestGateway, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    const url = new URL(`${gw.url}${path}`);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': '1000' } },
        (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write('{"model":');
    });
  }

  it.each([
    ['/v1/videos', { authorization: `Bearer ${TENANT_KEY}` }],
    ['/v1/webhooks/freepik', {}],
    ['/v1/webhooks/kling-legacy/some-token', {}],
  ] as const)('answers 408 on %s when the body does not arrive in time (on the gateway clock)', async (path, headers) => {
    const gw = await start({ server: { body_timeout_ms: 5_000 } });
    let settled = false;
    const answer = slowPost(gw, path, headers).finally(() => (settled = true));
    // Nothing happens before the limit (the half-sent body just waits)…
    await new Promise((resolve) => setTimeout(resolve, 50));
    await gw.clock.advance(4_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    // …and past it the answer is 408 (the clock is moved again until the request was seen, on a slow machine).
    for (let step = 0; step < 500 && !settled; step++) {
      await gw.clock.advance(1_001);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { status, body } = await answer;
    expect(status).toBe(408);
    expect(JSON.parse(body)).toMatchObject({ status: 408, title: 'Request timeout' });
  });

  /**
   * Opens a raw connection, sends a request that announces a 1000-byte body and only part of it,
   * and reports the answer's bytes and whether the gateway has closed the connection.
   */
  function halfSentBody(gw: TestGateway, head: string): { received: () => string; closed: () => boolean } {
    const { hostname, port } = new URL(gw.url);
    const socket = connect(Number(port), hostname);
    let received = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.write(`${head}host: ${hostname}:${port}\r\ncontent-length: 1000\r\n\r\n{"model":`);
    return { received: () => received, closed: () => closed };
  }

  it.each([
    ['a create without a key (401)', 'POST /v1/videos HTTP/1.1\r\ncontent-type: application/json\r\n', '401'],
    ['a path that is no route (404)', 'POST /no-such-route HTTP/1.1\r\n', '404'],
    ['a read that takes no body', 'GET /healthz HTTP/1.1\r\n', '200'],
  ] as const)('closes the connection of %s once the body is late, though it was answered before the body came', async (_name, head, status) => {
    const gw = await start({ server: { body_timeout_ms: 5_000 } });
    const connection = halfSentBody(gw, head);
    for (let step = 0; step < 1_000 && !connection.received().includes('\r\n\r\n'); step++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(connection.received()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    // Answered, but the rest of the body is still awaited: before the limit the connection stays…
    await gw.clock.advance(4_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(connection.closed()).toBe(false);
    // …and past it the gateway closes it, rather than reading a trickle of bytes for minutes.
    for (let step = 0; step < 500 && !connection.closed(); step++) {
      await gw.clock.advance(1_001);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(connection.closed()).toBe(true);
  });
});

describe('/metrics', () => {
  it('asks for the metrics token when one is set', async () => {
    const gw = await start({ server: { metrics_token: 'metrics-token-123456' } });
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${gw.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-000' } })).status).toBe(401);
    const allowed = await fetch(`${gw.url}/metrics`, { headers: { authorization: 'Bearer metrics-token-123456' } });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain('kling_gateway_');
    // The token sent beside another Authorization header is refused, whichever comes first.
    const { host } = new URL(gw.url);
    for (const order of [['metrics-token-123456', 'wrong-token-000'], ['wrong-token-000', 'metrics-token-123456']]) {
      const answer = await rawExchange(gw.url, `GET /metrics HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n${order.map((token) => `authorization: Bearer ${token}\r\n`).join('')}\r\n`, true);
      expect(answer.slice(0, 12)).toBe('HTTP/1.1 400');
      expect(answer).not.toContain('kling_gateway_');
    }
  });

  it('is open without a token in the sandbox', async () => {
    const gw = await start({});
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
  });
});

describe('/metrics in a live deployment without a token', () => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && !entry.internal && entry.family === 'IPv4')?.address;

  it.skipIf(!external)('is served to loopback clients only', async () => {
    // Live: an upstream key is set (the provider is never called here).
    const gw = await startTestGateway({ config: { providers: { freepik: { api_key: 'fpk-live-123456', base_url: 'http://127.0.0.1:9' } } } });
    gateways.push(gw);
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
    const port = new URL(gw.url).port;
    // A second listener of the same app on a non-loopback address: the client's address is not loopback.
    const server = gw.gateway.app.listen(0, external!);
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const address = server.address() as { port: number };
      const refused = await fetch(`http://${external}:${address.port}/metrics`);
      expect(refused.status).toBe(403);
      expect(await refused.text()).toContain('METRICS_TOKEN');
      expect(port).not.toBe(String(address.port));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('is not served to a remote client a reverse proxy on the same host forwards', async () => {
    const gw = await startTestGateway({
      config: { server: { trust_proxy: true }, providers: { freepik: { api_key: 'fpk-live-123456', base_url: 'http://127.0.0.1:9' } } },
    });
    gateways.push(gw);
    // nginx's `proxy_add_x_forwarded_for`: the proxy (on loopback) appends its client's address,
    // after whatever that client sent itself.
    for (const forwarded of ['203.0.113.7', '127.0.0.1, 203.0.113.7']) {
      const refused = await fetch(`${gw.url}/metrics`, { headers: { 'x-forwarded-for': forwarded } });
      expect(refused.status, forwarded).toBe(403);
    }
    // The standard header (RFC 7239) says the same.
    expect((await fetch(`${gw.url}/metrics`, { headers: { forwarded: 'for="[2001:db8::7]:4711";proto=https' } })).status).toBe(403);
    expect((await fetch(`${gw.url}/metrics`, { headers: { forwarded: 'for=127.0.0.1:5000' } })).status).toBe(200);
    // nginx's other usual way to name the client (`proxy_set_header X-Real-IP $remote_addr`),
    // often the only one a proxy is set up with.
    expect((await fetch(`${gw.url}/metrics`, { headers: { 'x-real-ip': '203.0.113.7' } })).status).toBe(403);
    expect((await fetch(`${gw.url}/metrics`, { headers: { 'x-real-ip': '127.0.0.1' } })).status).toBe(200);
    // The CDNs' own client headers, which a proxy on this host may pass on as they came.
    for (const header of ['cf-connecting-ip', 'true-client-ip']) {
      expect((await fetch(`${gw.url}/metrics`, { headers: { [header]: '203.0.113.7' } })).status, header).toBe(403);
      expect((await fetch(`${gw.url}/metrics`, { headers: { [header]: '::1' } })).status, header).toBe(200);
    }
    // Prometheus on the same host, scraping directly (or through the proxy from loopback).
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${gw.url}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1' } })).status).toBe(200);
  });
});
