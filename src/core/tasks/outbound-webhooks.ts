/**
 * Delivers task events to clients' `webhook_url` (SPEC §4) as Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature` signed with the tenant's `whsec_` secret. Deliveries
 * are rows in the store (written in the same transaction as the status change), so they
 * survive restarts; each is retried with exponential back-off and its attempts are recorded.
 * The POST itself is `webhook-post.ts` (node's http).
 */
import { Webhook } from 'standardwebhooks';
import { guardedAgents, PrivateTargetError, refuseLiteralTarget } from './address-guard.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import type { DeliveryRecord } from './task-records.js';
import { postWebhook } from './webhook-post.js';

/** Back-off before retry `attempt` (1-based): 5 s, 10 s, 20 s … capped at one hour. */
export function deliveryBackoffMs(attempt: number): number {
  return Math.min(3600_000, 5_000 * 2 ** Math.max(0, attempt - 1));
}

export class OutboundWebhooks {
  private readonly runner = new CoalescingRunner(() => this.deliverDue());
  /** Connections to receivers: the address connected to is checked, and no proxy is used. */
  private readonly agents: ReturnType<typeof guardedAgents>;

  constructor(private readonly engine: Engine) {
    this.agents = guardedAgents({
      allowPrivate: engine.config.webhooks.allow_private_targets,
      lookupTimeoutMs: engine.config.webhooks.timeout_ms,
    });
  }

  /** Delivers every due delivery once. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  /** Settles once no pass is running; the gateway waits for it before closing the store. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private async deliverDue(): Promise<void> {
    const { tasks, clock, owner, config } = this.engine;
    // This clock is off the other replicas': a lease it writes or reads would be misjudged (`ClockWatch`).
    if (this.engine.clockWatch.holdReason) return;
    const due = await tasks.claimDueDeliveries(clock.now(), owner, config.webhooks.timeout_ms + 5_000, 50);
    await Promise.all(due.map((delivery) => this.deliver(delivery)));
  }

  private async deliver(delivery: DeliveryRecord): Promise<void> {
    const { tasks, clock, config, metrics, logger, owner } = this.engine;
    const secret = config.tenants[delivery.tenant]?.webhook_secret;
    const attempt = delivery.attempts + 1;
    let status: number | null = null;
    let failure: string | undefined;
    let permanent = false;
    /** The private address a target's name resolved to: for the operator's log line, never for the tenant. */
    let refusedAddress: string | undefined;
    try {
      if (!secret) {
        failure = `tenant ${delivery.tenant} has no webhook_secret configured`;
        permanent = true;
      } else {
        const refused = refuseLiteralTarget(delivery.url, config.webhooks.allow_private_targets);
        if (refused) {
          failure = `target refused: ${refused}`;
          permanent = true;
        } else {
          const sentAt = new Date(clock.now());
          const signature = new Webhook(secret).sign(delivery.id, sentAt, delivery.payload);
          status = await postWebhook(delivery.url, delivery.payload, {
            headers: {
              'content-type': 'application/json',
              'user-agent': 'kling-gateway-webhooks/0.1',
              'webhook-id': delivery.id,
              'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
              'webhook-signature': signature,
            },
            timeoutMs: config.webhooks.timeout_ms,
            agents: this.agents,
          });
          if (status < 200 || status >= 300) failure = `answered ${status}`;
        }
      }
    } catch (error) {
      if (error instanceof PrivateTargetError) {
        failure = `target refused: ${error.message}`;
        refusedAddress = error.address;
        permanent = true;
      } else {
        failure = error instanceof Error ? error.message : String(error);
      }
    }

    const now = clock.now();
    if (!failure) {
      metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: 'delivered' });
      this.record(delivery, await tasks.recordDelivery(delivery.id, owner, { delivered: true, attempts: attempt, lastStatus: status, at: now }));
      return;
    }
    const giveUp = permanent || attempt >= config.webhooks.max_attempts;
    metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: giveUp ? 'failed' : 'retrying' });
    logger.warn(
      { task_id: delivery.taskId, delivery_id: delivery.id, attempt, status, reason: failure, ...(refusedAddress ? { address: refusedAddress } : {}) },
      giveUp ? 'webhook delivery abandoned' : 'webhook delivery failed; will retry',
    );
    const recorded = await tasks.recordDelivery(delivery.id, owner, {
      delivered: false,
      attempts: attempt,
      lastStatus: status,
      error: failure.slice(0, 500),
      giveUp,
      retryAt: now + deliveryBackoffMs(attempt),
    });
    this.record(delivery, recorded);
  }

  /** A try that outlived its lease: another replica or worker has the delivery now, and its record stands. */
  private record(delivery: DeliveryRecord, recorded: boolean): void {
    if (!recorded) this.engine.logger.warn({ task_id: delivery.taskId, delivery_id: delivery.id }, 'webhook delivery try outlived its lease; its outcome is not recorded');
  }
}
