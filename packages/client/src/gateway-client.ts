/**
 * The typed client of the Kling Gateway API. Requests and answers are typed by the paths of
 * `openapi/gateway.json` (openapi-typescript + openapi-fetch), so a call the document does not
 * describe fails to compile; errors arrive as `GatewayError` with the problem details.
 *
 * Works in Node 20 and in browsers (fetch, streams): the CLI and the web console both use it.
 */
import createClient from 'openapi-fetch';
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { paths } from './gateway-api.generated.js';
import {
  answersJson,
  CreateAbortedError,
  EndpointNotAvailableError,
  errorFromResponse,
  GatewayError,
  GatewayUnreachableError,
  namesDoubledPrefix,
  namesNoRoute,
  NoAnswerError,
  OutputUnavailableError,
  UnexpectedAnswerError,
  WaitTimeoutError,
} from './gateway-errors.js';
import {
  isTerminal,
  type CreateVideoRequest,
  type ListVideosQuery,
  type ModelList,
  type OutputDownload,
  type ProviderList,
  type Quote,
  type Task,
  type TaskEvent,
  type TaskList,
  type UsageQuery,
  type UsageReport,
  type WebhookDeliveryList,
} from './gateway-types.js';

/**
 * Endpoints of this API version (SPEC §7) that a gateway may not have yet. The client calls them
 * without generated types until openapi/gateway.json describes them (a test says when it does).
 */
export const OPTIONAL_ENDPOINTS = {
  cancel: 'POST /v1/videos/{id}/cancel',
  content: 'GET /v1/videos/{id}/content',
  usage: 'GET /v1/usage',
  webhooks: 'GET /v1/videos/{id}/webhooks',
} as const;

export type OptionalEndpoint = keyof typeof OPTIONAL_ENDPOINTS;

export interface GatewayClientOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string;
  /** A gateway key (`Authorization: Bearer`). Sent only to the gateway's own origin. */
  apiKey: string;
  /** A fetch implementation (tests, proxies); the global one by default. */
  fetch?: typeof globalThis.fetch;
  /** Extra headers on every request to the gateway. */
  headers?: Record<string, string>;
  /**
   * Longest a request waits for the gateway's answer before it fails with `NoAnswerError`: the
   * whole answer of a JSON call, the start of an event stream or a download (which then take as
   * long as they take). A `?wait=` long poll gets its window on top. Default 120 s (a create that
   * fails over between providers may take a minute); 0: no limit of the client's own.
   */
  timeoutMs?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface CreateOptions extends RequestOptions {
  /**
   * `Idempotency-Key`: a repeat with the same key and body returns the same task. Without one
   * the client makes a random key for this create; either way an error of the create names it
   * (`error.idempotencyKey`), for sending the create again without making a second video.
   */
  idempotencyKey?: string;
}

/**
 * A random `Idempotency-Key`, `<prefix>-` and 32 hex digits. From random bytes, not
 * `crypto.randomUUID()`: browsers offer that only in a secure context, and a page served over
 * plain http from another host than localhost (`http://gateway.internal:8080/console`) is not one.
 */
export function randomIdempotencyKey(prefix = 'client'): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

export interface DownloadOptions extends RequestOptions {
  /** Which output of the task (default 0). */
  index?: number;
  /**
   * The byte to start at (default 0, the whole file): to resume a download that broke off after
   * that many bytes. A file that ends before it throws `RangeError`.
   */
  from?: number;
  /**
   * With `from`: the `validator` of the download being resumed, sent as `If-Range`. While the file
   * is still that one the rest of it comes; a file that changed since comes whole (`start` 0), to
   * be written over from its first byte rather than spliced onto the bytes of the old one.
   */
  ifRange?: string;
}

/** The tasks `listAllVideos` yields, and where it is in the list. */
export interface VideoListing extends AsyncGenerator<Task> {
  /**
   * The cursor of the page being read (undefined: the first page, when the listing began without
   * one). After an error, pass it as `query.cursor` to go on from that page.
   */
  readonly cursor: string | undefined;
}

export interface EventStreamOptions extends RequestOptions {
  /**
   * Ends the stream when nothing arrived for this long, not even the heartbeat the gateway sends
   * every 15 s: a connection that died without closing (a laptop that slept, a dropped route).
   * Default 45 s; 0 never.
   */
  idleTimeoutMs?: number;
}

export interface WaitOptions extends RequestOptions {
  /** Give up after this long (default 30 minutes, the gateway's default task deadline). */
  timeoutMs?: number;
  /** Called with the task whenever its status or `updated_at` changes. */
  onUpdate?: (task: Task) => void;
  /**
   * `auto` (default): the event stream, and long polling (`?wait=`) if the stream cannot be
   * opened or ends early (a proxy that buffers or cuts streams). `poll`: long polling only.
   */
  transport?: 'auto' | 'poll';
  /** Longest single `?wait=` when polling, in whole seconds (default 10, 1 to 60; a fraction is cut to the seconds within it). */
  pollWindowSeconds?: number;
  /** How long the event stream may stay silent before the wait goes on by polling (default 45 s). */
  streamIdleTimeoutMs?: number;
}

const DEFAULT_WAIT_MS = 30 * 60_000;
const DEFAULT_ANSWER_TIMEOUT_MS = 120_000;
/** Three of the gateway's 15-second heartbeats missed: the event stream's connection is dead. */
const DEFAULT_STREAM_IDLE_MS = 45_000;
/** Longest delay a timer keeps (about 24 days). */
const MAX_TIMER_MS = 2_147_483_647;

