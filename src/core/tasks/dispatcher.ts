/**
 * Gets queued tasks accepted by a provider (SPEC §3, §5). What to do with each provider of a
 * task's plan is decided in `dispatch-decision.ts`; this file carries the decisions out: it
 * claims a provider slot, waits briefly for a rate allowance, sends the create, and writes down
 * what happened.
 *
 * What protects against paying twice: each attempt is written down *before* the request leaves;
 * the moment a provider accepts, its task id is written on the attempt, before anything else. So
 * after a crash at any point the next process either resumes tracking that upstream task or,
 * if the request was in flight with no answer recorded, reports it (`recovery.ts`): it never
 * sends it again.
 */
import type { TaskError } from '../model/canonical.js';
import type { CostEstimate } from '../model/pricing.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import type { SubmitResult } from '../upstream/provider.js';
import { CoalescingRunner } from './coalescing-runner.js';
import {
  afterCreateFailure,
  attemptHistory,
  circuitOpenAttempt,
  conclude,
  deadlineError,
  decideCandidate,
  type CandidateOutcome,
  type CandidateStep,
  type ProviderStanding,
} from './dispatch-decision.js';
import type { Engine } from './engine.js';
import { circuitOpenFailure, classifyCreateFailure } from './failover.js';
import { firstPollDelay } from './polling.js';
import { Recovery } from './recovery.js';
import { TaskLifecycle } from './task-lifecycle.js';
import type { NewAttempt, PlanEntry, TaskRecord } from './task-records.js';

/** What one pass of the dispatcher has learned, shared by the tasks it dispatches. */
interface PassState {
  /** Providers found without a free slot in this pass: later tasks do not ask again. */
  full: Set<string>;
}

/** How trying one provider ended: the task is settled (accepted, failed, taken by someone else), or the plan goes on. */
type TryResult =
  | { settled: true; task: TaskRecord | undefined }
  | { settled: false; task: TaskRecord; outcome: CandidateOutcome };

/** Longest a create waits in-line for a rate allowance before the task is queued instead. */
const MAX_INLINE_RATE_WAIT_MS = 2_000;
/** Tasks dispatched at once by one pass. */
const DISPATCH_CONCURRENCY = 8;
/** Waiting tasks read per page. */
const DISPATCH_PAGE = 200;
/** Tries for the store writes after an upstream accepted (a dropped connection, a busy file). */
const PERSIST_TRIES = 4;

export class Dispatcher {
  private readonly lifecycle: TaskLifecycle;
  /** Settles submissions a stopped replica left behind; run before every pass. */
  readonly recovery: Recovery;
  private readonly runner = new CoalescingRunner(() => this.dispatchWaiting());
  /** Dispatches running in this process, by task id (recovery leaves them alone; shutdown waits). */
  private readonly inFlight = new Map<string, Promise<TaskRecord | undefined>>();

  constructor(private readonly engine: Engine) {
    this.lifecycle = new TaskLifecycle(engine);
    this.recovery = new Recovery(engine, this.lifecycle, (taskId) => this.inFlight.has(taskId));
  }

