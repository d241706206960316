/**
 * Verifying the gateway's outbound webhooks (SPEC §4): Standard Webhooks headers
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature`) signed with the tenant's `whsec_`
 * secret (one signature per secret while the tenant rotates it) over the exact body bytes, body
 * `{type, timestamp, data: Task}`. Uses the `standardwebhooks` library, which also refuses
 * timestamps more than 5 minutes off.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { Task } from './gateway-types.js';

/** Event types the gateway sends (a newer gateway may add more; unknown ones are passed on). */
export type GatewayWebhookType = 'video.processing' | 'video.succeeded' | 'video.failed' | 'video.canceled' | (string & {});

/** A verified webhook body. */
export interface GatewayWebhookEvent {
  type: GatewayWebhookType;
  /** When the event happened (ISO 8601). */
  timestamp: string;
  data: Task;
}

/** Headers as node:http, fetch's `Headers` or a plain object give them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export class GatewayWebhookError extends Error {
  override readonly name = 'GatewayWebhookError';
}

function headerRecord(headers: WebhookHeaders): Record<string, string> {
  const record: Record<string, string> = {};
  if (typeof (headers as Headers).forEach === 'function' && typeof (headers as Headers).get === 'function') {
    (headers as Headers).forEach((value, name) => {
      record[name.toLowerCase()] = value;
    });
    return record;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) record[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return record;
}

/**
 * Verifies a webhook the gateway sent and returns its event. `body` must be the raw bytes or text
 * as received (a re-serialized JSON object no longer matches the signature). `secret` is the
 * tenant's `whsec_` secret, or a list of them while it is rotated (`[next, current]`): the webhook
 * is accepted when any one of them verifies it. The gateway signs with every secret it holds (one
 * `v1,` signature each in `webhook-signature`), so either side may switch first. Throws
 * `GatewayWebhookError` when the signature, the timestamp or the body is not right.
 */
export function verifyGatewayWebhook(body: string | Uint8Array, headers: WebhookHeaders, secret: string | readonly string[]): GatewayWebhookEvent {
  const payload = typeof body === 'string' ? body : new TextDecoder().decode(body);
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) throw new GatewayWebhookError('webhook not verified: no secret to verify it with');
  const record = headerRecord(headers);
  let event: unknown;
  let refusal: string | undefined;
  for (const candidate of secrets) {
    try {
      event = new Webhook(candidate).verify(payload, record);
      refusal = undefined;
      break;
    } catch (error) {
      // The first secret's reason: a stale timestamp is refused alike by every one.
      refusal ??= error instanceof WebhookVerificationError || error instanceof Error ? error.message : String(error);
    }
  }
  if (refusal !== undefined) throw new GatewayWebhookError(`webhook not verified: ${refusal}`);
  const candidate = event as Partial<GatewayWebhookEvent> | null;
  if (!candidate || typeof candidate.type !== 'string' || typeof candidate.timestamp !== 'string' || !candidate.data?.id) {
    throw new GatewayWebhookError('webhook verified, but its body is not {type, timestamp, data: Task}');
  }
  return candidate as GatewayWebhookEvent;
}
