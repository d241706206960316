/**
 * A gateway that allowed private webhook targets (`webhooks.allow_private_targets: true`) took a
 * task whose `webhook_url` is a loopback literal; it is restarted with the default (`false`) before
 * the event goes out. The check at create no longer applies to that stored URL: the delivery itself
 * must refuse it, without opening a connection to the address, and say so on the delivery the
 * tenant reads (`GET /v1/videos/{id}/webhooks`). Likewise a restart that removed the tenant's webhook
 * secret: its pending events are never sent unsigned.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { GatewayDeploys, OTHER_TENANT_KEY, TENANT_KEY, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
let deploys: GatewayDeploys | undefined;
let server: Server | undefined;
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close();
  await deploys?.close();
  deploys = undefined;
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
  }
  server = undefined;
});

/** A receiver on loopback (kept in `server`) answering 200; the connections and requests it saw. */
async function loopbackReceiver(): Promise<{ url: string; seen: { connections: number; requests: number } }> {
  const seen = { connections: 0, requests: 0 };
  server = createServer((req, res) => {
    seen.requests++;
    req.resume();
    req.on('end', () => res.end());
  });
  server.on('connection', () => seen.connections++);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, seen };
}

/**
 * The first deploy (private webhook targets allowed, left open in `open`) and a task it took whose
 * `webhook_url` is a `loopbackReceiver()`; no worker pass ran, so its first event waits in the store.
 * `next` makes the deploys after it.
 */
async function firstDeployWithLoopbackWebhook(prompt: string) {
  const { url, seen } = await loopbackReceiver();
  const next = (deploys = await GatewayDeploys.start());
  const allowing = await next.deploy({ webhooks: { allow_private_targets: true } });
  open.push(allowing);
  const created = await allowing.create({ model: 'kling-v3', prompt, duration: 5, webhook_url: url, routing: { providers: ['kling3api'] } });
  expect(created.status).toBe(202);
  return { seen, allowing, created, next };
}

