/**
 * The provider contract. `src/core` talks to every reseller through this interface and knows
 * nothing else about them; each `src/providers/<id>/` folder implements it.
 */
import type { UpstreamOutput, VideoRequest } from '../model/canonical.js';
import type { Offering } from '../model/offerings.js';
import type { Clock } from '../clock.js';
import type { PricingConfig } from '../model/pricing.js';
import type { RateLimitWindowSettings } from './provider-settings.js';
import type { MappedUpstreamError } from './upstream-error.js';

/** The provider's own record of an accepted task, enough to ask about it later. */
export interface ProviderTaskRef {
  providerTaskId: string;
  /** Adapter-private routing data saved with the task (e.g. which status family to poll). */
  tracking: Record<string, string>;
}

/** Normalized status of an upstream task. `unknown` is an upstream word the adapter does not know. */
export type UpstreamTaskStatus = 'queued' | 'processing' | 'succeeded' | 'failed' | 'unknown';

export interface StatusReport {
  status: UpstreamTaskStatus;
  /** The raw upstream word (kept on the task as `provider_status`). */
  providerStatus: string;
  outputs: UpstreamOutput[];
  error?: MappedUpstreamError;
  /** Credits the upstream says it charged (kling3api `consumed_credits`, legacy `final_unit_deduction`). */
  reportedCredits?: number;
  /**
   * Tracking the adapter learned on this call (e.g. the status path that answered when the
   * documented one was refused): saved on the task in place of the old, so later polls use it.
   */
  tracking?: Record<string, string>;
}

export interface SubmitResult extends StatusReport {
  ref: ProviderTaskRef;
}

/** One upstream call, described without base URL or auth (the client adds those). */
export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Path under the provider's base URL, starting with `/`. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  /** Label for metrics and logs: `submit`, `status`, ... */
  operation: string;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string>;
  data: unknown;
  /** When it came, by the gateway clock: what a `Retry-After` date in it is read against. */
  receivedAt?: number;
}

/**
 * HTTP to one provider, with its base URL, auth headers, time limit, logging and metrics.
 * Non-2xx answers and transport failures throw `UpstreamError` (mapped by the provider's
 * `mapHttpError`).
 */
export interface UpstreamClient {
  send(request: UpstreamRequest, signal?: AbortSignal): Promise<UpstreamResponse>;
  /** Which of the provider's `apiShapes` this endpoint speaks; undefined: the provider's default. */
  readonly apiShape?: string | undefined;
}

/** What one account with a provider authenticates with (today one per provider; later one of several accounts). */
export interface ProviderCredentials {
  /** A key sent as the provider's `authHeaders` say. */
  apiKey?: string | undefined;
  /** Access key + secret key, signed into a short-lived token per call (Kling's own API). */
  accessKey?: string | undefined;
  secretKey?: string | undefined;
}

/** How one account's calls are authenticated: the headers of each call, and every secret to keep out of logs and answers. */
export interface UpstreamAuth {
  headers(): Promise<Record<string, string>>;
  readonly secrets: readonly string[];
}

/** A base URL the provider is reached at by name (Kling's regions), and the API shape spoken there. */
export interface ProviderRegion {
  baseUrl: string;
  apiShape?: string;
}

export interface CallContext {
  http: UpstreamClient;
  signal?: AbortSignal;
}

export interface SubmitContext extends CallContext {
  /** The gateway's id for the task; adapters may send it upstream as an external id. */
  taskId: string;
  /** Unique per submission attempt (`<taskId>-<n>`), for upstream external ids. */
  attemptKey: string;
  /** Where the upstream should call back, when the provider supports it and it is configured. */
  callbackUrl?: string;
}

/**
 * A create whose answer the gateway never read: it stopped while the request was in flight, or
 * the connection broke after the request was written. The provider may hold the task.
 */
