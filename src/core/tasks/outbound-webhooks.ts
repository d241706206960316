/**
 * Delivers task events to clients' `webhook_url` (SPEC §4) as Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature` signed with the tenant's `whsec_` secret (one signature
 * per secret while it holds several, a rotation). Deliveries
 * are rows in the store (written in the same transaction as the status change), so they
 * survive restarts; each is retried with exponential back-off and its attempts are recorded.
 * A `410 Gone` is not retried (Standard Webhooks: the receiver wants no more webhooks): it ends
 * that delivery, and a task's other events waiting for that URL, or queued later, end unsent; an
 * account event's URL is the tenant's, so only that one event ends.
 * The POST itself is `webhook-post.ts` (node's http).
 */
import { Webhook } from 'standardwebhooks';
import { guardedAgents, PrivateTargetError, refuseLiteralTarget } from './address-guard.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import type { DeliveryRecord } from './task-records.js';
import { postWebhook } from './webhook-post.js';
import { parseRetryAfter } from '../upstream/upstream-error.js';
import { errorText } from './error-text.js';

/** Back-off before retry `attempt` (1-based): 5 s, 10 s, 20 s … capped at one hour. */
export function deliveryBackoffMs(attempt: number): number {
  return Math.min(3600_000, 5_000 * 2 ** Math.max(0, attempt - 1));
}

/**
 * Answers by which a receiver asks the sender to slow down (Standard Webhooks: 429, 502 and 504
 * throttle; and 503, whose `Retry-After` HTTP defines): the next try waits the `Retry-After` they
 * carry, when it is longer than the back-off.
 */
const THROTTLING = new Set([429, 502, 503, 504]);

/** When the next try of a delivery whose try `attempt` failed at `now` is due: the back-off, or the receiver's longer `Retry-After`. */
function nextTryAt(attempt: number, now: number, status: number | null, retryAfter: string | undefined): number {
  const backoff = deliveryBackoffMs(attempt);
  const asked = status !== null && THROTTLING.has(status) ? parseRetryAfter(retryAfter, now) : undefined;
  return now + Math.max(backoff, asked ?? 0);
}

/** The last error of a task's delivery its receiver answered `410 Gone`. */
const GONE_ERROR = "answered 410 Gone: the receiver takes no more of this task's events; none is sent to this URL again";

/** The last error of a task's delivery ended unsent because its receiver answered `410 Gone` to `gone`. */
function notSentAfterGone(gone: { id: string; eventType: string }): string {
  return `not sent: the receiver answered 410 Gone to ${gone.eventType} (${gone.id}) of this task`;
}

/** Deliveries on their way at once, per process: a pass claims only as many as there is room for. */
const MAX_IN_FLIGHT = 50;
/**
 * Of those, one tenant's at most: a receiver that takes connections and never answers holds only
 * its own tenant's deliveries (each until `webhooks.timeout_ms`), never another tenant's.
 */
const MAX_IN_FLIGHT_PER_TENANT = 10;

export class OutboundWebhooks {
  private readonly runner = new CoalescingRunner(() => this.startDue());
  /** Deliveries on their way, each settling once its outcome is recorded. */
  private readonly inFlight = new Set<Promise<void>>();
  /** How many of `inFlight` each tenant has. */
  private readonly tenantInFlight = new Map<string, number>();
  /** The last pass left due deliveries behind for want of room: one settling starts another pass. */
  private more = false;
  /** The gateway is stopping: deliveries on their way finish, and no more are started. */
  private stopped = false;
  /** Connections to receivers: the address connected to is checked, and no proxy is used. */
  private readonly agents: ReturnType<typeof guardedAgents>;

  constructor(private readonly engine: Engine) {
    this.agents = guardedAgents({
      allowPrivate: engine.config.webhooks.allow_private_targets,
      lookupTimeoutMs: engine.config.webhooks.timeout_ms,
    });
  }

  /**
   * The worker loop's pass: starts the due deliveries there is room for, and settles once they are
   * on their way, not once they are answered, so a slow receiver never holds up the next pass.
   */
  start(): Promise<void> {
    return this.runner.run();
  }

  /** Delivers every due delivery there is room for once, and waits for every delivery on its way. */
  async tick(): Promise<void> {
    await this.runner.run();
    await this.idle();
  }

