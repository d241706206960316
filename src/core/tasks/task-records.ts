/**
 * Tasks, attempts and outbound deliveries as the engine works with them: typed objects, mapped
 * to and from the store's rows here and nowhere else. JSON columns are read and written in
 * this file only; the rest of core never sees a column name.
 */
import type {
  AttemptOutcome,
  RecoveredBy,
  Model,
  Operation,
  OutputStorageState,
  Quality,
  TaskCost,
  TaskError,
  TaskStatus,
  UpstreamOutput,
  VideoRequest,
} from '../model/canonical.js';
import type { CostEstimate } from '../model/pricing.js';
import type { TaskPhase } from '../../store/schema.js';
import type { BudgetRow, NewUsageRow, UsagePatch, UsageRow } from '../../store/usage-store.js';
import type {
  AttemptPatch,
  AttemptRow,
  DeliveryRow,
  NewAttemptRow,
  NewDeliveryRow,
  NewTaskRow,
  TaskPatch,
  TaskRow,
} from '../../store/task-store.js';
import { IN_FLIGHT_PHASES } from '../../store/task-store.js';

/** Whether a task in `phase` holds one of its provider's slots (being submitted or tracked). */
export function holdsSlot(phase: TaskPhase): boolean {
  return IN_FLIGHT_PHASES.includes(phase);
}

export type { TaskPhase };

/** One provider in a task's routing plan. */
export interface PlanEntry {
  provider: string;
  /** The cost estimate routing made for this provider, when it has prices. */
  estimate?: CostEstimate;
  /** What one credit was worth under the rule that gave the estimate (reported credits convert at it). */
  creditValue?: number;
  /** What this provider cannot honour exactly; they become the task's warnings if it is used. */
  warnings: string[];
  /**
   * The only account of this provider the task may go through: the one that made the video its
   * `video_id` names (the video exists only there). Absent: any account.
   */
  account?: string;
}

/** The routing decision made at create time, kept with the task for the dispatcher. */
export interface TaskPlan {
  /** Request fields the caller wrote (capability checks treat defaults more leniently). */
  explicit: string[];
  /** Providers in the order they will be tried. */
  candidates: PlanEntry[];
}

/**
 * One result of a task: where the upstream serves it and, once copied, where the gateway keeps
 * it (SPEC §7 result custody).
 */
export interface OutputRecord {
  readonly type: 'video' | 'image';
  /** Seconds, for videos when the provider reports it. */
  readonly duration: number | null;
  /** The provider's URL of the file. */
  readonly upstreamUrl: string;
  /** The provider's own id of the result (legacy Kling video id), or null. */
  readonly upstreamId: string | null;
  /** When the provider deletes its copy (its documented lifetime), or null. */
  readonly upstreamExpiresAt: number | null;
  /** The provider answered 404/410 for `upstreamUrl`. */
  readonly upstreamGone: boolean;
  readonly storage: OutputStorageState;
  /** Why the output is not stored, or why the copy was deleted. */
  readonly storageError: string | null;
  /** The object's key in the gateway's storage, once written. */
  readonly key: string | null;
  readonly sha256: string | null;
  readonly bytes: number | null;
  readonly contentType: string | null;
  readonly storedAt: number | null;
  /** When the stored copy is deleted (the tenant's retention), or null to keep it. */
  readonly expiresAt: number | null;
  /** Copies tried so far (failed ones are retried with back-off). */
  readonly copyAttempts: number;
  /**
   * Of those, the tries the provider answered 404/410. The URL is gone only when every try
   * answered so (`upstreamGone`): one answered otherwise (a 5xx, a 403) says it may still be there.
   */
  readonly goneAnswers: number;
  /**
   * When the next later copy is due: set on an output given up on because the gateway's own
   * storage failed (a full disk, S3 down), which is copied again after its task succeeded until
   * `recopyUntil`. Null or absent: none waits.
   */
  readonly recopyAt?: number | null;
  /** The last time a later copy is tried (the provider's documented lifetime of results, else a day). */
  readonly recopyUntil?: number | null;
  /** Later copies tried so far (each waits twice as long as the one before, up to an hour). */
  readonly recopies?: number;
}