/** Statuses whose answer has no body (a Response built with one throws). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** `response` with `body`, read already, in place of its stream; still naming the URL that answered (after redirects). */
function withBody(response: Response, body: ArrayBuffer | Blob): Response {
  const copy = new Response(NULL_BODY_STATUSES.has(response.status) ? null : body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  Object.defineProperty(copy, 'url', { value: response.url });
  return copy;
}

/** Redirect statuses, followed by hand where the caller's extra headers must stay at the gateway. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Redirects followed before giving up, as fetch does. */
const MAX_REDIRECTS = 20;

/** Statuses that say the request itself is wrong; waiting or retrying cannot help. */
const FINAL_ERROR_STATUSES = new Set([400, 401, 403, 404]);

/** Answers a read gets while a gateway is busy, stopping or behind a restarting proxy: asked again. */
const PASSING_ERROR_STATUSES = new Set([429, 502, 503, 504]);
/** Pause before a read is asked again when the answer named no `Retry-After`. */
const DEFAULT_RETRY_PAUSE_MS = 1_000;
/** Polls in a row that may fail so before the wait gives up (a gateway that stays away is an error). */
const MAX_FAILED_POLLS = 3;
/** What ended a wait whose time was up (as opposed to the caller's abort reason). */
const TIMED_OUT = Symbol('timed out');

/** How long to pause before reading again after `error`; undefined when reading again cannot help. */
function retryPauseOf(error: unknown): number | undefined {
  if (error instanceof GatewayUnreachableError) return DEFAULT_RETRY_PAUSE_MS;
  if (error instanceof GatewayError && PASSING_ERROR_STATUSES.has(error.status)) {
    return error.retryAfterSeconds !== null ? error.retryAfterSeconds * 1000 : DEFAULT_RETRY_PAUSE_MS;
  }
  return undefined;
}

/**
 * Whether `id` can name a task in a path: `""`, `.` and `..` cannot, since a URL resolves them into
 * another path (`/v1/videos/` is the list, `/v1/videos/..` is `/v1/`), whose answer would be read
 * as the task's.
 */
export function isTaskIdSegment(id: string): boolean {
  return id !== '' && id !== '.' && id !== '..';
}

/** A task id as a path segment; one that cannot be one is never sent (`isTaskIdSegment`). */
function taskSegment(id: string): string {
  if (!isTaskIdSegment(id)) throw new TypeError(`task id ${JSON.stringify(id)} names no task: it would send the request to another route`);
  return encodeURIComponent(id);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', abort, { once: true });
  });
}

export class GatewayClient {
  readonly baseUrl: string;
  private readonly origin: string;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly api: ReturnType<typeof createClient<paths>>;
  private readonly headers: Record<string, string>;
  /** The key, removed from any error text an answer quotes it in. */
  private readonly secrets: readonly string[];
  private readonly timeoutMs: number;
  /** Whether the caller gave headers of its own, which must not follow a redirect to another origin. */
  private readonly hasExtraHeaders: boolean;
  private endpoints: Promise<Set<string> | null> | undefined;

  constructor(options: GatewayClientOptions) {
    // Blanks around it (a `.env` line's trailing space) are not part of the URL, as a URL parser
    // reads it; kept, they went into every path (`http://host:8080 /v1/videos`).
    this.baseUrl = options.baseUrl.replace(/^[\u0000-\u0020]+/, '').replace(/[\u0000-\u0020/]+$/, '');
    this.origin = httpOrigin(options.baseUrl);
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.fetchImpl = fetchImpl;
    const unsendable = unsendableKeyCharacter(options.apiKey);
    // fetch would refuse every request with a message that quotes the whole key.
    if (unsendable) throw new TypeError(`apiKey holds ${unsendable}, which an HTTP header cannot carry`);
    this.headers = { ...options.headers, authorization: `Bearer ${options.apiKey}` };
    this.hasExtraHeaders = Object.keys(options.headers ?? {}).length > 0;
    this.secrets = [options.apiKey];
    const timeoutMs = options.timeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new TypeError(`timeoutMs is ${timeoutMs}: give milliseconds (0 for no limit)`);
    this.timeoutMs = timeoutMs;
    this.api = createClient<paths>({
      baseUrl: this.baseUrl,
      headers: this.headers,
      fetch: async (request) => {
        // `GET /v1/videos/{id}?wait=N` holds up to N seconds on purpose.
        const held = Number(new URL(request.url).searchParams.get('wait')) || 0;
        const response = await this.fetchWithin(request, {}, { url: this.baseUrl, whole: true, heldMs: held * 1000 });
        // Every path the generated types describe answers JSON: anything else is not the gateway.
        if (response.ok) {
          await this.expectJson(response, request.method);
          await this.expectParsedJson(response, request);
        }
        return response;
      },
    });
  }

  // ---- videos ---------------------------------------------------------------------------

  /** `POST /v1/videos`: creates a task (202). */
  async createVideo(body: CreateVideoRequest, options: CreateOptions = {}): Promise<Task> {
    // An empty key would go unsent: a create sent again after a lost answer could make a second video.
    if (options.idempotencyKey !== undefined && options.idempotencyKey.trim() === '') {
      throw new TypeError('idempotencyKey is empty: give a key, or leave it out');
    }
    // Always sent: a create whose answer is lost can then be sent again without a second video.
    const idempotencyKey = options.idempotencyKey ?? randomIdempotencyKey();
    try {
      return await this.unwrap(
        await this.api.POST('/v1/videos', {
          body,
          params: { header: { 'idempotency-key': idempotencyKey } },
          ...this.signalOf(options),
        }),
      );
    } catch (error) {
      if (error instanceof GatewayError || error instanceof GatewayUnreachableError) error.idempotencyKey = idempotencyKey;
      else if (options.signal?.aborted) throw new CreateAbortedError(error, idempotencyKey);
      throw error;
    }
  }

  /** `GET /v1/videos/{id}`, optionally holding up to `wait` seconds (≤ 60) for a terminal status. */
  async getVideo(id: string, options: RequestOptions & { wait?: number } = {}): Promise<Task> {
    taskSegment(id);
    return this.unwrap(
      await this.api.GET('/v1/videos/{id}', {
        params: { path: { id }, ...(options.wait ? { query: { wait: options.wait } } : {}) },
        ...this.signalOf(options),
      }),
    );
  }

