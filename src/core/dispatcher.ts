/**
 * Gets tasks accepted by a provider (SPEC §3, §5). For one task it walks the routing plan:
 * skips providers whose circuit is open, waits (queued) when every usable provider is at its
 * concurrency cap or asked us to back off, and on a failure moves on only when the upstream
 * certainly holds no task. Each attempt is written down *before* the request leaves, so a
 * crash mid-create is found afterwards and reported instead of silently sent again.
 */
import type { TaskError } from './canonical.js';
import { matchOffering } from './capabilities.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import { classifyCreateFailure, type CreateFailureDecision } from './failover.js';
import type { CostEstimate } from './pricing.js';
import { CircuitBreakerOpenError, type ProviderRuntime } from './provider-runtime.js';
import { TaskLifecycle, requestOf } from './task-lifecycle.js';
import { firstPollDelay } from './polling.js';
import type { TaskRow } from '../store/task-store.js';

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

/** Longest a create waits in-line for a rate allowance before the task is queued instead. */
const MAX_INLINE_RATE_WAIT_MS = 2_000;
/** Tasks dispatched at once by one tick. */
const DISPATCH_CONCURRENCY = 8;

export class Dispatcher {
  private readonly lifecycle: TaskLifecycle;
  private readonly runner = new CoalescingRunner(() => this.dispatchWaiting());

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
   * Tries to get one queued task accepted. Returns the task as it ends up: `processing`,
   * `failed`, or still `queued` (waiting for a slot or a rate allowance).
   */
  async dispatch(taskId: string, context: Record<string, string> = {}): Promise<TaskRow | undefined> {
    const { store, runtimes, clock, config, metrics, owner } = this.engine;
    const initial = await store.getTask(taskId);
    if (!initial || initial.phase !== 'dispatch') return initial;
    const plan = JSON.parse(initial.plan_json) as StoredPlan;
    const request = requestOf(initial);
    const resolved = { request, explicit: new Set(plan.explicit) };
    const attempts = await store.getAttempts(taskId);
    const done = new Set(attempts.filter((a) => a.outcome !== 'sending').map((a) => `${a.provider}:${a.outcome}`));
    const failedBefore = new Set(attempts.filter((a) => a.outcome === 'failed').map((a) => a.provider));

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
        if (!done.has(`${runtime.id}:skipped`)) {
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
          done.add(`${runtime.id}:skipped`);
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

      const now = clock.now();
      const claimed = await store.claimSlot({
        taskId,
        provider: runtime.id,
        cap: runtime.config.max_in_flight,
        owner,
        leaseUntil: now + config.tracking.lease_ms,
        now,
        fromPhases: holding ? ['submitting'] : ['dispatch'],
      });
      if (!claimed) {
        const current = await store.getTask(taskId);
        // Someone else took the task (another replica, or it finished): not ours any more.
        if (!current || current.phase !== (holding ? 'submitting' : 'dispatch')) return current;
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
      try {
        const result = await runtime.call((signal) =>
          runtime.provider.submit(request, match.offering!, {
            http: runtime.clientFor({ task_id: taskId, ...context }),
            signal,
            taskId,
            attemptKey: `${taskId}-${seq}`,
            ...(callbackUrl ? { callbackUrl } : {}),
          }),
        );
        await store.updateAttempt(taskId, seq, { outcome: 'accepted', latency_ms: clock.now() - started });
        const accepted = await this.lifecycle.accepted(task, runtime, result, {
          ...(entry.estimate ? { estimate: entry.estimate } : {}),
          warnings: match.warnings,
          expectsWebhook: callbackUrl !== undefined,
          firstPollAt:
            clock.now() +
            firstPollDelay(runtime.minimumRunTimeMs(request), config.tracking, this.engine.random, callbackUrl !== undefined),
        });
        if (!accepted) {
          this.engine.logger.error(
            { task_id: taskId, provider: runtime.id, provider_task_id: result.ref.providerTaskId },
            'task accepted upstream after its submission lease was taken over',
          );
        }
        return accepted ?? (await store.getTask(taskId));
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
        if (decision.httpStatus === 429) {
          runtime.coolDown((error as { retryAfterMs?: number }).retryAfterMs);
        }
        if (!decision.failover) {
          return this.finishFailed(task, this.errorOf(decision), holding);
        }
        failures.push(decision);
        metrics.failovers.inc({ provider: runtime.id, reason: decision.reason });
      }
    }

    if (Number.isFinite(retryAt) && clock.now() >= task.deadline_at) {
      const minutes = Math.round(config.tasks.deadline_ms / 60_000);
      return this.finishFailed(
        task,
        { code: 'timeout', message: `no provider took the task within the ${minutes}-minute deadline`, provider_code: null },
        holding,
      );
    }
    if (Number.isFinite(retryAt)) {
      // Every usable provider is busy or asked for a pause: wait in line, durably.
      const patch = {
        phase: 'dispatch' as const,
        status: 'queued',
        provider: null,
        lease_owner: null,
        lease_until: null,
        dispatch_after: Math.max(retryAt, clock.now()),
      };
      const waiting = holding
        ? await this.lifecycle.transition(task, patch, { phases: ['submitting'], leaseOwner: owner })
        : await this.lifecycle.transition(task, { dispatch_after: patch.dispatch_after }, { phases: ['dispatch'] });
      return waiting ?? (await store.getTask(taskId));
    }
    return this.finishFailed(task, this.summarize(failures), holding);
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
   * Finds submissions whose replica stopped mid-create (lease expired). If a request had been
   * sent, the upstream may hold the task: the task fails with a clear error rather than being
   * sent again. If nothing was in flight, it goes back to the queue.
   */
  async recoverAbandoned(now = this.engine.clock.now()): Promise<number> {
    const { store } = this.engine;
    const abandoned = await store.listAbandonedSubmissions(now, 100);
    for (const task of abandoned) {
      const attempts = await store.getAttempts(task.id);
      const inFlight = attempts.find((attempt) => attempt.outcome === 'sending');
      if (inFlight) {
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

  /** Dispatches waiting tasks in creation order. Calls while one runs are folded into one rerun. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  private async dispatchWaiting(): Promise<void> {
    await this.recoverAbandoned();
    const waiting = await this.engine.store.listDispatchable(this.engine.clock.now(), 200);
    for (let i = 0; i < waiting.length; i += DISPATCH_CONCURRENCY) {
      await Promise.all(
        waiting.slice(i, i + DISPATCH_CONCURRENCY).map((task) =>
          this.dispatch(task.id).catch((error) =>
            this.engine.logger.error({ task_id: task.id, err: error }, 'dispatch failed'),
          ),
        ),
      );
    }
  }
}
