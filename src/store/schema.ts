/**
 * Table shapes, shared by SQLite and PostgreSQL. Times are integer milliseconds since the epoch
 * (bigint in PostgreSQL, read back as numbers); JSON is stored as text so both dialects read it
 * the same way.
 */
import type { Generated } from 'kysely';

/** The two engines these tables live in. */
export type Dialect = 'sqlite' | 'postgres';

/** Where a task is in the gateway's own work, beside its public status. */
export type TaskPhase =
  /** Waiting for a provider slot or rate allowance (`queued`). */
  | 'dispatch'
  /** A create request to a provider is being sent (held by one replica's lease). */
  | 'submitting'
  /** Accepted upstream; followed by polling and webhooks. */
  | 'tracking'
  /**
   * Finished upstream; its outputs are being copied into the gateway's storage before it reports
   * `succeeded` (the public status stays `processing`). Holds no provider slot.
   */
  | 'storing'
  /** Terminal. */
  | 'done';

export interface TasksTable {
  id: string;
  tenant: string;
  status: string;
  phase: TaskPhase;
  model: string;
  quality: string;
  operation: string;
  /** The canonical request as accepted (JSON). */
  request_json: string;
  /** Providers in the order routing will try them, with estimates (JSON). */
  plan_json: string;
  warnings_json: string;
  metadata_json: string;
  provider: string | null;
  provider_task_id: string | null;
  provider_status: string | null;
  /** Adapter-private tracking data (JSON). */
  tracking_json: string | null;
  outputs_json: string;
  error_json: string | null;
  cost_json: string;
  webhook_url: string | null;
  /** Secret token in the legacy callback path. */
  callback_token: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
  deadline_at: number;
  /** When the dispatcher may next try (rate-limit waits). */
  dispatch_after: number;
  next_poll_at: number | null;
  poll_count: number;
  /** Replica that currently owns the task's submission or tracking step. */
  lease_owner: string | null;
  lease_until: number | null;
  /** Whether an upstream webhook or callback is expected. */
  expects_webhook: number;
  version: number;
  /** The version at which the task took its current status (null on rows written before it was kept). */
  status_version: Generated<number | null>;
  /** Providers the task may be sent to, as `,a,b,` (for fair queueing per provider). */
  candidates: Generated<string>;
  /** A task still queued at this time is canceled (the caller's `cancel_after`). */
  cancel_at: Generated<number | null>;
  /** The earliest retention deadline among the task's stored outputs (for the retention pass). */
  storage_expires_at: Generated<number | null>;
  /** The account of `provider` whose slot the task holds (or last held). */
  account: Generated<string | null>;
  /**
   * When the caller asked to cancel while a create of the task was on its way: no other create
   * is sent after it, and a submission that does not end accepted ends canceled.
   */
  cancel_requested_at: Generated<number | null>;
  /**
   * When the earliest later copy of an output given up on for the gateway's own storage is due
   * (null: none waits), for the re-copy pass.
   */
  recopy_at: Generated<number | null>;
}

export interface AttemptsTable {
  id: Generated<number>;
  task_id: string;
  seq: number;
  provider: string;
  outcome: string;
  error_code: string | null;
  provider_code: string | null;
  http_status: number | null;
  latency_ms: number | null;
  message: string | null;
  at: number;
  /** Set when the provider accepted: its id for the task, and the adapter's tracking data. */
  provider_task_id: Generated<string | null>;
  tracking_json: Generated<string | null>;
  /** The provider account the request went through; null when the provider was passed over. */
  account: Generated<string | null>;
  /** How an accepted task was found after its create answer was lost (`external_id`, `webhook`). */
  recovered_by: Generated<string | null>;
  /** The provider's `timeout_ms` a create was sent under (null: written before it was recorded). */
  timeout_ms: Generated<number | null>;
  /** The upstream task the create's server-error answer named, not yet confirmed by its status (null: none). */
  named_task_id: Generated<string | null>;
}

export interface IdempotencyKeysTable {
  tenant: string;
  key: string;
  request_hash: string;
  task_id: string;
  created_at: number;
  expires_at: number;
}

/**
 * The longest provider id `output_ids` notes: the create request's limit for a `video_id`
 * (`VIDEO_ID_MAX_LENGTH` in the canonical model, which a test holds equal to this), so a longer
 * id could never be named, and PostgreSQL's index on the column refuses entries past about 2,700
 * bytes (which would fail the write of the outputs with it).
 */
export const NOTED_OUTPUT_ID_MAX_LENGTH = 128;

/**
 * Whether `output_ids` can hold this provider id: not empty, no NUL (PostgreSQL cannot store or
 * bind one), at most `NOTED_OUTPUT_ID_MAX_LENGTH`. Ids it cannot hold are never noted, and no request
 * can name one (`video_id` refuses them).
 */
export function isNotableOutputId(id: string): boolean {
  return id !== '' && !id.includes('\u0000') && id.length <= NOTED_OUTPUT_ID_MAX_LENGTH;
}

/**
 * The provider's own ids of a task's results (`outputs[].upstream_id`) and the tenant whose task
 * made them: a later request naming one as its source (`video_id`) is another tenant's only when
 * a row here says so.
 */
export interface OutputIdsTable {
  upstream_id: string;
  task_id: string;
  tenant: string;
  provider: string;
}

export interface InboundWebhooksTable {
  provider: string;
  webhook_id: string;
  received_at: number;
}

