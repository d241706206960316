/**
 * Freepik webhook signatures (seed 001, "Webhooks" → "Webhook security"): headers `webhook-id`,
 * `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated `<version>,<base64>`
 * entries); the signature is base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed with the
 * secret's UTF-8 bytes as given (not base64-decoded, unlike Standard Webhooks' `whsec_` keys).
 * Replay protection by `webhook-id` is the core's job.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { InboundWebhook, WebhookVerification } from '../../core/provider.js';
import { readFreepikTask } from './freepik-schemas.js';
import { toFreepikStatusReport } from './freepik-status.js';

/** How far a webhook's timestamp may be from now, either way. */
export const FREEPIK_WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000;

function digest(secret: string, webhookId: string, timestamp: string, rawBody: Buffer): Buffer {
  // The body is signed as received, byte for byte; decoding and re-encoding it could change it.
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${webhookId}.${timestamp}.`, 'utf8')
    .update(rawBody)
    .digest();
}

/** The `webhook-signature` entry Freepik would send for this message: `v1,<base64>`. */
export function signFreepikWebhook(secret: string, webhookId: string, timestamp: string, rawBody: Buffer | string): string {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  return `v1,${digest(secret, webhookId, timestamp, body).toString('base64')}`;
}

/**
 * Checks a Freepik webhook: headers present, timestamp within five minutes of `nowMs`, and a
 * signature entry that matches. Every entry is compared whatever its version label: the seed
 * uses the label only to tell rotated secrets apart, and its own examples ignore it.
 */
export function verifyFreepikWebhook(webhook: InboundWebhook, secret: string, nowMs: number): WebhookVerification {
  const webhookId = webhook.headers['webhook-id']?.trim();
  const timestamp = webhook.headers['webhook-timestamp']?.trim();
  const signatures = webhook.headers['webhook-signature']?.trim();
  if (!webhookId || !timestamp || !signatures) {
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' };
  }
  if (!secret) return { ok: false, reason: 'no Freepik webhook secret is configured' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp is not Unix seconds' };
  const skewMs = nowMs - Number(timestamp) * 1000;
  if (skewMs > FREEPIK_WEBHOOK_TOLERANCE_MS) return { ok: false, reason: 'webhook-timestamp is too old' };
  if (-skewMs > FREEPIK_WEBHOOK_TOLERANCE_MS) return { ok: false, reason: 'webhook-timestamp is in the future' };

  const expected = digest(secret, webhookId, timestamp, webhook.rawBody);
  const matches = signatures.split(/\s+/).some((entry) => {
    const comma = entry.indexOf(',');
    if (comma < 0) return false;
    const candidate = Buffer.from(entry.slice(comma + 1), 'base64');
    return candidate.length === expected.length && timingSafeEqual(candidate, expected);
  });
  if (!matches) return { ok: false, reason: 'no webhook-signature entry matches' };

  const task = readFreepikTask(webhook.rawBody.toString('utf8'));
  if (!task) return { ok: false, reason: 'webhook body is not a Freepik task' };
  if (!task.task_id) return { ok: false, reason: 'webhook body names no task_id' };
  return {
    ok: true,
    webhookId,
    providerTaskId: task.task_id,
    ...(task.status ? { report: toFreepikStatusReport(task) } : {}),
  };
}
