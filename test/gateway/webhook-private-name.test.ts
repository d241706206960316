/**
 * A `webhook_url` whose DNS name resolves to a private address is refused at delivery. What the
 * tenant reads back (`GET /v1/videos/{id}/webhooks`) says so without the address the gateway's
 * resolver gave: a caller must not learn, name by name, how the gateway's internal DNS answers
 * (split-horizon names of the operator's network). The operator's log line keeps the address.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

// Hoisted with the mock of node:dns below, which reads them.
const { INTERNAL_NAME, INTERNAL_ADDRESS } = vi.hoisted(() => ({ INTERNAL_NAME: 'billing-db.corp.internal', INTERNAL_ADDRESS: '10.20.30.40' }));

vi.mock('node:dns', async (importOriginal) =>
  (await import('../support/dns-answers.js')).dnsAnswering(await importOriginal(), INTERNAL_NAME, [{ address: INTERNAL_ADDRESS, family: 4 }]),
);

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it("never tells the caller which private address a webhook_url's name resolved to; the log does", async () => {
  const logs = capturedLogs();
  gw = await startTestGateway({ logTo: logs.sink, config: { webhooks: { allow_private_targets: false } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'split horizon', duration: 5, webhook_url: `http://${INTERNAL_NAME}/hook` });
  expect(created.status).toBe(202);
  let deliveries: any[] = [];
  await gw.advanceUntil(async () => {
    deliveries = (await gw!.request('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    return deliveries.some((delivery) => delivery.last_error !== null);
  });
  const refused = deliveries.find((delivery) => delivery.last_error !== null);
  expect(refused.status).toBe('failed');
  expect(refused.last_error).toMatch(/private/);
  expect(JSON.stringify(deliveries)).not.toContain(INTERNAL_ADDRESS);
  expect(logs.text()).toContain(INTERNAL_ADDRESS);
});