  /** `GET /v1/videos`: one page of the caller's tasks, newest first. */
  async listVideos(query: ListVideosQuery = {}, options: RequestOptions = {}): Promise<TaskList> {
    return this.unwrap(await this.api.GET('/v1/videos', { params: { query }, ...this.signalOf(options) }));
  }

  /**
   * Every task matching `query`, following `next_cursor` page by page (from `query.cursor` when
   * given). The listing's `cursor` is that of the page it is on: after an error (or a `break`),
   * `listAllVideos({ ...query, cursor: listing.cursor })` goes on from that page, read again
   * whole, so nothing is skipped.
   */
  listAllVideos(query: ListVideosQuery = {}, options: RequestOptions = {}): VideoListing {
    const place: { cursor: string | undefined } = { cursor: query.cursor ?? undefined };
    const listing = this.pagesFrom(query, options, place);
    return Object.defineProperty(listing, 'cursor', { get: () => place.cursor, enumerable: true }) as VideoListing;
  }

  /** The tasks of `listAllVideos`, page by page from `place.cursor`, which moves on once a page is all yielded. */
  private async *pagesFrom(query: ListVideosQuery, options: RequestOptions, place: { cursor: string | undefined }): AsyncGenerator<Task> {
    for (;;) {
      const { cursor } = place;
      const page = await this.listVideos({ ...query, ...(cursor ? { cursor } : {}) }, options);
      yield* page.data;
      // The last page keeps its own cursor: the listing is done, and reading from there ends it again.
      if (!page.next_cursor) return;
      place.cursor = page.next_cursor;
    }
  }

  /** `POST /v1/videos/quote`: who would serve the request, in which order, for how much. */
  async quote(body: CreateVideoRequest, options: RequestOptions = {}): Promise<Quote> {
    return this.unwrap(await this.api.POST('/v1/videos/quote', { body, ...this.signalOf(options) }));
  }

