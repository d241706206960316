/**
 * The HTTP client every adapter calls through. It adds the base URL, auth headers and the time
 * limit, and turns every failure into an `UpstreamError`: transport failures by kind (refused,
 * not sent, reset, timeout — the router needs to know whether the request may have been
 * accepted) and error answers through the provider's own `mapHttpError`.
 *
 * Whether a request may have been accepted is read from the request itself, not from the error
 * code: Node's `ClientRequest` emits `finish` once the last byte of the body is handed to the
 * socket. A failure before that proves the upstream never had a whole request to act on; any
 * failure after it (a reset, a timeout) leaves the upstream free to have acted on it.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import axios, { AxiosError, type AxiosInstance } from 'axios';
import type { ErrorCode } from '../model/canonical.js';
import type { UpstreamAuth, UpstreamClient, UpstreamRequest, UpstreamResponse, VideoProvider } from './provider.js';
import { SecretScrubber, urlCredentials } from '../../observability/secret-scrubber.js';
import { UpstreamError, parseRetryAfter, type TransportFailure } from './upstream-error.js';

export { parseRetryAfter };

/** Told about every upstream call once it ends (metrics, logs). */
export interface UpstreamCallRecord {
  provider: string;
  operation: string;
  method: string;
  path: string;
  /** HTTP status, when there was an answer. */
  status?: number;
  /** `ok`, what an error answer said (`answerOutcome`), or a transport failure. */
  outcome: string;
  durationMs: number;
  /** Bound context (task id, request id). */
  context: Record<string, string>;
}

export interface UpstreamClientOptions {
  provider: Pick<VideoProvider, 'id' | 'authHeaders' | 'mapHttpError'>;
  baseUrl: string;
  apiKey: string;
  /** Auth other than `authHeaders(apiKey)` (signed tokens); its secrets are scrubbed like the key. */
  auth?: UpstreamAuth;
  /** Which of the provider's API shapes this endpoint speaks. */
  apiShape?: string | undefined;
  timeoutMs: number;
  /**
   * Time limit for opening a connection (TCP, and TLS for https), counted within `timeoutMs`.
   * Running out of it means nothing was sent: a `connect_timeout`, not an ambiguous `timeout`.
   */
  connectTimeoutMs?: number;
  onCall?: (record: UpstreamCallRecord) => void;
  /** Time source for latency. */
  now?: () => number;
  /** The gateway clock, for `Retry-After` dates. */
  clockNow?: () => number;
}

/**
 * How an error answer is counted and logged: what its status says where the canonical code lumps
 * answers together (`provider_error` is a 429, a refused key and a 503 alike), so an operator
 * sees an upstream throttling the gateway, refusing its key or failing; else the canonical code.
 * A closed set: `content_policy`, `insufficient_credits`, `rate_limited`, `unauthorized`,
 * `server_error`, or an `ErrorCode`.
 */
export function answerOutcome(status: number, code: ErrorCode): string {
  if (code === 'content_policy' || code === 'insufficient_credits') return code;
  if (status === 402) return 'insufficient_credits';
  if (status === 429) return 'rate_limited';
  if (status === 401 || status === 403) return 'unauthorized';
  if (status >= 500) return 'server_error';
  return code;
}

const MAX_LOGGED_BODY = 2048;

function truncateBody(data: unknown): unknown {
  const text = typeof data === 'string' ? data : JSON.stringify(data ?? null);
  if (text.length <= MAX_LOGGED_BODY) return data;
  return `${text.slice(0, MAX_LOGGED_BODY)}…`;
}

/** The TCP keep-alive delay axios gives every request's socket (its http adapter's `1000 * 60`). */
export const AXIOS_KEEP_ALIVE_PROBE_MS = 60_000;

/** Error code of a socket that did not connect within the connect time limit. */
const CONNECT_TIMEOUT_CODE = 'EKGCONNECTTIMEOUT';

/**
 * The provider's own keep-alive connection pool (most recently used socket first, idle sockets
 * closed after 5 s), so creates and polls reuse warm connections instead of Node's global pool
 * shared with everything else. With `connectTimeoutMs`, new sockets are destroyed when they are
 * not connected — TLS handshake included — within it. A socket reused from the pool is already
 * connected, so the limit never touches a request in flight.
 */
