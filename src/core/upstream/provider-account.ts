/**
 * One upstream account of a provider, as the gateway runs it: its credentials and HTTP client,
 * its in-flight cap, rate windows, circuit and `Retry-After` cool-down, and its recent figures.
 * Kling's concurrency is per account (error 1303) and Freepik's limits are per key, so all of
 * these are the account's, not the provider's. Every upstream call is admitted (`admit`:
 * cool-down, circuit, rate windows) and then made through `call`, which tells the circuit how it
 * went; so an open circuit costs no upstream request. Circuit, cool-down and rate windows live
 * in a `ProviderStateStore` under `<provider>:<account>`: in this process for SQLite, in
 * PostgreSQL for replicas, where they are the account's whatever the replica count. The account
 * keeps a copy of its standing for the router (refreshed by other replicas' news and by its own
 * writes), and reads the shared one again before every call.
 */
import type { CircuitStateName, GatewayMetrics } from '../../observability/metrics.js';
import type { Logger } from '../../observability/logger.js';
import type { Clock } from '../clock.js';
import type { ReplicaFeed } from '../replica-feed.js';
import { circuitAdmission, circuitStateOf, healthOf, type CallHealth } from './circuit-breaker.js';
import type { ProviderCredentials, VideoProvider } from './provider.js';
import type { ProviderSettings, RateLimitWindowSettings } from './provider-settings.js';
import { HEALTHY_STANDING, type AccountStanding, type OpenTransaction, type ProviderStateStore } from './provider-state.js';
import type { ProviderFigures } from './provider-stats.js';
import { HttpUpstreamClient, type UpstreamCallRecord } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';
import { addressOf } from './base-url-address.js';

export { addressOf };

/** The account id of the one-account shorthand (`providers.<id>.api_key`). */
export const DEFAULT_ACCOUNT_ID = 'default';

/** Raised instead of calling upstream while the circuit is open. */
export class CircuitBreakerOpenError extends Error {
  override readonly name = 'CircuitBreakerOpenError';
  constructor(readonly provider: string) {
    super(`circuit open for ${provider}: recent calls failed; not calling it until a probe succeeds`);
  }
}

/** Raised instead of calling upstream when no call is allowed right now (rate window, cool-down, another replica's trial). */
export class UpstreamBusyError extends Error {
  override readonly name = 'UpstreamBusyError';
  constructor(
    readonly provider: string,
    readonly reason: AdmissionRefusal,
    readonly retryAt: number,
  ) {
    super(`${provider} cannot be called now (${reason}); try again at ${new Date(retryAt).toISOString()}`);
  }
}

/** Why a call may not go now. */
export type AdmissionRefusal = 'circuit_open' | 'circuit_busy' | 'cooling_down' | 'rate_limited';

/** Leave to make one upstream call (see `ProviderAccount.admit`). */
export interface CallPermit {
  /** This call is the single one allowed while the account is in doubt. */
  readonly trial: boolean;
  /** When its rate allowance was taken. */
  readonly at: number;
}

export type Admission =
  | { granted: true; permit: CallPermit }
  | { granted: false; reason: AdmissionRefusal; retryAt: number };

/**
 * Each rate window is counted this much longer than configured. A call spends a moment between
 * its allowance and the wire (its attempt is written first; the event loop may be busy), so
 * without it two calls allowed a full window apart could reach the upstream a little less than
 * a window apart, one over its limit.
 */
export const RATE_WINDOW_MARGIN_MS = 100;
/** A trial is held for the call's timeout plus this, then another replica may take it. */
const TRIAL_MARGIN_MS = 5_000;
/** Back-off after a 429 without `Retry-After`. */
const DEFAULT_COOLDOWN_MS = 5_000;

/**
 * A 429 that asks the account to slow down; not one whose code says the credits are gone (the
 * legacy API's 1100-1102 come as 429), which waiting does not mend.
 */
function saysTooManyRequests(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError && error.statusCode === 429 && error.code !== 'insufficient_credits';
}

