import type { ErrorCode } from '../model/canonical.js';

/** How a call failed below HTTP, if it did. */
export type TransportFailure =
  /** The connection was refused or the host not found: the request never left. */
  | 'refused'
  /** No connection (TCP and TLS) within the connect time limit: the request never left. */
  | 'connect_timeout'
  /**
   * The connection broke, or the time ran out, before the whole request was written to it: the
   * upstream never had a request to act on.
   */
  | 'not_sent'
  /** The connection broke after the request was written, before any answer: it may have been acted on. */
  | 'reset'
  /** No answer within the time limit, after the request was written: it may have been acted on. */
  | 'timeout';

export interface UpstreamErrorInit {
  provider: string;
  /** What the gateway was doing: `submit`, `status`, ... */
  operation: string;
  /** Path and query of the upstream call (never the key). */
  url: string;
  code: ErrorCode;
  message: string;
  statusCode?: number;
  /** Upstream's own error code (`INSUFFICIENT_CREDITS`, `1102`, ...). */
  providerCode?: string;
  /** The answer body, cut to a few kilobytes, for logs and attempts. */
  responseBody?: unknown;
  transport?: TransportFailure;
  /** `Retry-After` from a 429 or 503, in milliseconds. */
  retryAfterMs?: number;
  /**
   * The upstream may have created the task even though this call failed: a 2xx create answer
   * that could not be read (no task id, not JSON). Such a failure is never failed over.
   */
  mayHaveCreated?: boolean;
  /**
   * The upstream task a create's error answer named beside a server error (`mayHaveCreated`):
   * the task the upstream may hold, asked about before the create is given up on.
   */
  namedTaskId?: string;
}

/**
 * The one error type for upstream calls. Adapters and the HTTP client turn every failure into
 * this, with a canonical `code`; the router decides from it whether failing over is safe.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly provider: string;
  readonly operation: string;
  readonly url: string;
  readonly code: ErrorCode;
  readonly statusCode: number | undefined;
  readonly providerCode: string | undefined;
  readonly responseBody: unknown;
  readonly transport: TransportFailure | undefined;
  readonly retryAfterMs: number | undefined;
  readonly mayHaveCreated: boolean;
  readonly namedTaskId: string | undefined;

  constructor(init: UpstreamErrorInit) {
    super(init.message);
    this.provider = init.provider;
    this.operation = init.operation;
    this.url = init.url;
    this.code = init.code;
    this.statusCode = init.statusCode;
    this.providerCode = init.providerCode;
    this.responseBody = init.responseBody;
    this.transport = init.transport;
    this.retryAfterMs = init.retryAfterMs;
    this.mayHaveCreated = init.mayHaveCreated ?? false;
    this.namedTaskId = init.namedTaskId;
  }
}

/** What an adapter's error mapping returns for an upstream error answer. */
export interface MappedUpstreamError {
  code: ErrorCode;
  message: string;
  providerCode?: string;
  /**
   * The upstream task the error answer's body names (its `data.task_id`), if any: a create
   * answered with a server error beside it may have made that task (`UpstreamClient`).
   */
  namedTaskId?: string;
}

/** The canonical code for an HTTP status when the body says nothing more specific. */
export function errorCodeForHttpStatus(status: number): ErrorCode {
  if (status === 402) return 'insufficient_credits';
  if (status === 400 || status === 404 || status === 405 || status === 409 || status === 413 || status === 422) {
    return 'invalid_request';
  }
  return 'provider_error';
}

/** Where an upstream answer came from, for `unreadableAnswer`. */
export interface UpstreamCall {
  provider: string;
  /** `submit`, `status`, ... */
  operation: string;
  url: string;
}

/**
 * A 2xx answer the adapter cannot use (no task id, not the documented envelope). Reported as a
 * `provider_error` with the real status; on a create it is `mayHaveCreated`, since the upstream
 * did accept the request and may hold the task, so it is never failed over.
 */
export function unreadableAnswer(call: UpstreamCall, status: number, body: unknown, why: string): UpstreamError {
  return new UpstreamError({
    ...call,
    code: 'provider_error',
    message: `${call.provider} answered HTTP ${status} with an unreadable body (${why})`,
    statusCode: status,
    providerCode: 'unreadable_answer',
    responseBody: body,
    mayHaveCreated: call.operation === 'submit',
  });
}

/**
 * The longest pause a `Retry-After` can ask for. An upstream's word must not switch a provider
 * off for good (a figure in years, or past what a date can hold): after this long it is asked
 * again, and a provider that still refuses says so with its next 429.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** `Retry-After` as milliseconds (seconds or an HTTP date), at most `MAX_RETRY_AFTER_MS`. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return boundedPause(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : boundedPause(date - nowMs);
}

function boundedPause(ms: number): number {
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/**
 * An error the upstream reported inside a 2xx answer (an envelope whose `code` says failure).
 * It carries the HTTP status the provider documents for that code, so the router reasons as if
 * the upstream had answered with it.
 */
export function errorInSuccessAnswer(
  call: UpstreamCall,
  mapped: MappedUpstreamError,
  statusCode: number,
  response: { data: unknown; headers: Record<string, string>; receivedAt?: number },
  namedTaskId?: string,
): UpstreamError {
  return new UpstreamError({
    ...call,
    code: mapped.code,
    message: mapped.message,
    ...(mapped.providerCode !== undefined ? { providerCode: mapped.providerCode } : {}),
    statusCode,
    responseBody: response.data,
    // A create answered with a server error beside a task id may have made that task (a refusal
    // of the request, its key, credits or rate says it made none).
    ...(namedTaskId !== undefined && call.operation === 'submit' && statusCode >= 500 ? { mayHaveCreated: true, namedTaskId } : {}),
    // A date is read against the gateway clock, as the client reads one on a 429.
    retryAfterMs: parseRetryAfter(response.headers['retry-after'], response.receivedAt ?? Date.now()),
  });
}
