/**
 * Task records as the public `Task` resource (SPEC §1).
 */
import type { Task, TaskAttempt, TaskOutput, WebhookDelivery } from '../model/canonical.js';
import { NO_SECRETS, type SecretScrubber } from '../../observability/secret-scrubber.js';
import { ContentLinks } from './content-links.js';
import { chargesAtRisk } from './spend-ledger.js';
import type { AttemptRecord, DeliveryState, OutputRecord, TaskRecord } from './task-records.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** Longest upstream-derived message a tenant sees; the full text stays in the logs (scrubbed). */
export const MAX_MESSAGE_CHARS = 500;
/** Longest upstream status word a tenant sees. */
export const MAX_STATUS_CHARS = 64;

/**
 * Text that came (in part) from an upstream, as a tenant may see it: scrubbed of every
 * configured secret in every encoding, then bounded.
 */
export function tenantText(text: string, secrets: SecretScrubber, max = MAX_MESSAGE_CHARS): string {
  const clean = secrets.scrub(text);
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}
const tenantTextOrNull = (text: string | null, secrets: SecretScrubber, max = MAX_MESSAGE_CHARS) =>
  text === null ? null : tenantText(text, secrets, max);
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

/**
 * Until when a content link works: its signature's expiry, or the end of the copy's retention
 * when that comes first (the copy is deleted then, and the link answers 410).
 */
function untilDeleted(linkExpiresAt: number | null, retentionEndsAt: number | null): number | null {
  if (retentionEndsAt === null) return linkExpiresAt;
  return linkExpiresAt === null ? retentionEndsAt : Math.min(linkExpiresAt, retentionEndsAt);
}

/**
 * One output as the caller sees it: `url` is the gateway's signed content link while a copy is
 * stored, the upstream's URL otherwise. Without `links` (no public base URL at hand) the
 * content link is the bare path.
 */
export function toOutput(task: TaskRecord, output: OutputRecord, index: number, links?: ContentLinks, secrets: SecretScrubber = NO_SECRETS): TaskOutput {
  const stored = output.storage === 'stored';
  const link = stored ? (links?.linkFor(task.tenant, task.id, index) ?? { url: ContentLinks.path(task.id, index), expiresAt: null }) : undefined;
  return {
    type: output.type,
    url: link?.url ?? output.upstreamUrl,
    url_expires_at: link ? isoOrNull(untilDeleted(link.expiresAt, output.expiresAt)) : isoOrNull(output.upstreamExpiresAt),
    duration: output.duration,
    upstream_url: output.upstreamUrl,
    upstream_id: output.upstreamId,
    upstream_url_expires_at: isoOrNull(output.upstreamExpiresAt),
    upstream_url_gone: output.upstreamGone,
    storage: output.storage,
    storage_error: tenantTextOrNull(output.storageError, secrets),
    sha256: output.sha256,
    bytes: output.bytes,
    content_type: output.contentType,
    stored_at: isoOrNull(output.storedAt),
    expires_at: isoOrNull(output.expiresAt),
  };
}

export function toAttempt(attempt: AttemptRecord, secrets: SecretScrubber = NO_SECRETS): TaskAttempt {
  return {
    provider: attempt.provider,
    account: attempt.account,
    outcome: attempt.outcome,
    error_code: attempt.errorCode,
    provider_code: attempt.providerCode,
    http_status: attempt.httpStatus,
    latency_ms: attempt.latencyMs,
    at: iso(attempt.at),
    message: tenantTextOrNull(attempt.message, secrets),
    recovered_by: attempt.recoveredBy,
  };
}

/** The task's cost, with what other providers may also have billed for it when there is any. */
function costWithRisk(task: TaskRecord, attempts: readonly AttemptRecord[]): Task['cost'] {
  const atRisk = chargesAtRisk(task, attempts);
  return atRisk.length > 0 ? { ...task.cost, at_risk: atRisk } : task.cost;
}

/**
 * `secrets`: the gateway's configured secrets; every text an upstream had a hand in (messages,
 * status words, copy errors) is scrubbed of them and bounded.
 */
export function toTask(task: TaskRecord, attempts: readonly AttemptRecord[], links?: ContentLinks, secrets: SecretScrubber = NO_SECRETS): Task {
  return {
    id: task.id,
    object: 'video',
    status: task.status,
    model: task.model,
    quality: task.quality,
    operation: task.operation,
    created_at: iso(task.createdAt),
    updated_at: iso(task.updatedAt),
    completed_at: task.completedAt === null ? null : iso(task.completedAt),
    provider: task.provider,
    provider_task_id: task.providerTaskId,
    provider_status: tenantTextOrNull(task.providerStatus, secrets, MAX_STATUS_CHARS),
    outputs: task.outputs.map((output, index) => toOutput(task, output, index, links, secrets)),
    error: task.error ? { ...task.error, message: tenantText(task.error.message, secrets) } : null,
    cost: costWithRisk(task, attempts),
    attempts: attempts.map((attempt) => toAttempt(attempt, secrets)),
    warnings: task.warnings,
    metadata: task.metadata,
    request: task.request as unknown as Record<string, unknown>,
  };
}

/** One delivery of a task's events as its tenant reads it; the error text is scrubbed and bounded like upstream text. */
export function toWebhookDelivery(delivery: DeliveryState, secrets: SecretScrubber = NO_SECRETS): WebhookDelivery {
  return {
    id: delivery.id,
    type: delivery.eventType,
    url: delivery.url,
    status: delivery.status,
    attempts: delivery.attempts,
    last_status: delivery.lastStatus,
    last_error: tenantTextOrNull(delivery.lastError, secrets),
    created_at: iso(delivery.createdAt),
    next_attempt_at: isoOrNull(delivery.nextAttemptAt),
    delivered_at: isoOrNull(delivery.deliveredAt),
  };
}