/** One account's credentials as the composition root hands them over, and where it is reached when not at the provider's URL. */
export interface AccountCredentials extends ProviderCredentials {
  id: string;
  /** Secrets that sign this account's webhooks to the gateway (Freepik): several while the provider rotates it, any one verifying. */
  webhookSecrets?: readonly string[] | undefined;
  /** A base URL of the account's own (its region's), with the API shape spoken there. */
  baseUrl?: string | undefined;
  apiShape?: string | undefined;
}

export interface ProviderAccountOptions {
  provider: VideoProvider;
  config: ProviderSettings;
  credentials: AccountCredentials;
  baseUrl: string;
  apiShape?: string | undefined;
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  state: ProviderStateStore;
  /** The account's own figures. */
  stats: ProviderFigures;
  /** The provider's figures, which every account's calls count towards too (the same object for a lone account). */
  providerStats: ProviderFigures;
  owner: string;
  feed: ReplicaFeed;
  /** Told when the account's circuit as shown changes (the provider sums its accounts up). */
  onCircuitChange: () => void;
}

export class ProviderAccount {
  readonly id: string;
  readonly providerId: string;
  /** The key of this account in the shared state: `<provider>:<account>`. */
  readonly stateKey: string;
  /** Tasks in flight (submitting or tracked) at once with this account. */
  readonly maxInFlight: number;
  readonly rateLimits: readonly RateLimitWindowSettings[];
  /** What its webhooks may be signed with (any one verifies); none: it is sent no webhook URL. */
  readonly webhookSecrets: readonly string[];
  readonly stats: ProviderFigures;
  /** Where it is reached: its own base URL (its region's), or the provider's. */
  readonly baseUrl: string;
  /**
   * `baseUrl` written one way (`addressOf`): accounts with the same address meet the same outage,
   * however their base URLs were written.
   */
  readonly address: string;
  /** Whether a create to this provider carries the task's callback token (in its callback URL). */
  private readonly sendsCallbackToken: boolean;
  private readonly providerStats: ProviderFigures;
  private readonly config: ProviderSettings;
  private readonly state: ProviderStateStore;
  private readonly client: HttpUpstreamClient;
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly owner: string;
  private readonly feed: ReplicaFeed;
  private readonly onCircuitChange: () => void;
  private standing: AccountStanding = HEALTHY_STANDING;
  private shownCircuit: CircuitStateName = 'closed';

  constructor(options: ProviderAccountOptions) {
    const { provider, credentials, config } = options;
    const limits = config.accounts?.find((account) => account.id === credentials.id);
    this.id = credentials.id;
    this.providerId = provider.id;
    this.stateKey = `${provider.id}:${credentials.id}`;
    this.maxInFlight = limits?.max_in_flight ?? config.max_in_flight;
    this.rateLimits = limits?.rate_limits ?? config.rate_limits ?? provider.defaultRateLimits ?? [];
    this.webhookSecrets = credentials.webhookSecrets ?? [];
    this.sendsCallbackToken = provider.inboundWebhook === 'token';
    this.config = config;
    this.state = options.state;
    this.stats = options.stats;
    this.providerStats = options.providerStats;
    this.clock = options.clock;
    this.metrics = options.metrics;
    this.owner = options.owner;
    this.feed = options.feed;
    this.onCircuitChange = options.onCircuitChange;
    const logger = options.logger.child({ provider: provider.id, account: credentials.id });
    this.logger = logger;
    this.metrics.setAccountCircuitState(provider.id, credentials.id, 'closed');
    const signed =
      credentials.accessKey && credentials.secretKey && provider.createAuth
        ? provider.createAuth({ accessKey: credentials.accessKey, secretKey: credentials.secretKey }, options.clock)
        : undefined;
    this.baseUrl = credentials.baseUrl ?? options.baseUrl;
    this.address = addressOf(this.baseUrl);
    this.client = new HttpUpstreamClient({
      provider,
      baseUrl: this.baseUrl,
      apiKey: credentials.apiKey ?? '',
      ...(signed ? { auth: signed } : {}),
      apiShape: credentials.baseUrl !== undefined ? credentials.apiShape : options.apiShape,
      timeoutMs: config.timeout_ms,
      connectTimeoutMs: config.connect_timeout_ms,
      now: () => Date.now(),
      clockNow: () => options.clock.now(),
      onCall: (record) => this.onUpstreamCall(record, logger),
    });
  }