  /**
   * `GET /v1/videos/{id}/events`: the task's status changes as they happen, read with fetch (so
   * the key travels in the Authorization header, which EventSource cannot send). Ends when the
   * task is terminal, the stream closes, or it stays silent past `idleTimeoutMs`.
   */
  async *videoEvents(id: string, options: EventStreamOptions = {}): AsyncGenerator<TaskEvent> {
    const idleMs = idleLimit('idleTimeoutMs', options.idleTimeoutMs);
    const url = `${this.baseUrl}/v1/videos/${taskSegment(id)}/events`;
    const response = await this.send(url, { headers: { accept: 'text/event-stream' }, ...this.signalOf(options) });
    if (!response.ok) throw await this.errorWithin(response, this.baseUrl);
    if (!response.body || !(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      await response.body?.cancel();
      throw new GatewayUnreachableError(url, new Error('the answer is not an event stream'));
    }
    // Every chunk (heartbeats included) restarts the idle timer; when it fires, the reader is
    // cancelled, which ends the read in progress and drops the connection.
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idleTimer);
      if (idleMs > 0 && idleMs <= MAX_TIMER_MS) idleTimer = setTimeout(() => void reader.cancel().catch(() => undefined), idleMs);
    };
    const activity = new TransformStream<ArrayBufferView | ArrayBuffer, ArrayBufferView | ArrayBuffer>({
      transform(chunk, controller) {
        arm();
        controller.enqueue(chunk);
      },
    });
    const reader = response.body
      .pipeThrough(activity)
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
      .getReader();
    arm();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        if (!value.data) continue;
        yield { event: value.event ?? 'message', id: value.id, task: JSON.parse(value.data) as Task };
      }
    } finally {
      clearTimeout(idleTimer);
      await reader.cancel().catch(() => undefined);
    }
  }

  /**
   * Resolves with the task once it is terminal (succeeded, failed or canceled: an ended task is
   * the answer, never an error); throws `WaitTimeoutError` when `timeoutMs` passes first, also
   * while a read is held unanswered, and the caller's abort reason when `signal` aborts. Follows the event stream, and falls back to
   * long polling when the stream cannot be used. A poll answered 429, 502, 503 or 504 (after its
   * `Retry-After`), or that could not reach the gateway, is sent again, up to three times in a row:
   * the task goes on meanwhile (a replica stopping for a deploy, a dropped connection).
   */
  async waitForVideo(id: string, options: WaitOptions = {}): Promise<Task> {
    taskSegment(id);
    // Refused here, not found out in the middle of a wait: no number is no `?wait=` at all, and
    // every poll would be answered at once, one after the other until the task ended.
    if (options.pollWindowSeconds !== undefined && Number.isNaN(options.pollWindowSeconds)) {
      throw new TypeError('pollWindowSeconds is NaN: give seconds (1 to 60)');
    }
    // No number is no deadline and no `?wait=` either (its window is cut to the time left): poll
    // after poll, each answered at once, until the task ended.
    if (options.timeoutMs !== undefined && Number.isNaN(options.timeoutMs)) {
      throw new TypeError('timeoutMs is NaN: give milliseconds (Infinity for no limit)');
    }
    if (options.streamIdleTimeoutMs !== undefined) idleLimit('streamIdleTimeoutMs', options.streamIdleTimeoutMs);
    // The gateway holds a poll for whole seconds only (`?wait=2.5` is a 400): the longest window
    // is the whole seconds within the one given.
    const window = Math.min(60, Math.max(1, Math.floor(options.pollWindowSeconds ?? 10)));
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
    const deadline = Date.now() + timeoutMs;
    let last: Task | undefined;
    const seen = (task: Task) => {
      if (!last || last.status !== task.status || last.updated_at !== task.updated_at) options.onUpdate?.(task);
      last = task;
    };
    // The time is up: WaitTimeoutError with the task as last seen. A wait that never got a read
    // back (its polls held by a proxy) reads the task once now; if it ended meanwhile, it is the
    // answer, not a WaitTimeoutError saying it is "still succeeded".
    const outOfTime = async (): Promise<Task> => {
      if (last) throw new WaitTimeoutError(last, timeoutMs);
      const now = await this.getVideo(id, this.signalOf(options));
      seen(now);
      if (isTerminal(now)) return now;
      throw new WaitTimeoutError(now, timeoutMs);
    };

    // Ends the stream and any poll under way when the wait's time is up or the caller aborts: a
    // long poll a proxy holds (or a gateway that never answers) must not outlast `timeoutMs`, which
    // the client's own answer limit (`timeoutMs` of the client, minutes or none) would let it do.
    // A timer past 2^31 - 1 ms (Infinity included) fires at once, with a warning: a wait that long
    // has no timer, and the polls below mind the deadline.
    const ending = new AbortController();
    const timer = timeoutMs <= MAX_TIMER_MS ? setTimeout(() => ending.abort(new Error('wait timed out')), timeoutMs) : undefined;
    const forward = () => ending.abort(options.signal?.reason);
    if (options.signal?.aborted) forward();
    else options.signal?.addEventListener('abort', forward, { once: true });
    /** After a failed read: the caller's abort reason, `TIMED_OUT`, or undefined while the wait goes on. */
    const ended = (error: unknown): unknown => {
      if (options.signal?.aborted) return options.signal.reason ?? error;
      return ending.signal.aborted || Date.now() >= deadline ? TIMED_OUT : undefined;
    };
    try {
      if (options.transport !== 'poll') {
        try {
          const events = this.videoEvents(id, {
            signal: ending.signal,
            ...(options.streamIdleTimeoutMs !== undefined ? { idleTimeoutMs: options.streamIdleTimeoutMs } : {}),
          });
          for await (const { task } of events) {
            seen(task);
            if (isTerminal(task)) return task;
          }
          // The stream closed or went silent before the end (a proxy, a restarting replica, a dead
          // connection): poll from here.
        } catch (error) {
          const end = ended(error);
          if (end === TIMED_OUT) return await outOfTime();
          if (end !== undefined) throw end;
          if (error instanceof GatewayError && FINAL_ERROR_STATUSES.has(error.status)) throw error;
        }
      }

      let failedPolls = 0;
      while (true) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return await outOfTime();
        let task: Task;
        try {
          task = await this.getVideo(id, { wait: Math.min(window, Math.ceil(remaining / 1000)), signal: ending.signal });
        } catch (error) {
          const end = ended(error);
          if (end === TIMED_OUT) return await outOfTime();
          if (end !== undefined) throw end;
          // A busy or stopping gateway, or a lost connection: the task goes on, so the wait does too.
          const retryPause = retryPauseOf(error);
          failedPolls += 1;
          if (retryPause === undefined || failedPolls > MAX_FAILED_POLLS) throw error;
          try {
            await pause(Math.min(retryPause, Math.max(0, deadline - Date.now())), ending.signal);
          } catch (stopped) {
            const stop = ended(stopped);
            if (stop === TIMED_OUT) return await outOfTime();
            throw stop ?? stopped;
          }
          continue;
        }
        failedPolls = 0;
        seen(task);
        if (isTerminal(task)) return task;
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', forward);
    }
  }

  /**
   * `POST /v1/videos/{id}/cancel`: a task no provider holds yet ends `canceled` at cost 0; one an
   * upstream holds answers 409. `EndpointNotAvailableError` on a gateway without cancel.
   */
  async cancelVideo(id: string, options: RequestOptions = {}): Promise<Task> {
    const response = await this.sendOptional('cancel', `/v1/videos/${taskSegment(id)}/cancel`, {
      method: 'POST',
      ...this.signalOf(options),
    }, true);
    return this.readJson<Task>(response, 'POST');
  }

  /**
   * `GET /v1/videos/{id}/webhooks`: each event sent (or being sent) to the task's `webhook_url`,
   * oldest first, with its tries, last status and error. `EndpointNotAvailableError` on a
   * gateway without it.
   */
  async webhookDeliveries(id: string, options: RequestOptions = {}): Promise<WebhookDeliveryList> {
    const response = await this.sendOptional('webhooks', `/v1/videos/${taskSegment(id)}/webhooks`, this.signalOf(options), true);
    return this.readJson<WebhookDeliveryList>(response, 'GET');
  }

  /**
   * Streams output `index` of a task: the gateway's stored copy (`GET /v1/videos/{id}/content`)
   * where the gateway keeps one (`storage: stored`, or a gateway that does not say), otherwise the
   * output's own URL. The gateway key is only ever sent to the gateway's origin, never to a
   * provider's file host. `from` resumes a download that broke off: the body starts at that byte,
   * by HTTP Range where the server honours it (the gateway's stored copy does), else by skipping.
   */
  async downloadOutput(id: string, options: DownloadOptions = {}): Promise<OutputDownload> {
    const index = options.index ?? 0;
    const from = options.from ?? 0;
    if (!Number.isSafeInteger(from) || from < 0) throw new TypeError(`from is ${from}: give a byte offset (0 or more)`);
    const ifRange = from > 0 ? options.ifRange : undefined;
    const task = await this.getVideo(id, this.signalOf(options));
    const output = task.outputs[index];
    if (!output && task.outputs.length === 0 && (task.status === 'queued' || task.status === 'processing')) {
      // As the gateway's content route answers it: not "no such output", the task is still being made.
      const detail = `video ${id} is still ${task.status}; its outputs are served once the task has succeeded.`;
      throw new GatewayError(409, { type: 'https://kling-gateway.dev/problems/conflict', title: 'Conflict', status: 409, detail }, null);
    }
    if (!output) {
      throw new GatewayError(
        404,
        { type: 'about:blank', title: 'Not found', status: 404, detail: `video ${id} has no output ${index} (it has ${task.outputs.length})` },
        null,
      );
    }
    const storage = (output as { storage?: string }).storage;
    if ((storage === undefined || storage === 'stored') && (await this.hasEndpoint('content')) === true) {
      const url = `${this.baseUrl}/v1/videos/${taskSegment(id)}/content?index=${index}`;
      // The gateway may redirect to another host (a presigned object-storage URL, the provider's
      // file): that host's 4xx is about the file, not the gateway key or the task.
      // A 416 (nothing from byte `from` on) is answered below, from wherever it came.
      const refusedElsewhere = (answer: Response) => answer.status === 416 || (answer.status >= 400 && answer.status < 500 && !this.isOwn(answer.url));
      const response = await this.sendOptional('content', url.slice(this.baseUrl.length), { ...rangeFrom(from, ifRange), ...this.signalOf(options) }, false, refusedElsewhere).catch(
        (error: unknown) => {
          throw goneOutput(error, id, index);
        },
      );
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        if (response.status === 416) throw nothingFrom(response, id, index, from);
        throw new OutputUnavailableError(id, index, response.status, new URL(response.url).origin);
      }
      return await this.toDownload(response, 'gateway', response.url || url, { id, index, from, ifRange });
    }
    const url = new URL(output.url, `${this.baseUrl}/`);
    const own = url.origin === this.origin;
    const response = await this.send(url.href, { ...rangeFrom(from, ifRange), ...this.signalOf(options) });
    if (response.status === 416) {
      await response.body?.cancel().catch(() => undefined);
      throw nothingFrom(response, id, index, from);
    }
    if (!own && response.status >= 400 && response.status < 500) {
      await response.body?.cancel().catch(() => undefined);
      throw new OutputUnavailableError(id, index, response.status);
    }
    if (!response.ok) throw goneOutput(await this.errorWithin(response, own ? this.baseUrl : url.href), id, index);
    return await this.toDownload(response, own ? 'gateway' : 'upstream', url.href, { id, index, from, ifRange });
  }

  // ---- catalog and operations -------------------------------------------------------------

  /** `GET /v1/models`: canonical models and operations, and who serves each. */
  async listModels(options: RequestOptions = {}): Promise<ModelList> {
    return this.unwrap(await this.api.GET('/v1/models', this.signalOf(options)));
  }

  /** `GET /v1/providers`: each provider's circuit, load, success rate, latency and prices. */
  async listProviders(options: RequestOptions = {}): Promise<ProviderList> {
    return this.unwrap(await this.api.GET('/v1/providers', this.signalOf(options)));
  }

  /** `GET /v1/usage`: spend and outcomes grouped as asked. `EndpointNotAvailableError` without it. */
  async usage(query: UsageQuery = {}, options: RequestOptions = {}): Promise<UsageReport> {
    const response = await this.sendOptional('usage', `/v1/usage${usageQueryString(query)}`, this.signalOf(options), true);
    return this.readJson<UsageReport>(response, 'GET');
  }

  /** `GET /v1/usage?format=csv`: the same report as CSV text. */
  async usageCsv(query: UsageQuery = {}, options: RequestOptions = {}): Promise<string> {
    const response = await this.sendOptional('usage', `/v1/usage${usageQueryString(query, 'csv')}`, this.signalOf(options), true);
    return response.text();
  }

  /**
   * Whether the gateway has an endpoint, from its own OpenAPI document (`/openapi.json`, read
   * once it could be read): `true`/`false`, or `null` when the document cannot be read. A read
   * that failed is not kept: a gateway restarting or a dropped connection at the first call must
   * not leave the client without the document for its whole life, so the next call reads again.
   */
  async hasEndpoint(endpoint: OptionalEndpoint): Promise<boolean | null> {
    const reading = (this.endpoints ??= this.readEndpoints());
    const endpoints = await reading;
    // Calls waiting on the same read share its failure; one that began a newer read keeps that.
    if (endpoints === null && this.endpoints === reading) this.endpoints = undefined;
    return endpoints ? endpoints.has(OPTIONAL_ENDPOINTS[endpoint]) : null;
  }

  /** Forgets what `/openapi.json` said (after the gateway was upgraded). */
  forgetEndpoints(): void {
    this.endpoints = undefined;
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private async readEndpoints(): Promise<Set<string> | null> {
    try {
      const response = await this.fetchWithin(`${this.baseUrl}/openapi.json`, {}, { url: this.baseUrl, whole: true });
      if (!response.ok) return null;
      const document = (await response.json()) as { paths?: Record<string, Record<string, unknown>> };
      const endpoints = new Set<string>();
      for (const [path, item] of Object.entries(document.paths ?? {})) {
        for (const method of Object.keys(item)) endpoints.add(`${method.toUpperCase()} ${path}`);
      }
      return endpoints;
    } catch {
      return null;
    }
  }

  /** A request to one of the optional endpoints; throws unless the answer is 2xx. */
  private async sendOptional(
    endpoint: OptionalEndpoint,
    pathAndQuery: string,
    init: RequestInit = {},
    whole = false,
    /** An answer other than 2xx the caller takes on itself. */
    handled?: (response: Response) => boolean,
  ): Promise<Response> {
    if ((await this.hasEndpoint(endpoint)) === false) throw new EndpointNotAvailableError(OPTIONAL_ENDPOINTS[endpoint]);
    const response = await this.send(`${this.baseUrl}${pathAndQuery}`, init, whole);
    if (response.ok || handled?.(response)) return response;
    const error = await this.errorWithin(response, this.baseUrl);
    // A gateway whose document could not be read: its router's own 404 says the route is missing
    // (unless the base URL ends in /v1: that mistake is the caller's to hear about, not a missing endpoint).
    if (namesNoRoute(error) && !namesDoubledPrefix(error)) {
      throw new EndpointNotAvailableError(OPTIONAL_ENDPOINTS[endpoint]);
    }
    throw error;
  }

  /**
   * A request outside openapi-fetch: the gateway's headers (and key) go to its own origin only.
   * `whole`: the time limit covers the body too (a JSON answer), not only its start (a stream or
   * a download).
   */
  private async send(url: string, init: RequestInit, whole = false, hops = 0): Promise<Response> {
    const own = new URL(url).origin === this.origin;
    const headers = new Headers(own ? this.headers : {});
    for (const [name, value] of new Headers(init.headers)) headers.set(name, value);
    if (!own) headers.delete('authorization');
    const how = { url: own ? this.baseUrl : url, whole };
    // fetch drops Authorization when a redirect leaves the origin, but not the caller's extra
    // `headers` (a proxy's token): a download from the gateway, which may redirect (its content
    // route, to a presigned storage URL or the provider's file), follows redirects here, each hop
    // with the headers of its own origin. Where fetch hides the redirect (a browser's opaque
    // answer), it is followed as fetch follows it. (A JSON answer, read whole, is never redirected.)
    const method = (init.method ?? 'GET').toUpperCase();
    if (!own || whole || method !== 'GET' || !this.hasExtraHeaders) return this.fetchWithin(url, { ...init, headers }, how);
    const response = await this.fetchWithin(url, { ...init, headers, redirect: 'manual' }, how);
    if (response.type === 'opaqueredirect') return this.fetchWithin(url, { ...init, headers }, how);
    const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get('location') : null;
    if (location === null) return response;
    await response.body?.cancel().catch(() => undefined);
    if (hops >= MAX_REDIRECTS) throw new GatewayUnreachableError(url, new Error(`more than ${MAX_REDIRECTS} redirects`));
    return this.send(new URL(location, url).href, init, whole, hops + 1);
  }

  /**
   * fetch under the client's time limit (`timeoutMs`, plus `heldMs` a long poll holds on purpose):
   * `NoAnswerError` when it passes, the caller's own abort reason when its signal aborts, and
   * `GatewayUnreachableError` for a connection that failed. With `whole`, the body is read under
   * the limit too, so a gateway that sends its headers and then stalls is no answer either.
   */
  private async fetchWithin(input: Request | string, init: RequestInit, how: { url: string; whole: boolean; heldMs?: number }): Promise<Response> {
    const outer = init.signal ?? (input instanceof Request ? input.signal : undefined);
    const limitMs = this.timeoutMs > 0 ? this.timeoutMs + (how.heldMs ?? 0) : 0;
    // A stream's body outlives this call, so the caller's signal must go on reaching it: joined by
    // `AbortSignal.any` (browsers without it read streams with no limit of the client's own). A
    // whole answer is read here, so forwarding the caller's abort until then is enough.
    const limited = limitMs > 0 && limitMs <= MAX_TIMER_MS && (how.whole || !outer || typeof AbortSignal.any === 'function');
    const limiter = limited ? new AbortController() : undefined;
    let expired = false;
    const forward = () => limiter?.abort(outer?.reason);
    const timer = limiter
      ? setTimeout(() => {
          expired = true;
          limiter.abort(new NoAnswerError(how.url, limitMs));
        }, limitMs)
      : undefined;
    let signal = limiter?.signal;
    if (limiter && outer) {
      if (!how.whole) signal = AbortSignal.any([outer, limiter.signal]);
      else if (outer.aborted) forward();
      else outer.addEventListener('abort', forward, { once: true });
    }
    try {
      const response = await this.fetchImpl(input, signal ? { ...init, signal } : init);
      if (!how.whole) return response;
      return withBody(response, await response.arrayBuffer());
    } catch (error) {
      if (expired) throw new NoAnswerError(how.url, limitMs);
      if (outer?.aborted) throw outer.reason ?? error;
      throw new GatewayUnreachableError(how.url, error);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', forward);
    }
  }

  /**
   * The error of an answer whose body `fetchWithin` left unread (an event stream's, a download's):
   * that body read under `timeoutMs`, as a JSON answer's is, so a gateway that sends an error
   * status and then stalls its body is `NoAnswerError` (`url` names the request) instead of a call
   * held forever.
   */
  private async errorWithin(response: Response, url: string): Promise<GatewayError> {
    const limitMs = this.timeoutMs;
    if (!response.body || limitMs <= 0 || limitMs > MAX_TIMER_MS) return errorFromResponse(response, undefined, this.secrets);
    const reader = response.body.getReader();
    let expired = false;
    // Cancelling the reader ends the read in progress and drops the connection.
    const timer = setTimeout(() => {
      expired = true;
      void reader.cancel().catch(() => undefined);
    }, limitMs);
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    try {
      for (let read = await reader.read(); !read.done; read = await reader.read()) chunks.push(read.value);
    } catch {
      // A body cut short reads as none, as `errorFromResponse` reads it.
      chunks.length = 0;
    } finally {
      clearTimeout(timer);
    }
    if (expired) throw new NoAnswerError(url, limitMs);
    return errorFromResponse(withBody(response, new Blob(chunks)), undefined, this.secrets);
  }

  /** Whether an answer came from the gateway's own origin (not from where a redirect led); an unknown URL counts as its own. */
  private isOwn(url: string): boolean {
    if (!url) return true;
    try {
      return new URL(url).origin === this.origin;
    } catch {
      return true;
    }
  }

  /** Throws `UnexpectedAnswerError` when a success is not JSON (the body is then dropped). */
  private async expectJson(response: Response, method: string): Promise<void> {
    if (answersJson(response)) return;
    await response.body?.cancel().catch(() => undefined);
    throw new UnexpectedAnswerError(this.baseUrl, `${method} ${new URL(response.url || this.baseUrl).pathname}`, response.headers.get('content-type') ?? '');
  }

  /**
   * Throws `UnexpectedAnswerError` when a success said to be JSON does not parse (openapi-fetch
   * reads the body again itself).
   */
  private async expectParsedJson(response: Response, request: Request): Promise<void> {
    await this.parsedJson(response.clone(), `${request.method} ${new URL(request.url).pathname}`);
  }

  /**
   * The JSON of a success's body (undefined when empty). One that does not parse is
   * `UnexpectedAnswerError`, never JSON.parse's own error, whose message quotes the body's first
   * characters: what answered may be echoing the request, and its first word the gateway key.
   */
  private async parsedJson(response: Response, request: string): Promise<unknown> {
    const text = await response.text();
    if (text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new UnexpectedAnswerError(this.baseUrl, request, response.headers.get('content-type') ?? '', true);
    }
  }

  /** The JSON body of a success outside openapi-fetch. */
  private async readJson<T>(response: Response, method: string): Promise<T> {
    await this.expectJson(response, method);
    return (await this.parsedJson(response, `${method} ${new URL(response.url || this.baseUrl).pathname}`)) as T;
  }

  /**
   * The download of an answer, starting at byte `from`: a `206` starts there already; a `200` (a
   * server that ignores Range) is the whole file, whose first `from` bytes are skipped here. A
   * `200` to a request with If-Range is the whole file of another version (or from a server that
   * ignores Range, which cannot be told apart): it starts at byte 0, none skipped.
   */
  private async toDownload(
    response: Response,
    source: OutputDownload['source'],
    url: string,
    where: { id: string; index: number; from: number; ifRange: string | undefined },
  ): Promise<OutputDownload> {
    if (!response.body) throw new GatewayUnreachableError(url, new Error('the answer has no body'));
    const header = Number(response.headers.get('content-length'));
    const length = response.headers.has('content-length') && Number.isFinite(header) ? header : null;
    const partial = response.status === 206;
    const validator = validatorOf(response.headers);
    const from = !partial && where.ifRange !== undefined ? 0 : where.from;
    // The whole file from a server that ignores Range, ending at or before `from`: what a 416 says.
    if (!partial && from > 0 && length !== null && from >= length) {
      await response.body.cancel().catch(() => undefined);
      throw nothingFromByte(where.id, where.index, from, length);
    }
    // A 206 says where its bytes start (`Content-Range: bytes 1000-…`): a host may start before the
    // byte asked (the bytes before it are skipped here), never after it (bytes would be missing).
    const range = partial ? response.headers.get('content-range') : null;
    const start = partial ? startOfContentRange(range) : 0;
    if (start === null || start > from) {
      await response.body.cancel().catch(() => undefined);
      const answered = range === null ? 'a 206 with no Content-Range' : `Content-Range ${range}`;
      const error = new GatewayUnreachableError(url, new Error(`answered ${answered} to a request from byte ${from}`));
      error.message = `${url} answered ${answered} to a request for output ${where.index} of video ${where.id} from byte ${from}`;
      throw error;
    }
    const skipped = from - start;
    const total = partial ? totalOfContentRange(range) : length;
    const size = length === null ? null : Math.max(0, length - skipped);
    return {
      body: skipped === 0 ? response.body : response.body.pipeThrough(skippingBytes(skipped)),
      size: size !== null && size > 0 ? size : null,
      contentType: response.headers.get('content-type'),
      source,
      url,
      start: from,
      total,
      validator,
    };
  }

  private signalOf(options: RequestOptions): { signal?: AbortSignal } {
    return options.signal ? { signal: options.signal } : {};
  }

  private async unwrap<T>(result: { data?: T; error?: unknown; response: Response }): Promise<T> {
    if (result.response.ok && result.data !== undefined) return result.data;
    if (result.response.ok) throw new GatewayUnreachableError(this.baseUrl, new Error(`empty ${result.response.status} answer`));
    throw await errorFromResponse(result.response, result.error, this.secrets);
  }
}

