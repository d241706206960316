/**
 * Task records as the public `Task` resource (SPEC §1).
 */
import type { Task, TaskAttempt, TaskOutput } from '../model/canonical.js';
import { ContentLinks } from './content-links.js';
import type { AttemptRecord, OutputRecord, TaskRecord } from './task-records.js';

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

/**
 * One output as the caller sees it: `url` is the gateway's signed content link while a copy is
 * stored, the upstream's URL otherwise. Without `links` (no public base URL at hand) the
 * content link is the bare path.
 */
export function toOutput(task: TaskRecord, output: OutputRecord, index: number, links?: ContentLinks): TaskOutput {
  const stored = output.storage === 'stored';
  const link = stored ? (links?.linkFor(task.tenant, task.id, index) ?? { url: ContentLinks.path(task.id, index), expiresAt: null }) : undefined;
  return {
    type: output.type,
    url: link?.url ?? output.upstreamUrl,
    url_expires_at: link ? isoOrNull(link.expiresAt) : isoOrNull(output.upstreamExpiresAt),
    duration: output.duration,
    upstream_url: output.upstreamUrl,
    upstream_url_expires_at: isoOrNull(output.upstreamExpiresAt),
    upstream_url_gone: output.upstreamGone,
    storage: output.storage,
    storage_error: output.storageError,
    sha256: output.sha256,
    bytes: output.bytes,
    content_type: output.contentType,
    stored_at: isoOrNull(output.storedAt),
    expires_at: isoOrNull(output.expiresAt),
  };
}

export function toAttempt(attempt: AttemptRecord): TaskAttempt {
  return {
    provider: attempt.provider,
    account: attempt.account,
    outcome: attempt.outcome,
    error_code: attempt.errorCode,
    provider_code: attempt.providerCode,
    http_status: attempt.httpStatus,
    latency_ms: attempt.latencyMs,
    at: iso(attempt.at),
    message: attempt.message,
  };
}

export function toTask(task: TaskRecord, attempts: readonly AttemptRecord[], links?: ContentLinks): Task {
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
    provider_status: task.providerStatus,
    outputs: task.outputs.map((output, index) => toOutput(task, output, index, links)),
    error: task.error,
    cost: task.cost,
    attempts: attempts.map(toAttempt),
    warnings: task.warnings,
    metadata: task.metadata,
    request: task.request as unknown as Record<string, unknown>,
  };
}
