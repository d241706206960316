/**
 * Delivers task events to clients' `webhook_url` (SPEC §4) as Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature` signed with the tenant's `whsec_` secret. Deliveries
 * are rows in the store (written in the same transaction as the status change), so they
 * survive restarts; each is retried with exponential back-off and its attempts are recorded.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import type { DeliveryRow } from '../store/task-store.js';

/** Address ranges a webhook may not reach unless configuration allows it. */
const PRIVATE_RANGES = (() => {
  const list = new BlockList();
  const v4: [string, number][] = [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ];
  for (const [network, prefix] of v4) list.addSubnet(network, prefix, 'ipv4');
  const v6: [string, number][] = [
    // Unspecified, loopback and the deprecated IPv4-compatible range (::a.b.c.d).
    ['::', 96],
    // NAT64: reaches IPv4 addresses, private ones included.
    ['64:ff9b::', 96],
    ['fec0::', 10],
    ['fc00::', 7],
    ['fe80::', 10],
    ['ff00::', 8],
  ];
  for (const [network, prefix] of v6) list.addSubnet(network, prefix, 'ipv6');
  return list;
})();

/** True for loopback, private, link-local, shared, multicast and reserved addresses. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE_RANGES.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped?.[1]) return PRIVATE_RANGES.check(mapped[1], 'ipv4');
    return PRIVATE_RANGES.check(address, 'ipv6');
  }
  return false;
}

function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

/**
 * Checks a webhook URL that can be judged without DNS (literal IPs, `localhost`). Returns the
 * reason it is refused, or undefined.
 */
export function refuseLiteralTarget(url: string, allowPrivate: boolean): string | undefined {
  if (allowPrivate) return undefined;
  const host = hostOf(url).toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return 'points at localhost';
  if (isIP(host) && isPrivateAddress(host)) return `points at a private, loopback or link-local address (${host})`;
  return undefined;
}

/** Resolves the host and refuses private targets (also catches DNS names that resolve inward). */
export async function refuseResolvedTarget(url: string, allowPrivate: boolean): Promise<string | undefined> {
  const literal = refuseLiteralTarget(url, allowPrivate);
  if (literal || allowPrivate) return literal;
  const host = hostOf(url);
  if (isIP(host)) return undefined;
  const addresses = await lookup(host, { all: true });
  const inward = addresses.find((entry) => isPrivateAddress(entry.address));
  return inward ? `resolves to a private address (${inward.address})` : undefined;
}

/** Back-off before retry `attempt` (1-based): 5 s, 10 s, 20 s … capped at one hour. */
export function deliveryBackoffMs(attempt: number): number {
  return Math.min(3600_000, 5_000 * 2 ** Math.max(0, attempt - 1));
}

export class OutboundWebhooks {
  private readonly runner = new CoalescingRunner(() => this.deliverDue());

  constructor(private readonly engine: Engine) {}

  /** Delivers every due delivery once. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  private async deliverDue(): Promise<void> {
    const { store, clock, owner, config } = this.engine;
    const due = await store.claimDueDeliveries(clock.now(), owner, config.webhooks.timeout_ms + 5_000, 50);
    await Promise.all(due.map((delivery) => this.deliver(delivery)));
  }

  private async deliver(delivery: DeliveryRow): Promise<void> {
    const { store, clock, config, metrics, logger } = this.engine;
    const secret = config.tenants[delivery.tenant]?.webhook_secret;
    const attempt = delivery.attempts + 1;
    let status: number | null = null;
    let failure: string | undefined;
    let permanent = false;
    try {
      if (!secret) {
        failure = `tenant ${delivery.tenant} has no webhook_secret configured`;
        permanent = true;
      } else {
        const refused = await refuseResolvedTarget(delivery.url, config.webhooks.allow_private_targets);
        if (refused) {
          failure = `target refused: ${refused}`;
          permanent = true;
        } else {
          const sentAt = new Date(clock.now());
          const signature = new Webhook(secret).sign(delivery.id, sentAt, delivery.payload_json);
          const response = await fetch(delivery.url, {
            method: 'POST',
            redirect: 'manual',
            headers: {
              'content-type': 'application/json',
              'user-agent': 'kling-gateway-webhooks/0.1',
              'webhook-id': delivery.id,
              'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
              'webhook-signature': signature,
            },
            body: delivery.payload_json,
            signal: AbortSignal.timeout(config.webhooks.timeout_ms),
          });
          status = response.status;
          await response.arrayBuffer().catch(() => undefined);
          if (!response.ok) failure = `answered ${response.status}`;
        }
      }
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }

    const now = clock.now();
    if (!failure) {
      metrics.webhookDeliveries.inc({ event_type: delivery.event_type, outcome: 'delivered' });
      await store.updateDelivery(delivery.id, {
        status: 'delivered',
        attempts: attempt,
        last_status: status,
        last_error: null,
        delivered_at: now,
        lease_owner: null,
        lease_until: null,
      });
      return;
    }
    const giveUp = permanent || attempt >= config.webhooks.max_attempts;
    metrics.webhookDeliveries.inc({ event_type: delivery.event_type, outcome: giveUp ? 'failed' : 'retrying' });
    logger.warn(
      { task_id: delivery.task_id, delivery_id: delivery.id, attempt, status, reason: failure },
      giveUp ? 'webhook delivery abandoned' : 'webhook delivery failed; will retry',
    );
    await store.updateDelivery(delivery.id, {
      status: giveUp ? 'failed' : 'pending',
      attempts: attempt,
      last_status: status,
      last_error: failure.slice(0, 500),
      next_attempt_at: now + deliveryBackoffMs(attempt),
      lease_owner: null,
      lease_until: null,
    });
  }
}