/**
 * The `Range` header asking for every byte from `from` on, with `If-Range` when the download
 * resumed has a validator; none for the whole file.
 */
function rangeFrom(from: number, ifRange: string | undefined): { headers?: Record<string, string> } {
  if (from === 0) return {};
  return { headers: { range: `bytes=${from}-`, ...(ifRange !== undefined ? { 'if-range': ifRange } : {}) } };
}

/**
 * What an answer says identifies its file, for `If-Range` when resuming: its ETag when strong (a
 * weak one never matches an If-Range), else its Last-Modified; null when neither.
 */
function validatorOf(headers: Headers): string | null {
  const etag = headers.get('etag')?.trim();
  if (etag && !etag.startsWith('W/')) return etag;
  return headers.get('last-modified')?.trim() || null;
}

/** The file's whole size from `Content-Range: bytes 0-9/1234` (or `bytes *\/1234`); null when unknown (`/*`). */
function totalOfContentRange(header: string | null): number | null {
  const total = /\/(\d+)\s*$/.exec(header ?? '')?.[1];
  return total === undefined ? null : Number(total);
}

/** The first byte of a 206 from `Content-Range: bytes 1000-1999/5000`; null when it names none. */
function startOfContentRange(header: string | null): number | null {
  const start = /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(header ?? '')?.[1];
  return start === undefined ? null : Number(start);
}

