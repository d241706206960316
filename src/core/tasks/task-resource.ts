/**
 * Stored task rows as the public `Task` resource (SPEC §1).
 */
import type { Model, Operation, Quality, Task, TaskAttempt, TaskCost, TaskError, TaskOutput, TaskStatus } from '../model/canonical.js';
import type { AttemptRow, TaskRow } from '../../store/task-store.js';

const iso = (ms: number) => new Date(ms).toISOString();

function parse<T>(json: string | null, fallback: T): T {
  if (json === null) return fallback;
  try {
    return JSON.parse(json) as T;
  } catch {
    return fallback;
  }
}

export function toAttempt(row: AttemptRow): TaskAttempt {
  return {
    provider: row.provider,
    outcome: row.outcome as TaskAttempt['outcome'],
    error_code: row.error_code,
    provider_code: row.provider_code,
    http_status: row.http_status,
    latency_ms: row.latency_ms,
    at: iso(row.at),
    message: row.message,
  };
}

export function toTask(row: TaskRow, attempts: readonly AttemptRow[]): Task {
  return {
    id: row.id,
    object: 'video',
    status: row.status as TaskStatus,
    model: row.model as Model,
    quality: row.quality as Quality,
    operation: row.operation as Operation,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    completed_at: row.completed_at === null ? null : iso(row.completed_at),
    provider: row.provider,
    provider_task_id: row.provider_task_id,
    provider_status: row.provider_status,
    outputs: parse<TaskOutput[]>(row.outputs_json, []),
    error: parse<TaskError | null>(row.error_json, null),
    cost: parse<TaskCost>(row.cost_json, { credits: null, estimated: true, currency_amount: null, currency: null }),
    attempts: attempts.map(toAttempt),
    warnings: parse<string[]>(row.warnings_json, []),
    metadata: parse<Record<string, string>>(row.metadata_json, {}),
    request: parse<Record<string, unknown>>(row.request_json, {}),
  };
}
