/**
 * Freepik task status → canonical status (SPEC §2). Upstream words: `task.status` enum in seed
 * 001 ("Kling 3 Omni - Get task status"): `CREATED`, `IN_PROGRESS`, `COMPLETED`, `FAILED`.
 */
import type { StatusReport, UpstreamTaskStatus } from '../../core/upstream/provider.js';
import type { MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import { looksLikeContentPolicy } from './freepik-errors.js';
import { generatedUrls, type FreepikTask } from './freepik-schemas.js';

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