/** A 416: the file ends before byte `from`, as its `Content-Range` says (`bytes *\/1234`). */
function nothingFrom(response: Response, id: string, index: number, from: number): RangeError {
  return nothingFromByte(id, index, from, totalOfContentRange(response.headers.get('content-range')));
}

/** The file, of `total` bytes when known, ends before byte `from`. */
function nothingFromByte(id: string, index: number, from: number, total: number | null): RangeError {
  return new RangeError(`output ${index} of video ${id} ${total === null ? 'ends before byte' : `has ${total} bytes: there is nothing from byte`} ${from}${total === null ? '' : ' on'}`);
}

/** Drops the first `count` bytes of a byte stream (a whole file sent where a range was asked). */
function skippingBytes(count: number): TransformStream<Uint8Array, Uint8Array> {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      if (left >= chunk.byteLength) {
        left -= chunk.byteLength;
        return;
      }
      controller.enqueue(left > 0 ? chunk.subarray(left) : chunk);
      left = 0;
    },
  });
}

/**
 * A download's error as the caller should meet it: the gateway's `410` (its stored copy was deleted
 * after retention, or is missing) says the output can no longer be had, as a file host's 4xx does,
 * so it is `OutputUnavailableError` rather than a refusal of the request; anything else as it is.
 */
