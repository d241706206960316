/** A Freepik webhook as Freepik sends one: signed with the gateway's configured Freepik secret, timed by its clock. */
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import type { TestGateway } from './harness.js';

/**
 * Posts `body` to the gateway's Freepik webhook route, signed as Freepik signs (seed 001), with a
 * fresh webhook-id; with `attemptKey`, to that attempt's own path (the `webhook_url` its create carried).
 */
export async function postFreepikWebhook(gateway: TestGateway, body: unknown, options: { attemptKey?: string } = {}) {
  const raw = JSON.stringify(body);
  const id = `wh_${Math.random().toString(16).slice(2)}`;
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const signature = signFreepikWebhook(gateway.endpoints.get('freepik')!.webhookSecret!, id, timestamp, raw);
  const path = options.attemptKey === undefined ? '/v1/webhooks/freepik' : `/v1/webhooks/freepik/${options.attemptKey}`;
  return gateway.request('POST', path, raw, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature }, null);
}

/** A task of another client under the gateway's Freepik key: a task list holding it cannot prove a create was not accepted. */
export async function anotherClientsFreepikTask(gateway: TestGateway): Promise<void> {
  const freepik = gateway.endpoints.get('freepik')!;
  await fetch(`${freepik.baseUrl}/v1/ai/video/kling-v3-pro`, {
    method: 'POST',
    headers: { 'x-freepik-api-key': freepik.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'another client', duration: '5' }),
  });
}
