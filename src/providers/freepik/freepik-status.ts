/**
 * How the gateway learns where a Freepik task is: its status answer or a signed webhook, both
 * mapped to the canonical status (SPEC §2). Upstream words: `task.status` enum in seed 001
 * ("Kling 3 Omni - Get task status"): `CREATED`, `IN_PROGRESS`, `COMPLETED`, `FAILED`.
 *
 * Webhook signatures (seed 001, "Webhooks" → "Webhook security"): headers `webhook-id`,
 * `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated `<version>,<base64>`
 * entries); the signature is base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed with the
 * secret's UTF-8 bytes as given — what the seed's prose and its Python/JS/Java samples do. Its
 * PHP sample base64-decodes the secret first (as Standard Webhooks does with `whsec_` keys), so
 * a signature made with the decoded secret is accepted too, as is one keyed with the secret's
 * text with its `whsec_` prefix off or on (`keysOf`): every key comes from the one secret.
 * Replay protection by `webhook-id` is the core's job.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { looksLikeContentPolicy } from '../../core/upstream/content-policy.js';
import type { InboundWebhook, StatusReport, UpstreamTaskStatus, WebhookVerification } from '../../core/upstream/provider.js';
import type { MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import { generatedUrls, readFreepikTask, type FreepikTask } from './freepik-schemas.js';

const STATUS_WORDS: ReadonlyMap<string, UpstreamTaskStatus> = new Map([
  ['CREATED', 'queued'],
  ['IN_PROGRESS', 'processing'],
  ['COMPLETED', 'succeeded'],
  ['FAILED', 'failed'],
]);

/**
 * The canonical status of a Freepik status word. Anything else is `unknown` (never success):
 * the task stays open, the raw word is kept, and its deadline still ends it.
 */
export function mapFreepikStatus(word: string | null | undefined): UpstreamTaskStatus {
  // Exact words only: `COMPLETED_WITH_ERRORS` or `completed` must not read as `COMPLETED`.
  return (word && STATUS_WORDS.get(word)) || 'unknown';
}

/** Fields that are not a failure reason, so the content-policy heuristic never reads them. */
const NOT_A_REASON = new Set(['task_id', 'status', 'generated', 'request_id', 'webhook_url']);

/**
 * Every string a failed task carries besides its id, status and results. Freepik documents no
 * failure reason field, so whatever is there (`error`, `message`, `reason`, nested objects)
 * is collected for the message and the content-policy heuristic.
 */
function failureText(task: FreepikTask): string {
  const parts: string[] = [];
  const visit = (value: unknown, depth: number) => {
    if (depth > 3 || parts.length >= 10) return;
    if (typeof value === 'string' && value.trim()) parts.push(value.trim());
    else if (Array.isArray(value)) value.forEach((item) => visit(item, depth + 1));
    else if (value && typeof value === 'object') Object.values(value).forEach((item) => visit(item, depth + 1));
  };
  for (const [key, value] of Object.entries(task)) {
    if (!NOT_A_REASON.has(key)) visit(value, 0);
  }
  return parts.join('; ').slice(0, 500);
}

function failureOf(task: FreepikTask): MappedUpstreamError {
  const reason = failureText(task);
  if (reason && looksLikeContentPolicy(reason)) {
    return { code: 'content_policy', message: `Freepik refused the content: ${reason}`, providerCode: 'content_policy' };
  }
  return {
    code: 'provider_error',
    message: reason ? `Freepik reported the task FAILED: ${reason}` : 'Freepik reported the task FAILED',
    providerCode: 'FAILED',
  };
}

/** A canonical status report from a Freepik task (create answer, status answer or webhook). */
export function toFreepikStatusReport(task: FreepikTask): StatusReport {
  const providerStatus = task.status ?? '';
  const status = mapFreepikStatus(task.status);
  const outputs = generatedUrls(task).map((url) => ({ type: 'video' as const, url, duration: null }));
  if (status === 'failed') return { status, providerStatus, outputs, error: failureOf(task) };
  // COMPLETED without `generated` is reported as is: the gateway confirms it once, then fails it.
  return { status, providerStatus, outputs };
}

// Signed webhooks (see the header): the same task object, pushed by Freepik.

/** How far a webhook's timestamp may be from now, either way. */
export const FREEPIK_WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000;

/** The HMAC keys of the secrets seen lately (the configured ones), so a webhook works none out again. */
const keysBySecret = new Map<string, readonly Buffer[]>();
const KEYS_KEPT = 64;

