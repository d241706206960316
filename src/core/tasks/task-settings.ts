/**
 * What the task engine reads from the configuration. Core declares it; `src/config` builds it
 * from `config.yaml` (field names match the file).
 */
import type { BudgetSettings } from '../model/budget.js';
import type { RoutingStrategy } from '../model/canonical.js';

/** What the engine knows about one tenant. */
export interface TenantSettings {
  /** The `whsec_` secrets that sign its outbound webhooks, in order: several while one is rotated (never empty). */
  webhook_secret?: readonly string[] | undefined;
  /** Its spending budget, when it has one. */
  budget?: BudgetSettings | undefined;
  /** Where account events (budget alerts) are sent. */
  events_url?: string | undefined;
  /** Days this tenant's stored outputs are kept (overrides `storage.retention_days`). */
  retention_days?: number | undefined;
  /** Its keys may read every tenant's usage. */
  admin?: boolean | undefined;
}

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
  /** Result custody (SPEC §7): copies of outputs in the gateway's storage. */
  storage: {
    /** `copy`: outputs are copied before a task reports `succeeded`; `passthrough`: upstream URLs only. */
    mode: 'copy' | 'passthrough';
    /** Copies of one output tried before it is reported as not stored. */
    max_attempts: number;
    /** Tasks whose outputs one process copies at once. */
    copy_concurrency: number;
    /** Longest one copy may take, start to end. */
    copy_timeout_ms: number;
    /** Longest the source may send nothing mid-copy. */
    idle_timeout_ms: number;
    /** Largest file copied. */
    max_bytes: number;
    /** Let result URLs point at private, loopback or link-local addresses. */
    allow_private_sources: boolean;
    /** Days a stored copy is kept, unless the tenant says otherwise; undefined: kept. */
    retention_days?: number | undefined;
    /** How long the signed content links on a Task work. */
    url_ttl_seconds: number;
    s3: {
      /** Serve content by redirect to a presigned URL (`redirect`) or through the gateway (`proxy`). */
      serve: 'redirect' | 'proxy';
      /** Lifetime of a presigned URL the content route redirects to. */
      presign_ttl_seconds: number;
    };
  };
  /** Per tenant: webhook secret, budget, account-event URL, admin flag. */
  tenants: Readonly<Record<string, TenantSettings>>;
}