/** A task as the engine sees it. Times are milliseconds since the epoch. */
export interface TaskRecord {
  readonly id: string;
  readonly tenant: string;
  /** The public status (SPEC §1). */
  readonly status: TaskStatus;
  /** Where the task is in the gateway's own work. */
  readonly phase: TaskPhase;
  readonly model: Model;
  readonly quality: Quality;
  readonly operation: Operation;
  /** The canonical request as accepted. */
  readonly request: VideoRequest;
  readonly plan: TaskPlan;
  /** What the provider the task went to could not honour exactly. */
  readonly warnings: string[];
  /** The caller's metadata, echoed back. */
  readonly metadata: Record<string, string>;
  /** The provider holding (or last tried for) the task. */
  readonly provider: string | null;
  /** Which of the provider's accounts holds the task: every later call about it goes through this account. */
  readonly account: string | null;
  readonly providerTaskId: string | null;
  /** The raw upstream status word. */
  readonly providerStatus: string | null;
  /** Adapter-private tracking data saved at acceptance, and replaced by what a poll learned (`StatusReport.tracking`). */
  readonly tracking: Record<string, string> | null;
  readonly outputs: OutputRecord[];
  readonly error: TaskError | null;
  readonly cost: TaskCost;
  /** Where the caller wants task events. */
  readonly webhookUrl: string | null;
  /** Secret in the path of token-authenticated upstream callbacks. */
  readonly callbackToken: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly completedAt: number | null;
  readonly deadlineAt: number;
  /** When the dispatcher may next try (a wait for a slot or a rate allowance). */
  readonly dispatchAfter: number;
  readonly nextPollAt: number | null;
  readonly pollCount: number;
  /** The replica that owns the task's current submission or poll, and until when. */
  readonly leaseOwner: string | null;
  readonly leaseUntil: number | null;
  /** Whether an upstream webhook or callback is expected (polling is then a safety net). */
  readonly expectsWebhook: boolean;
  /** A task still queued at this time is canceled (the caller's `cancel_after`), or null. */
  readonly cancelAt: number | null;
  /**
   * When the caller asked to cancel while a create was on its way (null: never): no further
   * create of the task leaves, and unless that one is accepted the task ends canceled.
   */
  readonly cancelRequestedAt: number | null;
  /** Bumped by every change; newer versions are newer states. */
  readonly version: number;
  /**
   * The version at which the task took its current status (the store keeps it); absent on a
   * record not read from the store, null on rows written before it was kept.
   */
  readonly statusVersion?: number | null;
}

/** The fields a state change may set. Only the lifecycle builds these. */
export type TaskChange = Partial<
  Pick<
    TaskRecord,
    | 'status'
    | 'phase'
    | 'provider'
    | 'account'
    | 'providerTaskId'
    | 'providerStatus'
    | 'tracking'
    | 'outputs'
    | 'error'
    | 'cost'
    | 'warnings'
    | 'updatedAt'
    | 'completedAt'
    | 'dispatchAfter'
    | 'nextPollAt'
    | 'pollCount'
    | 'leaseOwner'
    | 'leaseUntil'
    | 'expectsWebhook'
    | 'cancelRequestedAt'
  >
>;

/** One create request to one provider (or a provider passed over), in the order they happened. */
export interface AttemptRecord {
  /** 1, 2, 3 … per task. */
  readonly seq: number;
  readonly provider: string;
  /** The provider account the request went through; null when the provider was passed over. */
  readonly account: string | null;
  readonly outcome: AttemptOutcome;
  /** Canonical error code, or `circuit_open` for a skip. */
  readonly errorCode: string | null;
  readonly providerCode: string | null;
  readonly httpStatus: number | null;
  readonly latencyMs: number | null;
  readonly message: string | null;
  readonly at: number;
  /** Set the moment the provider accepted: its id for the task and the adapter's tracking data. */
  readonly providerTaskId: string | null;
  readonly tracking: Record<string, string> | null;
  /** How the task was found when the create's answer was lost (null: the answer said so). */
  readonly recoveredBy: RecoveredBy | null;
  /** The provider's time limit (`timeout_ms`) a create was sent under; null when not recorded. */
  readonly timeoutMs: number | null;
  /**
   * The upstream task the create's own answer named beside a server error, kept until the
   * provider's status is asked about it (`Recovery.resolve`): adopted only when shown, unlike
   * `providerTaskId`. Null when the answer named none.
   */
  readonly namedTaskId: string | null;
}