  /** Makes sure the account has its shared row, and reads how it stands. */
  async start(): Promise<void> {
    await this.state.register(this.stateKey, this.clock.now());
    await this.refreshStanding();
  }

  /** Circuit state as the router sees it: open means calls are refused right now. */
  get circuit(): CircuitStateName {
    return circuitStateOf(this.standing, this.clock.now(), this.config.circuit_breaker);
  }

  /** While the circuit is open, when it turns half-open and a probe may go (clock ms); else undefined. */
  get probeAt(): number | undefined {
    if (this.circuit !== 'open' || this.standing.openedAt === null) return undefined;
    return this.standing.openedAt + this.config.circuit_breaker.half_open_after_ms;
  }

  /** Until when a `429 Retry-After` asked us to stay away (clock ms), or 0. */
  get coolingDownUntil(): number {
    return this.standing.cooldownUntil > this.clock.now() ? this.standing.cooldownUntil : 0;
  }

  /**
   * Honours a `Retry-After` (or a default back-off when the 429 gave none), for every replica:
   * seen here at once, written to the shared state and announced to the others.
   */
  coolDown(retryAfterMs: number | undefined): void {
    const now = this.clock.now();
    const until = now + (retryAfterMs ?? DEFAULT_COOLDOWN_MS);
    this.standing = { ...this.standing, cooldownUntil: Math.max(this.standing.cooldownUntil, until) };
    this.state
      .extendCooldown(this.stateKey, until, now)
      .then((standing) => {
        this.apply(standing);
        this.feed.publish({ kind: 'account', key: this.stateKey });
      })
      .catch((error) => this.logger.warn({ err: error }, 'could not share a cool-down; it holds here only'));
  }

  /** Re-reads the account's standing (another replica announced a change, or the copy is old). */
  async refreshStanding(): Promise<void> {
    this.apply(await this.state.read(this.stateKey));
  }

  private apply(standing: AccountStanding): void {
    this.standing = standing;
    const shown = this.circuit;
    if (shown !== this.shownCircuit) {
      this.shownCircuit = shown;
      this.metrics.setAccountCircuitState(this.providerId, this.id, shown);
      // Open or in doubt is a warning; closed again is news, not a problem.
      this.logger[shown === 'closed' ? 'info' : 'warn']({ circuit: shown, failures: standing.failures }, `circuit ${shown}`);
      this.onCircuitChange();
    }
  }

  /**
   * Before a call, a shared standing is read again (one primary-key read): news from other
   * replicas may still be on its way, and a call let through on an old copy is the one that
   * could pass `consecutive_failures`.
   */
  private async freshStanding(state: ProviderStateStore): Promise<void> {
    if (!state.shared) return;
    // A state other than the account's own is bound to a transaction (`admitWithin`): a store
    // error has ended that transaction, and its caller must learn so.
    if (state !== this.state) return this.apply(await state.read(this.stateKey));
    try {
      await this.refreshStanding();
    } catch (error) {
      // The store is unreachable: the call will find out too; decide on the last known standing.
      this.logger.warn({ err: error }, 'could not re-read the account standing');
    }
  }

  /**
   * Asks leave for one upstream call: not during a cool-down, not through an open circuit, one
   * at a time across replicas while the account is in doubt, and within every rate window.
   * Waits (on the clock) up to `maxWaitMs` when that is enough; otherwise says when to ask again.
   */
  admit(maxWaitMs = 0, signal?: AbortSignal): Promise<Admission> {
    return this.admitThrough(this.state, maxWaitMs, signal);
  }

  /**
   * `admit(0)` asked inside an open transaction of the store (a create's, which takes the
   * account's slot in it): a shared standing and the rate windows are read and written through
   * that transaction, so the caller never holds one connection while waiting for another, and the
   * allowance or trial taken commits or rolls back with the caller's writes. Never waits.
   */
  admitWithin(transaction: OpenTransaction): Promise<Admission> {
    return this.admitThrough(this.state.within(transaction), 0);
  }

