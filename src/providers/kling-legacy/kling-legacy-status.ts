/**
 * Legacy Kling-API task → normalized status (SPEC §2): `submitted` → queued, `processing` →
 * processing, `succeed` → succeeded, `failed` → failed with a code read from
 * `task_status_msg`. Any other word is `unknown`, never success.
 * Source: seed 002 "Get task" (`data.task_status`, `task_status_msg`, `task_result`), the
 * official "Callback Protocol" (legacy: `task_status` enum, `final_unit_deduction`).
 */
import type { TaskOutput } from '../../core/model/canonical.js';
import type { StatusReport, UpstreamTaskStatus } from '../../core/upstream/provider.js';
import type { MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import type { KlingLegacyTask } from './kling-legacy-schemas.js';

const STATUS_WORDS: Readonly<Record<string, UpstreamTaskStatus>> = {
  submitted: 'queued',
  processing: 'processing',
  succeed: 'succeeded',
  failed: 'failed',
};

/**
 * Failure messages that mean the content was refused. Kling reports these as "risk control"
 * failures (e.g. "Failure to pass the risk control system"), in English or Chinese (风控,
 * 敏感, 违规); aggregators add their own words for the same thing.
 */
const CONTENT_POLICY_MESSAGE =
  /risk[\s_-]*control|content[\s_-]*(security|safety|policy|moderation)|sensitive|inappropriate|violat|prohibited|nsfw|policy|\b130[01]\b|风控|敏感|违规|审核/i;

/** Failure messages that blame the input (image too small, unreadable video...). */
const INVALID_INPUT_MESSAGE =
  /invalid|unsupported|not supported|too (small|large|big|long|short)|resolution|aspect ratio|format|no face|face not|cannot (be )?(download|read|decode)|\b120[0-3]\b/i;

/** Canonical error for a failed task, from its `task_status_msg`. */
export function klingLegacyFailure(message: string | null | undefined): MappedUpstreamError {
  const text = message?.trim() || 'the task failed without a reason';
  if (CONTENT_POLICY_MESSAGE.test(text)) return { code: 'content_policy', message: text, providerCode: 'failed' };
  if (INVALID_INPUT_MESSAGE.test(text)) return { code: 'invalid_request', message: text, providerCode: 'failed' };
  return { code: 'provider_error', message: text, providerCode: 'failed' };
}

function durationSeconds(value: string | number | null | undefined): number | null {
  if (value === null || value === undefined || value === '') return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds : null;
}

/** Videos and images of the task result, in upstream order; entries without a URL are skipped. */
export function klingLegacyOutputs(task: KlingLegacyTask): TaskOutput[] {
  const outputs: TaskOutput[] = [];
  for (const video of task.task_result?.videos ?? []) {
    if (video.url) outputs.push({ type: 'video', url: video.url, duration: durationSeconds(video.duration) });
  }
  for (const image of task.task_result?.images ?? []) {
    if (image.url) outputs.push({ type: 'image', url: image.url, duration: null });
  }
  return outputs;
}

/** `final_unit_deduction` as a number, when the upstream reported a usable one. */
export function klingLegacyReportedCredits(task: KlingLegacyTask): number | undefined {
  const raw = task.final_unit_deduction;
  if (raw === null || raw === undefined || raw === '') return undefined;
  const units = Number(raw);
  return Number.isFinite(units) && units >= 0 ? units : undefined;
}

/** The normalized status of a task object (query `data`, create `data`, or callback body). */
export function mapKlingLegacyStatus(task: KlingLegacyTask): StatusReport {
  const providerStatus = task.task_status ?? '';
  const status = STATUS_WORDS[providerStatus.trim().toLowerCase()] ?? 'unknown';
  const report: StatusReport = { status, providerStatus, outputs: klingLegacyOutputs(task) };
  if (status === 'failed') report.error = klingLegacyFailure(task.task_status_msg);
  const credits = klingLegacyReportedCredits(task);
  if (credits !== undefined) report.reportedCredits = credits;
  return report;
}