/** An attempt to append; fields left out are unknown (null). */
export type NewAttempt = Pick<AttemptRecord, 'provider' | 'outcome' | 'at'> &
  Partial<Pick<AttemptRecord, 'account' | 'errorCode' | 'providerCode' | 'httpStatus' | 'latencyMs' | 'message' | 'timeoutMs'>>;

/** What an attempt learns once it has an answer. */
export type AttemptChange = Partial<Omit<AttemptRecord, 'seq' | 'provider' | 'account' | 'at' | 'timeoutMs'>>;

/** One task event on its way to the caller's `webhook_url`. */
export interface DeliveryRecord {
  /** Also the `webhook-id` header: the same for every retry. */
  readonly id: string;
  /** The task the event is about; null for account events (budget alerts). */
  readonly taskId: string | null;
  readonly tenant: string;
  readonly url: string;
  readonly eventType: string;
  /** The exact body that is signed and sent. */
  readonly payload: string;
  /** Tries made so far. */
  readonly attempts: number;
}

/** Where a delivery stands, as its task's tenant may read it. */
export interface DeliveryState {
  readonly id: string;
  readonly eventType: string;
  readonly url: string;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
  readonly createdAt: number;
  /** Null once delivered or failed. */
  readonly nextAttemptAt: number | null;
  readonly deliveredAt: number | null;
}

/** A delivery to queue with a status change. */
export type NewDelivery = Omit<DeliveryRecord, 'attempts'> & { createdAt: number };

/** How a delivery try ended. */
export type DeliveryResult =
  | { delivered: true; attempts: number; lastStatus: number | null; at: number }
  | { delivered: false; attempts: number; lastStatus: number | null; error: string; giveUp: boolean; retryAt: number }
  /** Ended without a try (its tries and last status stay as they were). */
  | { delivered: false; notSent: true; error: string };

/** `,a,b,`: the stored form of a task's candidate providers (for fair queueing per provider). */
function candidatesColumn(plan: TaskPlan): string {
  const providers = plan.candidates.map((entry) => entry.provider);
  return providers.length === 0 ? '' : `,${providers.join(',')},`;
}

/** The providers of a stored `candidates` column (`,a,b,`), in plan order (none for an empty one). */
export function candidateProviders(column: string): string[] {
  return column.split(',').filter((provider) => provider !== '');
}

/**
 * A result as the provider reported it, before any copy: `pending` when the gateway will copy
 * it, `passthrough` when storage is off. `lifetimeMs` is how long the provider documents
 * keeping it.
 */
export function newOutput(output: UpstreamOutput, now: number, lifetimeMs: number | undefined, willCopy: boolean): OutputRecord {
  return {
    type: output.type,
    duration: output.duration,
    upstreamUrl: output.url,
    upstreamId: output.id ?? null,
    upstreamExpiresAt: lifetimeMs !== undefined ? now + lifetimeMs : null,
    upstreamGone: false,
    storage: willCopy ? 'pending' : 'passthrough',
    storageError: null,
    key: null,
    sha256: null,
    bytes: null,
    contentType: null,
    storedAt: null,
    expiresAt: null,
    copyAttempts: 0,
    goneAnswers: 0,
  };
}

/**
 * Outputs as stored. Tasks finished before result custody existed hold `{type, url, duration}`:
 * they read as outputs that were never copied (`passthrough`).
 */
function outputsFromColumn(json: string): OutputRecord[] {
  const items = parsed<unknown[]>(json, []);
  return (Array.isArray(items) ? items : []).map((item) => {
    const output = item as Partial<OutputRecord> & { url?: string };
    // Outputs stored before the provider's id was kept have none; before 404s were retried, no count of them.
    if (typeof output.upstreamUrl === 'string') return { ...output, upstreamId: output.upstreamId ?? null, goneAnswers: output.goneAnswers ?? 0 } as OutputRecord;
    return newOutput({ type: output.type === 'image' ? 'image' : 'video', duration: output.duration ?? null, url: output.url ?? '' }, 0, undefined, false);
  });
}