  /**
   * Leave for one more request within a call `admit` already let through (the next page of a
   * task list): the upstream counts each request, so each takes its own rate allowance and waits
   * out a cool-down, waiting up to `maxWaitMs`. The call's own leave covers the circuit. Throws
   * `UpstreamBusyError` when the request may not go in time.
   */
  async admitFurtherRequest(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    const admission = await this.admitThrough(this.state, maxWaitMs, signal, { circuit: false });
    if (!admission.granted) throw new UpstreamBusyError(this.providerId, admission.reason, admission.retryAt);
  }

  private async admitThrough(
    state: ProviderStateStore,
    maxWaitMs: number,
    signal?: AbortSignal,
    { circuit: askCircuit = true }: { circuit?: boolean } = {},
  ): Promise<Admission> {
    const deadline = this.clock.now() + maxWaitMs;
    for (;;) {
      await this.freshStanding(state);
      const now = this.clock.now();
      const refuse = (reason: AdmissionRefusal, retryAt: number): Admission | undefined => {
        if (retryAt <= deadline && reason !== 'circuit_open') return undefined;
        return { granted: false, reason, retryAt };
      };
      const waitUntil = async (at: number) => {
        await this.clock.sleep(Math.max(1, at - now), signal);
      };
      if (this.standing.cooldownUntil > now) {
        const refused = refuse('cooling_down', this.standing.cooldownUntil);
        if (refused) return refused;
        await waitUntil(this.standing.cooldownUntil);
        continue;
      }
      const circuit = askCircuit ? circuitAdmission(this.standing, now, this.config.circuit_breaker) : { kind: 'free' as const };
      if (circuit.kind === 'open') return { granted: false, reason: 'circuit_open', retryAt: circuit.until };
      if (circuit.kind === 'busy') {
        const refused = refuse('circuit_busy', circuit.until);
        if (refused) return refused;
        await waitUntil(circuit.until);
        continue;
      }
      let trial = false;
      if (circuit.kind === 'trial') {
        const claimed = await state.claimTrial(this.stateKey, this.owner, now, now + this.config.timeout_ms + TRIAL_MARGIN_MS);
        if (!claimed) {
          // Another replica took it first: look again shortly.
          this.apply(await state.read(this.stateKey));
          const retryAt = now + 50;
          const refused = refuse('circuit_busy', retryAt);
          if (refused) return refused;
          await waitUntil(retryAt);
          continue;
        }
        this.apply(claimed);
        trial = true;
      }
      const wait = await state.takeRateAllowance(this.stateKey, this.rateWindows(), now);
      if (wait === 0) return { granted: true, permit: { trial, at: now } };
      if (trial) await this.releaseTrial(state);
      const refused = refuse('rate_limited', now + wait);
      if (refused) return refused;
      await waitUntil(now + wait);
    }
  }

  /**
   * Gives back the leave `admit` gave for a call that will not be made (its task was canceled
   * meanwhile): its rate allowance counts no more, and a trial call is free for another.
   */
  async giveBack(permit: CallPermit): Promise<void> {
    if (permit.trial) await this.releaseTrial();
    try {
      await this.state.returnRateAllowance(this.stateKey, permit.at);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not give a rate allowance back; it runs out with its window');
    }
  }

  /**
   * While the account is in doubt (a failed call, the circuit not open) and a call holds its one
   * trial: until when that trial may be held (clock ms); 0 when a call may go now. Read as a call
   * reads it (the shared standing afresh); asking takes nothing.
   */
  async trialHeldUntil(): Promise<number> {
    await this.freshStanding(this.state);
    const admission = circuitAdmission(this.standing, this.clock.now(), this.config.circuit_breaker);
    return admission.kind === 'busy' ? (this.standing.trialUntil ?? admission.until) : 0;
  }

  /** The milliseconds until the rate windows allow one more call (0: now), taking nothing from them. */
  rateWait(): Promise<number> {
    return this.state.rateWait(this.stateKey, this.rateWindows(), this.clock.now());
  }

  private rateWindows() {
    return this.rateLimits.map((window) => ({ limit: window.limit, windowMs: window.window_ms + RATE_WINDOW_MARGIN_MS }));
  }

