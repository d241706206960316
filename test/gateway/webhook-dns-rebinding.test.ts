/**
 * outbound-webhooks.ts checks a webhook target by resolving its name (`refuseResolvedTarget`,
 * dns/promises `lookup`) and then lets `fetch` resolve the name again on its own. A name whose
 * DNS answers change between the two (DNS rebinding: a public address with TTL 0, then
 * 127.0.0.1) passes the check and is delivered to a private address.
 *
 * The mocked `lookup` below plays the attacker's first answer; the second resolution (the one
 * fetch makes) is the machine's real resolver, where this host's own name is loopback.
 */
import { createServer, type Server } from 'node:http';
import { promises as realDns } from 'node:dns';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { afterEach, expect, it, vi } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

vi.mock('node:dns/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns/promises')>();
  const { hostname: host } = await import('node:os');
  return {
    ...real,
    // The attacker's DNS: a public address for the gateway's check.
    lookup: async (name: string, options?: unknown) =>
      name === host() ? [{ address: '93.184.215.14', family: 4 }] : real.lookup(name, options as never),
  };
});

const resolvesInward = await realDns.lookup(hostname(), { all: true })
  .then((entries) => entries.some((entry) => entry.address.startsWith('127.')))
  .catch(() => false);

let gw: TestGateway | undefined;
let server: Server | undefined;
afterEach(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

const request = { model: 'kling-v3', prompt: 'rebinding', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): the private-target check resolves the webhook host separately from fetch (TOCTOU), so DNS rebinding delivers signed task events to loopback/internal addresses.
(resolvesInward ? it : it.skip)('never delivers to a private address, even when the name resolved publicly at check time', async () => {
  const received: string[] = [];
  server = createServer((req, res) => {
    received.push(req.url ?? '');
    res.end();
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  gw = await startTestGateway({ config: { webhooks: { allow_private_targets: false } } });
  const created = await gw.create({ ...request, webhook_url: `http://${hostname()}:${port}/internal-admin` });
  expect(created.status).toBe(202);
  for (let i = 0; i < 5; i++) {
    await gw.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(received).toEqual([]);
});
