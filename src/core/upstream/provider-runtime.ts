/**
 * A provider as the gateway runs it: the adapter plus its configuration, HTTP client, circuit
 * breaker, rate limits, `Retry-After` cool-down, prices and recent figures. Every upstream call
 * is admitted (`admit`: cool-down, circuit, rate windows) and then made through `call`, which
 * tells the circuit how it went; so an open circuit costs no upstream request. Circuit,
 * cool-down and rate windows live in a `ProviderStateStore`: in this process for SQLite, in
 * PostgreSQL for replicas, where they are the account's whatever the replica count. This
 * runtime keeps a copy of the account's standing for the router (refreshed by other replicas'
 * news and by its own writes), and reads the shared one again before every call.
 */
import type { CircuitStateName, GatewayMetrics } from '../../observability/metrics.js';
import type { Logger } from '../../observability/logger.js';
import type { Clock } from '../clock.js';
import { mergePricing, type PricingConfig } from '../model/pricing.js';
import { LOCAL_ONLY_FEED, type ReplicaFeed } from '../replica-feed.js';
import { circuitAdmission, circuitStateOf, healthOf, type CallHealth } from './circuit-breaker.js';
import type { VideoProvider } from './provider.js';
import type { ProviderSettings } from './provider-settings.js';
import { HEALTHY_STANDING, InProcessProviderState, type AccountStanding, type ProviderStateStore } from './provider-state.js';
import { ProviderStats, type ProviderFigures } from './provider-stats.js';
import { HttpUpstreamClient, type UpstreamCallRecord } from './upstream-client.js';

export { isProviderHealthFailure } from './circuit-breaker.js';

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

/** Leave to make one upstream call (see `ProviderRuntime.admit`). */
export interface CallPermit {
  /** This call is the single one allowed while the account is in doubt. */
  readonly trial: boolean;
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

export interface ProviderRuntimeOptions {
  provider: VideoProvider;
  config: ProviderSettings;
  /** Where requests go (the simulator's URL in the sandbox). */
  baseUrl: string;
  apiKey: string;
  /** Access key + secret key (signed tokens), for providers that take them instead of `apiKey`. */
  accessKey?: string | undefined;
  secretKey?: string | undefined;
  /** Which of the provider's API shapes the endpoint speaks (its default when absent). */
  apiShape?: string | undefined;
  webhookSecret?: string;
  /** True when this runtime talks to the built-in simulator. */
  simulated: boolean;
  /** Set when the provider must not be used, with the reason shown to callers. */
  disabledReason?: string;
  /** Polling-floor scale: simulators finish in seconds, not minutes. */
  simulatedRunTimeMs?: number;
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Where circuit, cool-down and rate windows are kept (default: in this process). */
  state?: ProviderStateStore;
  /** The provider's recent figures (default: in this process). */
  stats?: ProviderFigures;
  /** This replica's id (who holds a trial). */
  owner?: string;
  /** Tells other replicas when the circuit or cool-down changes. */
  feed?: ReplicaFeed;
}

export class ProviderRuntime {
  readonly id: string;
  /** The key of this provider's account in the shared state (`provider:account` once accounts exist). */
  readonly stateKey: string;
  readonly provider: VideoProvider;
  readonly config: ProviderSettings;
  readonly simulated: boolean;
  readonly disabledReason: string | undefined;
  readonly baseUrl: string;
  readonly webhookSecret: string | undefined;
  readonly pricing: PricingConfig | undefined;
  readonly stats: ProviderFigures;
  private readonly state: ProviderStateStore;
  private readonly client: HttpUpstreamClient;
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly owner: string;
  private readonly feed: ReplicaFeed;
  private readonly simulatedRunTimeMs: number | undefined;
  private standing: AccountStanding = HEALTHY_STANDING;
  private shownCircuit: CircuitStateName = 'closed';

  constructor(options: ProviderRuntimeOptions) {
    this.id = options.provider.id;
    this.stateKey = options.provider.id;
    this.provider = options.provider;
    this.config = options.config;
    this.simulated = options.simulated;
    this.disabledReason = options.config.enabled ? options.disabledReason : 'disabled in configuration';
    this.baseUrl = options.baseUrl;
    this.webhookSecret = options.webhookSecret;
    try {
      this.pricing = mergePricing(options.provider.defaultPricing, options.config.pricing);
    } catch (error) {
      throw new Error(`providers.${options.provider.id}.${(error as Error).message}`);
    }
    this.clock = options.clock;
    this.metrics = options.metrics;
    this.simulatedRunTimeMs = options.simulatedRunTimeMs;
    this.state = options.state ?? new InProcessProviderState(options.clock);
    this.stats = options.stats ?? new ProviderStats();
    this.owner = options.owner ?? 'this-process';
    this.feed = options.feed ?? LOCAL_ONLY_FEED;
    const logger = options.logger.child({ provider: this.id });
    this.logger = logger;
    this.metrics.setCircuitState(this.id, 'closed');
    const signed =
      options.accessKey && options.secretKey && options.provider.createAuth
        ? options.provider.createAuth({ accessKey: options.accessKey, secretKey: options.secretKey }, options.clock)
        : undefined;
    this.client = new HttpUpstreamClient({
      provider: options.provider,
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      ...(signed ? { auth: signed } : {}),
      apiShape: options.apiShape,
      timeoutMs: options.config.timeout_ms,
      connectTimeoutMs: options.config.connect_timeout_ms,
      now: () => Date.now(),
      clockNow: () => options.clock.now(),
      onCall: (record) => this.onUpstreamCall(record, logger),
    });
  }

