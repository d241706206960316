/**
 * With HTTP_PROXY / HTTPS_PROXY in the environment, axios would hand an outbound request to the
 * proxy: the gateway's address check would then judge the proxy, and the proxy would reach any
 * private target for it. Outbound webhooks and result copies must never go through a proxy from
 * the environment: the address checked is the one connected to.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { copyToStorage } from '../../src/core/tasks/output-copy.js';
import type { ObjectStorage } from '../../src/storage/object-storage.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let proxy: Server;
const proxied: string[] = [];
const saved = { http: process.env.HTTP_PROXY, https: process.env.HTTPS_PROXY, no: process.env.NO_PROXY };
let gw: TestGateway | undefined;

beforeAll(async () => {
  proxy = createServer((req, res) => {
    proxied.push(req.url ?? '');
    res.end('ok');
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  process.env.HTTPS_PROXY = process.env.HTTP_PROXY;
  // The simulators stay reachable directly: this suite is about targets named by callers and providers.
  process.env.NO_PROXY = '127.0.0.1';
});

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

afterAll(async () => {
  for (const [name, value] of [['HTTP_PROXY', saved.http], ['HTTPS_PROXY', saved.https], ['NO_PROXY', saved.no]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await new Promise((resolve) => proxy.close(resolve));
});

const request = { model: 'kling-v3', prompt: 'proxy', duration: 5, routing: { providers: ['kling3api'] } };

it.each([
  ['a name only the proxy could resolve', 'http://metadata.internal.invalid/latest', 'getaddrinfo ENOTFOUND metadata.internal.invalid'],
  ['this host\'s own name (loopback here)', `http://${hostname()}:9/internal-admin`, 'target refused: resolves to a private, loopback or link-local address'],
])('never hands a task event for %s to the environment proxy', async (_what, webhookUrl, error) => {
  gw = await startTestGateway({ config: { webhooks: { allow_private_targets: false } } });
  const created = await gw.create({ ...request, webhook_url: webhookUrl });
  expect(created.status).toBe(202);
  const task = await gw.finish(created.body.id);
  expect(task.status).toBe('succeeded');
  // A task's events go in turn: the later one is tried once the earlier one is over (its tries 5 s and 10 s apart).
  for (let i = 0; i < 12; i++) {
    await gw.advance(5_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Each event was tried, directly: the gateway resolved the name itself (the proxy would have answered 200).
  const deliveries = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data as { type: string; status: string; attempts: number; last_error: string }[];
  expect(deliveries.map((delivery) => delivery.type)).toEqual(['video.processing', 'video.succeeded']);
  for (const delivery of deliveries) {
    expect(delivery.attempts, delivery.type).toBeGreaterThanOrEqual(1);
    expect([delivery.type, delivery.status === 'delivered', delivery.last_error]).toEqual([delivery.type, false, error]);
  }
  expect(proxied).toEqual([]);
});

it('never fetches a result URL through the environment proxy', async () => {
  const written: string[] = [];
  const storage = { description: 'test', write: async (key: string) => void written.push(key) } as unknown as ObjectStorage;
  const outcome = await copyToStorage({
    url: 'http://cdn.internal.invalid/video.mp4',
    key: 'k',
    kind: 'video',
    storage,
    policy: { allowPrivate: false, trustedOrigins: new Set(), timeoutMs: 5_000, idleTimeoutMs: 2_000, maxBytes: 1_000 },
  });
  expect(outcome).toMatchObject({ ok: false, reason: 'the copy failed: getaddrinfo ENOTFOUND cdn.internal.invalid' });
  expect(written).toEqual([]);
  expect(proxied).toEqual([]);
});
