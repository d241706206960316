/**
 * Gets tasks accepted by a provider (SPEC §3, §5). For one task it walks the routing plan:
 * skips providers whose circuit is open, waits (queued) when every usable provider is at its
 * concurrency cap or asked us to back off, and on a failure moves on only when the upstream
 * certainly holds no task.
 *
 * What protects against paying twice: each attempt is written down *before* the request leaves;
 * the moment a provider accepts, its task id is written on the attempt, before anything else. So
 * after a crash at any point the next process either resumes tracking that upstream task or,
 * if the request was in flight with no answer recorded, reports it — it never sends it again.
 */
import type { TaskError } from '../model/canonical.js';
import { matchOffering } from '../model/capabilities.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import { classifyCreateFailure, type CreateFailureDecision } from './failover.js';
import type { CostEstimate } from '../model/pricing.js';
import { CircuitBreakerOpenError, type ProviderRuntime } from '../upstream/provider-runtime.js';
import type { SubmitResult } from '../upstream/provider.js';
import { TaskLifecycle, requestOf } from './task-lifecycle.js';
import { firstPollDelay } from './polling.js';
import type { AttemptRow, TaskRow } from '../../store/task-store.js';

/** One provider in a task's stored routing plan. */
export interface PlanEntry {
  provider: string;
  estimate?: CostEstimate;
  warnings: string[];
}

/** Stored with the task: the plan, and which request fields the caller wrote (for capability checks). */
export interface StoredPlan {
  explicit: string[];
  candidates: PlanEntry[];
}

/** What one pass of the dispatcher has learned, shared by the tasks it dispatches. */
interface PassState {
  /** Providers found without a free slot in this pass: later tasks do not ask again. */
  full: Set<string>;
}

/** Longest a create waits in-line for a rate allowance before the task is queued instead. */
const MAX_INLINE_RATE_WAIT_MS = 2_000;
/** Tasks dispatched at once by one pass. */
const DISPATCH_CONCURRENCY = 8;
/** Waiting tasks read per page. */
const DISPATCH_PAGE = 200;
/** Tries for the store writes after an upstream accepted (a dropped connection, a busy file). */
const PERSIST_TRIES = 4;

/** `,a,b,`: the stored form of a task's candidate providers. */
export function candidatesColumn(providers: readonly string[]): string {
  return providers.length === 0 ? '' : `,${providers.join(',')},`;
}

export class Dispatcher {
  private readonly lifecycle: TaskLifecycle;
  private readonly runner = new CoalescingRunner(() => this.dispatchWaiting());
  /** Dispatches running in this process, by task id (recovery leaves them alone; shutdown waits). */
  private readonly inFlight = new Map<string, Promise<TaskRow | undefined>>();

  constructor(private readonly engine: Engine) {
    this.lifecycle = new TaskLifecycle(engine);
  }

  /** The webhook or callback URL the upstream should use for this task, if any. */
  callbackUrlFor(runtime: ProviderRuntime, task: TaskRow): string | undefined {
    const base = this.engine.publicUrl.replace(/\/+$/, '');
    switch (runtime.provider.inboundWebhook) {
      case 'signed':
        return runtime.webhookSecret ? `${base}/v1/webhooks/${runtime.id}` : undefined;
      case 'token':
        return task.callback_token ? `${base}/v1/webhooks/${runtime.id}/${task.callback_token}` : undefined;
      default:
        return undefined;
    }
  }

  /**
   * How long a submission owns its task: long enough that a healthy but slow upstream answer
   * always arrives before anyone may take the task over.
   */
  private submissionLeaseMs(runtime: ProviderRuntime): number {
    return Math.max(this.engine.config.tracking.lease_ms, runtime.config.timeout_ms + MAX_INLINE_RATE_WAIT_MS + 10_000);
  }

  /**
   * Tries to get one queued task accepted. Returns the task as it ends up: `processing`,
   * `failed`, or still `queued` (waiting for a slot or a rate allowance).
   */
  dispatch(taskId: string, context: Record<string, string> = {}, pass?: PassState): Promise<TaskRow | undefined> {
    const running = this.inFlight.get(taskId);
    if (running) return running;
    const promise = this.dispatchOnce(taskId, context, pass).finally(() => this.inFlight.delete(taskId));
    this.inFlight.set(taskId, promise);
    return promise;
  }

