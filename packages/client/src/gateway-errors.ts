/**
 * What can go wrong when talking to the gateway, as classes a caller can tell apart: the gateway
 * answered with a problem (RFC 9457), could not be reached, lacks an endpoint, or a wait ran out.
 */
import type { ProblemDetails, Task } from './gateway-types.js';

/** The gateway answered with an error status; `problem` is its RFC 9457 body. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  /**
   * Set on an error of `createVideo`: the `Idempotency-Key` the create was sent with. After a 5xx
   * the video may exist: `createVideo(body, { idempotencyKey: error.idempotencyKey })` gets it
   * rather than a second one.
   */
  declare idempotencyKey?: string;

  constructor(
    /** HTTP status of the answer. */
    readonly status: number,
    /** The problem details (a minimal one is made up when the body was not problem+json). */
    readonly problem: ProblemDetails,
    /** The gateway's `x-request-id`, to quote in a support request. */
    readonly requestId: string | null,
    /** `Retry-After` in seconds (429, 503; a date is counted from the answer's `Date`), null without one. */
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(messageOf(problem));
  }
}

/**
 * The `type` of a create's 409 when its `Idempotency-Key` was used before with another body: the
 * key answers only that body, so sending this again cannot succeed; send it with a new key.
 */
export const IDEMPOTENCY_KEY_REUSED = 'https://kling-gateway.dev/problems/idempotency-key-reused';

/**
 * The `type` of a create's 409 when the first request with its `Idempotency-Key` is still being
 * submitted: send the same request again after `retryAfterSeconds`.
 */
export const IDEMPOTENCY_KEY_IN_PROGRESS = 'https://kling-gateway.dev/problems/idempotency-key-in-progress';

/** The gateway's generic 409 `type`, which older gateways also gave both Idempotency-Key 409s. */
const GENERIC_CONFLICT = 'https://kling-gateway.dev/problems/conflict';

/**
 * A create answered 409 because the first request with its `Idempotency-Key` is still being
 * submitted: the same request, sent again after `retryAfterSeconds`, gets that task. Told by the
 * problem's `type`, never its words. `resend`: the create was sent again with the key after its
 * answer was lost, so a generic 409 from a gateway older than these types (same key, same body)
 * is that one too.
 */
export function keyStillInProgress(error: unknown, resend = false): error is GatewayError {
  if (!(error instanceof GatewayError) || error.status !== 409) return false;
  return error.problem.type === IDEMPOTENCY_KEY_IN_PROGRESS || (resend && error.problem.type === GENERIC_CONFLICT);
}

/** A create answered 409 because its `Idempotency-Key` was used before with another body: send a new key. */
export function keyReused(error: unknown): error is GatewayError {
  return error instanceof GatewayError && error.status === 409 && error.problem.type === IDEMPOTENCY_KEY_REUSED;
}

/**
 * The `type` of a cancel's 409 when the cancel is kept but not decided yet: the task's create is
 * on its way to a provider, unanswered (or the task is changing hands). It ends `canceled` if the
 * provider turns that create down; read the task, or cancel again, after `retryAfterSeconds`.
 * Any other 409 of a cancel (`…/conflict`) is final: the task finished, or a provider holds it.
 */
export const CANCEL_PENDING = 'https://kling-gateway.dev/problems/cancel-pending';

/** A cancel answered 409 `…/cancel-pending`: kept, not decided yet; ask again after `retryAfterSeconds`. */
export function cancelPending(error: unknown): error is GatewayError {
  return error instanceof GatewayError && error.status === 409 && error.problem.type === CANCEL_PENDING;
}

/** A 404 of the gateway's router ("no route for GET /v1/v1/videos"): the path is unknown, not a task. */
export function namesNoRoute(error: GatewayError): boolean {
  return error.status === 404 && /^no route for /.test(error.problem.detail ?? '');
}

/** That 404 for a path with `/v1` twice: the client's base URL was given with `/v1`, which every path adds again. */
export function namesDoubledPrefix(error: GatewayError): boolean {
  return namesNoRoute(error) && /^no route for \S+ \/v1\/v1(\/|\?|$)/.test(error.problem.detail ?? '');
}

/**
 * `Invalid request: 2 fields are not valid. … (prompt: must not be empty; duration: must be at
 * most 15)`: the title, the detail and each invalid field, so a message logged on its own says
 * what to fix; a detail that only repeats its one field is said once
 * (`Invalid request (duration: must be at most 15)`). A capability 422's detail only quotes its
 * title and the providers' reasons: they are said once, by field where they are about one, the
 * rest by provider (`No provider can serve this request (freepik: …; … | kling3api: …)`).
 */