function providerAgents(connectTimeoutMs: number | undefined): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  const limit = <T extends http.Agent>(agent: T): T => {
    if (connectTimeoutMs === undefined) return agent;
    const target = agent as unknown as { createConnection: (...args: unknown[]) => Socket };
    const create = target.createConnection.bind(agent);
    target.createConnection = (...args: unknown[]) => {
      const socket = create(...args);
      if (!socket.connecting) return socket;
      const timer = setTimeout(() => {
        const error = Object.assign(new Error(`no connection within ${connectTimeoutMs} ms`), { code: CONNECT_TIMEOUT_CODE });
        socket.destroy(error);
      }, connectTimeoutMs);
      timer.unref();
      const clear = () => clearTimeout(timer);
      socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', clear);
      socket.once('close', clear);
      return socket;
    };
    return agent;
  };
  // axios sets a 60 s keep-alive probe on every request's socket; the pool releasing a socket sets
  // its own (`keepAliveMsecs`). The same value on both makes the second call find the socket as
  // it is and skip the system call, where 1 s against 60 s changed it twice per request.
  const options = { keepAlive: true, keepAliveMsecs: AXIOS_KEEP_ALIVE_PROBE_MS, scheduling: 'lifo' as const, timeout: 5_000 };
  return { httpAgent: limit(new http.Agent(options)), httpsAgent: limit(new https.Agent(options)) };
}

/**
 * Whether the environment names a proxy for any URL (`http_proxy`, `https_proxy`, `all_proxy`, in
 * either case: what axios reads). Provider calls follow such a proxy; without one axios is told
 * `proxy: false`, since it would otherwise read the environment and parse the URL again on every
 * call to learn the same. Read when a provider's client is made, as the environment is the process's.
 */
function environmentNamesProxy(): boolean {
  return ['http_proxy', 'https_proxy', 'all_proxy'].some((name) => process.env[name] || process.env[name.toUpperCase()]);
}

/**
 * The kind of a failure without an answer. `written` says whether the whole request had been
 * handed to the socket: before that nothing the upstream could act on has left (`not_sent`),
 * after it the failure is ambiguous (`reset`, `timeout`).
 */
function transportFailureOf(error: unknown, written: boolean, timedOut: boolean): TransportFailure {
  const code = error instanceof AxiosError ? (error.code ?? '') : '';
  if (code === CONNECT_TIMEOUT_CODE) return 'connect_timeout';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) return 'refused';
  if (!written) return 'not_sent';
  if (timedOut || code === 'ERR_CANCELED' || code === 'ECONNABORTED' || code === 'ETIMEDOUT') return 'timeout';
  return 'reset';
}

/** What axios calls to open a request (`transport`): Node's own, noting when the request was fully written. */
function writeTrackingTransport(onWritten: () => void) {
  const open = (module: typeof http | typeof https) => (options: http.RequestOptions, callback: (res: http.IncomingMessage) => void) => {
    const req = module.request(options, callback);
    req.once('finish', onWritten);
    // All of it went into a socket whose buffer is already empty: written, even where `finish`
    // waits for a write callback that comes late (intercepted sockets in tests).
    req.once('prefinish', () => {
      if (req.socket && !req.socket.destroyed && req.socket.writableLength === 0) onWritten();
    });
    return req;
  };
  return { http: { request: open(http) }, https: { request: open(https) } };
}

function transportMessage(provider: string, failure: TransportFailure, options: UpstreamClientOptions): string {
  switch (failure) {
    case 'timeout':
      return `${provider} did not answer within ${options.timeoutMs} ms`;
    case 'connect_timeout':
      return `${provider} could not be connected to within ${options.connectTimeoutMs} ms; nothing was sent`;
    case 'refused':
      return `${provider} refused the connection`;
    case 'not_sent':
      return `${provider}: the connection failed before the request was fully sent; nothing was sent`;
    case 'reset':
      return `${provider} closed the connection without an answer after the request was sent`;
  }
}

function plainHeaders(headers: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (headers && typeof headers === 'object') {
    for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
      if (value !== undefined && value !== null) result[key.toLowerCase()] = String(value);
    }
  }
  return result;
}