function goneOutput(error: unknown, id: string, index: number): unknown {
  return error instanceof GatewayError && error.status === 410 ? new OutputUnavailableError(id, index, 410, undefined, error.problem) : error;
}

/** `text` as an http(s) URL; undefined when it is none (`localhost:8080` parses as a URL of scheme `localhost:`). */
function httpUrlOf(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What in a gateway key an HTTP header cannot carry (the key travels in `Authorization`): a line
 * break, NUL or other control character (the tab aside) inside it, or a character outside Latin-1.
 * Undefined for a key that can be sent.
 * Names the character only, never the key.
 */
export function unsendableKeyCharacter(key: string): string | undefined {
  // Spaces, tabs and line breaks around a header value are dropped, not refused.
  const value = key.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  if (/[\r\n]/.test(value)) return 'a line break';
  if (value.includes('\u0000')) return 'a NUL character';
  // fetch refuses every other control character but the tab as well ("invalid authorization header").
  const control = /[\u0001-\u0008\u000b-\u001f\u007f]/.exec(value);
  if (control) return `a control character (U+${control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')})`;
  const foreign = /[^\u0000-\u00ff]/u.exec(value);
  return foreign ? `“${foreign[0]}”` : undefined;
}

/**
 * A URL as it may be shown: a user name and password written into it (`user:secret@host`) become
 * `***@host`, so no message repeats them. The user part runs to the last `@` before the path, as
 * URL parsers read it: a password may hold an unescaped `@` (`user:p@ss@host`).
 */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#\s]*@/i, '$1***@');
}