/** The earliest retention deadline of the stored outputs: what the retention pass looks for. */
export function storageExpiresAt(outputs: readonly OutputRecord[]): number | null {
  const deadlines = outputs.flatMap((output) => (output.storage === 'stored' && output.expiresAt !== null ? [output.expiresAt] : []));
  return deadlines.length > 0 ? Math.min(...deadlines) : null;
}

/** When the earliest later copy of an output not stored is due, or null: what the re-copy pass looks for. */
export function recopyDueAt(outputs: readonly OutputRecord[]): number | null {
  const due = outputs.flatMap((output) => (output.storage === 'not_stored' && typeof output.recopyAt === 'number' ? [output.recopyAt] : []));
  return due.length > 0 ? Math.min(...due) : null;
}

/** Reads a JSON column; a value that does not parse reads as `fallback` rather than failing the read. */
function parsed<T>(json: string | null, fallback: T): T {
  if (json === null) return fallback;
  try {
    return JSON.parse(json) as T;
  } catch {
    return fallback;
  }
}

const UNKNOWN_COST: TaskCost = { credits: null, estimated: true, currency_amount: null, currency: null };

export function taskFromRow(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    tenant: row.tenant,
    status: row.status as TaskStatus,
    phase: row.phase,
    model: row.model as Model,
    quality: row.quality as Quality,
    operation: row.operation as Operation,
    request: parsed(row.request_json, {} as VideoRequest),
    plan: parsed<TaskPlan>(row.plan_json, { explicit: [], candidates: [] }),
    warnings: parsed<string[]>(row.warnings_json, []),
    metadata: parsed<Record<string, string>>(row.metadata_json, {}),
    provider: row.provider,
    account: row.account ?? null,
    providerTaskId: row.provider_task_id,
    providerStatus: row.provider_status,
    tracking: parsed<Record<string, string> | null>(row.tracking_json, null),
    outputs: outputsFromColumn(row.outputs_json),
    error: parsed<TaskError | null>(row.error_json, null),
    cost: parsed(row.cost_json, UNKNOWN_COST),
    webhookUrl: row.webhook_url,
    callbackToken: row.callback_token,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    deadlineAt: row.deadline_at,
    dispatchAfter: row.dispatch_after,
    nextPollAt: row.next_poll_at,
    pollCount: row.poll_count,
    leaseOwner: row.lease_owner,
    leaseUntil: row.lease_until,
    expectsWebhook: row.expects_webhook === 1,
    cancelAt: row.cancel_at ?? null,
    cancelRequestedAt: row.cancel_requested_at ?? null,
    version: row.version,
    statusVersion: row.status_version ?? null,
  };
}

/**
 * Text an upstream wrote (its messages, codes and status words, which may echo what a caller sent)
 * as a text column holds it: a NUL, which PostgreSQL's text cannot store (the whole write failed),
 * becomes U+FFFD. JSON columns need nothing: JSON writes a NUL as `\u0000`.
 */
function storableText<T extends string | null | undefined>(text: T): T {
  return (typeof text === 'string' && text.includes('\u0000') ? text.replace(/\u0000/g, '\uFFFD') : text) as T;
}

