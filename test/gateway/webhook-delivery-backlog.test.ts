/**
 * A backlog of due webhook deliveries: one tenant's never keeps another tenant's event waiting (a
 * pass that finds more of one tenant's due than it may have on their way still starts the other
 * tenants' due ones), and a delivery answered makes room for the next at once, not at the next pass.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, TENANT_WEBHOOK_SECRET, type TestGateway } from '../support/harness.js';
import { closeWebhookReceivers, OTHER_WEBHOOK_SECRET, webhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

/** A due delivery of `tenant`'s, as the store keeps it (an account event: no task). */
function row(id: string, tenant: string, url: string, at: number) {
  return {
    id,
    task_id: null,
    tenant,
    url,
    event_type: 'budget.threshold_reached',
    payload_json: '{}',
    status: 'pending',
    attempts: 0,
    next_attempt_at: at,
    last_status: null,
    last_error: null,
    created_at: at,
    delivered_at: null,
    lease_owner: null,
    lease_until: null,
  };
}

let h: TestGateway | undefined;
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await closeWebhookReceivers(receivers);
  await h?.close();
  h = undefined;
});

describe('outbound webhook deliveries of a backlog', () => {
  it("start another tenant's due event in the same pass, however many of one tenant's are due before it", async () => {
    const busy = await webhookReceiver(true);
    const prompt = await webhookReceiver(false);
    receivers.push(busy, prompt);
    h = await startTestGateway({
      config: {
        tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET }, other: { webhook_secret: OTHER_WEBHOOK_SECRET } },
        webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 60_000 },
      },
    });
    const now = h.clock.now();
    // 80 of one tenant's events due for a while, then one of another tenant's.
    for (let index = 0; index < 80; index++) await h.gateway.store.insertDelivery(row(`msg_busy_${index}`, 'other', busy.url, now - 60_000 + index));
    await h.gateway.store.insertDelivery(row('msg_acme', 'acme', prompt.url, now));

    const webhooks = h.gateway.webhooks;
    await webhooks.start();
    await expect.poll(() => busy.received, { timeout: 5_000 }).toBe(10);
    await expect.poll(() => prompt.received, { timeout: 5_000 }).toBe(1);
    expect(busy.received).toBe(10);
  }, 20_000);

  it("lease none of one tenant's backlog past its share, so a pass gives nothing back", async () => {
    const busy = await webhookReceiver(true);
    const quiet = await webhookReceiver(true);
    receivers.push(busy, quiet);
    h = await startTestGateway({
      config: {
        tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET }, other: { webhook_secret: OTHER_WEBHOOK_SECRET } },
        webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 60_000 },
      },
    });
    const now = h.clock.now();
    for (let index = 0; index < 100; index++) await h.gateway.store.insertDelivery(row(`msg_busy_${index}`, 'other', busy.url, now - 60_000 + index));
    await h.gateway.store.insertDelivery(row('msg_acme', 'acme', quiet.url, now));

    // Rows the pass writes (SQLite counts every row an update touches, a lease given back too).
    const written = async () => (await sql<{ n: number }>`select total_changes() as n`.execute(h!.gateway.store.store.db)).rows[0]!.n;
    const before = await written();
    await h.gateway.webhooks.start();
    // One lease for each delivery started (neither receiver answers, so none is recorded yet).
    expect((await written()) - before).toBe(11);
    await expect.poll(() => busy.received + quiet.received, { timeout: 5_000 }).toBe(11);
    expect(quiet.received).toBe(1);
  }, 20_000);

  it("are all started while one tenant's receiver answers at once, without waiting for the next pass for each share of 10", async () => {
    const prompt = await webhookReceiver(false);
    receivers.push(prompt);
    h = await startTestGateway({
      config: { tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET } }, webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 60_000 } },
    });
    const now = h.clock.now();
    // A burst: 35 of one tenant's events due at once (many of its tasks finished together).
    for (let index = 0; index < 35; index++) await h.gateway.store.insertDelivery(row(`msg_burst_${index}`, 'acme', prompt.url, now - 1_000 + index));

    // One pass of the worker loop, and no other: a share that is answered makes room for the next.
    await h.gateway.webhooks.start();
    await expect.poll(() => prompt.received, { timeout: 5_000 }).toBe(35);
  }, 20_000);
});
