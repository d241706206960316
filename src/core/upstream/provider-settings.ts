/**
 * What the upstream wing reads about one provider. Core declares it; `src/config` builds it from
 * `config.yaml` (field names match the file, so the parsed block is used as is).
 */
import type { PricingOverride } from '../model/pricing.js';

export interface RateLimitWindowSettings {
  /** Requests allowed within `window_ms`. */
  limit: number;
  window_ms: number;
}

/** What one account of a provider may override. */
export interface AccountLimitSettings {
  id: string;
  max_in_flight?: number | undefined;
  rate_limits?: readonly RateLimitWindowSettings[] | undefined;
}

export interface ProviderSettings {
  enabled: boolean;
  /** Rank for the `priority` strategy (lower first). */
  priority: number;
  /** Share for the `weighted` strategy. */
  weight: number;
  /** Time limit for one upstream call. */
  timeout_ms: number;
  /** Time limit for opening a connection (TCP and TLS), within `timeout_ms`. */
  connect_timeout_ms: number;
  /** Tasks in flight (submitting or tracked) at once, per account; more wait as `queued`. */
  max_in_flight: number;
  /** Upstream request-rate limits per account, all enforced together; absent: the provider's documented ones. */
  rate_limits?: readonly RateLimitWindowSettings[] | undefined;
  /** Per-account limits, by account id (credentials travel separately); absent fields are the provider's. */
  accounts?: readonly AccountLimitSettings[] | undefined;
  circuit_breaker: { consecutive_failures: number; half_open_after_ms: number };
  /** Price list; parts left out come from the provider's shipped default. */
  pricing?: PricingOverride | undefined;
}