export interface UnansweredCreate {
  request: VideoRequest;
  /** The offering the create was sent to. */
  offering: Offering;
  /** The attempt's key (`SubmitContext.attemptKey`) as it went upstream: external id, webhook path. */
  attemptKey: string;
}

/** What a provider can tell about an unanswered create. */
export type CreateLookup =
  /** It holds the task: tracking goes on from `ref`, no second create. */
  | { kind: 'found'; ref: ProviderTaskRef }
  /** It proves it holds no task from this create. */
  | { kind: 'absent'; why: string }
  /** It cannot tell (now, or ever). */
  | { kind: 'unknown'; why: string };

export interface LookupContext extends CallContext {
  /** Which of these upstream task ids the gateway already knows (for this provider). */
  knownTaskIds(providerTaskIds: readonly string[]): Promise<ReadonlySet<string>>;
  /**
   * How many upstream tasks the gateway recorded on the account the lookup asks with, among those
   * whose tracking holds every one of `tracking`'s values (a list that holds fewer was cut short).
   */
  recordedTaskCount(tracking: Readonly<Record<string, string>>): Promise<number>;
}

/** A webhook as it arrived: headers lower-cased, body exactly as received. */
export interface InboundWebhook {
  headers: Record<string, string | undefined>;
  rawBody: Buffer;
}

export type WebhookVerification =
  /** Authentic. `providerTaskId` is absent when the body names no task the adapter can read. */
  | { ok: true; webhookId: string; providerTaskId?: string; report?: StatusReport }
  | { ok: false; reason: string };

/** How the upstream tells the gateway about progress, besides polling. */
export type InboundWebhookKind =
  /** Signed webhooks on `/v1/webhooks/<id>`, verified by `verifyWebhook`. */
  | 'signed'
  /** Unsigned callbacks on `/v1/webhooks/<id>/<token>`; confirmed by a status fetch. */
  | 'token'
  /** Polling only. */
  | 'none';

/**
 * How a `signed` provider's webhooks prove they are genuine, as the gateway's API document
 * shows them to whoever points the upstream at the gateway.
 */
export interface WebhookSignatureDescription {
  /** Headers every webhook must carry (lower-case). */
  headers: readonly string[];
  /** How signature and timestamp are checked. */
  description: string;
}

