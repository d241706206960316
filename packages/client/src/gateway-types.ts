/**
 * Names for the shapes of the gateway's API. Everything here comes from the generated
 * `gateway-api.generated.ts` (openapi/gateway.json), except the few marked provisional: the
 * endpoints announced for this version of the API that the document does not describe yet. Those
 * are read defensively and become generated types as soon as the document has them.
 */
import type { components, paths } from './gateway-api.generated.js';

type Schemas = components['schemas'];

export type Task = Schemas['Task'];
export type TaskStatus = Schemas['TaskStatus'];
export type TaskOutput = Schemas['TaskOutput'];
export type TaskAttempt = Schemas['TaskAttempt'];
export type TaskCost = Schemas['TaskCost'];
export type TaskError = Schemas['TaskError'];
export type AttemptOutcome = Schemas['AttemptOutcome'];
export type Model = Schemas['Model'];
export type Quality = Schemas['Quality'];
export type Operation = Schemas['Operation'];
export type CreateVideoRequest = Schemas['CreateVideoRequest'];
export type RoutingOverride = Schemas['RoutingOverride'];
export type Quote = Schemas['Quote'];
export type QuoteProvider = Schemas['QuoteProvider'];
export type TaskList = Schemas['TaskList'];
export type ModelList = Schemas['ModelList'];
export type ProviderList = Schemas['ProviderList'];
export type ProviderStatus = Schemas['ProviderStatus'];
export type ProblemDetails = Schemas['ProblemDetails'];

/** Query of `GET /v1/videos`. */
export type ListVideosQuery = NonNullable<paths['/v1/videos']['get']['parameters']['query']>;

/** Statuses after which a task never changes. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>(['succeeded', 'failed', 'canceled']);

export function isTerminal(task: Pick<Task, 'status'>): boolean {
  return TERMINAL_STATUSES.has(task.status);
}

/** One event of `GET /v1/videos/{id}/events`: the event name is the status, the data the task. */
export interface TaskEvent {
  /** The SSE event name (the task's status). */
  event: string;
  /** The SSE id (the task's version), when sent. */
  id: string | undefined;
  task: Task;
}

/** Provisional: `GET /v1/usage` query (SPEC §7, issue 15), until openapi/gateway.json describes it. */
export interface UsageQuery {
  /** Any of provider, model, operation, quality, day. */
  group_by?: string[];
  /** ISO date or date-time, inclusive. */
  from?: string;
  /** ISO date or date-time, exclusive. */
  to?: string;
}

/** Provisional: one row of `GET /v1/usage`; read defensively until the document describes it. */
export interface UsageRow {
  provider?: string;
  model?: string;
  operation?: string;
  quality?: string;
  day?: string;
  tasks?: number;
  succeeded?: number;
  failed?: number;
  video_seconds?: number;
  credits?: number | null;
  currency_amount?: number | null;
  currency?: string | null;
  [field: string]: unknown;
}

/** Provisional: `GET /v1/usage` answer. */
export interface UsageReport {
  data: UsageRow[];
  [field: string]: unknown;
}

/**
 * Provisional: a provider account's standing (issue 14: several accounts per provider). Read from
 * `ProviderStatus.accounts` when the gateway sends it.
 */
export interface ProviderAccountStatus {
  id: string;
  circuit?: string;
  in_flight?: number;
  max_in_flight?: number;
  success_rate?: number | null;
  latency_p50_ms?: number | null;
  latency_p95_ms?: number | null;
  [field: string]: unknown;
}

/** The accounts of a provider, when the gateway reports them (empty otherwise). */
export function accountsOf(provider: ProviderStatus): ProviderAccountStatus[] {
  const accounts = (provider as ProviderStatus & { accounts?: unknown }).accounts;
  return Array.isArray(accounts)
    ? accounts.filter((account): account is ProviderAccountStatus => Boolean(account) && typeof account.id === 'string')
    : [];
}

/** A downloaded output: a byte stream with what is known about it. */
export interface OutputDownload {
  body: ReadableStream<Uint8Array>;
  /** Bytes, when the server said (`content-length`). */
  size: number | null;
  contentType: string | null;
  /** Where it came from: the gateway's stored copy, or the provider's URL. */
  source: 'gateway' | 'upstream';
  url: string;
}