function messageOf(problem: ProblemDetails): string {
  const detail = (problem.providers ?? []).length > 0 ? undefined : problem.detail;
  const head = detail && !detailRepeatsItsField(problem, detail) ? `${problem.title}: ${detail}` : problem.title;
  const fields = (problem.errors ?? []).map((field) => `${field.path}: ${field.message}`).join('; ');
  const byProvider = reasonsNotByField(problem)
    .map((entry) => `${entry.provider}: ${entry.reasons.join('; ')}`)
    .join(' | ');
  const said = [fields, byProvider].filter((part) => part !== '');
  return said.length > 0 ? `${head} (${said.join('; ')})` : head;
}

/**
 * Whether `detail` only repeats the problem's one field error (`webhook_url points at a private
 * address` beside `errors: [{path: 'webhook_url', message: 'points at a private address'}]`):
 * then it is said once, at the field.
 */
export function detailRepeatsItsField(problem: Pick<ProblemDetails, 'errors'>, detail: string): boolean {
  const only = problem.errors?.length === 1 ? problem.errors[0] : undefined;
  if (!only) return false;
  const said = detail.trim().replace(/\.$/, '');
  return said === `${only.path} ${only.message}` || said === `${only.path}: ${only.message}`;
}

/**
 * A capability 422 names each provider's reasons about one field under that field
 * (`errors[].providers`) and every reason again by provider (`providers[]`): the by-provider
 * reasons not already said under a field, providers left with none left out.
 */
export function reasonsNotByField(problem: Pick<ProblemDetails, 'errors' | 'providers'>): { provider: string; reasons: string[] }[] {
  const said = new Set((problem.errors ?? []).flatMap((field) => (field.providers ?? []).flatMap((entry) => entry.reasons.map((reason) => `${entry.provider}\u0000${reason}`))));
  return (problem.providers ?? [])
    .map((entry) => ({ provider: entry.provider, reasons: entry.reasons.filter((reason) => !said.has(`${entry.provider}\u0000${reason}`)) }))
    .filter((entry) => entry.reasons.length > 0);
}

/**
 * A `createVideo` the caller's own `signal` ended before its answer came: the gateway may have
 * made the video all the same. Named as the abort's reason is (`AbortError`, `TimeoutError`), so
 * code telling an abort or a timeout by its name goes on doing so; the reason is its `cause`.
 * `createVideo(body, { idempotencyKey: error.idempotencyKey })` gets that video rather than a second one.
 */
export class CreateAbortedError extends Error {
  override readonly name: string;

  constructor(
    override readonly cause: unknown,
    /** The `Idempotency-Key` the create was sent with. */
    readonly idempotencyKey: string,
  ) {
    const said = cause instanceof Error ? cause.message : String(cause ?? 'aborted');
    super(`${said} (the create may have been made: send it again with Idempotency-Key ${idempotencyKey} to get it rather than a second video)`);
    this.name = cause instanceof Error ? cause.name : 'AbortError';
  }
}

/** The gateway could not be reached (connection refused, DNS, reset) or its answer was unreadable. */
export class GatewayUnreachableError extends Error {
  override readonly name: string = 'GatewayUnreachableError';
  /** Why, in a few words, without the URL: `ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:8080)`, `Failed to fetch`. */
  readonly reason: string;
  /** The system's code for why (`ECONNREFUSED`, `ENOTFOUND` …), when the connection's error gave one. */
  readonly code: string | undefined;
  /**
   * Set on an error of `createVideo`: the `Idempotency-Key` the create was sent with. Its answer
   * was lost, so the video may exist: `createVideo(body, { idempotencyKey: error.idempotencyKey })`
   * gets it rather than a second one.
   */
  declare idempotencyKey?: string;

  constructor(
    readonly url: string,
    override readonly cause: unknown,
  ) {
    const reason = describeCause(cause, url);
    super(`cannot reach ${url}: ${reason}`);
    this.reason = reason;
    this.code = systemCode(cause);
  }
}

/**
 * The gateway took the request but did not answer within the client's limit (`timeoutMs`): a
 * gateway or proxy that hangs. A create may still have been made: send it again with the same
 * `Idempotency-Key`.
 */
export class NoAnswerError extends GatewayUnreachableError {
  override readonly name = 'NoAnswerError';

