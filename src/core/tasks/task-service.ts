/**
 * What the public API does with tasks (SPEC §1, §5): validate, route, remember idempotency keys,
 * hand the task to the dispatcher, and read tasks back. Reads never call an upstream.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  CreateVideoRequest,
  TERMINAL_STATUSES,
  TaskStatus,
  type RoutingOverride,
  type Task,
  type TaskStatus as TaskStatusType,
} from '../model/canonical.js';
import { resolveRequest, type ResolvedRequest } from '../model/capabilities.js';
import { candidatesColumn, type Dispatcher, type StoredPlan } from './dispatcher.js';
import type { Engine } from './engine.js';
import { problems } from '../model/problems.js';
import { planRoute, type RoutePlan, type RoutingProvider } from '../model/routing.js';
import { refuseLiteralTarget } from './outbound-webhooks.js';
import { costFromEstimate } from './task-lifecycle.js';
import { toTask } from './task-resource.js';
import type { TaskRow } from '../../store/task-store.js';

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

/** zod issues as problem-details `errors[]` with JSON-pointer-ish dotted paths. */
export function issuesToErrors(issues: readonly z.core.$ZodIssue[]): { path: string; message: string }[] {
  return issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(body)',
    message: issue.message,
  }));
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export const ListQuery = z.strictObject({
  status: TaskStatus.optional(),
  provider: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(200).optional(),
});

function encodeCursor(row: TaskRow): string {
  return Buffer.from(JSON.stringify({ c: row.created_at, i: row.id })).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { c?: unknown; i?: unknown };
    if (typeof value.c === 'number' && typeof value.i === 'string') return { createdAt: value.c, id: value.i };
  } catch {
    // Fall through: not a cursor we issued.
  }
  return undefined;
}

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

export class TaskService {
  constructor(
    private readonly engine: Engine,
    private readonly dispatcher: Dispatcher,
  ) {}

  private routingProviders(): RoutingProvider[] {
    return [...this.engine.runtimes.values()].map((runtime) => ({
      id: runtime.id,
      provider: runtime.provider,
      enabled: runtime.enabled,
      priority: runtime.config.priority,
      weight: runtime.config.weight,
      pricing: runtime.pricing,
      ...(runtime.disabledReason ? { disabledReason: runtime.disabledReason } : {}),
      medianCompletionMs: runtime.stats.snapshot(this.engine.clock.now()).medianCompletionMs,
    }));
  }

  /** Parses and validates a create (or quote) body; throws problem details. */
  private parseCreate(body: unknown): { input: CreateVideoRequest; resolved: ResolvedRequest } {
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw problems.validation([{ path: '(body)', message: 'expected a JSON object' }]);
    }
    const parsed = CreateVideoRequest.safeParse(body);
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

  private plan(resolved: ResolvedRequest, routing: RoutingOverride | undefined): RoutePlan {
    const { config, random } = this.engine;
    return planRoute(
      this.routingProviders(),
      resolved,
      { strategy: config.routing.strategy, allowFallbacks: config.routing.allow_fallbacks },
      routing,
      random,
    );
  }

  private assertServable(plan: RoutePlan): void {
    if (plan.order.length > 0) return;
    const providers = plan.evaluations.map((evaluation) => ({ provider: evaluation.provider, reasons: evaluation.reasons }));
    const summary = providers.map((p) => `${p.provider}: ${p.reasons.join('; ')}`).join(' | ');
    throw problems.unsupported(`No provider can serve this request. ${summary}`, providers);
  }

  async create(tenant: string, body: unknown, idempotencyKey: string | undefined, context: Record<string, string> = {}): Promise<CreateResult> {
    const { store, clock, config } = this.engine;
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw problems.validation(
        [{ path: 'header.idempotency-key', message: 'must be 1-255 visible ASCII characters' }],
        'The Idempotency-Key header is not valid.',
      );
    }
    const { input, resolved } = this.parseCreate(body);
    if (input.webhook_url) {
      const refused = refuseLiteralTarget(input.webhook_url, config.webhooks.allow_private_targets);
      if (refused) throw problems.unprocessable(`webhook_url ${refused}`, [{ path: 'webhook_url', message: refused }]);
      if (!config.tenants[tenant]?.webhook_secret) {
        throw problems.unprocessable(
          `tenant ${tenant} has no webhook secret configured, so webhook_url cannot be signed`,
          [{ path: 'webhook_url', message: 'no webhook secret configured for this tenant' }],
        );
      }
    }
    const plan = this.plan(resolved, input.routing);
    this.assertServable(plan);