/**
 * What is removed from upstream answers: the key and the auth secrets, and the credentials a call
 * sent. A signed token is a credential the upstream accepts until it expires, known only once
 * signed, so the scrubber is built again when the sent credentials change (a token is reused
 * for most of its lifetime, so that is rare) and shared by every `withContext` copy.
 */
class AnswerScrubber {
  private current: { sent: string; scrubber: SecretScrubber } | undefined;

  constructor(private readonly secrets: readonly (string | undefined)[]) {}

  /** The scrubber for an answer to a call that sent `credentials`. */
  for(credentials: readonly string[]): SecretScrubber {
    const sent = credentials.join('\n');
    if (this.current?.sent !== sent) this.current = { sent, scrubber: new SecretScrubber([...this.secrets, ...credentials]) };
    return this.current.scrubber;
  }
}

/**
 * The credential in each auth header value: its last word (the token after a scheme like
 * `Bearer`); of a JWT, its signature. A JWT's header is the same in every token of its kind and
 * its payload is mostly names (a signed URL in an answer may carry another JWT that must stay
 * whole), while without its signature a token is worthless.
 */
function credentialsIn(headers: Record<string, string>): string[] {
  return Object.values(headers).flatMap((value) => {
    const token = /\S+$/.exec(value)?.[0];
    if (!token) return [];
    const jwt = /^[\w-]+\.[\w-]+\.([\w-]+)$/.exec(token);
    return [jwt ? jwt[1]! : token];
  });
}

export class HttpUpstreamClient implements UpstreamClient {
  private readonly http: AxiosInstance;
  private readonly now: () => number;
  private readonly agents: { httpAgent: http.Agent; httpsAgent: https.Agent };
  /**
   * The key, auth secrets, the base URL's credentials and sent tokens, removed in every encoding
   * from what the upstream sends back (an error that echoes the request).
   */
  private readonly secrets: AnswerScrubber;
  readonly apiShape: string | undefined;

  constructor(
    private readonly options: UpstreamClientOptions,
    private readonly context: Record<string, string> = {},
    /** The pool and axios instance of the client this one is a `withContext` copy of. */
    shared?: { agents: { httpAgent: http.Agent; httpsAgent: https.Agent }; http: AxiosInstance; secrets: AnswerScrubber },
    /** Secrets of this copy's calls alone (a task's callback token), removed from their answers too. */
    private readonly callSecrets?: SecretScrubber,
  ) {
    this.now = options.now ?? Date.now;
    this.secrets = shared?.secrets ?? new AnswerScrubber([options.apiKey, ...(options.auth?.secrets ?? []), ...urlCredentials(options.baseUrl)]);
    this.apiShape = options.apiShape;
    // Shared by every `withContext` copy (one per call), so connections are pooled per provider
    // and a call builds no axios instance of its own.
    this.agents =
      shared?.agents ??
      providerAgents(
        options.connectTimeoutMs !== undefined && options.connectTimeoutMs < options.timeoutMs ? options.connectTimeoutMs : undefined,
      );
    this.http =
      shared?.http ??
      axios.create({
        ...this.agents,
        baseURL: options.baseUrl.replace(/\/+$/, ''),
        validateStatus: () => true,
        maxRedirects: 0,
        ...(environmentNamesProxy() ? {} : { proxy: false as const }),
        // Upstream answers are small JSON; anything bigger is an error page we only log.
        maxContentLength: 4 * 1024 * 1024,
        headers: { 'user-agent': 'kling-gateway/0.1', accept: 'application/json' },
      });
  }

  /**
   * A client whose log lines and metrics carry this context (task id, request id), and whose
   * answers lose `secrets` as well: what its calls send besides the credentials (a task's
   * callback token in the callback URL), which an upstream quoting the request would send back.
   */
  withContext(context: Record<string, string>, secrets: readonly string[] = []): HttpUpstreamClient {
    const callSecrets = secrets.length > 0 ? new SecretScrubber([...secrets]) : this.callSecrets;
    return new HttpUpstreamClient(this.options, { ...this.context, ...context }, { agents: this.agents, http: this.http, secrets: this.secrets }, callSecrets);
  }

  /** `data` without any secret of the client or of this call. */
  private scrubbed(data: unknown, secrets: SecretScrubber): unknown {
    const clean = secrets.scrubDeep(data);
    return this.callSecrets ? this.callSecrets.scrubDeep(clean) : clean;
  }