  constructor(
    url: string,
    /** The limit that passed, in milliseconds. */
    readonly timeoutMs: number,
  ) {
    super(url, new Error(`no answer within ${timeoutMs / 1000} s`));
    this.message = `${url} did not answer within ${timeoutMs / 1000} s`;
  }
}

/**
 * Something answered at the gateway's URL, but not as the gateway does: a success that is not
 * JSON (another app's page on that port, a captive portal, a base URL pointing at the console).
 */
export class UnexpectedAnswerError extends GatewayUnreachableError {
  override readonly name = 'UnexpectedAnswerError';

  constructor(
    url: string,
    /** `GET /v1/videos`: the request that got the answer. */
    readonly request: string,
    /** The answer's `content-type`. */
    readonly contentType: string,
    /** True when it said JSON but its body does not parse (the body is never quoted). */
    readonly unparsable = false,
  ) {
    const what = unparsable ? `${contentType} that does not parse` : `${contentType}, not JSON`;
    super(url, new Error(`answered ${request} with ${what}`));
    this.message = `${url} answered with ${what}: is it a Kling Gateway? (${request})`;
  }
}

/** True unless the answer says it is something other than JSON. */
export function answersJson(response: Response): boolean {
  const type = response.headers.get('content-type');
  return response.status === 204 || type === null || /[/+]json\s*(;|$)/i.test(type);
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND …) is on its cause. */
function innerCause(cause: unknown): { code?: unknown; message?: unknown } | undefined {
  return (cause as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
}

/** The system's code of a failed fetch (its cause's), if any. */
function systemCode(cause: unknown): string | undefined {
  const code = innerCause(cause)?.code;
  return typeof code === 'string' ? code : undefined;
}

function describeCause(cause: unknown, url: string): string {
  const inner = innerCause(cause);
  if (inner && typeof inner.code === 'string') {
    if (typeof inner.message !== 'string') return inner.code;
    let message = openSslReason(inner.message);
    // An https URL for a server that answers plain http (the sandbox, a gateway with no TLS in front).
    if (inner.code === 'ERR_SSL_WRONG_VERSION_NUMBER') message += `: the server does not speak TLS there; is its URL ${plainHttpUrl(url)}?`;
    return `${inner.code} (${message})`;
  }
  if (inner && typeof inner.message === 'string') return openSslReason(inner.message);
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * A TLS error's message as one line: OpenSSL's record (`80DC…:error:0A00010B:SSL
 * routines:ssl3_get_record:wrong version number:../deps/openssl/…/ssl3_record.c:350:` and a
 * line break) is its reason alone (`wrong version number`); any other message with its line
 * breaks folded.
 */
function openSslReason(message: string): string {
  const record = /^[0-9A-Fa-f]+:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/.exec(message.trim());
  return (record ? record[1]! : message).replace(/\s+/g, ' ').trim();
}

/** The same server as `url`, by plain http on the same port (443 written out when it was implied). */
function plainHttpUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const path = parsed.pathname === '/' ? '' : parsed.pathname;
    return `http://${parsed.hostname}${parsed.port ? `:${parsed.port}` : parsed.protocol === 'https:' ? ':443' : ''}${path}`;
  } catch {
    return url.replace(/^https:/i, 'http:');
  }
}

/**
 * The gateway does not have this endpoint (an older version or one that has not enabled it), as
 * its own OpenAPI document or a "no route" 404 says.
 */
export class EndpointNotAvailableError extends Error {
  override readonly name = 'EndpointNotAvailableError';

  constructor(
    /** `METHOD /path/template`, e.g. `POST /v1/videos/{id}/cancel`. */
    readonly endpoint: string,
  ) {
    super(`${endpoint} is not available on this gateway`);
  }
}

/**
 * An output kept only by the provider can no longer be fetched from it: its file host answered
 * 4xx (the copy is gone or its link expired). The task itself is fine; asking again cannot help.
 * Also a 4xx from the host the gateway's content route redirected to (`redirectedTo`: a presigned
 * object-storage URL, or the provider's file): about the file, not the gateway key or the task.
 * And the gateway's own 410 (`problem`): its stored copy was deleted after retention or is missing.
 */
export class OutputUnavailableError extends Error {
  override readonly name = 'OutputUnavailableError';