export interface VideoProvider {
  readonly id: string;
  /** Human name for `/v1/providers`. */
  readonly name: string;
  readonly offerings: readonly Offering[];
  /** Price list used when `config.yaml` gives none. */
  readonly defaultPricing?: PricingConfig;
  /**
   * The request-rate limits the upstream documents, per key: what an account keeps to when
   * `config.yaml` sets no `rate_limits` of its own (an empty list there turns them off).
   */
  readonly defaultRateLimits?: readonly RateLimitWindowSettings[];
  readonly inboundWebhook: InboundWebhookKind;
  /** For `signed` providers: the signature headers and checks (documentation only). */
  readonly webhookSignature?: WebhookSignatureDescription;
  /**
   * How long the provider keeps a result file at its URL, where it documents a lifetime
   * (shown on outputs as `upstream_url_expires_at`); undefined when it documents none.
   */
  readonly resultLifetimeMs?: number;
  /** Shortest time a task of this request can plausibly take upstream; polling never starts earlier. */
  minimumRunTimeMs(request: VideoRequest): number;
  /** Headers that authenticate a call. They never reach a log line. */
  authHeaders(apiKey: string): Record<string, string>;
  /**
   * Auth from an access key + secret key (signed tokens), for providers that take them; a plain
   * `apiKey` always goes through `authHeaders`.
   */
  createAuth?(credentials: Required<Pick<ProviderCredentials, 'accessKey' | 'secretKey'>>, clock: Clock): UpstreamAuth;
  /** Base URLs by region name (`providers.<id>.region`). */
  readonly regions?: Readonly<Record<string, ProviderRegion>>;
  /**
   * The API shapes the adapter speaks, the default first (`providers.<id>.api_shape`), e.g. the
   * legacy Kling-API as aggregators resell it and Kling's own API.
   */
  readonly apiShapes?: readonly string[];
  /**
   * The path every route of an API shape starts with (by shape; the provider's only shape under
   * `default`), when the documentation names it as part of the API: a `base_url` given with it
   * already (`https://reseller.example.com/kling/v1`) is reached without it, so the prefix is not
   * sent twice.
   */
  readonly routePrefixes?: Readonly<Record<string, string>>;
  /** Canonical error for a non-2xx upstream answer. */
  mapHttpError(status: number, body: unknown): MappedUpstreamError;
  submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult>;
  getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport>;
  /**
   * Credits an earlier answer already said were charged for this task (kept in its `tracking`),
   * for providers that report a charge before the task ends (kling3api at creation, the legacy
   * API while it runs): what a task ended without a last status answer (its deadline passed while
   * the status could not be read) reports as the provider's own figure.
   */
  chargedCredits?(ref: ProviderTaskRef): number | undefined;
  /**
   * Cancels a task the provider holds, for providers that document a way to. Resolves once the
   * provider confirmed; throws `UpstreamError` when it refused. Without it, a task a provider
   * accepted cannot be canceled (`POST /v1/videos/{id}/cancel` answers 409).
   */
  cancel?(ref: ProviderTaskRef, context: CallContext): Promise<void>;
  /**
   * Looks for the task an unanswered create may have become, by what the create carried (an
   * external id) or what the provider lists. Absent when the provider documents no way to find
   * one: such a create stays in doubt unless a webhook or callback names its task.
   */
  findCreate?(create: UnansweredCreate, context: LookupContext): Promise<CreateLookup>;
  /**
   * Whether `findCreate` finds the task by what the create itself carried (the legacy API's
   * `external_task_id`), so it can show it, not only prove there is none (a task list holding
   * known tasks only). With `routing.failover_on_timeout`, such a provider is asked once about a
   * create whose answer was lost before the task goes on to the next provider.
   */
  readonly findsCreateById?: boolean;
  /**
   * The reference of the task an unanswered create became, from the upstream id a verified
   * webhook (on the attempt's own path), a confirmed callback, or the create's own server-error
   * answer (confirmed by its status) named. Without it, such news cannot adopt a task.
   */
  refOfCreate?(create: UnansweredCreate, providerTaskId: string): ProviderTaskRef;
  /** For `signed` providers: check signature, timestamp, and read the event. */
  verifyWebhook?(webhook: InboundWebhook, secret: string, nowMs: number): WebhookVerification;
  /** For `token` providers: the upstream task id a callback body is about, if it says. */
  readCallbackTaskId?(body: unknown): string | undefined;
  /**
   * For `token` providers: whether a callback claims the task finished. Only such claims are
   * worth a confirming status fetch; progress claims wait for the next poll.
   */
  callbackClaimsFinished?(body: unknown): boolean;
  /** Starts the built-in simulator of this provider (sandbox, tests, benchmarks). */
  createSimulator(options: SimulatorOptions): ProviderSimulator;
}

/**
 * The names of the headers that carry the providers' keys (what `authHeaders` produces), in
 * lower case: whoever builds the logger redacts them.
 */
export function authHeaderNames(providers: readonly VideoProvider[]): string[] {
  const names = providers.flatMap((provider) => Object.keys(provider.authHeaders('key')).map((name) => name.toLowerCase()));
  return [...new Set(names)];
}

