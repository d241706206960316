/** A Freepik webhook as Freepik sends one: signed with the gateway's configured Freepik secret, timed by its clock. */
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import type { TestGateway } from './harness.js';

/** Posts `body` to the gateway's Freepik webhook route, signed as Freepik signs (seed 001), with a fresh webhook-id. */
export async function postFreepikWebhook(gateway: TestGateway, body: unknown) {
  const raw = JSON.stringify(body);
  const id = `wh_${Math.random().toString(16).slice(2)}`;
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const signature = signFreepikWebhook(gateway.endpoints.get('freepik')!.webhookSecret!, id, timestamp, raw);
  return gateway.request('POST', '/v1/webhooks/freepik', raw, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature }, null);
}