    const now = clock.now();
    const first = plan.order[0];
    const storedPlan: StoredPlan = {
      explicit: [...resolved.explicit],
      candidates: plan.order.map((e) => ({
        provider: e.provider,
        ...(e.estimate ? { estimate: e.estimate } : {}),
        warnings: e.warnings,
      })),
    };
    const requestHash = createHash('sha256').update(stableStringify(body)).digest('hex');
    const row = {
      id: `vid_${randomBytes(12).toString('base64url')}`,
      tenant,
      status: 'queued',
      phase: 'dispatch' as const,
      model: resolved.request.model,
      quality: resolved.request.quality,
      operation: resolved.request.operation,
      request_json: JSON.stringify(resolved.request),
      plan_json: JSON.stringify(storedPlan),
      warnings_json: JSON.stringify(first?.warnings ?? []),
      metadata_json: JSON.stringify(input.metadata ?? {}),
      provider: null,
      provider_task_id: null,
      provider_status: null,
      tracking_json: null,
      outputs_json: '[]',
      error_json: null,
      cost_json: JSON.stringify(costFromEstimate(first?.estimate)),
      webhook_url: input.webhook_url ?? null,
      callback_token: randomBytes(24).toString('base64url'),
      created_at: now,
      updated_at: now,
      completed_at: null,
      deadline_at: now + config.tasks.deadline_ms,
      dispatch_after: now,
      next_poll_at: null,
      poll_count: 0,
      lease_owner: null,
      lease_until: null,
      expects_webhook: 0,
      version: 0,
      candidates: candidatesColumn(plan.order.map((e) => e.provider)),
    };
    const outcome = await store.createTask(
      row,
      idempotencyKey
        ? { key: idempotencyKey, requestHash, expiresAt: now + config.tasks.idempotency_ttl_ms }
        : undefined,
    );
    if (!outcome.created) {
      if (outcome.existing.requestHash !== requestHash) {
        throw problems.conflict('This Idempotency-Key was used with a different request body.');
      }
      const existing = await this.settledSubmission(outcome.existing.taskId);
      return { task: existing, replayed: true };
    }