/** What every simulator can be told to do wrong, on its next calls. */
export interface SimulatedFault {
  /** Which calls to hit: `submit`, `status`, or both (default `submit`). */
  on?: 'submit' | 'status' | 'any';
  /** How many calls (default 1). */
  times?: number;
  /** Answer with this HTTP status and body (a provider-shaped error body when omitted). */
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * `reset`: destroy the socket without answering (the request was read, nothing was done).
   * `hang`: never answer. `drop_after_accept`: do what was asked (a create creates its task),
   * then destroy the socket instead of answering — an upstream that accepted while the
   * connection broke.
   */
  transport?: 'reset' | 'hang' | 'drop_after_accept';
  /** Answer normally, but only after this long (real milliseconds). */
  delayMs?: number;
  /**
   * Hold each request this fault takes (after `delayMs`) until `until` settles, then answer as
   * the rest of the fault says; `reached` is called as a request starts waiting. A test then acts
   * while a call is on its way for as long as it needs, instead of inside a real-time window.
   * In-process only: a promise does not cross the sandbox's fault route.
   */
  hold?: { until: PromiseLike<unknown>; reached?: () => void };
  /** Kind of provider error to produce (the simulator builds the provider's own body). */
  kind?: 'rate_limited' | 'insufficient_credits' | 'server_error' | 'unavailable' | 'unauthorized' | 'invalid';
}

/** How a simulated task ends. */
export type SimulatedOutcome = 'succeed' | 'fail' | 'content_policy';

export interface SimulatorOptions {
  clock: Clock;
  /** Key the simulator accepts. */
  apiKey: string;
  /** An access key + secret key pair whose signed tokens the simulator accepts too (providers that take them). */
  accessKey?: string;
  secretKey?: string;
  /** Secret for signing webhooks (signed providers). */
  webhookSecret?: string;
  /** Time a task spends queued, then processing, in clock milliseconds. */
  timing?: { queuedMs?: number; processingMs?: number };
  /** Base URL the simulator uses in result URLs; defaults to where it listens. */
  publicUrl?: string;
  /** How long result files stay downloadable after a task ends (the provider's documented lifetime); forever when absent. */
  resultLifetimeMs?: number;
  /**
   * A file where the simulator keeps the tasks it creates (one JSON line each), and from which it
   * takes back, when it listens, those a simulator before it on the same file created in the last
   * 24 hours: the sandbox's simulators in the gateway's own process, restarted with it on the
   * same SQLite file, then still answer for the tasks the gateway tracks. None when absent.
   */
  journalPath?: string;
}

export interface SimulatedTask {
  id: string;
  /** Path the task was created on. */
  path: string;
  /** The body the simulator received, as parsed JSON. */
  body: unknown;
  createdAt: number;
  outcome: SimulatedOutcome;
  /** Current raw status word. */
  status: string;
}

/** A provider's HTTP contract served on loopback. */
export interface ProviderSimulator {
  readonly providerId: string;
  /** Starts listening (port 0 = any free port) and returns the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
  /** Queues faults for the next matching calls. */
  injectFault(fault: SimulatedFault): void;
  clearFaults(): void;
  /** How the next created tasks end (default `succeed`). */
  setOutcome(outcome: SimulatedOutcome, times?: number): void;
  /** Deletes a task's result files: their URLs answer 404 from now on (an upstream URL that expired). */
  expireResult(providerTaskId: string): void;
  /** Every task created so far, oldest first. */
  readonly tasks: readonly SimulatedTask[];
  /** Recent requests received (method, path), oldest first; for asserting upstream traffic. */
  readonly requests: readonly { method: string; path: string; at: number }[];
  /** Calls `listener` for every request from now on (for counting beyond the retained log). */
  onRequest(listener: (request: { method: string; path: string; at: number }) => void): void;
  /** Every webhook or callback this simulator sent (each try), with the answer it got; oldest first. */
  readonly callbacks?: readonly SimulatedCallback[];
}

/** One webhook or callback a simulator sent, and how the receiver answered it. */
export interface SimulatedCallback {
  /** Where it went. */
  url: string;
  /** The provider's task it was about. */
  task_id: string;
  /** 1 for the first send, then each retry. */
  attempt: number;
  /** When it was sent (the simulator's clock). */
  sent_at: number;
  /** The receiver's HTTP status; null when no answer came (refused, reset, timed out). */
  status: number | null;
  /** A problem answer's `detail`, or the connection error's code. */
  detail: string | null;
}
