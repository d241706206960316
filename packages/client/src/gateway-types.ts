/**
 * Names for the shapes of the gateway's API. Everything here comes from the generated
 * `gateway-api.generated.ts` (openapi/gateway.json); `npm run generate` rewrites it and a test
 * fails when it drifts from the document.
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
/** A provider the gateway knows (what `GET /v1/videos?provider=` takes). */
export type ProviderId = Schemas['ProviderId'];
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
export type WebhookDelivery = Schemas['WebhookDelivery'];
export type WebhookDeliveryList = Schemas['WebhookDeliveryList'];

/** Query of `GET /v1/videos`. */
export type ListVideosQuery = NonNullable<paths['/v1/videos']['get']['parameters']['query']>;

/** Statuses after which a task never changes. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>(['succeeded', 'failed', 'canceled']);

export function isTerminal(task: Pick<Task, 'status'>): boolean {
  return TERMINAL_STATUSES.has(task.status);
}

/**
 * Whether no copy of an output can be fetched any more: the gateway kept none, and the provider's
 * is gone or past the lifetime the provider documents for it (its URL no longer serves it, and
 * the gateway's content route answers 410).
 */
export function outputGone(output: Pick<TaskOutput, 'storage' | 'upstream_url_gone' | 'upstream_url_expires_at'>, now = Date.now()): boolean {
  if (output.storage === 'stored') return false;
  const until = output.upstream_url_expires_at;
  return output.upstream_url_gone || (until !== null && Date.parse(until) <= now);
}

/** One event of `GET /v1/videos/{id}/events`: the event name is the status, the data the task. */
export interface TaskEvent {
  /** The SSE event name (the task's status). */
  event: string;
  /** The SSE id (the task's version), when sent. */
  id: string | undefined;
  task: Task;
}

export type UsageReport = Schemas['UsageReport'];
export type UsageRow = Schemas['UsageRow'];
export type UsageBudget = Schemas['UsageBudget'];
/** A key `GET /v1/usage` groups by. */
export type UsageGroupKey = UsageReport['group_by'][number];

/**
 * Query of `GET /v1/usage` as the client takes it: `group_by` as a list of `UsageGroupKey`s (sent
 * comma-separated; the gateway refuses an unknown key, naming it), or already comma-separated as
 * the API writes it (`'provider,model'`); the format is chosen by `usage` or `usageCsv`.
 */
export type UsageQuery = Omit<NonNullable<paths['/v1/usage']['get']['parameters']['query']>, 'group_by' | 'format'> & {
  group_by?: readonly string[] | string;
};

/**
 * The figures of one usage row a table or chart shows, with its group keys: what the report
 * gives, and what a client can add up itself from tasks (money at risk only the report has).
 */
export type UsageFigures = Pick<UsageRow, 'tasks' | 'succeeded' | 'failed' | 'canceled' | 'in_progress' | 'video_seconds' | 'credits' | 'currency_amount' | 'currency'> &
  Partial<Pick<UsageRow, UsageGroupKey | 'tasks_at_risk' | 'credits_at_risk' | 'currency_amount_at_risk' | 'credits_estimated' | 'currency_amount_estimated' | 'currency_amount_reported'>>;

/** One upstream account of a provider, as `GET /v1/providers` reports it. */
export type ProviderAccountStatus = Schemas['ProviderAccountStatus'];

/**
 * The accounts worth listing under a provider: all of them when it has several (or one with a
 * name of its own); none for a single key (`default`), whose figures are the provider's own.
 */
export function accountsOf(provider: ProviderStatus): ProviderAccountStatus[] {
  const [only, ...others] = provider.accounts;
  return others.length === 0 && only?.id === 'default' ? [] : provider.accounts;
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
  /** The byte of the file `body` starts at: `from` as asked (0 for the whole file). */
  start: number;
  /** The whole file's bytes, when the server said (`size` counts only those from `start` on). */
  total: number | null;
  /**
   * What the server said identifies this version of the file (its strong ETag, else its
   * Last-Modified), null when nothing: pass it as `ifRange` with `from` to resume the download.
   */
  validator: string | null;
}
