/**
 * Task records as the public `Task` resource (SPEC §1).
 */
import type { Task, TaskAttempt } from '../model/canonical.js';
import type { AttemptRecord, TaskRecord } from './task-records.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function toAttempt(attempt: AttemptRecord): TaskAttempt {
  return {
    provider: attempt.provider,
    outcome: attempt.outcome,
    error_code: attempt.errorCode,
    provider_code: attempt.providerCode,
    http_status: attempt.httpStatus,
    latency_ms: attempt.latencyMs,
    at: iso(attempt.at),
    message: attempt.message,
  };
}

export function toTask(task: TaskRecord, attempts: readonly AttemptRecord[]): Task {
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
    outputs: task.outputs,
    error: task.error,
    cost: task.cost,
    attempts: attempts.map(toAttempt),
    warnings: task.warnings,
    metadata: task.metadata,
    request: task.request as unknown as Record<string, unknown>,
  };
}