    let task: TaskRow | undefined = outcome.task;
    if (await store.hasOlderWaitingTask(task.created_at, task.id, storedPlan.candidates.map((c) => c.provider))) {
      // Older tasks are waiting for a slot: queue behind them, in order.
      this.dispatcher.tick().catch((error) => this.engine.logger.error({ err: error }, 'dispatch pass failed'));
    } else {
      task = await this.dispatcher.dispatch(task.id, context);
    }
    return { task: await this.load(task?.id ?? row.id), replayed: false };
  }

  /** For an idempotent repeat: the earlier task, once it is no longer mid-submission. */
  private async settledSubmission(taskId: string): Promise<Task> {
    const timeoutMs = Math.max(...[...this.engine.runtimes.values()].map((r) => r.config.timeout_ms), 1_000) + 2_000;
    const row = await this.waitForRow(taskId, (task) => task.phase !== 'submitting', timeoutMs);
    if (!row) throw problems.notFound('task not found');
    if (row.phase === 'submitting') {
      throw problems.conflict('A request with this Idempotency-Key is still being submitted; retry shortly.');
    }
    return this.load(taskId);
  }

  private async load(taskId: string): Promise<Task> {
    const { store } = this.engine;
    const row = await store.getTask(taskId);
    if (!row) throw problems.notFound(`video ${taskId} not found`);
    return toTask(row, await store.getAttempts(taskId));
  }

  /** One task of this tenant; another tenant's id is answered as not found. */
  async get(tenant: string, id: string): Promise<Task> {
    const row = await this.engine.store.getTask(id);
    if (!row || row.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    return toTask(row, await this.engine.store.getAttempts(id));
  }

  /** Holds until the task is terminal or `seconds` pass (SPEC §1 `?wait=`). */
  async waitFor(tenant: string, id: string, seconds: number, signal?: AbortSignal): Promise<Task> {
    const row = await this.engine.store.getTask(id);
    if (!row || row.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    if (seconds > 0 && !TERMINAL_STATUSES.has(row.status as TaskStatusType)) {
      await this.waitForRow(id, (task) => TERMINAL_STATUSES.has(task.status as TaskStatusType), seconds * 1000, signal);
    }
    return this.get(tenant, id);
  }

  /**
   * Resolves with the task once `done(task)` holds, or with its last state after `timeoutMs`.
   * Listens for local changes and re-reads the store every second for other replicas' changes.
   */
  async waitForRow(
    id: string,
    done: (task: TaskRow) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<TaskRow | undefined> {
    const { store, events, clock } = this.engine;
    const current = await store.getTask(id);
    if (!current || done(current) || signal?.aborted) return current;
    return new Promise<TaskRow | undefined>((resolve) => {
      let settled = false;
      let latest: TaskRow | undefined = current;
      const timers: { cancel(): void }[] = [];
      const finish = () => {
        if (settled) return;
        settled = true;
        unsubscribe();
        timers.forEach((timer) => timer.cancel());
        signal?.removeEventListener('abort', finish);
        resolve(latest);
      };
      const unsubscribe = events.subscribe(id, (task) => {
        latest = task;
        if (done(task)) finish();
      });
      const recheck = () => {
        if (settled) return;
        store
          .getTask(id)
          .then((task) => {
            latest = task ?? latest;
            if (task && done(task)) finish();
            else if (!settled) timers.push(clock.setTimeout(recheck, 1_000));
          })
          .catch(() => undefined);
      };
      timers.push(clock.setTimeout(recheck, 1_000));
      timers.push(clock.setTimeout(finish, timeoutMs));
      signal?.addEventListener('abort', finish, { once: true });
    });
  }

  async list(tenant: string, query: unknown): Promise<{ data: Task[]; next_cursor: string | null }> {
    const parsed = ListQuery.safeParse(query);
    if (!parsed.success) throw problems.validation(issuesToErrors(parsed.error.issues), 'The query is not valid.');
    const { status, provider, limit, cursor } = parsed.data;
    const before = cursor ? decodeCursor(cursor) : undefined;
    if (cursor && !before) throw problems.validation([{ path: 'cursor', message: 'not a cursor issued by this API' }]);
    const rows = await this.engine.store.listTasks({
      tenant,
      limit: limit + 1,
      ...(status ? { status } : {}),
      ...(provider ? { provider } : {}),
      ...(before ? { before } : {}),
    });
    const page = rows.slice(0, limit);
    const attempts = await this.engine.store.getAttemptsFor(page.map((row) => row.id));
    const last = page[page.length - 1];
    return {
      data: page.map((row) => toTask(row, attempts.get(row.id) ?? [])),
      next_cursor: rows.length > limit && last ? encodeCursor(last) : null,
    };
  }

  /** Every provider's standing for this request and the order a create would try (creates nothing). */
  quote(body: unknown): QuoteResult {
    const { input, resolved } = this.parseCreate(body);
    const plan = this.plan(resolved, input.routing);
    const order: string[] = [];
    for (const evaluation of plan.order) {
      const runtime = this.engine.runtimes.get(evaluation.provider);
      if (runtime?.circuit === 'open') continue;
      order.push(evaluation.provider);
    }
    return {
      strategy: plan.strategy,
      request: resolved.request as unknown as Record<string, unknown>,
      order,
      providers: plan.evaluations.map((evaluation) => {
        const runtime = this.engine.runtimes.get(evaluation.provider);
        const reasons = [...evaluation.reasons];
        if (runtime?.circuit === 'open') reasons.push('circuit open: recent calls failed; skipped until a probe succeeds');
        const rank = order.indexOf(evaluation.provider);
        return {
          provider: evaluation.provider,
          eligible: reasons.length === 0 && rank >= 0,
          reasons:
            reasons.length === 0 && rank < 0 ? ['not tried: allow_fallbacks is false and another provider comes first'] : reasons,
          warnings: evaluation.warnings,
          order: rank >= 0 ? rank + 1 : null,
          estimated_credits: evaluation.estimate?.credits ?? null,
          estimated_cost: evaluation.estimate?.currencyAmount ?? null,
          currency: evaluation.estimate?.currency ?? null,
        };
      }),
    };
  }
}
