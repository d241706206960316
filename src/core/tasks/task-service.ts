/**
 * What the public API does with tasks (SPEC §1, §5): validate, route, remember idempotency keys,
 * hand the task to the dispatcher, and read tasks back. Reads never call an upstream.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CreateVideoRequest, IDEMPOTENCY_KEY, Model, TERMINAL_STATUSES, TaskStatus, type RoutingOverride, type Task, type WebhookDelivery } from '../model/canonical.js';
import { quoteReasons, refusalsByField, resolveRequest, type ResolvedRequest } from '../model/capabilities.js';
import { ProblemError, invalidDetail, problems } from '../model/problems.js';
import { issueMessage } from '../model/issue-messages.js';
import { queryNumber } from '../model/query-number.js';
import { incomparableCheapest, inExactOrder, leadShares, planRoute, type ProviderEvaluation, type RoutePlan, type RoutingProvider, type VideoSource } from '../model/routing.js';
import { inlineRateWaitMs, type Dispatcher } from './dispatcher.js';
import { longestTimeoutMs, pickAccounts, type ProviderAccount, type ProviderRuntime } from '../upstream/provider-runtime.js';
import type { Engine } from './engine.js';
import { mayBeHeldUpstream } from './recovery.js';
import type { TimerHandle } from '../clock.js';
import { refuseLiteralTarget } from './address-guard.js';
import { BudgetExceededError, SpendLedger, describeBudget } from './spend-ledger.js';
import { costFromEstimate, TaskLifecycle } from './task-lifecycle.js';
import { fromMicros } from '../model/pricing.js';
import type { TaskRecord } from './task-records.js';
import { randomToken } from './random-token.js';
import { toTask, toWebhookDelivery } from './task-resource.js';
import { watchTask, type WatchOptions } from './task-watch.js';

/** Canonical JSON (sorted keys) so that the same body always hashes the same. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableStringify((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The issues of the form of a union the value came closest to (the fewest issues), under the
 * union's path; undefined when zod kept none.
 */
function closestForm(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | undefined {
  const forms = issue.errors.filter((form) => form.length > 0);
  if (forms.length === 0) return undefined;
  const closest = forms.reduce((best, form) => (form.length < best.length ? form : best));
  return closest.map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] }));
}

/**
 * zod issues (of a parse given `issueMessage`) as problem-details `errors[]` with
 * JSON-pointer-ish dotted paths. A value of no form of a union (lip_sync) is refused naming what
 * its closest form lacks, a refused record key (metadata) says why (rather than only "matches
 * none of the accepted forms" and "is not a valid key"), and each unknown field is named by its
 * own path (zod reports them together at their object's, which for the body's top level would be
 * no field at all).
 */
export function issuesToErrors(issues: readonly z.core.$ZodIssue[]): { path: string; message: string }[] {
  return issues.flatMap((issue) => {
    const closest = issue.code === 'invalid_union' ? closestForm(issue) : undefined;
    if (closest) return issuesToErrors(closest);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...issue.path, key].map(String).join('.'), message: 'unknown field' }));
    }
    const message = issue.code === 'invalid_key' ? `invalid key: ${issue.issues.map((inner) => inner.message).join('; ')}` : issue.message;
    return [{ path: issue.path.map(String).join('.') || '(body)', message }];
  });
}

/**
 * Query issues as `errors[]`, each naming its parameter: an unknown one by its own name (with the
 * names `allowed`), and one given more than once (it arrives as a list) as such, whatever its
 * schema said about a list.
 */
function queryIssuesToErrors(issues: readonly z.core.$ZodIssue[], query: Record<string, unknown>, allowed: readonly string[]): { path: string; message: string }[] {
  const repeated = Object.keys(query).filter((name) => Array.isArray(query[name]));
  const errors = repeated.map((name) => ({ path: name, message: 'given more than once; give it once' }));
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = allowed.length > 0 ? `allowed: ${allowed.join(', ')}` : 'this route takes none';
      errors.push(...issue.keys.map((name) => ({ path: name, message: `unknown query parameter (${known})` })));
    } else if (!repeated.includes(String(issue.path[0]))) {
      errors.push(...issuesToErrors([issue]));
    }
  }
  return errors;
}

/**
 * A query read with `schema` (a strict object of its parameters); problem details naming each
 * parameter at fault otherwise, in the API's words (`issueMessage`).
 */
export function parseQuery<T extends z.ZodObject>(schema: T, query: unknown): z.output<T> {
  const given = query && typeof query === 'object' ? (query as Record<string, unknown>) : {};
  const parsed = schema.safeParse(given, { error: issueMessage });
  if (!parsed.success) {
    const errors = queryIssuesToErrors(parsed.error.issues, given, Object.keys(schema.shape));
    throw problems.validation(errors, invalidDetail(errors, 'query parameter'));
  }
  return parsed.data;
}

/** Longest `/readyz` waits for the store: past it the gateway is not ready (a probe's own timeout is often 5 s). */
export const READINESS_TIMEOUT_MS = 2_000;

/**
 * `GET /v1/videos`'s query. `provider` is one of `providerIds` (every provider the gateway knows,
 * run or not: a provider turned off since still has its tasks listed); another id is refused with
 * them named, as an unknown `model` is, rather than answered with an empty list.
 */
export function listQuery(providerIds: readonly string[]) {
  return z.strictObject({
    status: TaskStatus.optional(),
    provider: z
      .string()
      .min(1)
      .max(64)
      .superRefine((id, ctx) => {
        // An empty one is refused once, as empty (zod runs this refinement after `min` failed too).
        if (id !== '' && !providerIds.includes(id)) ctx.addIssue({ code: 'custom', message: `unknown provider "${id}" (known: ${providerIds.join(', ')})` });
      })
      .optional(),
    model: Model.optional(),
    limit: queryNumber(z.number().int().min(1).max(100)).default(20),
    cursor: z.string().min(1).max(200).optional(),
  });
}