/**
 * The ports fetch never connects to, whatever the host: the Fetch standard's "bad ports"
 * (https://fetch.spec.whatwg.org/#port-blocking), those of other protocols (SSH, SMTP, IRC, X11 …).
 * A request to one fails with fetch's bare "bad port", which reads as a gateway that is down.
 */
const FETCH_BLOCKED_PORTS: ReadonlySet<string> = new Set(
  [
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113,
    115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556,
    563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
  ].map(String),
);

/** Why a gateway base URL cannot be used (`notHttpUrl`); each kind fails every request alike. */
export interface UnusableUrl {
  /** The URL a host (and port) written without its scheme probably meant, if it looks like one. */
  meant: string | undefined;
  /** An http(s) URL holding a user name or password: fetch refuses every request to it. */
  credentials?: true;
  /** A port fetch never connects to (`FETCH_BLOCKED_PORTS`). */
  blockedPort?: string;
  /** Written as http(s) but no URL: why, in a few words. */
  malformed?: string;
}

/**
 * Whether a gateway base URL cannot be used, and why (`UnusableUrl`): not an http(s) URL, one
 * holding a user name or password (the gateway takes its key as a Bearer token, not from the
 * URL), or one on a port fetch blocks. Undefined for a URL every request can be sent to.
 */
export function notHttpUrl(text: string): UnusableUrl | undefined {
  const url = httpUrlOf(text);
  if (url && (url.username || url.password)) return { meant: undefined, credentials: true };
  if (url && FETCH_BLOCKED_PORTS.has(url.port)) return { meant: undefined, blockedPort: url.port };
  if (url) return undefined;
  if (/^https?:\/\//i.test(text)) return { meant: undefined, malformed: malformedHttpUrl(text) };
  return { meant: /^[a-z0-9.-]+(:\d+)?(\/|$)/i.test(text) ? `http://${text}` : undefined };
}

/** What is wrong with a URL written as http(s) that does not parse, as far as can be told. */
function malformedHttpUrl(text: string): string {
  const port = /^https?:\/\/(?:\[[^\]/]*\]|[^/?#:[\]]+):([^/?#]*)/i.exec(text)?.[1];
  if (port !== undefined && /^\d+$/.test(port) && Number(port) > 65535) return `its port ${port} is past 65535`;
  if (port !== undefined && !/^\d*$/.test(port)) return `its port "${port}" is not a number`;
  return 'its host cannot be read';
}

/** The sentence a caller shows for an unusable URL, after the URL itself. */
export function unusableUrlReason(wrong: UnusableUrl): string {
  if (wrong.credentials) return 'holds a user name or password';
  if (wrong.blockedPort) {
    return `has port ${wrong.blockedPort}, which fetch (as browsers) never connects to, since other protocols use it: run the gateway on another port (e.g. 8080)`;
  }
  if (wrong.malformed) return `is not a valid URL: ${wrong.malformed}`;
  return 'is not an http(s) URL';
}

/**
 * An event stream's idle limit. No number or one below 0 is refused before anything is sent: it
 * was taken as "never idle", so a stream whose connection died without closing was read for ever.
 */
function idleLimit(name: string, ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_STREAM_IDLE_MS;
  if (Number.isNaN(ms) || ms < 0) throw new TypeError(`${name} is ${ms}: give milliseconds (0 for never)`);
  return ms;
}

/**
 * The origin of an http(s) base URL. Anything else is refused at once: every call would fail as
 * unreachable ("unknown scheme", "bad port"), or, with a password in it, fail with a message that
 * repeats it.
 */
function httpOrigin(baseUrl: string): string {
  const wrong = notHttpUrl(baseUrl);
  if (wrong?.credentials) {
    throw new TypeError(`baseUrl ${redactUrl(baseUrl)} holds a user name or password: fetch cannot send them (the gateway key goes in apiKey)`);
  }
  if (wrong?.blockedPort || wrong?.malformed) throw new TypeError(`baseUrl ${redactUrl(baseUrl)} ${unusableUrlReason(wrong)}`);
  const url = httpUrlOf(baseUrl);
  if (url) return url.origin;
  throw new TypeError(`baseUrl ${redactUrl(baseUrl)} is not an http(s) URL (e.g. ${wrong?.meant ?? 'http://127.0.0.1:8080'})`);
}

function usageQueryString(query: UsageQuery, format?: 'csv'): string {
  const params = new URLSearchParams();
  const groupBy = typeof query.group_by === 'string' ? query.group_by : query.group_by?.join(',');
  if (groupBy) params.set('group_by', groupBy);
  if (query.from) params.set('from', query.from);
  if (query.to) params.set('to', query.to);
  if (query.tenant) params.set('tenant', query.tenant);
  if (format) params.set('format', format);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** A client for one gateway and key. */
export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  return new GatewayClient(options);
}