  async send(request: UpstreamRequest, signal?: AbortSignal): Promise<UpstreamResponse> {
    const { provider } = this.options;
    const started = this.now();
    // One controller and one timer per call: `AbortSignal.any` over the caller's long-lived
    // signal registered every call with it (weak references the GC then had to sweep).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.options.timeoutMs);
    const forwardAbort = () => controller.abort(signal?.reason);
    if (signal?.aborted) forwardAbort();
    else signal?.addEventListener('abort', forwardAbort, { once: true });
    const query = request.query ? `?${new URLSearchParams(request.query).toString()}` : '';
    const url = `${request.path}${query}`;
    const record = (outcome: string, status?: number) =>
      this.options.onCall?.({
        provider: provider.id,
        operation: request.operation,
        method: request.method,
        path: request.path,
        status,
        outcome,
        durationMs: this.now() - started,
        context: this.context,
      });

    let written = false;
    const transports = writeTrackingTransport(() => {
      written = true;
    });
    const baseUrl = this.options.baseUrl;
    // A key's headers are made of the key, scrubbed anyway; signed headers carry a token of their own.
    let sentCredentials: string[] = [];
    let response;
    try {
      const authHeaders = this.options.auth ? await this.options.auth.headers() : provider.authHeaders(this.options.apiKey);
      if (this.options.auth) sentCredentials = credentialsIn(authHeaders);
      response = await this.http.request({
        transport: baseUrl.startsWith('https:') ? transports.https : transports.http,
        method: request.method,
        url,
        data: request.body,
        headers: {
          ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...authHeaders,
        },
        signal: controller.signal,
      });
    } catch (error) {
      if (signal?.aborted) {
        record('aborted');
        throw signal.reason ?? error;
      }
      if (error instanceof AxiosError && (error.response !== undefined || error.code === AxiosError.ERR_BAD_RESPONSE)) {
        // An answer arrived but could not be read (too large, broken): the upstream acted on
        // the request, so a create may exist there.
        record('unreadable', error.response?.status);
        throw new UpstreamError({
          provider: provider.id,
          operation: request.operation,
          url,
          code: 'provider_error',
          message: `${provider.id} answered but the answer could not be read: ${error.message}`,
          ...(error.response?.status !== undefined ? { statusCode: error.response.status } : {}),
          mayHaveCreated: true,
        });
      }
      const failure = transportFailureOf(error, written, timedOut);
      record(failure);
      throw new UpstreamError({
        provider: provider.id,
        operation: request.operation,
        url,
        code: failure === 'timeout' || (failure === 'not_sent' && timedOut) ? 'timeout' : 'provider_error',
        message: transportMessage(provider.id, failure, this.options),
        transport: failure,
      });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forwardAbort);
    }

    const secrets = this.secrets.for(sentCredentials);
    const headers = plainHeaders(response.headers);
    if (response.status >= 200 && response.status < 300) {
      record('ok', response.status);
      return { status: response.status, headers, data: this.scrubbed(response.data, secrets), receivedAt: (this.options.clockNow ?? Date.now)() };
    }
    const body = this.scrubbed(response.data, secrets);
    const mapped = provider.mapHttpError(response.status, body);
    record(answerOutcome(response.status, mapped.code), response.status);
    // A create answered with a server error beside a task id may have made that task (a refusal
    // of its credits, rate or request made none): asked about, never sent to another provider.
    const named = request.operation === 'submit' && response.status >= 500 && mapped.code === 'provider_error' ? mapped.namedTaskId : undefined;
    throw new UpstreamError({
      provider: provider.id,
      operation: request.operation,
      url,
      code: mapped.code,
      message: mapped.message,
      providerCode: mapped.providerCode,
      statusCode: response.status,
      responseBody: truncateBody(body),
      retryAfterMs: parseRetryAfter(headers['retry-after'], (this.options.clockNow ?? Date.now)()),
      // Redirects are not followed. A 303 See Other to a POST is the server saying it acted on the
      // request and where its result is (RFC 9110 §15.4.4): the task may exist, so it is no refusal.
      // The other redirects move the resource without acting on the request.
      mayHaveCreated: (response.status === 303 && request.method === 'POST') || named !== undefined,
      ...(named !== undefined ? { namedTaskId: named } : {}),
    });
  }
}