  /** Waits (at most `timeoutMs`, real time) for the dispatches running in this process. */
  async drain(timeoutMs: number): Promise<void> {
    const running = [...this.inFlight.values()];
    if (running.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(running),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private async dispatchOnce(taskId: string, context: Record<string, string>, pass?: PassState): Promise<TaskRow | undefined> {
    const { store, runtimes, clock, config, metrics, owner } = this.engine;
    const initial = await store.getTask(taskId);
    if (!initial || initial.phase !== 'dispatch') return initial;
    if (clock.now() >= initial.deadline_at) {
      // Never send upstream (and pay for) a task the gateway has already given up on.
      return this.finishFailed(initial, this.deadlineError(), false);
    }
    const plan = JSON.parse(initial.plan_json) as StoredPlan;
    const request = requestOf(initial);
    const resolved = { request, explicit: new Set(plan.explicit) };
    const attempts = await store.getAttempts(taskId);
    const skippedBefore = new Set(attempts.filter((a) => a.outcome === 'skipped').map((a) => a.provider));
    // A provider that said no stays out for this task; a 429 only meant "later".
    const failedBefore = new Set(
      attempts.filter((a) => a.outcome === 'failed' && a.http_status !== 429).map((a) => a.provider),
    );

    let task: TaskRow = initial;
    /** True once this call holds the task in `submitting`. */
    let holding = false;
    let retryAt = Number.POSITIVE_INFINITY;
    const failures: CreateFailureDecision[] = [];

    for (const entry of plan.candidates) {
      if (failedBefore.has(entry.provider)) continue;
      const runtime = runtimes.get(entry.provider);
      if (!runtime || !runtime.enabled) continue;
      if (runtime.circuit === 'open') {
        if (!skippedBefore.has(runtime.id)) {
          await store.addAttempt({
            task_id: taskId,
            provider: runtime.id,
            outcome: 'skipped',
            error_code: 'circuit_open',
            provider_code: null,
            http_status: null,
            latency_ms: null,
            message: 'circuit open: recent calls to this provider failed',
            at: clock.now(),
          });
          skippedBefore.add(runtime.id);
          metrics.failovers.inc({ provider: runtime.id, reason: 'circuit_open' });
        }
        failures.push(classifyCreateFailure(new CircuitBreakerOpenError(runtime.id), false));
        continue;
      }
      const cooling = runtime.coolingDownUntil;
      if (cooling) {
        retryAt = Math.min(retryAt, cooling);
        continue;
      }
      const match = matchOffering(runtime.provider.offerings, resolved);
      if (!match.offering) continue;
      if (pass?.full.has(runtime.id)) {
        retryAt = Math.min(retryAt, clock.now() + config.tracking.tick_ms);
        continue;
      }

      const now = clock.now();
      const claimed = await store.claimSlot({
        taskId,
        provider: runtime.id,
        cap: runtime.config.max_in_flight,
        owner,
        leaseUntil: now + this.submissionLeaseMs(runtime),
        now,
        fromPhases: holding ? ['submitting'] : ['dispatch'],
      });
      if (!claimed) {
        const current = await store.getTask(taskId);
        // Someone else took the task (another replica, or it finished): not ours any more.
        if (!current || current.phase !== (holding ? 'submitting' : 'dispatch')) return current;
        pass?.full.add(runtime.id);
        retryAt = Math.min(retryAt, now + config.tracking.tick_ms);
        continue;
      }
      task = claimed;
      holding = true;

      if (!(await runtime.limiter.acquire(MAX_INLINE_RATE_WAIT_MS))) {
        retryAt = Math.min(retryAt, clock.now() + runtime.limiter.waitTime());
        continue;
      }

      const seq = await store.addAttempt({
        task_id: taskId,
        provider: runtime.id,
        outcome: 'sending',
        error_code: null,
        provider_code: null,
        http_status: null,
        latency_ms: null,
        message: null,
        at: clock.now(),
      });
      const started = clock.now();
      const callbackUrl = this.callbackUrlFor(runtime, task);
      let result: SubmitResult;
      try {
        result = await runtime.call((signal) =>
          runtime.provider.submit(request, match.offering!, {
            http: runtime.clientFor({ task_id: taskId, ...context }),
            signal,
            taskId,
            attemptKey: `${taskId}-${seq}`,
            ...(callbackUrl ? { callbackUrl } : {}),
          }),
        );
      } catch (error) {
        const decision = classifyCreateFailure(error, config.routing.failover_on_timeout);
        await store.updateAttempt(taskId, seq, {
          outcome: decision.outcome,
          error_code: decision.code,
          provider_code: decision.providerCode,
          http_status: decision.httpStatus,
          latency_ms: clock.now() - started,
          message: decision.message.slice(0, 500),
        });
        if (!decision.failover) {
          return this.finishFailed(task, this.errorOf(decision), holding);
        }
        metrics.failovers.inc({ provider: runtime.id, reason: decision.reason });
        if (decision.reason === 'rate_limited') {
          // "Too many requests" is not a refusal of this task: it waits for Retry-After.
          runtime.coolDown((error as { retryAfterMs?: number }).retryAfterMs);
          retryAt = Math.min(retryAt, runtime.coolingDownUntil || clock.now() + config.tracking.tick_ms);
        } else {
          failures.push(decision);
        }
        continue;
      }

      // Accepted upstream. From here on the upstream id must not be lost.
      return this.recordAccepted(task, runtime, result, {
        seq,
        latencyMs: clock.now() - started,
        ...(entry.estimate ? { estimate: entry.estimate } : {}),
        warnings: match.warnings,
        callbackUrl,
      });
    }

    if (Number.isFinite(retryAt) && clock.now() >= task.deadline_at) {
      return this.finishFailed(task, this.deadlineError(), holding);
    }
    if (Number.isFinite(retryAt)) {
      // Every usable provider is busy or asked for a pause: wait in line, durably.
      const dispatchAfter = Math.max(retryAt, clock.now());
      const waiting = holding
        ? await this.lifecycle.transition(
            task,
            { phase: 'dispatch', status: 'queued', provider: null, lease_owner: null, lease_until: null, dispatch_after: dispatchAfter },
            { phases: ['submitting'], leaseOwner: owner },
          )
        : await this.lifecycle.transition(task, { dispatch_after: dispatchAfter }, { phases: ['dispatch'] });
      return waiting ?? (await store.getTask(taskId));
    }
    return this.finishFailed(task, this.summarize(failures), holding);
  }

  /**
   * Writes down an accepted create: first the upstream id on the attempt (one small write, so a
   * crash right after still knows what the upstream holds), then the task's move to tracking.
   * Both are retried on store errors; if they still fail, the task stays in `submitting` and
   * recovery resumes tracking it from the attempt once the lease runs out.
   */
  private async recordAccepted(
    task: TaskRow,
    runtime: ProviderRuntime,
    result: SubmitResult,
    details: { seq: number; latencyMs: number; estimate?: CostEstimate; warnings: string[]; callbackUrl: string | undefined },
  ): Promise<TaskRow | undefined> {
    const { store, clock, config, logger, random } = this.engine;
    const logContext = { task_id: task.id, provider: runtime.id, provider_task_id: result.ref.providerTaskId };
    const persisted = await this.persist(logContext, 'record the accepted attempt', () =>
      store.updateAttempt(task.id, details.seq, {
        outcome: 'accepted',
        latency_ms: details.latencyMs,
        provider_task_id: result.ref.providerTaskId,
        tracking_json: JSON.stringify(result.ref.tracking),
      }),
    );
    if (!persisted.ok) return store.getTask(task.id).catch(() => task);
    const request = requestOf(task);
    const accepted = await this.persist(logContext, 'move the accepted task to tracking', () =>
      this.lifecycle.accepted(task, runtime, result, {
        ...(details.estimate ? { estimate: details.estimate } : {}),
        warnings: details.warnings,
        expectsWebhook: details.callbackUrl !== undefined,
        firstPollAt:
          clock.now() +
          firstPollDelay(runtime.minimumRunTimeMs(request), config.tracking, random, details.callbackUrl !== undefined),
      }),
    );
    if (accepted.ok && !accepted.value) {
      logger.error(logContext, 'task accepted upstream after its submission lease was taken over');
    }
    return (accepted.ok ? accepted.value : undefined) ?? store.getTask(task.id).catch(() => task);
  }

  private async persist<T>(
    logContext: Record<string, string>,
    what: string,
    write: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    for (let round = 1; ; round++) {
      try {
        return { ok: true, value: await write() };
      } catch (error) {
        if (round >= PERSIST_TRIES) {
          this.engine.logger.error({ ...logContext, err: error }, `could not ${what}; recovery will resume it`);
          return { ok: false };
        }
        this.engine.logger.warn({ ...logContext, err: error }, `could not ${what}; trying again`);
      }
    }
  }

  private deadlineError(): TaskError {
    const minutes = Math.round(this.engine.config.tasks.deadline_ms / 60_000);
    return { code: 'timeout', message: `no provider took the task within the ${minutes}-minute deadline`, provider_code: null };
  }

  private async finishFailed(task: TaskRow, error: TaskError, holding: boolean): Promise<TaskRow | undefined> {
    const failed = await this.lifecycle.fail(
      task,
      error,
      holding ? { phases: ['submitting'], leaseOwner: this.engine.owner } : { phases: ['dispatch'] },
    );
    return failed ?? (await this.engine.store.getTask(task.id));
  }

  private errorOf(decision: CreateFailureDecision): TaskError {
    return { code: decision.code, message: decision.message, provider_code: decision.providerCode };
  }

  /** One error for a task no provider took: their shared code, else `no_provider_available`. */
  private summarize(failures: readonly CreateFailureDecision[]): TaskError {
    if (failures.length === 0) {
      return { code: 'no_provider_available', message: 'no eligible provider is enabled', provider_code: null };
    }
    const codes = new Set(failures.map((failure) => failure.code));
    const last = failures[failures.length - 1]!;
    if (codes.size === 1 && last.code !== 'no_provider_available') {
      return { code: last.code, message: last.message, provider_code: last.providerCode };
    }
    return {
      code: 'no_provider_available',
      message: `no provider accepted the task: ${failures.map((f) => f.message).join('; ')}`.slice(0, 1000),
      provider_code: null,
    };
  }

  /**
   * Settles submissions whose replica stopped mid-create (their lease ran out), except those this
   * process is still running:
   * - the provider accepted (its task id is on the attempt): tracking resumes from it;
   * - a request was in flight with no answer recorded: the upstream may hold the task, so the
   *   task fails with a clear error rather than being sent again;
   * - nothing was in flight: the task goes back to the queue.
   */
  async recoverAbandoned(now = this.engine.clock.now()): Promise<number> {
    const { store } = this.engine;
    const abandoned = (await store.listAbandonedSubmissions(now, 100)).filter((task) => !this.inFlight.has(task.id));
    for (const task of abandoned) {
      const attempts = await store.getAttempts(task.id);
      const accepted = attempts.find((attempt) => attempt.outcome === 'accepted' && attempt.provider_task_id);
      const inFlight = attempts.find((attempt) => attempt.outcome === 'sending');
      if (accepted) {
        await this.resumeAccepted(task, accepted, now);
      } else if (inFlight) {
        await store.updateAttempt(task.id, inFlight.seq, {
          outcome: 'interrupted',
          message: 'the gateway stopped while this request was in flight',
        });
        await this.lifecycle.fail(
          task,
          {
            code: 'provider_error',
            message:
              `the gateway stopped while submitting to ${inFlight.provider}; the provider may have accepted ` +
              'the task, so it was not sent again (to avoid paying twice)',
            provider_code: null,
          },
          { phases: ['submitting'], leaseOwner: task.lease_owner },
        );
      } else {
        await this.lifecycle.transition(
          task,
          { phase: 'dispatch', status: 'queued', provider: null, lease_owner: null, lease_until: null, dispatch_after: now },
          { phases: ['submitting'], leaseOwner: task.lease_owner },
        );
      }
    }
    return abandoned.length;
  }

  /** Tracks an upstream task whose acceptance was recorded on the attempt but not yet on the task. */
  private async resumeAccepted(task: TaskRow, attempt: AttemptRow, now: number): Promise<void> {
    const plan = JSON.parse(task.plan_json) as StoredPlan;
    const entry = plan.candidates.find((candidate) => candidate.provider === attempt.provider);
    await this.lifecycle.transition(
      task,
      {
        phase: 'tracking',
        status: 'processing',
        provider: attempt.provider,
        provider_task_id: attempt.provider_task_id,
        tracking_json: attempt.tracking_json ?? '{}',
        warnings_json: JSON.stringify(entry?.warnings ?? []),
        next_poll_at: now,
        poll_count: 0,
        lease_owner: null,
        lease_until: null,
      },
      { phases: ['submitting'], leaseOwner: task.lease_owner },
    );
    this.engine.logger.warn(
      { task_id: task.id, provider: attempt.provider, provider_task_id: attempt.provider_task_id },
      'resumed tracking of a task accepted upstream before the gateway stopped',
    );
  }

  /** Dispatches waiting tasks in creation order. Calls while one runs are folded into one rerun. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  /** Settles once no pass is running; the gateway waits for it before closing the store. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private async dispatchWaiting(): Promise<void> {
    await this.recoverAbandoned();
    const pass: PassState = { full: new Set() };
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await this.engine.store.listDispatchable(this.engine.clock.now(), DISPATCH_PAGE, after);
      // Tasks whose every provider is known full this pass are left alone without a query.
      const runnable = page.filter((task) => task.candidates === '' || !this.allFull(task, pass));
      for (let i = 0; i < runnable.length; i += DISPATCH_CONCURRENCY) {
        await Promise.all(
          runnable.slice(i, i + DISPATCH_CONCURRENCY).map((task) =>
            this.dispatch(task.id, {}, pass).catch((error) =>
              this.engine.logger.error({ task_id: task.id, err: error }, 'dispatch failed'),
            ),
          ),
        );
      }
      const last = page[page.length - 1];
      if (!last || page.length < DISPATCH_PAGE) break;
      after = { createdAt: last.created_at, id: last.id };
    }
  }

  private allFull(task: TaskRow, pass: PassState): boolean {
    const providers = task.candidates.split(',').filter(Boolean);
    return providers.length > 0 && providers.every((provider) => pass.full.has(provider));
  }
}
