/**
 * How the gateway learns where a legacy Kling-API task is: the task object of a status answer
 * or of an unsigned callback, mapped to the normalized status (SPEC §2): `submitted` → queued,
 * `processing` → processing, `succeed` → succeeded, `failed` → failed with a code read from
 * `task_status_msg`. Any other word is `unknown`, never success.
 * Source: seed 002 "Get task" (`data.task_status`, `task_status_msg`, `task_result`), the
 * official "Callback Protocol" (legacy: `task_status` enum, `final_unit_deduction`).
 */
import type { UpstreamOutput } from '../../core/model/canonical.js';
import { unwrapDataEnvelope } from '../../core/upstream/answer-envelope.js';
import { looksLikeContentPolicy } from '../../core/upstream/content-policy.js';
import type { StatusReport, UpstreamTaskStatus } from '../../core/upstream/provider.js';
import { statedCharge } from '../../core/upstream/remembered-charge.js';
import type { MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import { KLING_LEGACY_ERROR_CODES } from './kling-legacy-errors.js';
import { KlingLegacyTask } from './kling-legacy-schemas.js';

const STATUS_WORDS: Readonly<Record<string, UpstreamTaskStatus>> = {
  submitted: 'queued',
  processing: 'processing',
  succeed: 'succeeded',
  failed: 'failed',
};

/** Failure messages that blame the input (image too small, unreadable video...). */
const INVALID_INPUT_MESSAGE =
  /invalid|unsupported|not supported|too (small|large|big|long|short)|resolution|aspect ratio|format|no face|face not|cannot (be )?(download|read|decode)/i;

/** The canonical codes of the service codes a message names (`... 1301 ...`), by the official table. */
function codesNamedIn(text: string): Set<string> {
  const named = [...text.matchAll(/\b(\d{4})\b/g)].map((match) => KLING_LEGACY_ERROR_CODES[Number(match[1])]?.code);
  return new Set(named.filter((code) => code !== undefined));
}

/**
 * Canonical error for a failed task, from its `task_status_msg`. Kling reports a refusal of the
 * content as a "risk control" failure ("Failure to pass the risk control system"), in English
 * or Chinese; that wording is the core's one content-policy rule. A message that names a
 * service code of the official table (1300/1301 policy, 1200–1203 invalid) is read by it.
 */
export function klingLegacyFailure(message: string | null | undefined): MappedUpstreamError {
  const text = message?.trim() ?? '';
  // The message is the task's error as a caller reads it: it names the provider, then what it said.
  const said = text ? `kling-legacy reported the task failed: ${text}` : 'kling-legacy reported the task failed without a reason';
  const named = codesNamedIn(text);
  if (looksLikeContentPolicy(text) || named.has('content_policy')) return { code: 'content_policy', message: said, providerCode: 'failed' };
  if (INVALID_INPUT_MESSAGE.test(text) || named.has('invalid_request')) return { code: 'invalid_request', message: said, providerCode: 'failed' };
  return { code: 'provider_error', message: said, providerCode: 'failed' };
}

/**
 * `duration`: seconds as a decimal figure ("Seconds, as a string"; a number from some
 * aggregators), read as a charge is (`statedCharge`). Anything else says no length: a blank is
 * not 0 s (`Number(' ')` is 0), `0x10` is not 16 s, a negative figure is no length; each would
 * be the output's `duration` and count in `/v1/usage`'s `video_seconds`.
 */
function durationSeconds(value: string | number | null | undefined): number | null {
  return statedCharge(value) ?? null;
}

/**
 * Videos and images of the task result, in upstream order; entries without a URL are skipped.
 * A video keeps its `id`: it is what video-extend and lip-sync take as `video_id`.
 */
export function klingLegacyOutputs(task: KlingLegacyTask): UpstreamOutput[] {
  const outputs: UpstreamOutput[] = [];
  for (const video of task.task_result?.videos ?? []) {
    if (!video.url) continue;
    const output: UpstreamOutput = { type: 'video', url: video.url, duration: durationSeconds(video.duration) };
    if (video.id) output.id = video.id;
    outputs.push(output);
  }
  for (const image of task.task_result?.images ?? []) {
    if (image.url) outputs.push({ type: 'image', url: image.url, duration: null });
  }
  return outputs;
}

/** `final_unit_deduction` as a number, when the upstream reported a usable one. */
export function klingLegacyReportedCredits(task: KlingLegacyTask): number | undefined {
  // A blank, or text that is no decimal figure, is not said (`Number(' ')` would be a charge of 0).
  return statedCharge(task.final_unit_deduction);
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

/**
 * The upstream task id a callback is about. The legacy callback body is the task object
 * (`task_id` at the top); some aggregators wrap it in the envelope (`data.task_id`).
 */
export function readKlingLegacyCallbackTaskId(body: unknown): string | undefined {
  const task = unwrapDataEnvelope(body, 'task_id');
  const id = KlingLegacyTask.shape.task_id.safeParse(task?.task_id);
  return id.success && id.data !== '' ? id.data : undefined;
}

/**
 * Whether a callback claims the task ended (`succeed` / `failed`), or says nothing readable
 * (then it is treated as a claim, to be confirmed). Progress callbacks are not worth a fetch.
 */
export function klingLegacyCallbackClaimsFinished(body: unknown): boolean {
  const status = unwrapDataEnvelope(body, 'task_id')?.task_status;
  if (typeof status !== 'string') return true;
  return !['submitted', 'processing'].includes(status.trim().toLowerCase());
}