  /** Starts no more deliveries (the gateway is stopping); `idle` then waits for those on their way. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Settles once no pass runs and no delivery is on its way (one settling may start a pass); the
   * gateway waits for it before closing the store.
   */
  async idle(): Promise<void> {
    for (;;) {
      await this.runner.idle();
      if (this.inFlight.size === 0) return;
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private async startDue(): Promise<void> {
    const { tasks, clock, owner, config } = this.engine;
    // This clock is off the other replicas': a lease it writes or reads would be misjudged (`ClockWatch`).
    if (this.engine.clockWatch.holdReason || this.stopped) return;
    this.more = false;
    // A claim leases of each tenant only as many as it has room for, out of the earliest due; a
    // tenant whose backlog filled its room there is passed over by the next claim, so its backlog
    // (earliest due first) never takes the room of another tenant's due events in this pass.
    for (;;) {
      const room = MAX_IN_FLIGHT - this.inFlight.size;
      if (room <= 0) {
        this.more = true;
        return;
      }
      const full = this.fullTenants();
      const share = { perTenant: MAX_IN_FLIGHT_PER_TENANT, onTheirWay: new Map(this.tenantInFlight) };
      const due = await tasks.claimDueDeliveries(clock.now(), owner, config.webhooks.timeout_ms + 5_000, room, share);
      for (const delivery of due) this.startDelivery(delivery);
      const filled = this.fullTenants().filter((tenant) => !full.includes(tenant));
      // As many as there was room for, or a tenant at its share (whose more due ones no claim takes):
      // more may be due than are on their way.
      if (due.length >= room || full.length > 0 || filled.length > 0) this.more = true;
      // No tenant filled its room: every due delivery there was room for is on its way.
      if (filled.length === 0) return;
    }
  }

  /** Tenants with as many deliveries on their way as one tenant may have. */
  private fullTenants(): string[] {
    return [...this.tenantInFlight].filter(([, count]) => count >= MAX_IN_FLIGHT_PER_TENANT).map(([tenant]) => tenant);
  }

  /** Puts a claimed delivery on its way; its settling makes room (and starts a pass when more was due). */
  private startDelivery(delivery: DeliveryRecord): void {
    const { logger } = this.engine;
    this.tenantInFlight.set(delivery.tenant, (this.tenantInFlight.get(delivery.tenant) ?? 0) + 1);
    const run: Promise<void> = this.deliver(delivery)
      .catch((error) => logger.error({ err: error, task_id: delivery.taskId, delivery_id: delivery.id }, 'webhook delivery could not be recorded'))
      .finally(() => {
        this.inFlight.delete(run);
        const left = (this.tenantInFlight.get(delivery.tenant) ?? 1) - 1;
        if (left > 0) this.tenantInFlight.set(delivery.tenant, left);
        else this.tenantInFlight.delete(delivery.tenant);
        // Room for one more, and more was due: claimed now, not at the worker loop's next pass.
        if (this.more && !this.stopped) this.runner.run().catch((error) => logger.error({ err: error }, 'webhook delivery pass failed'));
      });
    this.inFlight.add(run);
  }

  private async deliver(delivery: DeliveryRecord): Promise<void> {
    const { tasks, clock, config, metrics, logger, owner } = this.engine;
    // A receiver that answered `410 Gone` to an event of this task takes none of its events any more.
    const gone = delivery.taskId === null ? undefined : await tasks.goneDeliveryOf(delivery.taskId, delivery.url);
    if (gone) {
      metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: 'not_sent' });
      logger.info({ task_id: delivery.taskId, delivery_id: delivery.id, gone_delivery_id: gone.id }, 'webhook delivery not sent: the receiver answered 410 Gone to an earlier event of the task');
      this.record(delivery, await tasks.recordDelivery(delivery.id, owner, { delivered: false, notSent: true, error: notSentAfterGone(gone) }));
      return;
    }
    const secrets = config.tenants[delivery.tenant]?.webhook_secret ?? [];
    const attempt = delivery.attempts + 1;
    let status: number | null = null;
    let retryAfter: string | undefined;
    let failure: string | undefined;
    let permanent = false;
    /** The private address a target's name resolved to: for the operator's log line, never for the tenant. */
    let refusedAddress: string | undefined;
    /** When the POST went out (real time, for the log line's `duration_ms`); undefined when none was sent. */
    let postedAt: number | undefined;
    try {
      if (secrets.length === 0) {
        // Never sent unsigned. Tried again on the usual back-off, not failed at once: the secret was
        // taken away by a restart (the start warns), and one given back before the last try sends it.
        failure = `tenant ${delivery.tenant} has no webhook_secret configured`;
      } else {
        const refused = refuseLiteralTarget(delivery.url, config.webhooks.allow_private_targets);
        if (refused) {
          failure = `target refused: ${refused}`;
          permanent = true;
        } else {
          const sentAt = new Date(clock.now());
          // One `v1,<signature>` per secret, space-separated (Standard Webhooks): while a secret is
          // rotated, a receiver verifying with the old one or the new one accepts the delivery.
          const signature = secrets.map((secret) => new Webhook(secret).sign(delivery.id, sentAt, delivery.payload)).join(' ');
          postedAt = performance.now();
          ({ status, retryAfter } = await postWebhook(delivery.url, delivery.payload, {
            headers: {
              'content-type': 'application/json',
              'user-agent': 'kling-gateway-webhooks/0.1',
              'webhook-id': delivery.id,
              'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
              'webhook-signature': signature,
            },
            timeoutMs: config.webhooks.timeout_ms,
            agents: this.agents,
          }));
          if (status === 410) {
            // Standard Webhooks: the receiver no longer wants these webhooks; stop sending them.
            failure = delivery.taskId === null ? 'answered 410 Gone: not retried' : GONE_ERROR;
            permanent = true;
          } else if (status < 200 || status >= 300) failure = `answered ${status}`;
        }
      }
    } catch (error) {
      if (error instanceof PrivateTargetError) {
        failure = `target refused: ${error.message}`;
        refusedAddress = error.address;
        permanent = true;
      } else {
        failure = errorText(error);
      }
    }

    const now = clock.now();
    // Each try's line: who it was for and what the receiver said, never the URL (a tenant's may carry its own token).
    const tried = {
      task_id: delivery.taskId,
      delivery_id: delivery.id,
      event_type: delivery.eventType,
      attempt,
      status,
      ...(postedAt === undefined ? {} : { duration_ms: Math.round(performance.now() - postedAt) }),
    };
    if (failure === undefined) {
      metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: 'delivered' });
      logger.info(tried, 'webhook delivered');
      this.record(delivery, await tasks.recordDelivery(delivery.id, owner, { delivered: true, attempts: attempt, lastStatus: status, at: now }));
      this.settled(delivery);
      return;
    }
    const giveUp = permanent || attempt >= config.webhooks.max_attempts;
    const outcome = status === 410 ? 'gone' : giveUp ? 'failed' : 'retrying';
    metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome });
    logger.warn(
      { ...tried, reason: failure, ...(refusedAddress ? { address: refusedAddress } : {}) },
      giveUp ? 'webhook delivery abandoned' : 'webhook delivery failed; will retry',
    );
    const recorded = await tasks.recordDelivery(delivery.id, owner, {
      delivered: false,
      attempts: attempt,
      lastStatus: status,
      error: failure.slice(0, 500),
      giveUp,
      retryAt: nextTryAt(attempt, now, status, retryAfter),
    });
    this.record(delivery, recorded);
    if (giveUp) this.settled(delivery);
    // The task's other events waiting for a retry (or not yet tried) end now, not at their next try.
    if (recorded && outcome === 'gone' && delivery.taskId !== null) {
      const gone = { id: delivery.id, eventType: delivery.eventType };
      const ended = await tasks.abandonPendingDeliveries(delivery.taskId, delivery.url, now, notSentAfterGone(gone));
      for (const eventType of ended) metrics.webhookDeliveries.inc({ event_type: eventType, outcome: 'not_sent' });
    }
  }

  /**
   * A task's event that will not be tried again: the task's next event, held back until then (the
   * store hands out a task's events one at a time, in order), is claimed as soon as this one's
   * try is over, not at the worker loop's next pass. Only a `video.processing` has one often.
   */
  private settled(delivery: DeliveryRecord): void {
    if (delivery.eventType === 'video.processing') this.more = true;
  }

  /** A try that outlived its lease: another replica or worker has the delivery now, and its record stands. */
  private record(delivery: DeliveryRecord, recorded: boolean): void {
    if (!recorded) this.engine.logger.warn({ task_id: delivery.taskId, delivery_id: delivery.id }, 'webhook delivery try outlived its lease; its outcome is not recorded');
  }
}
