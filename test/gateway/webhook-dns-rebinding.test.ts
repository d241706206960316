/**
 * outbound-webhooks.ts once checked a webhook target by resolving its name (dns/promises
 * `lookup`) and then let `fetch` resolve the name again on its own. A name whose DNS answers
 * change between the two (DNS rebinding: a public address with TTL 0, then 127.0.0.1) passed the
 * check and was delivered to a private address.
 *
 * The attacker's DNS is mocked for one name: any check made through dns/promises is told a
 * public address; the lookup a connection makes (node:dns, what the guarded agents use) is told
 * 127.0.0.1, where a server of this test listens. The name is made up, so the test runs the same
 * on any machine, whatever its own host name resolves to.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it, vi } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

// Hoisted with the mocks of DNS below, which read it.
const { REBINDING_NAME } = vi.hoisted(() => ({ REBINDING_NAME: 'rebinding.attacker.test' }));

vi.mock('node:dns/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns/promises')>();
  // The attacker's first answer: public, for a check.
  const lookup = (async (name: string, options?: unknown) =>
    name === REBINDING_NAME ? [{ address: '93.184.215.14', family: 4 }] : real.lookup(name, options as never)) as typeof real.lookup;
  return { ...real, default: { ...real, lookup }, lookup };
});

// The answers after it (TTL 0): the gateway's own loopback.
vi.mock('node:dns', async (importOriginal) =>
  (await import('../support/dns-answers.js')).dnsAnswering(await importOriginal(), REBINDING_NAME, [{ address: '127.0.0.1', family: 4 }]),
);

let gw: TestGateway | undefined;
let server: Server | undefined;
afterEach(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

const request = { model: 'kling-v3', prompt: 'rebinding', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): the private-target check resolves the webhook host separately from fetch (TOCTOU), so DNS rebinding delivers signed task events to loopback/internal addresses.
it('never delivers to a private address, even when the name resolved publicly at check time', async () => {
  const received: string[] = [];
  server = createServer((req, res) => {
    received.push(req.url ?? '');
    res.end();
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  gw = await startTestGateway({ config: { webhooks: { allow_private_targets: false } } });
  const created = await gw.create({ ...request, webhook_url: `http://${REBINDING_NAME}:${port}/internal-admin` });
  expect(created.status).toBe(202);
  // Every event the task sends is tried, refused at the connection's own lookup, and not tried again.
  const deliveries = async () =>
    ((await gw!.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data as { type: string; status: string; last_error: string | null }[]).map(
      (delivery) => [delivery.type, delivery.status, delivery.last_error],
    );
  const refused = 'target refused: resolves to a private, loopback or link-local address';
  await gw.advanceUntil(async () => (await deliveries()).some(([type, status]) => type === 'video.succeeded' && status !== 'pending'));
  expect(await deliveries()).toEqual([
    ['video.processing', 'failed', refused],
    ['video.succeeded', 'failed', refused],
  ]);
  expect(received).toEqual([]);
});
