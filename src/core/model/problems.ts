/**
 * Errors the gateway answers itself, as RFC 9457 problem details. They are never upstream
 * failures and never trigger failover.
 */
import { MAX_PROBLEM_ERRORS, type ProblemDetails } from './canonical.js';

const TYPE_BASE = 'https://kling-gateway.dev/problems/';

/** The `type` URI of the gateway's problems named `slug` (`conflict`, `idempotency-key-reused` …). */
export const problemType = (slug: string): string => `${TYPE_BASE}${slug}`;

/** `errors` cut to the first `MAX_PROBLEM_ERRORS`, with `detail` saying how many more there were. */
function capErrors<T>(errors: readonly T[], detail: string | undefined): { errors: T[]; detail: string } {
  const more = (errors.length - MAX_PROBLEM_ERRORS).toLocaleString('en-US');
  const note = `Only the first ${MAX_PROBLEM_ERRORS} errors are listed … and ${more} more.`;
  return { errors: errors.slice(0, MAX_PROBLEM_ERRORS), detail: detail ? `${detail} ${note}` : note };
}

/** The longest `path` and `message` of an entry of `errors`: a field name is the caller's own text, of any length. */
const MAX_ERROR_PATH = 200;
const MAX_ERROR_MESSAGE = 500;

function shortened(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  /** The problem without its `instance`, which the answer adds (the request's id). */
  readonly problem: Omit<ProblemDetails, 'instance'>;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    slug: string,
    title: string,
    detail?: string,
    extra: Partial<Pick<ProblemDetails, 'errors' | 'providers' | 'budget' | 'spent' | 'reserved' | 'requested'>> = {},
    headers: Record<string, string> = {},
  ) {
    if (extra.errors && extra.errors.length > MAX_PROBLEM_ERRORS) {
      const capped = capErrors(extra.errors, detail);
      extra = { ...extra, errors: capped.errors };
      detail = capped.detail;
    }
    if (extra.errors?.some((error) => error.path.length > MAX_ERROR_PATH || error.message.length > MAX_ERROR_MESSAGE)) {
      const errors = extra.errors.map((error) => ({ ...error, path: shortened(error.path, MAX_ERROR_PATH), message: shortened(error.message, MAX_ERROR_MESSAGE) }));
      extra = { ...extra, errors };
    }
    super(detail ?? title);
    this.problem = { type: problemType(slug), title, status, ...(detail ? { detail } : {}), ...extra };
    this.headers = headers;
  }

  get status(): number {
    return this.problem.status;
  }
}

/**
 * A 400's `detail` from its `errors[]`: the one field and what is wrong with it
 * (`duration: must be at most 15.`, the same words as its entry), or how many `noun`s are at fault
 * and the first (`3 fields are not valid. duration: must be at most 15; and 2 more.`). Bounded:
 * the field's path and message are cut as long ones are in `errors[]`, shorter.
 */
export function invalidDetail(errors: readonly { path: string; message: string }[], noun = 'field'): string {
  const first = errors[0];
  if (!first) return 'The request is not valid.';
  const named = `${shortened(first.path, 100)}: ${shortened(first.message, 200)}`;
  const said = /[.…]$/.test(named) ? named : `${named}.`;
  if (errors.length === 1) return said;
  const more = errors.length - 1;
  return `${errors.length.toLocaleString('en-US')} ${noun}s are not valid. ${named}; and ${more.toLocaleString('en-US')} more.`;
}

export const problems = {
  /** `detail` names how many fields are at fault and the first, unless given. */
  validation: (errors: { path: string; message: string }[], detail = invalidDetail(errors)) =>
    new ProblemError(400, 'validation', 'Invalid request', detail, { errors }),
  unauthorized: (detail: string) =>
    new ProblemError(401, 'unauthorized', 'Unauthorized', detail, {}, { 'www-authenticate': 'Bearer' }),
  /** `detail` quotes the path or id asked for: cut short, so a client cannot have kilobytes echoed back. */
  notFound: (detail: string) => new ProblemError(404, 'not-found', 'Not found', shortened(detail, 300)),
  methodNotAllowed: (detail: string, allow: string) => new ProblemError(405, 'method-not-allowed', 'Method not allowed', detail, {}, { allow }),
  conflict: (detail: string) => new ProblemError(409, 'conflict', 'Conflict', detail),
  /** A create's Idempotency-Key came with another body than the one it made its task with: not to be sent again as it is (a new key). */
  idempotencyKeyReused: (detail: string) => new ProblemError(409, 'idempotency-key-reused', 'Idempotency-Key already used with another request', detail),
  /** A create's Idempotency-Key whose first request is still being submitted: to be sent again after `Retry-After`. */
  idempotencyKeyInProgress: (detail: string, retryAfterSeconds: number) =>
    new ProblemError(409, 'idempotency-key-in-progress', 'Request with this Idempotency-Key still in progress', detail, {}, { 'retry-after': String(retryAfterSeconds) }),
  /**
   * A cancel that is kept but not decided yet (the create on its way is unanswered, or the task is
   * changing hands): to be asked again after `Retry-After`, unlike a `conflict`, which is final.
   */
  cancelPending: (detail: string, retryAfterSeconds: number) =>
    new ProblemError(409, 'cancel-pending', 'Cancel not decided yet', detail, {}, { 'retry-after': String(retryAfterSeconds) }),
  unsupported: (detail: string, providers: { provider: string; reasons: string[] }[], errors: NonNullable<ProblemDetails['errors']> = []) =>
    new ProblemError(422, 'no-capable-provider', 'No provider can serve this request', detail, { ...(errors.length > 0 ? { errors } : {}), providers }),
  tooManyRequests: (detail: string, retryAfterSeconds: number) =>
    new ProblemError(429, 'too-many-requests', 'Too many requests', detail, {}, { 'retry-after': String(retryAfterSeconds) }),
  retryLater: (detail: string, retryAfterSeconds: number) =>
    new ProblemError(503, 'retry-later', 'Retry later', detail, {}, { 'retry-after': String(retryAfterSeconds) }),
  badGateway: (detail: string) => new ProblemError(502, 'upstream-error', 'The provider did not do it', detail),
  gone: (detail: string) => new ProblemError(410, 'gone', 'Gone', detail),
  /** An `If-Match` or `If-Unmodified-Since` that does not hold for the file asked for (RFC 9110 §13.2.2). */
  preconditionFailed: (detail: string) => new ProblemError(412, 'precondition-failed', 'Precondition failed', detail),
  rangeNotSatisfiable: (detail: string, size: number) =>
    new ProblemError(416, 'range-not-satisfiable', 'Range not satisfiable', detail, {}, { 'content-range': `bytes */${size}` }),
  budgetExceeded: (detail: string, extra: Required<Pick<ProblemDetails, 'budget' | 'spent' | 'reserved' | 'requested'>>) =>
    new ProblemError(402, 'budget-exceeded', 'Budget exceeded', detail, extra),
  forbidden: (detail: string) => new ProblemError(403, 'forbidden', 'Forbidden', detail),
  unprocessable: (detail: string, errors?: { path: string; message: string }[]) =>
    new ProblemError(422, 'unprocessable', 'Unprocessable request', detail, errors ? { errors } : {}),
};