export function rowFromTask(task: TaskRecord): NewTaskRow {
  return {
    id: task.id,
    tenant: task.tenant,
    status: task.status,
    phase: task.phase,
    model: task.model,
    quality: task.quality,
    operation: task.operation,
    request_json: JSON.stringify(task.request),
    plan_json: JSON.stringify(task.plan),
    warnings_json: JSON.stringify(task.warnings),
    metadata_json: JSON.stringify(task.metadata),
    provider: task.provider,
    account: task.account,
    provider_task_id: task.providerTaskId,
    provider_status: storableText(task.providerStatus),
    tracking_json: task.tracking === null ? null : JSON.stringify(task.tracking),
    outputs_json: JSON.stringify(task.outputs),
    error_json: task.error === null ? null : JSON.stringify(task.error),
    cost_json: JSON.stringify(task.cost),
    webhook_url: task.webhookUrl,
    callback_token: task.callbackToken,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    completed_at: task.completedAt,
    deadline_at: task.deadlineAt,
    dispatch_after: task.dispatchAfter,
    next_poll_at: task.nextPollAt,
    poll_count: task.pollCount,
    lease_owner: task.leaseOwner,
    lease_until: task.leaseUntil,
    expects_webhook: task.expectsWebhook ? 1 : 0,
    version: task.version,
    status_version: task.statusVersion ?? task.version,
    candidates: candidatesColumn(task.plan),
    cancel_at: task.cancelAt,
    storage_expires_at: storageExpiresAt(task.outputs),
    recopy_at: recopyDueAt(task.outputs),
  };
}

/** The columns a change writes; fields it leaves out stay as they are. */
export function patchFromChange(change: TaskChange): TaskPatch {
  const patch: TaskPatch = {};
  if (change.status !== undefined) patch.status = change.status;
  if (change.phase !== undefined) patch.phase = change.phase;
  if (change.provider !== undefined) patch.provider = change.provider;
  if (change.account !== undefined) patch.account = change.account;
  if (change.providerTaskId !== undefined) patch.provider_task_id = change.providerTaskId;
  if (change.providerStatus !== undefined) patch.provider_status = storableText(change.providerStatus);
  if (change.tracking !== undefined) patch.tracking_json = change.tracking === null ? null : JSON.stringify(change.tracking);
  if (change.outputs !== undefined) {
    patch.outputs_json = JSON.stringify(change.outputs);
    patch.storage_expires_at = storageExpiresAt(change.outputs);
    patch.recopy_at = recopyDueAt(change.outputs);
  }
  if (change.error !== undefined) patch.error_json = change.error === null ? null : JSON.stringify(change.error);
  if (change.cost !== undefined) patch.cost_json = JSON.stringify(change.cost);
  if (change.warnings !== undefined) patch.warnings_json = JSON.stringify(change.warnings);
  if (change.updatedAt !== undefined) patch.updated_at = change.updatedAt;
  if (change.completedAt !== undefined) patch.completed_at = change.completedAt;
  if (change.dispatchAfter !== undefined) patch.dispatch_after = change.dispatchAfter;
  if (change.nextPollAt !== undefined) patch.next_poll_at = change.nextPollAt;
  if (change.pollCount !== undefined) patch.poll_count = change.pollCount;
  if (change.leaseOwner !== undefined) patch.lease_owner = change.leaseOwner;
  if (change.leaseUntil !== undefined) patch.lease_until = change.leaseUntil;
  if (change.expectsWebhook !== undefined) patch.expects_webhook = change.expectsWebhook ? 1 : 0;
  if (change.cancelRequestedAt !== undefined) patch.cancel_requested_at = change.cancelRequestedAt;
  return patch;
}

export function attemptFromRow(row: AttemptRow): AttemptRecord {
  return {
    seq: row.seq,
    provider: row.provider,
    account: row.account ?? null,
    outcome: row.outcome as AttemptOutcome,
    errorCode: row.error_code,
    providerCode: row.provider_code,
    httpStatus: row.http_status,
    latencyMs: row.latency_ms,
    message: row.message,
    at: row.at,
    providerTaskId: row.provider_task_id,
    tracking: parsed<Record<string, string> | null>(row.tracking_json, null),
    recoveredBy: (row.recovered_by ?? null) as RecoveredBy | null,
    timeoutMs: row.timeout_ms ?? null,
    namedTaskId: row.named_task_id ?? null,
  };
}

export function rowFromAttempt(taskId: string, attempt: NewAttempt): NewAttemptRow {
  return {
    task_id: taskId,
    provider: attempt.provider,
    account: attempt.account ?? null,
    outcome: attempt.outcome,
    error_code: attempt.errorCode ?? null,
    provider_code: storableText(attempt.providerCode ?? null),
    http_status: attempt.httpStatus ?? null,
    latency_ms: attempt.latencyMs ?? null,
    message: storableText(attempt.message ?? null),
    at: attempt.at,
    ...(attempt.timeoutMs !== undefined ? { timeout_ms: attempt.timeoutMs } : {}),
  };
}

