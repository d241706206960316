/**
 * What the task engine reads from the configuration. Core declares it; `src/config` builds it
 * from `config.yaml` (field names match the file).
 */
import type { RoutingStrategy } from '../model/canonical.js';

export interface TaskEngineSettings {
  routing: {
    strategy: RoutingStrategy;
    allow_fallbacks: boolean;
    /** Fail over after a timeout that happened once the request was sent (may duplicate). */
    failover_on_timeout: boolean;
  };
  tasks: {
    /** A task not finished this long after creation fails with `timeout`. */
    deadline_ms: number;
    /** How long an Idempotency-Key is remembered. */
    idempotency_ttl_ms: number;
  };
  tracking: {
    poll_min_interval_ms: number;
    poll_max_interval_ms: number;
    poll_backoff: number;
    /** Fraction of each delay randomized either way. */
    poll_jitter: number;
    /** Poll interval while an upstream webhook is expected. */
    webhook_safety_poll_ms: number;
    /** How long a replica owns a task it is tracking or submitting. */
    lease_ms: number;
    /** How often each worker loop looks for work. */
    tick_ms: number;
  };
  webhooks: {
    /** Let `webhook_url` point at private, loopback or link-local addresses. */
    allow_private_targets: boolean;
    max_attempts: number;
    timeout_ms: number;
  };
  /** Per tenant: the `whsec_` secret that signs its outbound webhooks. */
  tenants: Readonly<Record<string, { webhook_secret?: string | undefined }>>;
}
