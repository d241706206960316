/**
 * A provider as the gateway runs it: the adapter plus its configuration, HTTP client, circuit
 * breaker (cockatiel), rate limiter, `Retry-After` cool-down, prices and recent stats.
 * Every upstream call goes through `call`, so an open circuit costs no upstream request.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type CircuitBreakerPolicy,
} from 'cockatiel';

import type { CircuitStateName, GatewayMetrics } from '../../observability/metrics.js';
import type { Logger } from '../../observability/logger.js';
import type { Clock } from '../clock.js';
import { mergePricing, type PricingConfig } from '../model/pricing.js';
import type { VideoProvider } from './provider.js';
import type { ProviderSettings } from './provider-settings.js';
import { ProviderStats } from './provider-stats.js';
import { SlidingWindowRateLimiter } from './rate-limiter.js';
import { HttpUpstreamClient, type UpstreamCallRecord } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';

/** Raised instead of calling upstream while the circuit is open. */
export class CircuitBreakerOpenError extends Error {
  override readonly name = 'CircuitBreakerOpenError';
  constructor(readonly provider: string) {
    super(`circuit open for ${provider}: recent calls failed; not calling it until a probe succeeds`);
  }
}

/**
 * Failures that say the provider itself is unwell or unusable (and so count towards opening
 * its circuit): no connection, no answer, 5xx, bad credentials, no credits. A rejected request
 * (400, content policy) or a 429 (handled by the cool-down) says nothing about its health.
 */
export function isProviderHealthFailure(error: unknown): boolean {
  if (!(error instanceof UpstreamError)) return false;
  if (error.transport) return true;
  if (error.code === 'insufficient_credits') return true;
  // A 2xx the adapter cannot read is a broken upstream too, whatever its status says.
  if (error.providerCode === 'unreadable_answer') return true;
  const status = error.statusCode ?? 0;
  return status >= 500 || status === 401 || status === 403 || status === 402;
}

export interface ProviderRuntimeOptions {
  provider: VideoProvider;
  config: ProviderSettings;
  /** Where requests go (the simulator's URL in the sandbox). */
  baseUrl: string;
  apiKey: string;
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
}

export class ProviderRuntime {
  readonly id: string;
  readonly provider: VideoProvider;
  readonly config: ProviderSettings;
  readonly simulated: boolean;
  readonly disabledReason: string | undefined;
  readonly baseUrl: string;
  readonly webhookSecret: string | undefined;
  readonly pricing: PricingConfig | undefined;
  readonly stats = new ProviderStats();
  readonly limiter: SlidingWindowRateLimiter;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly client: HttpUpstreamClient;
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly simulatedRunTimeMs: number | undefined;
  private cooldownUntil = 0;
  private openedAt = 0;

  constructor(options: ProviderRuntimeOptions) {
    this.id = options.provider.id;
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
    this.limiter = new SlidingWindowRateLimiter(
      options.config.rate_limits.map((window) => ({ limit: window.limit, windowMs: window.window_ms })),
      options.clock,
    );
    this.breaker = circuitBreaker(handleWhen(isProviderHealthFailure), {
      halfOpenAfter: options.config.circuit_breaker.half_open_after_ms,
      breaker: new ConsecutiveBreaker(options.config.circuit_breaker.consecutive_failures),
    });
    const logger = options.logger.child({ provider: this.id });
    this.breaker.onStateChange((state) => {
      const name = circuitStateName(state);
      if (state === CircuitState.Open) this.openedAt = Date.now();
      this.metrics.setCircuitState(this.id, name);
      logger.warn({ circuit: name }, `circuit ${name}`);
    });
    this.metrics.setCircuitState(this.id, 'closed');
    this.client = new HttpUpstreamClient({
      provider: options.provider,
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
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

  /** Circuit state as the router sees it: open means calls are refused right now. */
  get circuit(): CircuitStateName {
    const state = circuitStateName(this.breaker.state);
    if (state === 'open' && Date.now() - this.openedAt >= this.config.circuit_breaker.half_open_after_ms) {
      // Cockatiel moves to half-open on the next call; the router may send that probe.
      return 'half_open';
    }
    return state;
  }

  /** Until when a `429 Retry-After` asked us to stay away (clock ms), or 0. */
  get coolingDownUntil(): number {
    return this.cooldownUntil > this.clock.now() ? this.cooldownUntil : 0;
  }

  /** Honours a `Retry-After` (or a default back-off when the 429 gave none). */
  coolDown(retryAfterMs: number | undefined): void {
    const until = this.clock.now() + (retryAfterMs ?? 5_000);
    this.cooldownUntil = Math.max(this.cooldownUntil, until);
  }

  /** A client bound to a task and request for logs. */
  clientFor(context: Record<string, string>): HttpUpstreamClient {
    return this.client.withContext(context);
  }

  /** Runs an upstream call through the circuit breaker. */
  async call<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await this.breaker.execute(({ signal }) => fn(signal));
    } catch (error) {
      if (error instanceof BrokenCircuitError) throw new CircuitBreakerOpenError(this.id);
      throw error;
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

function circuitStateName(state: CircuitState): CircuitStateName {
  switch (state) {
    case CircuitState.Open:
      return 'open';
    case CircuitState.HalfOpen:
      return 'half_open';
    case CircuitState.Isolated:
      return 'isolated';
    default:
      return 'closed';
  }
}