export function patchFromAttemptChange(change: AttemptChange): AttemptPatch {
  const patch: AttemptPatch = {};
  if (change.outcome !== undefined) patch.outcome = change.outcome;
  if (change.errorCode !== undefined) patch.error_code = change.errorCode;
  if (change.providerCode !== undefined) patch.provider_code = storableText(change.providerCode);
  if (change.httpStatus !== undefined) patch.http_status = change.httpStatus;
  if (change.latencyMs !== undefined) patch.latency_ms = change.latencyMs;
  if (change.message !== undefined) patch.message = storableText(change.message);
  if (change.providerTaskId !== undefined) patch.provider_task_id = change.providerTaskId;
  if (change.tracking !== undefined) patch.tracking_json = change.tracking === null ? null : JSON.stringify(change.tracking);
  if (change.recoveredBy !== undefined) patch.recovered_by = change.recoveredBy;
  if (change.namedTaskId !== undefined) patch.named_task_id = storableText(change.namedTaskId);
  return patch;
}

/** `attempt` as it reads once `change` is written (`patchFromAttemptChange`). */
export function withAttemptChange(attempt: AttemptRecord, change: AttemptChange): AttemptRecord {
  const defined = Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined)) as AttemptChange;
  return {
    ...attempt,
    ...defined,
    ...(defined.providerCode !== undefined ? { providerCode: storableText(defined.providerCode) } : {}),
    ...(defined.message !== undefined ? { message: storableText(defined.message) } : {}),
  };
}

export function deliveryFromRow(row: DeliveryRow): DeliveryRecord {
  return {
    id: row.id,
    taskId: row.task_id,
    tenant: row.tenant,
    url: row.url,
    eventType: row.event_type,
    payload: row.payload_json,
    attempts: row.attempts,
  };
}

export function deliveryStateFromRow(row: DeliveryRow): DeliveryState {
  const status = row.status === 'delivered' || row.status === 'failed' ? row.status : 'pending';
  return {
    id: row.id,
    eventType: row.event_type,
    url: row.url,
    status,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    createdAt: row.created_at,
    nextAttemptAt: status === 'pending' ? row.next_attempt_at : null,
    deliveredAt: row.delivered_at,
  };
}

export function rowFromDelivery(delivery: NewDelivery): NewDeliveryRow {
  return {
    id: delivery.id,
    task_id: delivery.taskId,
    tenant: delivery.tenant,
    url: delivery.url,
    event_type: delivery.eventType,
    payload_json: delivery.payload,
    status: 'pending',
    attempts: 0,
    next_attempt_at: delivery.createdAt,
    created_at: delivery.createdAt,
  };
}

/**
 * A task's line in the usage ledger: what it was, what it cost, and what its tenant's budget
 * holds for it. Written with the task at create and kept in step by the lifecycle.
 */
export interface UsageRecord {
  readonly taskId: string;
  readonly tenant: string;
  readonly createdAt: number;
  /** UTC calendar day of creation, `YYYY-MM-DD`. */
  readonly day: string;
  readonly model: Model;
  readonly quality: Quality;
  readonly operation: Operation;
  readonly provider: string | null;
  /** The provider account that holds the task. */
  readonly account: string | null;
  readonly status: TaskStatus;
  readonly completedAt: number | null;
  readonly durationMs: number | null;
  /** Seconds of video delivered (succeeded tasks). */
  readonly videoSeconds: number;
  /** The current charge (final once settled). */
  readonly credits: number | null;
  readonly amountMicros: number | null;
  readonly currency: string | null;
  /** The charge is a final figure, not the gateway's estimate. */
  readonly reported: boolean;
  /** The estimate for the provider that took the task (prices in effect at creation). */
  readonly estimatedCredits: number | null;
  /** What the provider said it charged. */
  readonly reportedCredits: number | null;
  /** Budget period the task is charged to; null when its tenant had no budget at creation. */
  readonly budgetPeriod: string | null;
  /** Money the budget holds for the task until it settles. */
  readonly reservedMicros: number;
  readonly settled: boolean;
}