  get enabled(): boolean {
    return this.disabledReason === undefined;
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

  /** Until when a `429 Retry-After` asked us to stay away (clock ms), or 0. */
  get coolingDownUntil(): number {
    return this.standing.cooldownUntil > this.clock.now() ? this.standing.cooldownUntil : 0;
  }

  /** The account's standing as this replica last saw it. */
  get currentStanding(): AccountStanding {
    return { ...this.standing };
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
      this.metrics.setCircuitState(this.id, shown);
      this.logger.warn({ circuit: shown, failures: standing.failures }, `circuit ${shown}`);
    }
  }

  /**
   * Before a call, a shared standing is read again (one primary-key read): news from other
   * replicas may still be on its way, and a call let through on an old copy is the one that
   * could pass `consecutive_failures`.
   */
  private async freshStanding(): Promise<void> {
    if (!this.state.shared) return;
    try {
      await this.refreshStanding();
    } catch (error) {
      // The store is unreachable: the call will find out too; decide on the last known standing.
      this.logger.warn({ err: error }, 'could not re-read the provider standing');
    }
  }

  /**
   * Asks leave for one upstream call: not during a cool-down, not through an open circuit, one
   * at a time across replicas while the account is in doubt, and within every rate window.
   * Waits (on the clock) up to `maxWaitMs` when that is enough; otherwise says when to ask again.
   */
  async admit(maxWaitMs = 0, signal?: AbortSignal): Promise<Admission> {
    const deadline = this.clock.now() + maxWaitMs;
    for (;;) {
      await this.freshStanding();
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
      const circuit = circuitAdmission(this.standing, now, this.config.circuit_breaker);
      if (circuit.kind === 'open') return { granted: false, reason: 'circuit_open', retryAt: circuit.until };
      if (circuit.kind === 'busy') {
        const refused = refuse('circuit_busy', circuit.until);
        if (refused) return refused;
        await waitUntil(circuit.until);
        continue;
      }
      let trial = false;
      if (circuit.kind === 'trial') {
        const claimed = await this.state.claimTrial(this.stateKey, this.owner, now, now + this.config.timeout_ms + TRIAL_MARGIN_MS);
        if (!claimed) {
          // Another replica took it first: look again shortly.
          await this.refreshStanding();
          const retryAt = now + 50;
          const refused = refuse('circuit_busy', retryAt);
          if (refused) return refused;
          await waitUntil(retryAt);
          continue;
        }
        this.apply(claimed);
        trial = true;
      }
      const wait = await this.state.takeRateAllowance(this.stateKey, this.rateWindows(), now);
      if (wait === 0) return { granted: true, permit: { trial } };
      if (trial) await this.releaseTrial();
      const refused = refuse('rate_limited', now + wait);
      if (refused) return refused;
      await waitUntil(now + wait);
    }
  }

  private rateWindows() {
    return this.config.rate_limits.map((window) => ({ limit: window.limit, windowMs: window.window_ms + RATE_WINDOW_MARGIN_MS }));
  }

  private async releaseTrial(): Promise<void> {
    try {
      this.apply(await this.state.releaseTrial(this.stateKey, this.owner, this.clock.now()));
    } catch (error) {
      this.logger.warn({ err: error }, 'could not give the trial call back; it runs out by itself');
    }
  }

  /** A client bound to a task and request for logs. */
  clientFor(context: Record<string, string>): HttpUpstreamClient {
    return this.client.withContext(context);
  }

  /**
   * Makes one upstream call with the leave `admit` gave (asking for it now when none is given),
   * and tells the circuit how it went.
   */
  async call<T>(fn: (signal: AbortSignal) => Promise<T>, permit?: CallPermit): Promise<T> {
    if (!permit) {
      const admission = await this.admit(0);
      if (!admission.granted) {
        if (admission.reason === 'circuit_open') throw new CircuitBreakerOpenError(this.id);
        throw new UpstreamBusyError(this.id, admission.reason, admission.retryAt);
      }
      permit = admission.permit;
    }
    let result: T;
    try {
      result = await fn(new AbortController().signal);
    } catch (error) {
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

  /** Earliest a first status poll makes sense for a request (simulators are faster). */
  minimumRunTimeMs(request: Parameters<VideoProvider['minimumRunTimeMs']>[0]): number {
    const real = this.provider.minimumRunTimeMs(request);
    return this.simulatedRunTimeMs !== undefined ? Math.min(real, this.simulatedRunTimeMs) : real;
  }

  private onUpstreamCall(record: UpstreamCallRecord, logger: Logger): void {
    const ok = record.outcome === 'ok';
    this.stats.recordCall(this.clock.now(), ok, record.durationMs);
    this.metrics.upstreamRequests.inc({ provider: this.id, operation: record.operation, outcome: record.outcome });
    this.metrics.upstreamDuration.observe({ provider: this.id, operation: record.operation }, record.durationMs / 1000);
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
