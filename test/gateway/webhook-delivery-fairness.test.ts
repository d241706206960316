/**
 * Outbound webhooks of one tenant cannot hold up another's: a receiver that takes the connection
 * and never answers keeps only that tenant's few deliveries waiting (each until
 * `webhooks.timeout_ms`), while every other tenant's events go out at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';
import { closeWebhookReceivers, OTHER_WEBHOOK_SECRET, webhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

let live: LiveGateway | undefined;
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await closeWebhookReceivers(receivers);
  await live?.close();
  live = undefined;
});

async function create(key: string, webhookUrl: string): Promise<string> {
  const answer = await fetch(`${live!.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'kling-v3', prompt: 'a slow river', routing: { providers: ['kling3api'] }, webhook_url: webhookUrl }),
  });
  const body = (await answer.json()) as { id: string };
  expect(answer.status, JSON.stringify(body)).toBe(202);
  return body.id;
}

describe('outbound webhook deliveries across tenants', () => {
  it("go out for one tenant while another tenant's receiver takes 60 deliveries and never answers", async () => {
    const silent = await webhookReceiver(true);
    const prompt = await webhookReceiver(false);
    receivers.push(silent, prompt);
    live = await startLiveGateway({
      tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET }, other: { webhook_secret: OTHER_WEBHOOK_SECRET } },
      // Far longer than the test: a delivery to the silent receiver never ends while it runs.
      webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 120_000 },
      // Tasks stay processing: one event (video.processing) each.
      sandbox: { queued_ms: 0, processing_ms: 600_000 },
      providers: { kling3api: { max_in_flight: 100 } },
    });

    for (let index = 0; index < 60; index++) await create(OTHER_TENANT_KEY, silent.url);
    await expect.poll(() => silent.received, { timeout: 10_000 }).toBeGreaterThanOrEqual(10);

    await create(TENANT_KEY, prompt.url);
    await expect.poll(() => prompt.received, { timeout: 5_000 }).toBe(1);
    // The silent receiver holds only the few deliveries one tenant may have on their way at once.
    expect(silent.mostOpen).toBeLessThanOrEqual(10);
  }, 30_000);
});