  constructor(
    readonly id: string,
    readonly index: number,
    /** What the file host answered. */
    readonly status: number,
    /** The origin the gateway redirected the download to, when it did. */
    readonly redirectedTo?: string,
    /** The gateway's own problem, when it was the gateway that answered (410: its stored copy is gone). */
    readonly problem?: ProblemDetails,
  ) {
    super(
      problem
        ? `output ${index} of video ${id} cannot be downloaded: the gateway answered ${status} (${problem.detail ?? problem.title})`
        : `output ${index} of video ${id} cannot be downloaded: ${redirectedTo ? `${redirectedTo}, where the gateway sent the download,` : "the provider's file host"} answered ${status} (its copy is gone or its link expired)`,
    );
  }
}

/** `wait` ran out of time before the task reached a terminal status. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';

  constructor(
    /** The task as last seen. */
    readonly task: Task,
    readonly timeoutMs: number,
  ) {
    // As given, to the millisecond: rounded to whole seconds, 1.5 s read "after 2 s" and 0.4 s "after 0 s".
    super(`video ${task.id} is still ${task.status} after ${Number((timeoutMs / 1000).toFixed(3))} s`);
  }
}

/**
 * Reads an error answer into a GatewayError, whatever its body. A text that is not the gateway's
 * (a proxy's, a stand-in's) may quote the request: every form of `secrets` (the caller's key) in
 * it is shown as `[redacted]`.
 */
export async function errorFromResponse(response: Response, body?: unknown, secrets: readonly string[] = []): Promise<GatewayError> {
  let parsed = body;
  if (parsed === undefined) {
    const text = await response.text().catch(() => '');
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
  }
  const problem: ProblemDetails =
    parsed && typeof parsed === 'object' && typeof (parsed as ProblemDetails).title === 'string'
      ? // Problem details from whatever answered (a service at the wrong URL may quote the request too).
        (withoutSecretsDeep(parsed, secrets) as ProblemDetails)
      : {
          type: 'about:blank',
          title: response.statusText || `HTTP ${response.status}`,
          status: response.status,
          ...(typeof parsed === 'string' && parsed ? { detail: describeText(withoutSecrets(parsed, secrets), response.headers.get('content-type')) } : {}),
        };
  return new GatewayError(response.status, problem, response.headers.get('x-request-id'), retryAfterOf(response.headers));
}

/** Secrets shorter than this are not looked for (they would match ordinary words). */
const MIN_SECRET_CHARS = 6;

/** `text` with each secret, as is or URL-encoded, replaced by `[redacted]`. */
function withoutSecrets(text: string, secrets: readonly string[]): string {
  let clean = text;
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_CHARS) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) clean = clean.split(form).join('[redacted]');
  }
  return clean;
}

/** A copy of a JSON value with every string in it (keys too) without `secrets`. */
function withoutSecretsDeep(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return withoutSecrets(value, secrets);
  if (Array.isArray(value)) return value.map((item) => withoutSecretsDeep(item, secrets));
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    // Defined, not assigned: a `__proto__` key (JSON.parse makes it an own key) stays a key.
    Object.defineProperty(copy, withoutSecrets(key, secrets), { value: withoutSecretsDeep(item, secrets), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/**
 * A body that is not problem details, for a message: an HTML page (a proxy's error page while the
 * gateway is down) by its title only, other text as it is (at most 500 characters).
 */
function describeText(text: string, contentType: string | null): string {
  if (!/html/i.test(contentType ?? '') && !/^\s*<(!doctype|html)/i.test(text)) return text.slice(0, 500);
  const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1]?.replace(/\s+/g, ' ').trim().slice(0, 200);
  return `an HTML page${title ? ` ("${title}")` : ''}, not an answer of the gateway: a proxy in front of it?`;
}

/**
 * `Retry-After` as seconds, in either form HTTP allows: delay-seconds (what the gateway sends), or
 * an HTTP date (what a proxy or load balancer in front of it may send during maintenance), counted
 * from the answer's own `Date` so that the two machines' clocks need not agree (from this one's
 * when the answer has none); a date already past is 0. Null without one, or for anything else.
 */
function retryAfterOf(headers: Headers): number | null {
  const header = headers.get('retry-after')?.trim();
  if (header === undefined) return null;
  if (/^\d{1,6}$/.test(header)) return Number(header);
  const at = /^[A-Za-z]{3}, /.test(header) ? Date.parse(header) : Number.NaN;
  if (Number.isNaN(at)) return null;
  const answered = Date.parse(headers.get('date') ?? '');
  const from = Number.isNaN(answered) ? Date.now() : answered;
  return Math.max(0, Math.ceil((at - from) / 1000));
}