function encodeCursor(task: Pick<TaskRecord, 'createdAt' | 'id'>): string {
  return Buffer.from(JSON.stringify({ c: task.createdAt, i: task.id })).toString('base64url');
}

/** What `encodeCursor` writes: a creation time in ms and a task id (`randomToken`'s base64url). */
const CURSOR_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The position of a cursor we issued; undefined for anything else. A forged one must not reach
 * the store as it is: PostgreSQL fails a query binding a NUL or a time past its bigint. Only the
 * exact text `encodeCursor` writes is one: node reads base64 leniently (it skips characters
 * outside the alphabet, and takes padding and `+`/`/`), so a cursor with a character added,
 * a space, `=` or the JSON written another way decoded to the same position and was served.
 */
function decodeCursor(cursor: string): { createdAt: number; id: string } | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { c?: unknown; i?: unknown };
    if (Number.isSafeInteger(value.c) && (value.c as number) >= 0 && typeof value.i === 'string' && CURSOR_ID.test(value.i)) {
      const position = { createdAt: value.c as number, id: value.i };
      return encodeCursor(position) === cursor ? position : undefined;
    }
  } catch {
    // Fall through: not a cursor we issued.
  }
  return undefined;
}

/** How long inbound webhook ids are remembered for replay protection. */
const WEBHOOK_ID_RETENTION_MS = 7 * 24 * 3600_000;

export interface CreateResult {
  task: Task;
  /** True when an Idempotency-Key matched an earlier create. */
  replayed: boolean;
}

export interface QuoteResult {
  strategy: string;
  request: Record<string, unknown>;
  order: string[];
  providers: {
    provider: string;
    eligible: boolean;
    reasons: string[];
    warnings: string[];
    order: number | null;
    estimated_credits: number | null;
    estimated_cost: number | null;
    currency: string | null;
  }[];
}

/** Tasks canceled per page by the `cancel_after` pass. */
const CANCEL_BATCH = 100;
/** Why a task the caller canceled before its create left ended. */
const CANCELED_BEFORE_SENT = 'canceled by the caller before any provider took it';
/** Times a cancel goes round when a dispatcher keeps taking the task back and forth. */
const CANCEL_ROUNDS = 5;

/**
 * The least `Retry-After` of a repeat answered while its key's first request is still being
 * submitted, or of a cancel kept while a create is undecided (409): once that submission's lease
 * has run out, a recovery pass still has to take it.
 */
const MIN_IN_PROGRESS_RETRY_AFTER_S = 2;

/** How long past a task's deadline its Idempotency-Key is kept at least: the deadline's last look and recovery end well within it. */
const KEY_PAST_DEADLINE_MS = 3_600_000;

/**
 * When a create's Idempotency-Key is forgotten: `tasks.idempotency_ttl_ms` after the create, but
 * never while the task it made may still run (a deadline longer than that): a repeat then would
 * make and bill a second video beside the first.
 */
function idempotencyKeyExpiry(createdAt: number, deadlineAt: number, ttlMs: number): number {
  return Math.max(createdAt + ttlMs, deadlineAt + KEY_PAST_DEADLINE_MS);
}

export class TaskService {
  private readonly lifecycle: TaskLifecycle;
  private readonly ledger: SpendLedger;
  private readonly listQuery: ReturnType<typeof listQuery>;
  /** Aborted when the gateway stops: every watch (event stream, `?wait=`) ends then. */
  private readonly stopping = new AbortController();
  /** How to end each watch running now, which `endWatches` does. */
  private readonly watchEnds = new Set<() => void>();

  constructor(
    private readonly engine: Engine,
    private readonly dispatcher: Dispatcher,
  ) {
    this.lifecycle = new TaskLifecycle(engine);
    this.ledger = new SpendLedger(engine);
    this.listQuery = listQuery(engine.providerIds);
  }

  private routingProviders(): RoutingProvider[] {
    return [...this.engine.runtimes.values()].map((runtime) => ({
      id: runtime.id,
      provider: runtime.provider,
      enabled: runtime.enabled,
      priority: runtime.config.priority,
      weight: runtime.config.weight,
      pricing: runtime.pricing,
      ...(runtime.disabledReason ? { disabledReason: runtime.disabledReason } : {}),
      medianDeliveryMs: runtime.stats.medianDeliveryMs(this.engine.clock.now()),
    }));
  }

