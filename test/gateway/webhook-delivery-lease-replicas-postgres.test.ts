/**
 * A webhook delivery another replica has on its way is its own for the claim's lease,
 * `webhooks.timeout_ms` + 5 s (README *Outbound webhooks*): a slow receiver, whose answer may take
 * up to `webhooks.timeout_ms`, is not sent the same event again by another replica meanwhile, and
 * the answer, when it comes, is recorded by the replica that sent it. (A killed replica's delivery
 * taken up once that lease ends, and not before: `races-three-replicas-postgres.test.ts`.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { closeWebhookReceivers, webhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const available = await postgresAvailable();

/** Each try may take a minute (real time: a POST the receiver holds never times out while the test runs). */
const TIMEOUT_MS = 60_000;
/** How long a claim holds a delivery. */
const LEASE_MS = TIMEOUT_MS + 5_000;

describe.skipIf(!available)('a webhook delivery on its way at one replica, seen from another', () => {
  const replicas = usePostgresReplicas({ webhooks: { timeout_ms: TIMEOUT_MS } });
  const receivers: WebhookReceiver[] = [];
  afterEach(() => closeWebhookReceivers(receivers));

  it('is not sent again while the receiver takes its time, to the last millisecond of its lease; the answer is recorded by the replica that sent it', async () => {
    const a = await replicas.replica('replica-a');
    const b = await replicas.replica('replica-b');
    const receiver = await webhookReceiver(true);
    receivers.push(receiver);
    const created = await a.create({ model: 'kling-v3', prompt: 'a slow receiver', duration: 5, routing: { providers: ['kling3api'] }, webhook_url: receiver.url });
    expect(created.body.status).toBe('processing');
    const id = created.body.id as string;

    // Replica A's pass posts video.processing; the receiver holds it.
    const aPass = a.gateway.runOnce();
    await vi.waitFor(() => expect(receiver.held).toHaveLength(1), { timeout: 10_000, interval: 20 });
    const [processing] = await b.gateway.store.listDeliveries(id);
    expect(processing).toMatchObject({ event_type: 'video.processing', status: 'pending', lease_owner: 'replica-a' });
    const sends = () => receiver.ids.filter((webhookId) => webhookId === processing!.id).length;
    // What B sends from here on is answered at once (the task's later events).
    receiver.silent = false;

    // The POST may be on its way up to webhooks.timeout_ms; B's passes leave it to A until its lease ends.
    await replicas.clock.advance(LEASE_MS - 1);
    await b.gateway.runOnce();
    expect(sends()).toBe(1);

    // The receiver answers: A records the first try, delivered.
    receiver.answerHeld();
    await aPass;
    const events = (await b.request('GET', `/v1/videos/${id}/webhooks`)).body.data;
    expect(events.find((event: { id: string }) => event.id === processing!.id)).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200 });
    // And it is never sent again.
    await replicas.clock.advance(LEASE_MS);
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    expect(sends()).toBe(1);
  });
});