  private async releaseTrial(state: ProviderStateStore = this.state): Promise<void> {
    // Inside a transaction a store error has ended it (see `freshStanding`).
    if (state !== this.state) return this.apply(await state.releaseTrial(this.stateKey, this.owner, this.clock.now()));
    try {
      this.apply(await this.state.releaseTrial(this.stateKey, this.owner, this.clock.now()));
    } catch (error) {
      this.logger.warn({ err: error }, 'could not give the trial call back; it runs out by itself');
    }
  }

  /** A client with this account's credentials, bound to `context` for logs (calls about a task: `clientForTask`). */
  clientFor(context: Record<string, string>): HttpUpstreamClient {
    return this.client.withContext(context);
  }

  /**
   * A client for calls about `task`: bound to its id for logs, and with its callback token (in the
   * callback URL its create carried) kept out of every answer, since an upstream may quote that URL
   * in any later answer about the task (a status, a lookup, a cancel), not only in the create's.
   * A provider whose callback URL has no token (signed webhooks, or none) never receives it, so
   * its answers cannot quote it: its calls build no scrubber for it (one per call, about 35 µs).
   */
  clientForTask(task: { id: string; callbackToken: string | null }, context: Record<string, string> = {}): HttpUpstreamClient {
    const token = this.sendsCallbackToken ? task.callbackToken : null;
    return this.client.withContext({ task_id: task.id, ...context }, token ? [token] : []);
  }

  /**
   * Makes one upstream call with the leave `admit` gave (asking for it now when none is given),
   * and tells the circuit how it went.
   */
  async call<T>(fn: (signal: AbortSignal) => Promise<T>, permit?: CallPermit): Promise<T> {
    if (!permit) {
      const admission = await this.admit(0);
      if (!admission.granted) {
        if (admission.reason === 'circuit_open') throw new CircuitBreakerOpenError(this.providerId);
        throw new UpstreamBusyError(this.providerId, admission.reason, admission.retryAt);
      }
      permit = admission.permit;
    }
    let result: T;
    try {
      result = await fn(new AbortController().signal);
    } catch (error) {
      // "Too many requests" is about the account, whichever call heard it (a create, a poll, a
      // lookup of a lost create, a callback's confirmation): every call waits out its Retry-After.
      if (saysTooManyRequests(error)) this.coolDown(error.retryAfterMs);
      await this.record(permit, healthOf(error));
      throw error;
    }
    await this.record(permit, 'healthy');
    return result;
  }

  /** Writes what a call showed about the account's health; a healthy call of a healthy account writes nothing. */
  private async record(permit: CallPermit, health: CallHealth): Promise<void> {
    const now = this.clock.now();
    try {
      if (health === 'healthy') {
        if (!permit.trial && this.standing.failures === 0 && this.standing.openedAt === null) return;
        this.apply(await this.state.recordSuccess(this.stateKey, this.owner, now));
      } else if (health === 'unhealthy') {
        this.apply(
          await this.state.recordFailure(this.stateKey, {
            owner: this.owner,
            threshold: this.config.circuit_breaker.consecutive_failures,
            // A failed probe of an open circuit opens it for another period.
            reopen: permit.trial && this.standing.openedAt !== null,
            now,
          }),
        );
      } else {
        if (permit.trial) await this.releaseTrial();
        return;
      }
      this.feed.publish({ kind: 'account', key: this.stateKey });
    } catch (error) {
      this.logger.warn({ err: error, health }, 'could not record the call on the circuit');
    }
  }

  private onUpstreamCall(record: UpstreamCallRecord, logger: Logger): void {
    const ok = record.outcome === 'ok';
    const now = this.clock.now();
    this.stats.recordCall(now, ok, record.durationMs);
    if (this.providerStats !== this.stats) this.providerStats.recordCall(now, ok, record.durationMs);
    const labels = { provider: this.providerId, account: this.id, operation: record.operation, outcome: record.outcome };
    this.metrics.upstreamRequests.inc(labels);
    this.metrics.upstreamDuration.observe(labels, record.durationMs / 1000);
    logger[ok ? 'info' : 'warn'](
      {
        upstream: { operation: record.operation, method: record.method, path: record.path, status: record.status },
        outcome: record.outcome,
        duration_ms: record.durationMs,
        ...record.context,
      },
      'upstream call',
    );
  }
}