it('refuses, without connecting, a loopback webhook_url a task got while private targets were allowed, once a restart refuses them', async () => {
  const { seen, allowing, created, next } = await firstDeployWithLoopbackWebhook('a harbour at dusk');
  // No worker pass ran on this deploy: the event waits in the store.
  const waiting = (await allowing.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
  expect(waiting).toEqual([expect.objectContaining({ type: 'video.processing', status: 'pending', attempts: 0 })]);
  await open.pop()!.close();

  const refusing = await next.deploy({ webhooks: { allow_private_targets: false } });
  open.push(refusing);
  await refusing.advance(1_000);

  const deliveries = (await refusing.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
  // Refused on the URL alone: not even a connection reached the loopback receiver.
  expect(seen).toEqual({ connections: 0, requests: 0 });
  expect(deliveries).toEqual([
    expect.objectContaining({
      id: waiting[0].id,
      type: 'video.processing',
      status: 'failed',
      attempts: 1,
      last_status: null,
      last_error: 'target refused: points at a private, loopback or link-local address (127.0.0.1)',
      next_attempt_at: null,
    }),
  ]);
  // Failed for good, not tried again; the task's next event, queued after the restart, is refused alike.
  expect((await refusing.finish(created.body.id, 60_000)).status).toBe('succeeded');
  await refusing.advance(3600_000);
  expect((await refusing.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data).toEqual([
    deliveries[0],
    expect.objectContaining({ type: 'video.succeeded', status: 'failed', attempts: 1, last_error: deliveries[0].last_error }),
  ]);
  expect(seen).toEqual({ connections: 0, requests: 0 });
});

it('never sends an event unsigned: once a restart removed the tenant\'s webhook secret, its pending events are tried again on the back-off, then fail saying why; nothing reaches the receiver', async () => {
  const { seen, created, next } = await firstDeployWithLoopbackWebhook('a harbour at dawn');
  await open.pop()!.close();

  // A live deployment (an upstream key set), whose tenant has no webhook secret any more: nothing fills one in.
  const unsigned = await next.deploy({
    webhooks: { allow_private_targets: true },
    tenants: { acme: { webhook_secret: undefined } },
    providers: { kling3api: { api_key: 'k3a-live-key-of-this-deployment' } },
  });
  open.push(unsigned);
  expect(unsigned.config.tenants.acme?.webhook_secret).toBeUndefined();
  expect((await unsigned.finish(created.body.id, 60_000)).status).toBe('succeeded');
  const deliveries = async () => (await unsigned.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
  const why = 'tenant acme has no webhook_secret configured';
  // Not failed at once: a secret given back before the last try still sends them (next test). The
  // task's later event waits behind the earlier one.
  expect(await deliveries()).toEqual([
    expect.objectContaining({ type: 'video.processing', status: 'pending', attempts: 1, last_status: null, last_error: why }),
    expect.objectContaining({ type: 'video.succeeded', status: 'pending', attempts: 0, last_status: null, last_error: null }),
  ]);
  // The later event's tries begin once the earlier one has failed for good.
  for (let hour = 0; hour < 5; hour++) await unsigned.advance(3600_000);

  expect(seen.requests).toBe(0);
  const { max_attempts } = unsigned.config.webhooks;
  expect(await deliveries()).toEqual([
    expect.objectContaining({ type: 'video.processing', status: 'failed', attempts: max_attempts, last_status: null, last_error: why, next_attempt_at: null }),
    expect.objectContaining({ type: 'video.succeeded', status: 'failed', attempts: max_attempts, last_status: null, last_error: why, next_attempt_at: null }),
  ]);
});

it('sends, signed, the events of a tenant whose webhook secret a restart took away once the next restart gives it back before their last try', async () => {
  const { seen, created, next } = await firstDeployWithLoopbackWebhook('a harbour at night');
  await open.pop()!.close();
  const unsigned = await next.deploy({
    webhooks: { allow_private_targets: true },
    tenants: { acme: { webhook_secret: undefined } },
    providers: { kling3api: { api_key: 'k3a-live-key-of-this-deployment' } },
  });
  expect((await unsigned.finish(created.body.id, 60_000)).status).toBe('succeeded');
  expect((await unsigned.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data.map((d: { status: string }) => d.status)).toEqual(['pending', 'pending']);
  await unsigned.close();
  expect(seen.requests).toBe(0);

  const restored = await next.deploy({ webhooks: { allow_private_targets: true } });
  open.push(restored);
  await restored.advance(3600_000);
  expect(seen.requests).toBe(2);
  expect((await restored.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data).toEqual([
    expect.objectContaining({ type: 'video.processing', status: 'delivered', last_status: 200 }),
    expect.objectContaining({ type: 'video.succeeded', status: 'delivered', last_status: 200 }),
  ]);
});

it('says at start how many events of a tenant left without a webhook secret fail unsent, and what to do; a restart that keeps the secret says nothing', async () => {
  const { created, next } = await firstDeployWithLoopbackWebhook('a harbour at noon');
  await open.pop()!.close();
  const warnings = (text: string) =>
    text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.level === 'warn' && /webhook/.test(line.msg));

  const kept = capturedLogs();
  const same = await next.deploy({ webhooks: { allow_private_targets: true } }, { logTo: kept.sink });
  await same.close();
  expect(warnings(kept.text())).toEqual([]);

  const logs = capturedLogs();
  const unsigned = await next.deploy(
    {
      webhooks: { allow_private_targets: true },
      tenants: { acme: { webhook_secret: undefined } },
      providers: { kling3api: { api_key: 'k3a-live-key-of-this-deployment' } },
    },
    { logTo: logs.sink },
  );
  open.push(unsigned);
  expect(warnings(logs.text())).toEqual([
    expect.objectContaining({
      tenant: 'acme',
      deliveries: 1,
      msg: '1 webhook event of tenant acme is waiting to be sent, and the tenant has no webhook_secret now: it is tried again on the usual back-off and fails unsent (never unsigned) after its last try (webhooks.max_attempts 3); to send it, give tenants.acme.webhook_secret (or GATEWAY_WEBHOOK_SECRETS) back and restart before then, and keep it until the tenant\'s events have gone out',
    }),
  ]);
  expect((await unsigned.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data).toHaveLength(1);
});

it('says at start that events of a tenant no API key names any more fail unsent, and how to give the tenant back', async () => {
  const { url } = await loopbackReceiver();
  const next = (deploys = await GatewayDeploys.start());
  const first = await next.deploy({ webhooks: { allow_private_targets: true } });
  const created = await first.request(
    'POST',
    '/v1/videos',
    { model: 'kling-v3', prompt: 'a harbour at dusk', duration: 5, webhook_url: url, routing: { providers: ['kling3api'] } },
    {},
    OTHER_TENANT_KEY,
  );
  expect(created.status).toBe(202);
  await first.close();

  const logs = capturedLogs();
  const without = await next.deploy({ webhooks: { allow_private_targets: true }, auth: { api_keys: `acme:${TENANT_KEY}` } }, { logTo: logs.sink });
  open.push(without);
  const warnings = logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((line) => line.level === 'warn' && /webhook/.test(line.msg));
  expect(warnings).toEqual([
    expect.objectContaining({
      tenant: 'other',
      deliveries: 1,
      msg: '1 webhook event of tenant other is waiting to be sent, and no API key names the tenant now (so it has no webhook_secret): it is tried again on the usual back-off and fails unsent (never unsigned) after its last try (webhooks.max_attempts 3); to send it, give the tenant back (a key in GATEWAY_API_KEYS and its webhook_secret) and restart before then, and keep them until the tenant\'s events have gone out',
    }),
  ]);
});

it('says nothing at start of a tenant left without a webhook secret whose events all went out already', async () => {
  const { seen, allowing, created, next } = await firstDeployWithLoopbackWebhook('a harbour in the rain');
  expect((await allowing.finish(created.body.id, 60_000)).status).toBe('succeeded');
  await allowing.advance(1_000);
  expect(seen.requests).toBe(2);
  expect((await allowing.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data.map((d: { status: string }) => d.status)).toEqual(['delivered', 'delivered']);
  await open.pop()!.close();

  const logs = capturedLogs();
  const unsigned = await next.deploy(
    { webhooks: { allow_private_targets: true }, tenants: { acme: { webhook_secret: undefined } }, providers: { kling3api: { api_key: 'k3a-live-key-of-this-deployment' } } },
    { logTo: logs.sink },
  );
  open.push(unsigned);
  const warned = logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((line) => line.level === 'warn' && /waiting to be sent/.test(line.msg));
  expect(warned).toEqual([]);
});
