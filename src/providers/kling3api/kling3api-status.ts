/**
 * `data` of `GET /api/status` → normalized StatusReport.
 * Sources: shared/seeds/004_1ace3cef13878ba3.txt, "/api/status → Responses" (IN_PROGRESS,
 * SUCCESS, `response[]`, `error_message`, `consumed_credits`), and SPEC §2 (COMPLETED, FAILED,
 * EXPIRED, and "an unknown upstream word never becomes success").
 */
import type { UpstreamOutput } from '../../core/model/canonical.js';
import { looksLikeContentPolicy } from '../../core/upstream/content-policy.js';
import type { StatusReport, UpstreamTaskStatus } from '../../core/upstream/provider.js';
import type { Kling3apiStatusData } from './kling3api-schemas.js';

/** The parts of a status (or generate) answer's `data` that the mapping reads. */
export type Kling3apiStatusFields = Pick<Kling3apiStatusData, 'status' | 'response' | 'error_message' | 'consumed_credits'>;

/** SPEC §2, kling3api column. Matching ignores case and surrounding spaces; the raw word is kept. */
const STATUS_WORDS: Readonly<Record<string, UpstreamTaskStatus>> = {
  IN_PROGRESS: 'processing',
  SUCCESS: 'succeeded',
  COMPLETED: 'succeeded',
  FAILED: 'failed',
  EXPIRED: 'failed',
};

/** Video URLs from `response`: the seed's array, or a lone string. */
export function kling3apiVideoUrls(response: unknown): string[] {
  const items = Array.isArray(response) ? response : [response];
  return items.filter((item): item is string => typeof item === 'string' && item.trim() !== '');
}

/** Normalizes one status answer. Pure. */
export function mapKling3apiStatus(data: Kling3apiStatusFields): StatusReport {
  const providerStatus = data.status ?? '';
  const status = STATUS_WORDS[providerStatus.trim().toUpperCase()] ?? 'unknown';
  const credits = data.consumed_credits;
  const report: StatusReport = {
    status,
    providerStatus,
    outputs: [],
    ...(typeof credits === 'number' && Number.isFinite(credits) && credits >= 0 ? { reportedCredits: credits } : {}),
  };

  if (status === 'succeeded') {
    // Success without a URL is reported as is; the gateway fails such a task (nothing to fetch).
    const outputs: UpstreamOutput[] = kling3apiVideoUrls(data.response).map((url) => ({ type: 'video', url, duration: null }));
    return { ...report, outputs };
  }

  if (status === 'failed') {
    const upstreamMessage = data.error_message?.trim() || undefined;
    const providerCode = providerStatus.trim().toUpperCase();
    // The message is the task's error as a caller reads it: it names the provider, then what it said.
    if (providerCode === 'EXPIRED') {
      const message = upstreamMessage ? `kling3api expired the task: ${upstreamMessage}` : 'kling3api expired the task';
      return { ...report, error: { code: 'expired', message, providerCode } };
    }
    const message = upstreamMessage ? `kling3api reported the task ${providerStatus.trim()}: ${upstreamMessage}` : 'kling3api reported the task failed';
    return {
      ...report,
      error: { code: looksLikeContentPolicy(upstreamMessage) ? 'content_policy' : 'provider_error', message, providerCode },
    };
  }

  return report;
}
