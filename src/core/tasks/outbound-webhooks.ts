/**
 * Delivers task events to clients' `webhook_url` (SPEC §4) as Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature` signed with the tenant's `whsec_` secret. Deliveries
 * are rows in the store (written in the same transaction as the status change), so they
 * survive restarts; each is retried with exponential back-off and its attempts are recorded.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import axios, { AxiosError } from 'axios';
import { Webhook } from 'standardwebhooks';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import type { DeliveryRecord } from './task-records.js';

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

/** A webhook target whose name resolved to an address it may not reach. */
export class PrivateTargetError extends Error {
  override readonly name = 'PrivateTargetError';
}

/** The address list shape axios's `lookup` option takes. */
type VettedAddress = { address: string; family: 4 | 6 };
type LookupCallback = (error: Error | null, addresses: VettedAddress[]) => void;

/**
 * A DNS lookup for the delivery connection itself that refuses private addresses. The check and
 * the connection use the same answer, so a name that resolves publicly for a check and inward
 * for the connection (DNS rebinding) cannot slip through. Gives up after `timeoutMs`.
 */
export function vettedLookup(timeoutMs: number) {
  return (hostname: string, _options: object, callback: LookupCallback): void => {
    let settled = false;
    const finish = (error: Error | null, addresses: VettedAddress[]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      callback(error, addresses);
    };
    const timer = setTimeout(() => finish(new Error(`DNS lookup of ${hostname} timed out`), []), timeoutMs);
    dnsLookup(hostname, { all: true }, (error, addresses) => {
      if (error) return finish(error, []);
      const inward = addresses.find((entry) => isPrivateAddress(entry.address));
      if (inward) return finish(new PrivateTargetError(`resolves to a private address (${inward.address})`), []);
      finish(
        null,
        addresses.map((entry: LookupAddress) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 })),
      );
    });
  };
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

  /** Settles once no pass is running; the gateway waits for it before closing the store. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private async deliverDue(): Promise<void> {
    const { tasks, clock, owner, config } = this.engine;
    const due = await tasks.claimDueDeliveries(clock.now(), owner, config.webhooks.timeout_ms + 5_000, 50);
    await Promise.all(due.map((delivery) => this.deliver(delivery)));
  }

  private async deliver(delivery: DeliveryRecord): Promise<void> {
    const { tasks, clock, config, metrics, logger } = this.engine;
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
        const refused = refuseLiteralTarget(delivery.url, config.webhooks.allow_private_targets);
        if (refused) {
          failure = `target refused: ${refused}`;
          permanent = true;
        } else {
          const sentAt = new Date(clock.now());
          const signature = new Webhook(secret).sign(delivery.id, sentAt, delivery.payload);
          const response = await axios.post(delivery.url, delivery.payload, {
            headers: {
              'content-type': 'application/json',
              'user-agent': 'kling-gateway-webhooks/0.1',
              'webhook-id': delivery.id,
              'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
              'webhook-signature': signature,
            },
            timeout: config.webhooks.timeout_ms,
            maxRedirects: 0,
            maxContentLength: 64 * 1024,
            responseType: 'text',
            validateStatus: () => true,
            ...(config.webhooks.allow_private_targets ? {} : { lookup: vettedLookup(config.webhooks.timeout_ms) }),
          });
          status = response.status;
          if (status < 200 || status >= 300) failure = `answered ${status}`;
        }
      }
    } catch (error) {
      const cause = error instanceof AxiosError ? (error.cause ?? error) : error;
      if (cause instanceof PrivateTargetError) {
        failure = `target refused: ${cause.message}`;
        permanent = true;
      } else {
        failure = cause instanceof Error ? cause.message : String(cause);
      }
    }

    const now = clock.now();
    if (!failure) {
      metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: 'delivered' });
      await tasks.recordDelivery(delivery.id, { delivered: true, attempts: attempt, lastStatus: status, at: now });
      return;
    }
    const giveUp = permanent || attempt >= config.webhooks.max_attempts;
    metrics.webhookDeliveries.inc({ event_type: delivery.eventType, outcome: giveUp ? 'failed' : 'retrying' });
    logger.warn(
      { task_id: delivery.taskId, delivery_id: delivery.id, attempt, status, reason: failure },
      giveUp ? 'webhook delivery abandoned' : 'webhook delivery failed; will retry',
    );
    await tasks.recordDelivery(delivery.id, {
      delivered: false,
      attempts: attempt,
      lastStatus: status,
      error: failure.slice(0, 500),
      giveUp,
      retryAt: now + deliveryBackoffMs(attempt),
    });
  }
}