/**
 * The HMAC keys one secret may stand for, the documented one first: its UTF-8 bytes; the UTF-8
 * bytes of the same secret with its `whsec_` prefix taken off, or put on (an operator pastes it
 * either way, and the seed's samples key with the text as given); then its base64 decoding,
 * whatever its length, when it is base64 — what Standard Webhooks (and the seed's PHP sample)
 * key with, `whsec_` or not. Every key comes from the configured secret alone.
 */
function keysOf(secret: string): readonly Buffer[] {
  const known = keysBySecret.get(secret);
  if (known) return known;
  const prefixed = secret.startsWith('whsec_');
  const encoded = prefixed ? secret.slice('whsec_'.length) : secret;
  const keys = [Buffer.from(secret, 'utf8')];
  if (encoded) keys.push(Buffer.from(prefixed ? encoded : `whsec_${secret}`, 'utf8'));
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) && encoded.length % 4 === 0) {
    const decoded = Buffer.from(encoded, 'base64');
    if (decoded.length > 0) keys.push(decoded);
  }
  if (keysBySecret.size >= KEYS_KEPT) keysBySecret.clear();
  keysBySecret.set(secret, keys);
  return keys;
}

function digest(key: string | Buffer, webhookId: string, timestamp: string, rawBody: Buffer): Buffer {
  // The body is signed as received, byte for byte; decoding and re-encoding it could change it.
  return createHmac('sha256', typeof key === 'string' ? Buffer.from(key, 'utf8') : key)
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
 * `webhook-timestamp` as epoch milliseconds: Unix seconds as documented by Standard Webhooks;
 * a 13-digit value is read as milliseconds, since the seed does not name the unit.
 */
function timestampMs(timestamp: string): number | undefined {
  if (/^\d{1,12}$/.test(timestamp)) return Number(timestamp) * 1000;
  if (/^\d{13}$/.test(timestamp)) return Number(timestamp);
  return undefined;
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
  const sentAtMs = timestampMs(timestamp);
  if (sentAtMs === undefined) return { ok: false, reason: 'webhook-timestamp is not a Unix time' };
  // In whole seconds, as Standard Webhooks counts: a timestamp five minutes off is taken at any
  // point of the current second, not only at its start.
  const skewS = Math.floor(nowMs / 1000) - Math.floor(sentAtMs / 1000);
  if (skewS * 1000 > FREEPIK_WEBHOOK_TOLERANCE_MS) return { ok: false, reason: 'webhook-timestamp is too old' };
  if (-skewS * 1000 > FREEPIK_WEBHOOK_TOLERANCE_MS) return { ok: false, reason: 'webhook-timestamp is in the future' };

  // The signature text is compared as the seed's samples do (`expected_signature ==
  // generated_signature`), not its decoding: node's base64 reader skips stray characters and
  // ignores the unused bits of the last one, so other text would decode to the same bytes.
  // A header sent twice reaches us joined with ", ": the comma left at an entry's end is not its text.
  // Cut by a loop, not `/,+$/`: that tried each comma of a long run as where the end begins
  // (quadratic: 85 ms per unkeyed request of 16,000 commas and one other character).
  const candidates = signatures.split(/\s+/).flatMap((entry) => {
    const comma = entry.indexOf(',');
    if (comma < 0) return [];
    let end = entry.length;
    while (end > comma + 1 && entry[end - 1] === ',') end -= 1;
    return [Buffer.from(entry.slice(comma + 1, end), 'utf8')];
  });
  // A key's signature is worked out only when the keys before it matched no entry.
  const matches = keysOf(secret).some((key) => {
    const text = Buffer.from(digest(key, webhookId, timestamp, webhook.rawBody).toString('base64'), 'utf8');
    return candidates.some((candidate) => candidate.length === text.length && timingSafeEqual(candidate, text));
  });
  if (!matches) return { ok: false, reason: 'no webhook-signature entry matches' };

  // Authentic from here on: a body the adapter cannot read is acknowledged, not refused, since
  // the sender retrying it would change nothing (the safety poll still tracks the task).
  const task = readFreepikTask(webhook.rawBody.toString('utf8'));
  if (!task?.task_id) return { ok: true, webhookId };
  return {
    ok: true,
    webhookId,
    providerTaskId: task.task_id,
    ...(task.status ? { report: toFreepikStatusReport(task) } : {}),
  };
}
