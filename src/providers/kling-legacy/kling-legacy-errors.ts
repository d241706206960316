/**
 * Legacy Kling-API error answers → canonical errors. The service codes and the HTTP status
 * each one comes with are the official table (Kling AI API, "General Information" → "Error
 * Code"); aggregators pass the envelope `{code, message, request_id}` through, sometimes
 * with HTTP 200.
 */
import type { ErrorCode } from '../../core/model/canonical.js';
import type { ErrorInEnvelope } from '../../core/upstream/answer-envelope.js';
import { looksLikeContentPolicy, NOT_CONTENT_STATUSES } from '../../core/upstream/content-policy.js';
import { errorPageText, readJsonBody } from '../../core/upstream/upstream-body.js';
import { errorCodeForHttpStatus, type MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import { KlingLegacyErrorBody } from './kling-legacy-schemas.js';

/** One row of the official error table. */
export interface KlingLegacyErrorRow {
  /** HTTP status the official API answers with. */
  httpStatus: number;
  code: ErrorCode;
  /** The official explanation, for messages. */
  meaning: string;
}

/**
 * The official service codes. Account codes 1100–1102 come with HTTP 429 upstream but are a
 * billing problem, not a rate limit: they are `insufficient_credits` so that the router fails
 * over for the right reason.
 */
export const KLING_LEGACY_ERROR_CODES: Readonly<Record<number, KlingLegacyErrorRow>> = {
  1000: { httpStatus: 401, code: 'provider_error', meaning: 'Authentication failed' },
  1001: { httpStatus: 401, code: 'provider_error', meaning: 'Authorization is empty' },
  1002: { httpStatus: 401, code: 'provider_error', meaning: 'Authorization is invalid' },
  1003: { httpStatus: 401, code: 'provider_error', meaning: 'Authorization is not yet valid' },
  1004: { httpStatus: 401, code: 'provider_error', meaning: 'Authorization has expired' },
  1100: { httpStatus: 429, code: 'insufficient_credits', meaning: 'Account exception' },
  1101: { httpStatus: 429, code: 'insufficient_credits', meaning: 'Account in arrears (postpaid)' },
  1102: { httpStatus: 429, code: 'insufficient_credits', meaning: 'Resource pack exhausted or expired (prepaid)' },
  1103: { httpStatus: 403, code: 'provider_error', meaning: 'No access to the requested resource (API or model)' },
  1200: { httpStatus: 400, code: 'invalid_request', meaning: 'Invalid request parameters' },
  1201: { httpStatus: 400, code: 'invalid_request', meaning: 'Invalid parameters (key or value)' },
  1202: { httpStatus: 404, code: 'invalid_request', meaning: 'Invalid request method' },
  1203: { httpStatus: 404, code: 'invalid_request', meaning: 'Requested resource does not exist' },
  1300: { httpStatus: 400, code: 'content_policy', meaning: 'Blocked by platform policy' },
  1301: { httpStatus: 400, code: 'content_policy', meaning: 'Content security policy triggered' },
  1302: { httpStatus: 429, code: 'provider_error', meaning: 'Too many requests (rate limit)' },
  1303: { httpStatus: 429, code: 'provider_error', meaning: 'Concurrency or QPS over the resource pack limit' },
  1304: { httpStatus: 429, code: 'provider_error', meaning: 'IP whitelist policy triggered' },
  5000: { httpStatus: 500, code: 'provider_error', meaning: 'Server internal error' },
  5001: { httpStatus: 503, code: 'provider_error', meaning: 'Service temporarily unavailable' },
  5002: { httpStatus: 504, code: 'provider_error', meaning: 'Server internal timeout' },
};

/** The code the upstream reports when a task id is unknown (official 1203, HTTP 404). */
export const KLING_LEGACY_NOT_FOUND_CODE = 1203;

/**
 * A code outside the table, by its family (the first two digits), so that a new code in a
 * known family still lands right; anything else is a provider error with HTTP 500.
 */
function rowForUnknownCode(code: number): KlingLegacyErrorRow {
  if (code >= 1000 && code < 1100) return { httpStatus: 401, code: 'provider_error', meaning: 'Authentication failed' };
  if (code >= 1100 && code < 1103) return { httpStatus: 429, code: 'insufficient_credits', meaning: 'Account exception' };
  if (code >= 1103 && code < 1200) return { httpStatus: 403, code: 'provider_error', meaning: 'Account exception' };
  if (code >= 1200 && code < 1300) return { httpStatus: 400, code: 'invalid_request', meaning: 'Invalid request parameters' };
  if (code >= 1300 && code < 1302) return { httpStatus: 400, code: 'content_policy', meaning: 'Policy triggered' };
  if (code >= 1302 && code < 1400) return { httpStatus: 429, code: 'provider_error', meaning: 'Policy triggered' };
  return { httpStatus: 500, code: 'provider_error', meaning: 'Upstream error' };
}

/**
 * Whether a code belongs to the official scheme: in the table, or in one of its families
 * (1000–1399 account, request and policy; 5000–5999 server). Anything else (an HTTP status
 * repeated as the code, -1, a reseller's own number) says nothing the table can read.
 */
export function klingLegacyOfficialCode(code: number): boolean {
  return KLING_LEGACY_ERROR_CODES[code] !== undefined || (code >= 1000 && code < 1400) || (code >= 5000 && code < 6000);
}

/** The table row for a service code (or its family's). */
export function klingLegacyErrorRow(code: number): KlingLegacyErrorRow {
  return KLING_LEGACY_ERROR_CODES[code] ?? rowForUnknownCode(code);
}

/** The envelope's numeric `code`, when the body has one (number or numeric string). */
export function klingLegacyServiceCode(body: unknown): number | undefined {
  const raw = KlingLegacyErrorBody.safeParse(body).data?.code;
  const code = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  return typeof code === 'number' && Number.isInteger(code) ? code : undefined;
}

function messageOf(body: unknown): string | undefined {
  const message = KlingLegacyErrorBody.safeParse(body).data?.message;
  return typeof message === 'string' && message.trim() !== '' ? message : undefined;
}

/** The code and message of an error in the OpenAI form (`{error: {message, code}}`), when the body has one. */
function aggregatorError(body: unknown): { code?: string; message?: string } {
  const error = KlingLegacyErrorBody.safeParse(body).data?.error;
  const code = error?.code === null || error?.code === undefined ? '' : String(error.code).trim();
  const message = error?.message?.trim() ?? '';
  return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
}

/** An aggregator's words for a spent balance (its own quota, not Kling's resource pack). */
const SPENT_BALANCE = /insufficient[\s_-]*(user[\s_-]*)?(quota|credits?|balance|funds)|not enough (credits|quota|balance)|out of (credits|quota)|余额不足|额度不足/i;

/** HTTP statuses under which an aggregator reports a spent balance (account refusals and throttling). */
const BALANCE_STATUSES: ReadonlySet<number> = new Set([401, 402, 403, 429]);

/**
 * A request-class refusal (an `invalid_request` code, or a 4xx without one that is not about the
 * account or throttling) whose wording reads as a refusal of the content is `content_policy`: the
 * core's one rule (resellers do not always pass 1300/1301 through), so it is never failed over.
 */
function withContentWording(code: ErrorCode, text: string | undefined): ErrorCode {
  return code === 'invalid_request' && looksLikeContentPolicy(text) ? 'content_policy' : code;
}

/** Canonical error for a service code, with the upstream's message when it gave one. */
export function mapKlingLegacyServiceCode(code: number, body?: unknown): MappedUpstreamError & { httpStatus: number } {
  const row = klingLegacyErrorRow(code);
  const detail = messageOf(body);
  return {
    code: withContentWording(row.code, detail),
    message: `kling-legacy ${code} ${row.meaning}${detail && detail !== row.meaning ? `: ${detail}` : ''}`,
    providerCode: String(code),
    httpStatus: row.httpStatus,
  };
}

/**
 * Canonical error for a non-2xx answer: by the envelope's service code when it is one of the
 * official scheme (more precise than the status: a 429 may be a rate limit or an empty resource
 * pack), else by the HTTP status, keeping any other non-zero code for the record.
 */
export function mapKlingLegacyHttpError(status: number, body: unknown): MappedUpstreamError {
  const value = readJsonBody(body);
  const task = value !== null && typeof value === 'object' ? namedTask((value as { data?: unknown }).data) : undefined;
  const named = task !== undefined ? { namedTaskId: task } : {};
  const code = klingLegacyServiceCode(body);
  if (code !== undefined && code !== 0 && klingLegacyOfficialCode(code)) {
    const { httpStatus: _httpStatus, ...mapped } = mapKlingLegacyServiceCode(code, body);
    return { ...mapped, ...named };
  }
  const aggregator = aggregatorError(body);
  const ownCode = code !== undefined && code !== 0 ? String(code) : aggregator.code;
  const detail =
    messageOf(body) ?? aggregator.message ?? (typeof body === 'string' && body.trim() !== '' ? errorPageText(body).slice(0, 200) : undefined);
  const policyCandidate = status >= 400 && status < 500 && !NOT_CONTENT_STATUSES.has(status);
  const spent = BALANCE_STATUSES.has(status) && (SPENT_BALANCE.test(aggregator.code ?? '') || SPENT_BALANCE.test(detail ?? ''));
  const byStatus = spent ? 'insufficient_credits' : errorCodeForHttpStatus(status);
  return {
    code: policyCandidate && looksLikeContentPolicy(detail) ? 'content_policy' : byStatus,
    message: `kling-legacy answered HTTP ${status}${ownCode !== undefined ? ` (code ${ownCode})` : ''}${detail ? `: ${detail}` : ''}`,
    ...(ownCode !== undefined ? { providerCode: ownCode } : {}),
    ...named,
  };
}

/** The task an envelope's `data` names (a non-blank `task_id`), if any. */
function namedTask(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const id = (data as { task_id?: unknown }).task_id;
  if (typeof id === 'string' && id.trim() !== '') return id;
  return typeof id === 'number' && Number.isFinite(id) ? String(id) : undefined;
}

/**
 * The error a `{code, message, data}` answer reports under HTTP 2xx: any service code other
 * than 0, with the HTTP status the official table gives for it. A code outside the official
 * scheme (a reseller's `200`, `1`, `-1`) beside a task in `data` is no error: the task id is the
 * upstream's word that the task exists, and failing that create over would pay for it twice.
 * An official code beside a task is an error that names a task: a create answered with a server
 * code (5000–5999) so may have made it, and is looked up by its `external_task_id` before any
 * other provider is asked.
 */
export function klingLegacyEnvelopeError(envelope: { data?: unknown }, body: unknown): ErrorInEnvelope | undefined {
  const code = klingLegacyServiceCode(body);
  if (code === undefined || code === 0) return undefined;
  const task = namedTask(envelope.data);
  if (!klingLegacyOfficialCode(code) && task !== undefined) return undefined;
  const { httpStatus, ...error } = mapKlingLegacyServiceCode(code, body);
  return { error, httpStatus, ...(task !== undefined ? { namedTaskId: task } : {}) };
}