  /** The webhook or callback URL the upstream should use for this task, if any. */
  callbackUrlFor(runtime: ProviderRuntime, task: TaskRecord): string | undefined {
    const base = this.engine.publicUrl.replace(/\/+$/, '');
    switch (runtime.provider.inboundWebhook) {
      case 'signed':
        return runtime.webhookSecret ? `${base}/v1/webhooks/${runtime.id}` : undefined;
      case 'token':
        return task.callbackToken ? `${base}/v1/webhooks/${runtime.id}/${task.callbackToken}` : undefined;
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
  dispatch(
    taskId: string,
    context: Record<string, string> = {},
    pass?: PassState,
    /** The task as this process just created it (no attempts yet), so it is not read back. */
    created?: TaskRecord,
  ): Promise<TaskRecord | undefined> {
    const running = this.inFlight.get(taskId);
    if (running) return running;
    const promise = this.dispatchOnce(taskId, context, pass, created).finally(() => this.inFlight.delete(taskId));
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

  /** Walks the task's plan, one decision per provider, and carries out the conclusion. */
  private async dispatchOnce(
    taskId: string,
    context: Record<string, string>,
    pass?: PassState,
    created?: TaskRecord,
  ): Promise<TaskRecord | undefined> {
    const { tasks, runtimes, clock, config } = this.engine;
    let task = created ?? (await tasks.get(taskId));
    if (!task || task.phase !== 'dispatch') return task;
    if (clock.now() >= task.deadlineAt) {
      // Never send upstream (and pay for) a task the gateway has already given up on.
      return this.failSubmission(task, deadlineError(config.tasks.deadline_ms));
    }
    const request = { request: task.request, explicit: new Set(task.plan.explicit) };
    const history = attemptHistory(created ? [] : await tasks.attempts(taskId));
    const outcomes: CandidateOutcome[] = [];
    for (const entry of task.plan.candidates) {
      const runtime = runtimes.get(entry.provider);
      const step = decideCandidate(entry, runtime && this.standingOf(runtime, pass), {
        request,
        history,
        now: clock.now(),
        retryMs: config.tracking.tick_ms,
      });
      if (step.kind === 'try') {
        // Only a configured provider is ever tried.
        const tried = await this.tryProvider(task, runtime!, entry, step, context, pass);
        if (tried.settled) return tried.task;
        task = tried.task;
        outcomes.push(tried.outcome);
      } else {
        if (step.record) await this.recordSkip(task, step.record);
        outcomes.push(step);
      }
    }

    const conclusion = conclude(outcomes, { now: clock.now(), deadlineAt: task.deadlineAt, deadlineMs: config.tasks.deadline_ms });
    if (conclusion.kind === 'fail') return this.failSubmission(task, conclusion.error);
    // Every usable provider is busy or asked for a pause: wait in line, durably.
    const waiting =
      task.phase === 'submitting'
        ? await this.lifecycle.requeue(task, conclusion.until)
        : await this.lifecycle.postpone(task, conclusion.until);
    return waiting ?? (await tasks.get(taskId));
  }

  private standingOf(runtime: ProviderRuntime, pass: PassState | undefined): ProviderStanding {
    return {
      usable: runtime.enabled,
      circuitOpen: runtime.circuit === 'open',
      coolingDownUntil: runtime.coolingDownUntil,
      offerings: runtime.provider.offerings,
      knownFull: pass?.full.has(runtime.id) ?? false,
    };
  }

  private async recordSkip(task: TaskRecord, attempt: NewAttempt): Promise<void> {
    await this.engine.tasks.addAttempt(task.id, attempt);
    this.engine.metrics.failovers.inc({ provider: attempt.provider, reason: attempt.errorCode ?? 'skipped' });
  }

  /**
   * Takes a slot of the provider (the task moves to `submitting` under this replica's lease),
   * waits briefly for a rate allowance, writes the attempt, then sends the create.
   */
  private async tryProvider(
    task: TaskRecord,
    runtime: ProviderRuntime,
    entry: PlanEntry,
    step: Extract<CandidateStep, { kind: 'try' }>,
    context: Record<string, string>,
    pass: PassState | undefined,
  ): Promise<TryResult> {
    const { tasks, clock, config, metrics, owner } = this.engine;
    const retryMs = config.tracking.tick_ms;
    const now = clock.now();
    const claimed = await tasks.claimSlot({
      task,
      provider: runtime.id,
      cap: runtime.config.max_in_flight,
      owner,
      leaseUntil: now + this.submissionLeaseMs(runtime),
      now,
    });
    if (!claimed) {
      const current = await tasks.get(task.id);
      // Someone else took the task (another replica, or it finished): not ours any more.
      if (!current || current.phase !== task.phase) return { settled: true, task: current };
      pass?.full.add(runtime.id);
      return { settled: false, task, outcome: { kind: 'wait', until: now + retryMs } };
    }
    // Leave to call: cool-down, circuit (one call at a time across replicas while in doubt), rate windows.
    const admission = await runtime.admit(MAX_INLINE_RATE_WAIT_MS);
    if (!admission.granted) {
      if (admission.reason !== 'circuit_open') return { settled: false, task: claimed, outcome: { kind: 'wait', until: admission.retryAt } };
      // Opened since the plan was read (another replica's failures): passed over, as it would have been.
      await this.recordSkip(claimed, circuitOpenAttempt(runtime.id, clock.now()));
      return { settled: false, task: claimed, outcome: { kind: 'refused', failure: circuitOpenFailure(runtime.id) } };
    }

    const seq = await tasks.addAttempt(task.id, { provider: runtime.id, outcome: 'sending', at: clock.now() });
    const started = clock.now();
    const callbackUrl = this.callbackUrlFor(runtime, claimed);
    let result: SubmitResult;
    try {
      result = await runtime.call(
        (signal) =>
          runtime.provider.submit(claimed.request, step.offering, {
            http: runtime.clientFor({ task_id: task.id, ...context }),
            signal,
            taskId: task.id,
            attemptKey: `${task.id}-${seq}`,
            ...(callbackUrl ? { callbackUrl } : {}),
          }),
        admission.permit,
      );
    } catch (error) {
      const failure = classifyCreateFailure(error, config.routing.failover_on_timeout);
      await tasks.updateAttempt(task.id, seq, {
        outcome: failure.outcome,
        errorCode: failure.code,
        providerCode: failure.providerCode,
        httpStatus: failure.httpStatus,
        latencyMs: clock.now() - started,
        message: failure.message.slice(0, 500),
      });
      if (failure.failover) metrics.failovers.inc({ provider: runtime.id, reason: failure.reason });
      // "Too many requests" is not a refusal of this task: the provider is asked again after Retry-After.
      if (failure.reason === 'rate_limited') runtime.coolDown((error as { retryAfterMs?: number }).retryAfterMs);
      const next = afterCreateFailure(failure, { now: clock.now(), retryMs, coolingDownUntil: runtime.coolingDownUntil });
      if (next.kind === 'fail') return { settled: true, task: await this.failSubmission(claimed, next.error) };
      return { settled: false, task: claimed, outcome: next };
    }

    // Accepted upstream. From here on the upstream id must not be lost.
    return {
      settled: true,
      task: await this.recordAccepted(claimed, runtime, result, {
        seq,
        latencyMs: clock.now() - started,
        ...(entry.estimate ? { estimate: entry.estimate } : {}),
        warnings: step.warnings,
        callbackUrl,
      }),
    };
  }

  /**
   * Writes down an accepted create: first the upstream id on the attempt (one small write, so a
   * crash right after still knows what the upstream holds), then the task's move to tracking.
   * Both are retried on store errors; if they still fail, the task stays in `submitting` and
   * recovery resumes tracking it from the attempt once the lease runs out.
   */
  private async recordAccepted(
    task: TaskRecord,
    runtime: ProviderRuntime,
    result: SubmitResult,
    details: { seq: number; latencyMs: number; estimate?: CostEstimate; warnings: string[]; callbackUrl: string | undefined },
  ): Promise<TaskRecord | undefined> {
    const { tasks, clock, config, logger, random } = this.engine;
    const logContext = { task_id: task.id, provider: runtime.id, provider_task_id: result.ref.providerTaskId };
    const persisted = await this.persist(logContext, 'record the accepted attempt', () =>
      tasks.updateAttempt(task.id, details.seq, {
        outcome: 'accepted',
        latencyMs: details.latencyMs,
        providerTaskId: result.ref.providerTaskId,
        tracking: result.ref.tracking,
      }),
    );
    if (!persisted.ok) return tasks.get(task.id).catch(() => task);
    const expectsWebhook = details.callbackUrl !== undefined;
    const accepted = await this.persist(logContext, 'move the accepted task to tracking', () =>
      this.lifecycle.startTracking(task, runtime, result, {
        ...(details.estimate ? { estimate: details.estimate } : {}),
        warnings: details.warnings,
        expectsWebhook,
        firstPollAt:
          clock.now() + firstPollDelay(runtime.minimumRunTimeMs(task.request), config.tracking, random, expectsWebhook),
      }),
    );
    if (accepted.ok && !accepted.value) {
      logger.error(logContext, 'task accepted upstream after its submission lease was taken over');
    }
    return (accepted.ok ? accepted.value : undefined) ?? tasks.get(task.id).catch(() => task);
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

  private async failSubmission(task: TaskRecord, error: TaskError): Promise<TaskRecord | undefined> {
    return (await this.lifecycle.failSubmission(task, error)) ?? (await this.engine.tasks.get(task.id));
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
    await this.recovery.recoverAbandoned();
    const pass: PassState = { full: new Set() };
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await this.engine.tasks.listDispatchable(this.engine.clock.now(), DISPATCH_PAGE, after);
      // Tasks whose every provider is known full this pass are left alone without a query.
      const runnable = page.filter((task) => !this.allFull(task, pass));
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
      after = { createdAt: last.createdAt, id: last.id };
    }
  }

  private allFull(task: TaskRecord, pass: PassState): boolean {
    const { candidates } = task.plan;
    return candidates.length > 0 && candidates.every((entry) => pass.full.has(entry.provider));
  }
}