  /** Parses and validates a create (or quote) body; throws problem details, in the API's words (`issueMessage`). */
  private parseCreate(body: unknown): { input: CreateVideoRequest; resolved: ResolvedRequest } {
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw problems.validation([{ path: '(body)', message: 'expected a JSON object' }], 'The body must be a JSON object.');
    }
    const parsed = CreateVideoRequest.safeParse(body, { error: issueMessage });
    if (!parsed.success) throw problems.validation(issuesToErrors(parsed.error.issues));
    const input = parsed.data;
    const known = new Set(this.engine.runtimes.keys());
    const unknownProviders: { path: string; message: string }[] = [];
    for (const field of ['providers', 'exclude'] as const) {
      input.routing?.[field]?.forEach((id, index) => {
        if (!known.has(id)) {
          unknownProviders.push({
            path: `routing.${field}.${index}`,
            message: `unknown provider "${id}" (known: ${[...known].join(', ')})`,
          });
        }
      });
    }
    if (unknownProviders.length > 0) throw problems.validation(unknownProviders);
    return { input, resolved: resolveRequest(input) };
  }

  /**
   * Routes a request for `tenant` with the prices in effect `at` (its creation) and its budget's
   * rules; only the provider that made the video `source` names may serve it.
   */
  private plan(tenant: string, resolved: ResolvedRequest, routing: RoutingOverride | undefined, at: number, source: VideoSource | undefined): RoutePlan {
    const { config, random } = this.engine;
    const spendLimit = this.ledger.spendLimit(tenant);
    const plan = planRoute(
      this.routingProviders(),
      resolved,
      {
        strategy: config.routing.strategy,
        allowFallbacks: config.routing.allow_fallbacks,
        at,
        ...(spendLimit ? { spendLimit } : {}),
        ...(source ? { source } : {}),
      },
      routing,
      random,
    );
    // The configured strategy never gets here (the start refuses it); a request's own `cheapest` may.
    const incomparable = incomparableCheapest(plan);
    if (incomparable) throw problems.unprocessable(incomparable, [{ path: 'routing.strategy', message: incomparable }]);
    return plan;
  }

  private assertServable(plan: RoutePlan): void {
    if (plan.order.length > 0) return;
    const providers = plan.evaluations.map((evaluation) => ({ provider: evaluation.provider, reasons: evaluation.reasons }));
    throw problems.unsupported(`No provider can serve this request. ${quoteReasons(providers)}`, providers, refusalsByField(providers));
  }

  /**
   * A `webhook_url` the gateway will not call (a private target, or a tenant with no secret to
   * sign with) is a `422` for the whole request, whichever provider would serve it.
   */
  private assertWebhookTarget(tenant: string, webhookUrl: string | undefined): void {
    if (!webhookUrl) return;
    const refused = refuseLiteralTarget(webhookUrl, this.engine.config.webhooks.allow_private_targets);
    if (refused) throw problems.unprocessable(`webhook_url ${refused}`, [{ path: 'webhook_url', message: refused }]);
    if (!this.engine.config.tenants[tenant]?.webhook_secret) {
      throw problems.unprocessable(
        `tenant ${tenant} has no webhook secret configured, so webhook_url cannot be signed`,
        [{ path: 'webhook_url', message: 'no webhook secret configured for this tenant' }],
      );
    }
  }

  /**
   * A `video_id` (video-extend, lip-sync) names a video on the provider's account, which every
   * tenant's tasks share: one another tenant's task made is a `422`, as if it were not there to be
   * named (its frames would come back in this tenant's result). One this tenant's task made exists
   * only in the upstream account that made it: the task goes to that provider account alone (its
   * source), and is a `422` when that account is no longer configured or its provider is
   * disabled. Ids no task here made go on to the provider, which knows them or not.
   */
  private async sourceVideo(tenant: string, videoId: string | undefined): Promise<VideoSource | undefined> {
    if (videoId === undefined) return undefined;
    const { tasks, runtimes } = this.engine;
    const refuse = (message: string) => problems.unprocessable(`video_id ${message}`, [{ path: 'video_id', message }]);
    const origin = await tasks.sourceVideoMaker(videoId, tenant);
    if (!origin) return undefined;
    if (origin.anotherTenant) throw refuse('names a video this tenant did not make');
    const runtime = runtimes.get(origin.provider);
    const account = runtime?.account(origin.account);
    const made = `names a video made on ${origin.provider}'s account ${origin.account ?? 'default'} (by task ${origin.taskId}), which alone holds it`;
    if (!runtime || !account) throw refuse(`${made}; that account is no longer configured`);
    if (!runtime.enabled) throw refuse(`${made}; ${origin.provider} is disabled (${runtime.disabledReason})`);
    return { provider: runtime.id, account: account.id };
  }

  /**
   * `onTask` is told the id of the task the create made as soon as it is written, before it is
   * sent: a request whose client leaves meanwhile still names it on its log line.
   */
  async create(
    tenant: string,
    body: unknown,
    idempotencyKey: string | undefined,
    context: Record<string, string> = {},
    onTask?: (taskId: string) => void,
  ): Promise<CreateResult> {
    const { tasks, clock, config } = this.engine;
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw problems.validation(
        [{ path: 'header.idempotency-key', message: 'must be 1-255 visible ASCII characters' }],
        'The Idempotency-Key header is not valid.',
      );
    }
    // Only a create with a key is ever compared with another.
    const requestHash = idempotencyKey === undefined ? '' : createHash('sha256').update(stableStringify(body)).digest('hex');
    const now = clock.now();
    let accepted: { input: CreateVideoRequest; resolved: ResolvedRequest; plan: RoutePlan; source: VideoSource | undefined };
    try {
      accepted = await this.accept(tenant, body, now);
    } catch (error) {
      // A repeat gets the task its key made even when a new create of it would be refused now.
      if (idempotencyKey !== undefined && error instanceof ProblemError) {
        const replay = await this.replayOfKey(tenant, idempotencyKey, requestHash, now);
        if (replay) return replay;
      }
      throw error;
    }
    const { input, resolved, plan, source } = accepted;

    const first = plan.order[0];
    const task: TaskRecord = {
      id: `vid_${randomToken(12)}`,
      tenant,
      status: 'queued',
      phase: 'dispatch',
      model: resolved.request.model,
      quality: resolved.request.quality,
      operation: resolved.request.operation,
      request: resolved.request,
      plan: {
        explicit: [...resolved.explicit],
        candidates: plan.order.map((e) => ({
          provider: e.provider,
          ...(e.estimate ? { estimate: e.estimate } : {}),
          ...(e.creditValue !== undefined ? { creditValue: e.creditValue } : {}),
          warnings: e.warnings,
          // Only the source video's provider is in the plan: it goes through that account alone.
          ...(source?.provider === e.provider ? { account: source.account } : {}),
        })),
      },
      warnings: first?.warnings ?? [],
      metadata: input.metadata ?? {},
      provider: null,
      account: null,
      providerTaskId: null,
      providerStatus: null,
      tracking: null,
      outputs: [],
      error: null,
      cost: costFromEstimate(first?.estimate),
      webhookUrl: input.webhook_url ?? null,
      callbackToken: randomToken(24),
      createdAt: now,
      updatedAt: now,
      completedAt: null,
      deadlineAt: now + config.tasks.deadline_ms,
      dispatchAfter: now,
      nextPollAt: null,
      pollCount: 0,
      leaseOwner: null,
      leaseUntil: null,
      expectsWebhook: false,
      cancelAt: input.cancel_after !== undefined ? now + input.cancel_after * 1000 : null,
      cancelRequestedAt: null,
      version: 0,
    };
    // The create's own transaction also takes its first provider's slot and writes the attempt (the
    // circuit and rate windows asked in it, shared or not), so an accepted create costs two transactions.
    const firstTry = await this.dispatcher.firstTry(task);
    let outcome: Awaited<ReturnType<typeof tasks.create>>;
    try {
      outcome = await tasks.create(
        task,
        idempotencyKey ? { key: idempotencyKey, requestHash, expiresAt: idempotencyKeyExpiry(now, task.deadlineAt, config.tasks.idempotency_ttl_ms) } : undefined,
        this.ledger.open(task),
        firstTry?.claim,
      );
    } catch (error) {
      if (error instanceof BudgetExceededError) throw await this.refuseOverBudget(error);
      throw error;
    }
    if (!outcome.created) return this.replay(tenant, outcome.existing, requestHash);
    onTask?.(outcome.task.id);

    let dispatched: TaskRecord | undefined = outcome.task;
    const claimed = outcome.first;
    if (firstTry && claimed?.claimed) {
      dispatched = await this.dispatcher.sendFirst(outcome.task, firstTry, claimed.seq, context);
    } else if (claimed && !claimed.claimed ? claimed.why === 'queue' : await tasks.hasOlderWaitingTask(outcome.task)) {
      // Older tasks are waiting for a slot: queue behind them, in order. The answer is the task as
      // this create left it, queued with no attempt (the pass started here may take it up at once;
      // reading its attempts now could show that pass's half-made one beside the queued status).
      const queued = toTask(outcome.task, [], this.engine.links, this.engine.secrets);
      this.dispatcher.tick().catch((error) => this.engine.logger.error({ err: error }, 'dispatch pass failed'));
      return { task: queued, replayed: false };
    } else {
      // The record just written is handed over, so the dispatcher need not read it back.
      dispatched = await this.dispatcher.dispatch(task.id, context, undefined, outcome.task);
    }
    // The dispatcher returns the task as its last write left it (RETURNING): no re-read.
    return { task: dispatched ? await this.resourceOf(dispatched) : await this.load(task.id), replayed: false };
  }

  /**
   * What a create must pass before anything is written: a valid body, a webhook target, a source
   * video this tenant may name (and whose account is still here), a provider to route to.
   */
  private async accept(
    tenant: string,
    body: unknown,
    now: number,
  ): Promise<{ input: CreateVideoRequest; resolved: ResolvedRequest; plan: RoutePlan; source: VideoSource | undefined }> {
    const { input, resolved } = this.parseCreate(body);
    this.assertWebhookTarget(tenant, input.webhook_url);
    const source = await this.sourceVideo(tenant, input.video_id);
    const plan = this.plan(tenant, resolved, input.routing, now, source);
    this.assertServable(plan);
    return { input, resolved, plan, source };
  }

  /**
   * Whether `key` already made a task of this tenant (unexpired): a create carrying it is a
   * repeat, answered from that task (or 409), never a new video.
   */
  async isRepeat(tenant: string, key: string): Promise<boolean> {
    if (!IDEMPOTENCY_KEY.test(key)) return false;
    return (await this.engine.tasks.idempotencyKey(tenant, key, this.engine.clock.now())) !== undefined;
  }

  /** The answer to a repeat of the create that made `existing`: its task, or 409 for another body. */
  private async replay(tenant: string, existing: { taskId: string; requestHash: string }, requestHash: string): Promise<CreateResult> {
    if (existing.requestHash !== requestHash) {
      throw problems.idempotencyKeyReused(
        `This Idempotency-Key was used with a different request body (it made task ${existing.taskId}), and a key answers only the body it came with. ` +
          'Bodies are compared as JSON values: key order and spacing do not matter, but every field and value must be the same, ' +
          'a field written out at its default included ("quality": "pro" differs from leaving quality out). Send a different request with a new key.',
      );
    }
    return { task: await this.settledSubmission(tenant, existing.taskId), replayed: true };
  }

  /** `replay` for a key already in use, undefined when the key made no task (or expired). */
  private async replayOfKey(tenant: string, key: string, requestHash: string, now: number): Promise<CreateResult | undefined> {
    const existing = await this.engine.tasks.idempotencyKey(tenant, key, now);
    return existing ? this.replay(tenant, existing, requestHash) : undefined;
  }

  /** The 402 for a create that does not fit the budget; the refusal also raises the 100 % alert. */
  private async refuseOverBudget(error: BudgetExceededError) {
    this.engine.metrics.budgetRefusals.inc({ tenant: error.status.tenant });
    await this.ledger
      .noteRefusal(error)
      .catch((failure) => this.engine.logger.error({ err: failure, tenant: error.status.tenant }, 'could not record the budget alert'));
    const budget = describeBudget(error.status);
    const requested = fromMicros(error.requestedMicros);
    return problems.budgetExceeded(
      `This task would reserve ${requested} ${budget.currency}, but tenant ${budget.tenant} has ${budget.remaining} ${budget.currency} ` +
        `left of its ${budget.period === 'day' ? 'daily' : 'monthly'} budget of ${budget.amount} ${budget.currency} ` +
        `(spent ${budget.spent}, reserved for unfinished tasks ${budget.reserved}). Nothing was sent to a provider.`,
      {
        budget: {
          tenant: budget.tenant,
          amount: budget.amount,
          currency: budget.currency,
          period: budget.period,
          period_start: budget.period_start,
          period_end: budget.period_end,
        },
        spent: budget.spent,
        reserved: budget.reserved,
        requested,
      },
    );
  }

  /** For an idempotent repeat: the earlier task, once it is no longer mid-submission. */
  private async settledSubmission(tenant: string, taskId: string): Promise<Task> {
    const latest = await this.afterSubmission(tenant, taskId);
    if (latest.phase === 'submitting') {
      // A create whose answer was lost is being looked for upstream (recovery): that can take
      // minutes and the task is what it is, so the repeat gets it. Only a request still on its
      // way is worth waiting for.
      const attempts = await this.engine.tasks.attempts(taskId);
      const last = attempts[attempts.length - 1];
      if (last?.outcome === 'sending' || last === undefined) {
        // Ask again when the submission's lease runs out: by then its answer is recorded, or
        // (its replica gone) recovery takes the task over.
        throw problems.idempotencyKeyInProgress(
          'A request with this Idempotency-Key is still being submitted; send it again after Retry-After seconds.',
          this.secondsUntilLeaseEnds(latest),
        );
      }
    }
    return this.resourceOf(latest);
  }

  /**
   * The task once no create request for it is in flight (a submission's answer is recorded within
   * the upstream time limit), or as it is when that takes longer than the longest limit + 2 s.
   */
  private async afterSubmission(tenant: string, taskId: string): Promise<TaskRecord> {
    const timeoutMs = Math.max(longestTimeoutMs(this.engine.runtimes.values()), 1_000) + 2_000;
    let latest: TaskRecord | undefined;
    for await (const task of this.watch(tenant, taskId, { timeoutMs })) {
      latest = task;
      if (task.phase !== 'submitting') break;
    }
    if (!latest) throw problems.notFound('task not found');
    return latest;
  }

  /**
   * Cancels a task (SPEC §7). A task no provider has taken ends `canceled` at no cost, also one
   * held for its create that has not left (waiting for a rate allowance). One whose create is on
   * its way is waited for: the upstream may accept it, and a task an upstream accepted is never
   * marked canceled behind its back. The request is remembered on the task first, so if that
   * create is turned down no other is sent and the task ends canceled, whichever replica sends it
   * and however long the answer takes. A task a provider holds is canceled there when the
   * provider can do that; otherwise the answer is 409 saying why. Canceling a canceled task
   * answers it again. `context` binds the upstream cancel's log line (the request's id).
   */
  async cancel(tenant: string, id: string, context: Record<string, string> = {}): Promise<Task> {
    let task = await this.engine.tasks.get(id);
    if (!task || task.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    for (let round = 0; round < CANCEL_ROUNDS; round++) {
      switch (task.phase) {
        case 'done':
          if (task.status === 'canceled') return this.resourceOf(task);
          throw problems.conflict(`video ${id} already ${task.status}; only a task that has not finished can be canceled.`);
        case 'dispatch': {
          const canceled = await this.lifecycle.cancelQueued(task, CANCELED_BEFORE_SENT);
          if (canceled) return this.resourceOf(canceled);
          // A dispatcher took it at this very moment: see where it went.
          break;
        }
        case 'submitting': {
          // Its create has not left (the dispatcher waits for a rate allowance): canceled as if queued.
          const read = await this.engine.tasks.getWithAttempts(id);
          if (read?.task.phase === 'submitting' && !read.attempts.some(mayBeHeldUpstream)) {
            const canceled = await this.lifecycle.cancelUnsent(read.task, CANCELED_BEFORE_SENT);
            if (canceled) return this.resourceOf(canceled);
            // Its request left at this very moment (or the task moved on): see where it went.
            break;
          }
          // A create is on its way (or its answer is not known). The request is written on the
          // task first, for whichever replica runs the submission: unless that create is
          // accepted, no other is sent and the task ends canceled.
          if (!read || read.task.phase !== 'submitting' || !(await this.lifecycle.requestCancel(read.task))) break;
          const lost = read.attempts.some((attempt) => attempt.outcome === 'sending') ? undefined : read.attempts.findLast(mayBeHeldUpstream);
          if (lost) {
            // No create is on its way: its answer was lost, and recovery is finding out whether the
            // provider holds the task, which can take minutes. Nothing is worth waiting for here.
            throw problems.cancelPending(
              `the answer to its create at ${lost.provider} was lost, and whether ${lost.provider} holds video ${id} is being looked up. ` +
                `The cancel is kept: if ${lost.provider} is shown not to hold it, the task ends canceled and is sent nowhere else. ` +
                'Read the task, or retry the cancel, after Retry-After seconds.',
              this.secondsUntilLeaseEnds(read.task),
            );
          }
          task = await this.afterSubmission(tenant, id);
          if (task.phase === 'submitting') {
            // Asked again once the submission's lease runs out: by then its answer is written, or
            // (its replica gone) recovery took the task over.
            throw problems.cancelPending(
              `video ${id} is being sent to ${task.provider ?? 'a provider'} right now and whether it accepts is not known yet. ` +
                'The cancel is kept: if the provider turns the create down, the task ends canceled and is sent nowhere else. ' +
                'Read the task, or retry the cancel, after Retry-After seconds.',
              this.secondsUntilLeaseEnds(task),
            );
          }
          continue;
        }
        case 'tracking':
          return this.cancelAtProvider(task, context);
        case 'storing':
          throw problems.conflict(`video ${id} is already generated (${task.provider} finished it); its result is being stored.`);
      }
      const current = await this.engine.tasks.get(id);
      if (!current) throw problems.notFound(`video ${id} not found`);
      task = current;
    }
    throw problems.cancelPending(`video ${id} is changing hands right now; retry the cancel after Retry-After seconds.`, MIN_IN_PROGRESS_RETRY_AFTER_S);
  }

  /** `Retry-After` while a submission holds the task (a cancel, a repeated create): until its lease runs out, 2 s at least. */
  private secondsUntilLeaseEnds(task: TaskRecord): number {
    return Math.max(MIN_IN_PROGRESS_RETRY_AFTER_S, Math.ceil(((task.leaseUntil ?? 0) - this.engine.clock.now()) / 1000));
  }

  /** A task a provider accepted: canceled there if the provider can, else 409. */
  private async cancelAtProvider(task: TaskRecord, context: Record<string, string>): Promise<Task> {
    const runtime = task.provider ? this.engine.runtimes.get(task.provider) : undefined;
    const account = runtime?.account(task.account);
    const cancel = runtime?.provider.cancel;
    if (!runtime || !account || !cancel) {
      throw problems.conflict(
        `video ${task.id} was accepted by ${task.provider ?? 'a provider'}, which documents no way to cancel a task; ` +
          'it runs to the end and is billed as usual.',
      );
    }
    try {
      await account.call((signal) =>
        cancel.call(
          runtime.provider,
          { providerTaskId: task.providerTaskId ?? '', tracking: task.tracking ?? {} },
          { http: account.clientForTask(task, context), signal },
        ),
      );
    } catch (error) {
      throw problems.badGateway(`${runtime.id} did not cancel video ${task.id}: ${(error as Error).message}`);
    }
    const canceled = await this.lifecycle.cancelTracked(task, `canceled by the caller; ${runtime.id} confirmed`);
    return this.resourceOf(canceled ?? (await this.engine.tasks.get(task.id)) ?? task);
  }

  /** Cancels tasks still queued when their `cancel_after` ran out; returns how many. */
  async cancelOverdue(): Promise<number> {
    const { tasks, clock } = this.engine;
    let total = 0;
    for (;;) {
      const due = await tasks.listCancelDue(clock.now(), CANCEL_BATCH);
      for (const task of due) {
        if (await this.lifecycle.cancelOverdueQueued(task)) total++;
      }
      if (due.length < CANCEL_BATCH) return total;
    }
  }

  private async load(taskId: string): Promise<Task> {
    const task = await this.engine.tasks.get(taskId);
    if (!task) throw problems.notFound(`video ${taskId} not found`);
    return this.resourceOf(task);
  }

  /** The public resource of a task record: the record with its attempts. */
  async resourceOf(task: TaskRecord): Promise<Task> {
    return toTask(task, await this.engine.tasks.attempts(task.id), this.engine.links, this.engine.secrets);
  }

  /** One task of this tenant; another tenant's id is answered as not found. */
  async get(tenant: string, id: string): Promise<Task> {
    const found = await this.engine.tasks.getWithAttempts(id);
    if (!found || found.task.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    return toTask(found.task, found.attempts, this.engine.links, this.engine.secrets);
  }

  /** The deliveries of one task's events to its `webhook_url`, oldest first (none without one). */
  async webhookDeliveries(tenant: string, id: string): Promise<{ data: WebhookDelivery[] }> {
    const task = await this.engine.tasks.get(id);
    if (!task || task.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    const deliveries = await this.engine.tasks.deliveriesOf(task.id);
    return { data: deliveries.map((delivery) => toWebhookDelivery(delivery, this.engine.secrets)) };
  }

  /** Holds until the task is terminal or `seconds` pass (SPEC §1 `?wait=`). */
  async waitFor(tenant: string, id: string, seconds: number, signal?: AbortSignal): Promise<Task> {
    let latest: TaskRecord | undefined;
    for await (const task of this.watch(tenant, id, { timeoutMs: seconds * 1000, ...(signal ? { signal } : {}) })) {
      latest = task;
    }
    // A terminal task changes no more; otherwise read it again, for the newest word of any replica.
    return latest && TERMINAL_STATUSES.has(latest.status) ? this.resourceOf(latest) : this.get(tenant, id);
  }

  /**
   * The task of this tenant as it changes, until it is terminal (see `watchTask`): what SSE and
   * `?wait=` follow. Not found is thrown before the first change.
   */
  async *watch(tenant: string, id: string, options: WatchOptions = {}): AsyncGenerator<TaskRecord, void, undefined> {
    // Each watch has its own end, which a stop triggers. Joined to the stop's signal with
    // `AbortSignal.any`, every watch would leave an entry on it for as long as the gateway runs.
    const ended = new AbortController();
    const end = () => ended.abort();
    if (this.stopping.signal.aborted) end();
    this.watchEnds.add(end);
    try {
      const signal = options.signal ? AbortSignal.any([options.signal, ended.signal]) : ended.signal;
      yield* watchTask(this.engine, tenant, id, { ...options, signal });
    } finally {
      this.watchEnds.delete(end);
    }
  }

  /**
   * Ends every watch, as a stop does before the listener closes: an event stream ends cleanly
   * (its client reconnects, to another replica), a `?wait=` answers with the task as it is.
   */
  endWatches(): void {
    this.stopping.abort();
    for (const end of this.watchEnds) end();
  }

  async list(tenant: string, query: unknown): Promise<{ data: Task[]; next_cursor: string | null }> {
    const { status, provider, model, limit, cursor } = parseQuery(this.listQuery, query);
    const before = cursor ? decodeCursor(cursor) : undefined;
    if (cursor && !before) throw problems.validation([{ path: 'cursor', message: 'not a cursor issued by this API' }]);
    const found = await this.engine.tasks.list({
      tenant,
      limit: limit + 1,
      ...(status ? { status } : {}),
      ...(provider ? { provider } : {}),
      ...(model ? { model } : {}),
      ...(before ? { before } : {}),
    });
    const page = found.slice(0, limit);
    const attempts = await this.engine.tasks.attemptsOf(page.map((task) => task.id));
    const last = page[page.length - 1];
    return {
      data: page.map((task) => toTask(task, attempts.get(task.id) ?? [], this.engine.links, this.engine.secrets)),
      next_cursor: found.length > limit && last ? encodeCursor(last) : null,
    };
  }

  /**
   * Every provider's standing for this request and the order a create would try (creates
   * nothing), with the prices in effect now and `tenant`'s budget rules.
   */
  async quote(tenant: string, body: unknown): Promise<QuoteResult> {
    const { input, resolved } = this.parseCreate(body);
    // What create would refuse before choosing any provider, quote refuses the same way.
    this.assertWebhookTarget(tenant, input.webhook_url);
    const source = await this.sourceVideo(tenant, input.video_id);
    const now = this.engine.clock.now();
    const plan = this.plan(tenant, resolved, input.routing, now, source);
    // A create reserving what this plan may cost would be refused (402) whoever would serve it.
    const overBudget = await this.ledger.shortfall(tenant, this.ledger.reservation(plan.order), now);
    // As a create goes: providers that can take it now in the plan's order, then those it would wait for.
    const freeNow: string[] = [];
    const later: string[] = [];
    const waitReasons = new Map<string, string>();
    // A task of a source video goes through the account that made it alone (`sourceVideo`).
    const pinnedOf = (runtime: ProviderRuntime) => (source?.provider === runtime.id ? runtime.account(source.account) : undefined);
    const circuitOf = (runtime: ProviderRuntime) => (pinnedOf(runtime) ?? runtime).circuit;
    for (const evaluation of plan.order) {
      const runtime = this.engine.runtimes.get(evaluation.provider);
      if (!runtime || circuitOf(runtime) === 'open' || overBudget) continue;
      const wait = await this.whyWaitFor(runtime, now, pinnedOf(runtime));
      if (wait) waitReasons.set(runtime.id, wait);
      (wait ? later : freeNow).push(runtime.id);
    }
    const order = [...freeNow, ...later];
    // `weighted` drew this order at random; a create draws its own with the same odds.
    const shares = leadShares(plan, input.routing);
    const percent = (share: number) => `${Math.round(share * 1000) / 10} %`;
    const exactOrder = inExactOrder(input.routing);
    // No draw (one provider alone has a weight, or none has): weight 0 still orders, and says how.
    const weightedNoDraw =
      !shares && plan.strategy === 'weighted' && !exactOrder
        ? plan.evaluations.some((e) => e.eligible && e.weight > 0)
          ? 'weighted: weight 0: tried only after the providers with a weight'
          : 'weighted: every eligible provider has weight 0, so they are tried in the configured priority order'
        : undefined;
    // Where `fastest` and `cheapest` put a provider without their figure, said: a provider with no
    // recent history (or mostly failures), or no price for this request, comes after those with one.
    const eligible = plan.evaluations.filter((e) => e.eligible);
    const strategyTier = (evaluation: ProviderEvaluation): string | undefined => {
      if (exactOrder) return undefined;
      if (plan.strategy === 'fastest') {
        if (eligible.every((e) => e.medianDeliveryMs === null)) {
          return 'fastest: no eligible provider has a task finished in the last six hours, so they are tried in the configured priority order';
        }
        if (evaluation.medianDeliveryMs === null) {
          return 'fastest: no task finished there in the last six hours; tried after the providers with a recent median time to complete';
        }
        if (!Number.isFinite(evaluation.medianDeliveryMs)) {
          return 'fastest: most of its recent tasks failed; tried after the providers that deliver and those with no recent history';
        }
      }
      if (plan.strategy === 'cheapest' && evaluation.estimate === undefined) {
        return eligible.every((e) => e.estimate === undefined)
          ? 'cheapest: no eligible provider has a price for this request, so they are tried in the configured priority order'
          : 'cheapest: no price configured for this request; tried after the providers with one';
      }
      return undefined;
    };
    const drawn = (provider: string): string | undefined => {
      if (weightedNoDraw) return plan.evaluations.find((e) => e.provider === provider)?.weight === 0 ? weightedNoDraw : undefined;
      const lead = shares?.get(provider);
      if (!lead) return undefined;
      if (lead.weight === 0) return 'weighted: weight 0: tried only after the providers with a weight (this order is one random draw; each create draws its own)';
      return `weighted: drawn first in about ${percent(lead.share)} of creates (weight ${lead.weight} of ${lead.total}); this order is one random draw, and each create draws its own`;
    };
    return {
      strategy: plan.strategy,
      request: resolved.request as unknown as Record<string, unknown>,
      order,
      providers: plan.evaluations.map((evaluation) => {
        const runtime = this.engine.runtimes.get(evaluation.provider);
        const reasons = [...evaluation.reasons];
        if (runtime && circuitOf(runtime) === 'open') {
          const probeAt = (pinnedOf(runtime) ?? runtime).probeAt;
          const when = probeAt !== undefined ? ` (the first probe may go at ${new Date(probeAt).toISOString()})` : '';
          reasons.push(`circuit open: recent calls failed; skipped until a probe succeeds${when}`);
        }
        if (overBudget && plan.order.includes(evaluation)) reasons.push(overBudget);
        const rank = order.indexOf(evaluation.provider);
        return {
          provider: evaluation.provider,
          eligible: reasons.length === 0 && rank >= 0,
          reasons:
            reasons.length === 0 && rank < 0
              ? [
                  shares?.get(evaluation.provider)?.weight
                    ? `not in this draw: allow_fallbacks is false and weighted drew another provider first; it is drawn first in about ${percent(shares.get(evaluation.provider)!.share)} of creates`
                    : 'not tried: allow_fallbacks is false and another provider comes first',
                ]
              : reasons,
          warnings: [
            ...evaluation.warnings,
            ...(waitReasons.has(evaluation.provider) ? [waitReasons.get(evaluation.provider)!] : []),
            ...(rank >= 0 && drawn(evaluation.provider) ? [drawn(evaluation.provider)!] : []),
            ...(rank >= 0 && strategyTier(evaluation) ? [strategyTier(evaluation)!] : []),
          ],
          order: rank >= 0 ? rank + 1 : null,
          estimated_credits: evaluation.estimate?.credits ?? null,
          estimated_cost: evaluation.estimate?.currencyAmount ?? null,
          currency: evaluation.estimate?.currency ?? null,
        };
      }),
    };
  }

  /**
   * Why a create could not send to this provider this moment, so that it goes to the next one
   * first and comes back to this one only if none takes it: every account cooling down after a
   * 429, none with a free slot and leave from its circuit, or none whose rate windows allow a call
   * within the wait a create makes for one. Undefined when one can take it now. With `pinned`,
   * only that account is asked (the one that made the request's source video).
   */
  private async whyWaitFor(runtime: ProviderRuntime, now: number, pinned?: ProviderAccount): Promise<string | undefined> {
    const later = 'tried after the providers that can take it now';
    const ofAccount = pinned ? ` on account ${pinned.id}, which made video_id` : '';
    const cooling = (pinned ?? runtime).coolingDownUntil;
    if (cooling) return `cooling down${pinned ? `${ofAccount},` : ''} until ${new Date(cooling).toISOString()} (it answered 429); ${later}`;
    const counts = await this.engine.tasks.inFlightByAccount(runtime.id);
    const loads = (pinned ? [pinned] : runtime.accounts).map((account) => ({ account, inFlight: counts.get(account.id) ?? 0 }));
    const free = pickAccounts(loads, now);
    if (free.length === 0) {
      const inFlight = loads.reduce((sum, load) => sum + load.inFlight, 0);
      return `no free slot${ofAccount} (${inFlight} of ${(pinned ?? runtime).maxInFlight} tasks in flight); ${later}`;
    }
    // As a create takes an account: the first whose trial call (while in doubt) is free and whose
    // rate windows allow a call within the wait a create makes for that account; else it goes on.
    let allowedAt = Number.POSITIVE_INFINITY;
    let trialUntil = Number.POSITIVE_INFINITY;
    for (const [index, account] of free.entries()) {
      const inline = inlineRateWaitMs(index, free.length);
      const trial = await account.trialHeldUntil();
      if (trial > now + inline) {
        trialUntil = Math.min(trialUntil, trial);
        continue;
      }
      const wait = await account.rateWait();
      if (wait <= inline) return undefined;
      allowedAt = Math.min(allowedAt, now + wait);
    }
    if (!Number.isFinite(allowedAt)) {
      return (
        `in doubt after a failed call: one call at a time goes to it${ofAccount}, and one is under way ` +
        `(for at most until ${new Date(trialUntil).toISOString()}); ${later}`
      );
    }
    return `rate limit reached: its next call is allowed at ${new Date(allowedAt).toISOString()}; ${later}`;
  }

  /**
   * Whether the task store answers (`/readyz`) within `READINESS_TIMEOUT_MS`, and which engine it
   * is. A store that stopped answering (a frozen server, dropped packets: no error ever comes)
   * is not ready; the probe is answered rather than left waiting. Nor is a replica whose clock is
   * off the other replicas' (`ClockWatch`): it takes no work then, and `reason` says so.
   */
  async readiness(): Promise<{ ready: boolean; store: string; reason?: string }> {
    const { tasks, clock, clockWatch } = this.engine;
    const held = clockWatch.holdReason;
    if (held) return { ready: false, store: tasks.engineName, reason: `${held}: taking no work until it is back within the limit` };
    let timer: TimerHandle | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = clock.setTimeout(() => reject(new Error('the store did not answer in time')), READINESS_TIMEOUT_MS);
    });
    try {
      await Promise.race([tasks.ping(), late]);
      return { ready: true, store: tasks.engineName };
    } catch {
      return { ready: false, store: tasks.engineName };
    } finally {
      timer?.cancel();
    }
  }

  /** Forgets idempotency keys past their time and inbound webhook ids past the replay window. */
  purgeExpired(): Promise<void> {
    const now = this.engine.clock.now();
    return this.engine.tasks.purgeExpired(now, now - WEBHOOK_ID_RETENTION_MS);
  }
}