export type UsageChange = Partial<Omit<UsageRecord, 'taskId' | 'tenant' | 'createdAt' | 'day' | 'model' | 'quality' | 'operation'>>;

/** A tenant's budget counters for one period (millionths of the budget currency). */
export interface BudgetRecord {
  readonly tenant: string;
  readonly period: string;
  readonly spentMicros: number;
  readonly reservedMicros: number;
  readonly warnedAt: number | null;
  readonly exhaustedAt: number | null;
}

export function usageFromRow(row: UsageRow): UsageRecord {
  return {
    taskId: row.task_id,
    tenant: row.tenant,
    createdAt: row.created_at,
    day: row.day,
    model: row.model as Model,
    quality: row.quality as Quality,
    operation: row.operation as Operation,
    provider: row.provider,
    account: row.account ?? null,
    status: row.status as TaskStatus,
    completedAt: row.completed_at,
    durationMs: row.duration_ms,
    videoSeconds: Number(row.video_seconds),
    credits: row.credits === null ? null : Number(row.credits),
    amountMicros: row.amount_micros,
    currency: row.currency,
    reported: row.reported === 1,
    estimatedCredits: row.estimated_credits === null ? null : Number(row.estimated_credits),
    reportedCredits: row.reported_credits === null ? null : Number(row.reported_credits),
    budgetPeriod: row.budget_period,
    reservedMicros: Number(row.reserved_micros),
    settled: row.settled === 1,
  };
}

export function rowFromUsage(usage: UsageRecord): NewUsageRow {
  return {
    task_id: usage.taskId,
    tenant: usage.tenant,
    created_at: usage.createdAt,
    day: usage.day,
    model: usage.model,
    quality: usage.quality,
    operation: usage.operation,
    provider: usage.provider,
    account: usage.account,
    status: usage.status,
    completed_at: usage.completedAt,
    duration_ms: usage.durationMs,
    video_seconds: usage.videoSeconds,
    credits: usage.credits,
    amount_micros: usage.amountMicros,
    currency: usage.currency,
    reported: usage.reported ? 1 : 0,
    estimated_credits: usage.estimatedCredits,
    reported_credits: usage.reportedCredits,
    budget_period: usage.budgetPeriod,
    reserved_micros: usage.reservedMicros,
    settled: usage.settled ? 1 : 0,
  };
}

export function patchFromUsageChange(change: UsageChange): UsagePatch {
  const patch: UsagePatch = {};
  if (change.provider !== undefined) patch.provider = change.provider;
  if (change.account !== undefined) patch.account = change.account;
  if (change.status !== undefined) patch.status = change.status;
  if (change.completedAt !== undefined) patch.completed_at = change.completedAt;
  if (change.durationMs !== undefined) patch.duration_ms = change.durationMs;
  if (change.videoSeconds !== undefined) patch.video_seconds = change.videoSeconds;
  if (change.credits !== undefined) patch.credits = change.credits;
  if (change.amountMicros !== undefined) patch.amount_micros = change.amountMicros;
  if (change.currency !== undefined) patch.currency = change.currency;
  if (change.reported !== undefined) patch.reported = change.reported ? 1 : 0;
  if (change.estimatedCredits !== undefined) patch.estimated_credits = change.estimatedCredits;
  if (change.reportedCredits !== undefined) patch.reported_credits = change.reportedCredits;
  if (change.budgetPeriod !== undefined) patch.budget_period = change.budgetPeriod;
  if (change.reservedMicros !== undefined) patch.reserved_micros = change.reservedMicros;
  if (change.settled !== undefined) patch.settled = change.settled ? 1 : 0;
  return patch;
}

export function budgetFromRow(row: BudgetRow): BudgetRecord {
  return {
    tenant: row.tenant,
    period: row.period,
    spentMicros: Number(row.spent_micros),
    reservedMicros: Number(row.reserved_micros),
    warnedAt: row.warned_at,
    exhaustedAt: row.exhausted_at,
  };
}