export interface ProvidersTable {
  id: string;
}

export interface DeliveriesTable {
  id: string;
  /** The task the event is about; null for account events (budget alerts). */
  task_id: string | null;
  tenant: string;
  url: string;
  event_type: string;
  payload_json: string;
  status: string;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
  lease_owner: string | null;
  lease_until: number | null;
}

/**
 * How one upstream account stands, shared by every replica: its circuit and its `Retry-After`
 * cool-down. Keyed by `provider:account`.
 */
export interface ProviderStateTable {
  key: string;
  /** Health failures in a row (reset by a success). */
  failures: number;
  /** When the circuit opened; null while it is closed. */
  opened_at: number | null;
  /** Replica holding the single call allowed while the account is in doubt, and until when. */
  trial_owner: string | null;
  trial_until: number | null;
  /** No calls before this time (0: none asked). */
  cooldown_until: number;
  updated_at: number;
}

/** One upstream call allowed by the rate windows of `key` (`provider:account`), at `at` (a sliding log). */
export interface RateGrantsTable {
  id: Generated<number>;
  key: string;
  at: number;
}

/** A sample of one upstream call (outcome, latency) for the shared figures of `key`: a provider id, or `provider:account`. */
export interface UpstreamCallsTable {
  id: Generated<number>;
  key: string;
  at: number;
  /** 1 when the call succeeded. */
  ok: number;
  latency_ms: number;
}

/**
 * One row per task, written with the task and completed when it ends: what usage reports add
 * up (narrow columns, indexed by tenant and time) instead of reading every task's JSON.
 * Money is in integer millionths of `currency`.
 */
export interface TaskUsageTable {
  task_id: string;
  tenant: string;
  created_at: number;
  /** UTC calendar day of `created_at`, `YYYY-MM-DD`. */
  day: string;
  model: string;
  quality: string;
  operation: string;
  provider: string | null;
  /** The provider account that holds the task (null before one took it; migration 0016). */
  account: string | null;
  status: string;
  completed_at: number | null;
  /** `completed_at - created_at` once finished. */
  duration_ms: number | null;
  /** Seconds of video the task delivered. */
  video_seconds: number;
  /** The task's charge in credits and money (current figure; final once `settled`). */
  credits: number | null;
  amount_micros: number | null;
  currency: string | null;
  /** 1 when the charge is the provider's own figure, 0 when it is the gateway's estimate. */
  reported: number;
  /** The estimate for the provider that took the task, from the prices in effect at creation. */
  estimated_credits: number | null;
  /** What the provider said it charged, when it said. */
  reported_credits: number | null;
  /** The budget period the task is charged to (null: its tenant had no budget at creation). */
  budget_period: string | null;
  /** Money held in the budget for this task until it settles. */
  reserved_micros: number;
  /** 1 once the final charge moved from reserved to spent. */
  settled: number;
}

/**
 * What a provider may have charged for a finished task besides the task's own charge: its create
 * went there and was never answered, and the task went on elsewhere (`failover_on_timeout`). One
 * row per such provider, written when the task ends, with the task's grouping columns and the
 * provider's estimate (millionths of `currency`), so usage reports show it beside the spend.
 */
export type UsageAtRiskTable = Pick<
  TaskUsageTable,
  'task_id' | 'tenant' | 'created_at' | 'day' | 'model' | 'quality' | 'operation' | 'credits' | 'amount_micros' | 'currency'
> & {
  /** The provider that may have charged it (not the one that took the task), and its account. */
  provider: string;
  account: string | null;
};

/**
 * SQLite only: how many tasks hold a slot (phase `submitting` or `tracking`) of each provider
 * account, kept by triggers on `tasks` in the transaction of every change (migration 0014), so a
 * slot claim reads one row instead of counting every task in flight. PostgreSQL counts the tasks.
 */
export interface AccountInFlightTable {
  provider: string;
  account: string;
  tasks: number;
}

/**
 * When a task of each tenant last took a slot of each provider (migration 0019): the queue's
 * fair order gives a freed slot, between tenants holding as many, to the one served longest ago.
 */
export interface TenantTurnsTable {
  provider: string;
  tenant: string;
  served_at: number;
}

/** What each budgeted tenant has spent and holds in reserve, per period. Millionths of the budget currency. */
export interface BudgetsTable {
  tenant: string;
  /** `2026-11-22` (day budgets) or `2026-11` (month budgets). */
  period: string;
  spent_micros: number;
  reserved_micros: number;
  /** When the 80 % alert was queued (once per period). */
  warned_at: number | null;
  /** When the 100 % alert was queued (once per period). */
  exhausted_at: number | null;
  updated_at: number;
}

export interface Database {
  provider_state: ProviderStateTable;
  rate_grants: RateGrantsTable;
  upstream_calls: UpstreamCallsTable;
  tasks: TasksTable;
  attempts: AttemptsTable;
  idempotency_keys: IdempotencyKeysTable;
  output_ids: OutputIdsTable;
  inbound_webhooks: InboundWebhooksTable;
  providers: ProvidersTable;
  deliveries: DeliveriesTable;
  task_usage: TaskUsageTable;
  usage_at_risk: UsageAtRiskTable;
  account_in_flight: AccountInFlightTable;
  tenant_turns: TenantTurnsTable;
  budgets: BudgetsTable;
}
