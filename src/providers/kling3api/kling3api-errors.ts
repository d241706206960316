/**
 * kling3api.com error answers → canonical errors.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt, "Error Codes" (status, code, description).
 * The seed shows the table but no error body, so bodies are read loosely
 * (`Kling3apiErrorBody`) and the HTTP status is the fallback.
 */
import type { ErrorCode } from '../../core/model/canonical.js';
import type { ErrorInEnvelope } from '../../core/upstream/answer-envelope.js';
import { looksLikeContentPolicy, NOT_CONTENT_STATUSES } from '../../core/upstream/content-policy.js';
import { errorPageText, readJsonBody } from '../../core/upstream/upstream-body.js';
import { errorCodeForHttpStatus, type MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import {
  Kling3apiErrorBody,
  Kling3apiGenerateData,
  Kling3apiStatusData,
  listText,
  type Kling3apiEnvelope,
  type Kling3apiErrorCode,
} from './kling3api-schemas.js';

/** One row of the seed's error table, with the canonical code the gateway reports. */
export interface Kling3apiErrorCodeEntry {
  /** HTTP status the seed gives for the code. */
  httpStatus: number;
  /** Canonical error code. */
  code: ErrorCode;
  /** The seed's description, used when the answer carries no message. */
  description: string;
}

/** Seed 004 "Error Codes", row by row. */
export const KLING3API_ERROR_CODES: Readonly<Record<Kling3apiErrorCode, Kling3apiErrorCodeEntry>> = {
  INVALID_PROMPT: { httpStatus: 400, code: 'invalid_request', description: 'The prompt is invalid or empty' },
  INVALID_DURATION: { httpStatus: 400, code: 'invalid_request', description: 'Duration out of supported range' },
  INVALID_TYPE: { httpStatus: 400, code: 'invalid_request', description: 'Unsupported task type' },
  MISSING_IMAGE: { httpStatus: 400, code: 'invalid_request', description: 'Image is required for image-to-video tasks' },
  MISSING_VIDEO: { httpStatus: 400, code: 'invalid_request', description: 'Video is required for video-edit tasks' },
  // A bad key is the gateway's misconfiguration, not the caller's request: provider_error, so
  // the router fails over (SPEC §3) and the operator sees the provider code.
  INVALID_API_KEY: { httpStatus: 401, code: 'provider_error', description: 'API key is missing or invalid' },
  INSUFFICIENT_CREDITS: { httpStatus: 402, code: 'insufficient_credits', description: 'Not enough credits for this operation' },
  RATE_LIMITED: { httpStatus: 429, code: 'provider_error', description: 'Too many requests, please slow down' },
  INTERNAL_ERROR: { httpStatus: 500, code: 'provider_error', description: 'Server error, please try again later' },
};

function isKnownCode(code: string): code is Kling3apiErrorCode {
  return Object.hasOwn(KLING3API_ERROR_CODES, code);
}

/** What an error body says, wherever it put it. */
export interface Kling3apiErrorDetails {
  /** The string code (`INVALID_PROMPT`, ...), when the body has one. */
  providerCode?: string;
  /** A numeric `code` (an HTTP-like status inside the envelope), when the body has one. */
  numericCode?: number;
  message?: string;
}

/** How much of an error body that is not JSON goes into a message (as the legacy adapter keeps). */
const MAX_PAGE_TEXT = 200;

/** Reads the string code, numeric code and message out of any plausible error body. */
export function readKling3apiError(body: unknown): Kling3apiErrorDetails {
  const value = readJsonBody(body);
  if (value === undefined && typeof body === 'string' && body.trim() !== '') {
    // Not JSON (a proxy's HTML page, plain text): its words are the message, as the other
    // adapters read such a body, so a refusal said in text is still read as one.
    return { message: errorPageText(body).slice(0, MAX_PAGE_TEXT) };
  }
  const parsed = Kling3apiErrorBody.safeParse(value);
  if (!parsed.success) return {};
  const { code, error, error_code: errorCode, message, error_message: errorMessage, detail } = parsed.data;
  const nested = error !== null && typeof error === 'object' ? error : undefined;
  const nestedDetail = detail !== null && typeof detail === 'object' && !Array.isArray(detail) ? detail : undefined;
  const stringCodes = [code, errorCode, typeof error === 'string' ? error : undefined, nested?.code, nestedDetail?.code].filter(
    (value): value is string => typeof value === 'string' && value.trim() !== '',
  );
  // A string that is all digits is a number in disguise, not a code name.
  const providerCode = stringCodes.find((value) => !/^\d+$/.test(value.trim()))?.trim();
  const numeric = [code, nested?.code, nestedDetail?.code].map((value) => (typeof value === 'string' ? Number(value) : value));
  const numericCode = numeric.find((value): value is number => typeof value === 'number' && Number.isInteger(value));
  const detailText = typeof detail === 'string' ? detail : Array.isArray(detail) ? listText(detail) : nestedDetail?.message;
  const text = message ?? nested?.message ?? errorMessage ?? detailText ?? undefined;
  // The success envelope's shape with an error in it (`{code: 400, message: "INVALID_DURATION"}`):
  // a message that is one of the seed's codes is that code, and says nothing more than its description.
  const codeAsText = text?.trim().toUpperCase();
  if (providerCode === undefined && codeAsText !== undefined && isKnownCode(codeAsText)) {
    return { providerCode: codeAsText, ...(numericCode !== undefined ? { numericCode } : {}) };
  }
  return {
    ...(providerCode !== undefined ? { providerCode } : {}),
    ...(numericCode !== undefined ? { numericCode } : {}),
    ...(text ? { message: text } : {}),
  };
}

/**
 * Canonical error for a kling3api error answer: by the seed's code when the body has a known
 * one, else by HTTP status; a request-class rejection whose message or code reads as content
 * policy (the core's one wording rule: the seed has no code for it) becomes `content_policy`.
 * Without a code of the table, only a 4xx refusal of the request may be one of its content: a
 * 5xx that speaks of moderation or safety is still an outage (failed over), as it is for the
 * other adapters, and auth, credit and rate-limit answers mean what their status says.
 */
export function mapKling3apiHttpError(status: number, body: unknown): MappedUpstreamError {
  const mapped = mapKling3apiError(status, body, status >= 400 && status < 500 && !NOT_CONTENT_STATUSES.has(status));
  const value = readJsonBody(body);
  const named = value !== null && typeof value === 'object' ? Kling3apiGenerateData.safeParse((value as { data?: unknown }).data) : undefined;
  return named?.success ? { ...mapped, namedTaskId: named.data.task_id } : mapped;
}

/** As above; `wordingMayRefuse`: whether, without a code of the table, the wording may make it `content_policy`. */
function mapKling3apiError(status: number, body: unknown, wordingMayRefuse: boolean): MappedUpstreamError {
  const details = readKling3apiError(body);
  const code = details.providerCode?.toUpperCase();
  const entry = code !== undefined && isKnownCode(code) ? KLING3API_ERROR_CODES[code] : undefined;
  const said = details.message ?? entry?.description;
  // The message is the task's error as a caller reads it: it names the provider and the code it
  // gave (its HTTP status when it gave none), as the other adapters' messages do.
  const label = details.providerCode ?? (details.numericCode !== undefined ? `code ${details.numericCode}` : `HTTP ${status}`);
  const message = said ? `kling3api (${label}): ${said}` : `kling3api answered HTTP ${status}`;
  let canonical: ErrorCode = entry?.code ?? errorCodeForHttpStatus(status);
  const policyCandidate = entry ? entry.code === 'invalid_request' : wordingMayRefuse;
  // The wording may be in the code alone (`CONTENT_POLICY_VIOLATION`, `NSFW_CONTENT`) under a generic message.
  if (policyCandidate && (looksLikeContentPolicy(said) || looksLikeContentPolicy(details.providerCode))) {
    canonical = 'content_policy';
  }
  return { code: canonical, message, ...(details.providerCode !== undefined ? { providerCode: details.providerCode } : {}) };
}

/**
 * The HTTP status an error envelope inside a 2xx answer stands for: the seed's status for its
 * code, else its numeric `code` when that is an error status, else 502 (an answer we cannot
 * read as either success or a known error).
 */
export function kling3apiEnvelopeStatus(body: unknown): number {
  return namedErrorStatus(body) ?? 502;
}

/** The HTTP status an envelope's code names: the seed's for its code, or a numeric 4xx/5xx. */
function namedErrorStatus(body: unknown): number | undefined {
  const details = readKling3apiError(body);
  const code = details.providerCode?.toUpperCase();
  if (code !== undefined && isKnownCode(code)) return KLING3API_ERROR_CODES[code].httpStatus;
  if (details.numericCode !== undefined && details.numericCode >= 400 && details.numericCode <= 599) {
    return details.numericCode;
  }
  return undefined;
}

/**
 * The error a `{code, message, data}` answer reports under HTTP 2xx: any `code` other than 200
 * (seed 004 "Responses" always sends 200 on success; an absent `code` is tolerated), with the
 * HTTP status its code stands for.
 */
export function kling3apiEnvelopeError(envelope: Kling3apiEnvelope, body: unknown): ErrorInEnvelope | undefined {
  const code = envelope.code;
  if (code === undefined || code === null || String(code).trim() === '200') return undefined;
  const httpStatus = kling3apiEnvelopeStatus(body);
  // A code that names no status (read as 502) is no outage: its wording may still say the content was refused.
  const error = namedErrorStatus(body) === undefined ? mapKling3apiError(httpStatus, body, true) : mapKling3apiHttpError(httpStatus, body);
  return { error, httpStatus };
}

/**
 * The same for a `POST /api/generate` answer, except that one carrying a task id under a code
 * that names no error (`0`, `"OK"`) is the task: the upstream holds it, and reading the answer
 * as a 502 would fail over and pay for the video twice. A named error beside a task id is the
 * error, naming a task: a server error so may have made it, so it is never sent elsewhere.
 */
export function kling3apiCreateEnvelopeError(envelope: Kling3apiEnvelope, body: unknown): ErrorInEnvelope | undefined {
  const reported = kling3apiEnvelopeError(envelope, body);
  if (reported === undefined) return undefined;
  const task = Kling3apiGenerateData.safeParse(envelope.data);
  if (namedErrorStatus(body) !== undefined) return task.success ? { ...reported, namedTaskId: task.data.task_id } : reported;
  return task.success ? undefined : reported;
}

/**
 * The same for a `GET /api/status` answer: one carrying a status word in `data` under a code
 * that names no error is that status. An upstream whose create answers so (taken as the task,
 * above) answers its polls so too; read as a 502, every poll would fail and the task, made and
 * charged upstream, would end at its deadline.
 */
export function kling3apiStatusEnvelopeError(envelope: Kling3apiEnvelope, body: unknown): ErrorInEnvelope | undefined {
  const reported = kling3apiEnvelopeError(envelope, body);
  if (reported === undefined || namedErrorStatus(body) !== undefined) return reported;
  const status = Kling3apiStatusData.safeParse(envelope.data);
  return status.success && typeof status.data.status === 'string' && status.data.status.trim() !== '' ? undefined : reported;
}
