/**
 * The only place a task's public status changes. Each transition is one conditional store
 * update (with its outbound webhook in the same transaction), then events, metrics and stats.
 * A transition that loses a race (the task already moved on) changes nothing and returns
 * undefined.
 */
import { randomBytes } from 'node:crypto';
import type { Insertable } from 'kysely';
import type { TaskCost, TaskError, TaskOutput, TaskStatus, VideoRequest } from '../model/canonical.js';
import type { Engine } from './engine.js';
import { costOf, type CostEstimate } from '../model/pricing.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import type { StatusReport, SubmitResult } from '../upstream/provider.js';
import { toTask } from './task-resource.js';
import type { DeliveriesTable, TaskPhase } from '../../store/schema.js';
import type { TaskPatch, TaskRow } from '../../store/task-store.js';

/** Outbound webhook event for a status (SPEC §4); `queued` has none. */
const EVENT_TYPES: Partial<Record<TaskStatus, string>> = {
  processing: 'video.processing',
  succeeded: 'video.succeeded',
  failed: 'video.failed',
};

export function costFromEstimate(estimate: CostEstimate | undefined): TaskCost {
  return estimate
    ? { credits: estimate.credits, estimated: true, currency_amount: estimate.currencyAmount, currency: estimate.currency }
    : { credits: null, estimated: true, currency_amount: null, currency: null };
}

export interface TransitionOptions {
  /** Phases the task must still be in. */
  phases: readonly TaskPhase[];
  /** Lease the caller must still hold (undefined: not checked). */
  leaseOwner?: string | null;
}

export class TaskLifecycle {
  constructor(private readonly engine: Engine) {}

  /**
   * Writes `patch`; when the public status changes, queues the client's webhook in the same
   * transaction, then publishes the change.
   */
  async transition(task: TaskRow, patch: TaskPatch, options: TransitionOptions): Promise<TaskRow | undefined> {
    const { store, clock } = this.engine;
    const now = clock.now();
    const statusChanges = patch.status !== undefined && patch.status !== task.status;
    const eventType = statusChanges ? EVENT_TYPES[patch.status as TaskStatus] : undefined;
    const attempts = eventType && task.webhook_url ? await store.getAttempts(task.id) : [];
    const delivery =
      eventType && task.webhook_url
        ? (row: TaskRow): Insertable<DeliveriesTable> => ({
            id: `msg_${randomBytes(12).toString('hex')}`,
            task_id: row.id,
            tenant: row.tenant,
            url: row.webhook_url ?? '',
            event_type: eventType,
            payload_json: JSON.stringify({
              type: eventType,
              timestamp: new Date(now).toISOString(),
              data: toTask(row, attempts),
            }),
            status: 'pending',
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
          })
        : undefined;
    const updated = await store.updateTask(
      task.id,
      { ...patch, updated_at: now },
      { phases: options.phases, ...(options.leaseOwner !== undefined ? { leaseOwner: options.leaseOwner } : {}) },
      delivery,
    );
    if (updated) this.engine.events.publish(updated);
    return updated;
  }

  /** The provider took the task: it is now `processing` and tracked. */
  async accepted(
    task: TaskRow,
    runtime: ProviderRuntime,
    result: SubmitResult,
    extra: { estimate?: CostEstimate; warnings: string[]; expectsWebhook: boolean; firstPollAt: number },
  ): Promise<TaskRow | undefined> {
    const patch: TaskPatch = {
      phase: 'tracking',
      status: 'processing',
      provider: runtime.id,
      provider_task_id: result.ref.providerTaskId,
      provider_status: result.providerStatus,
      tracking_json: JSON.stringify(result.ref.tracking),
      cost_json: JSON.stringify(
        result.reportedCredits !== undefined
          ? this.reportedCost(runtime, result.reportedCredits, true)
          : costFromEstimate(extra.estimate),
      ),
      warnings_json: JSON.stringify(extra.warnings),
      expects_webhook: extra.expectsWebhook ? 1 : 0,
      next_poll_at: extra.firstPollAt,
      poll_count: 0,
      lease_owner: null,
      lease_until: null,
    };
    const updated = await this.transition(task, patch, { phases: ['submitting'], leaseOwner: this.engine.owner });
    if (updated && (result.status === 'succeeded' || result.status === 'failed')) {
      // Judged against the task as it was before this answer, so an empty success is confirmed.
      return this.applyReport({ ...updated, provider_status: null }, runtime, result, { phases: ['tracking'] });
    }
    return updated;
  }

  /**
   * Applies what the upstream said about a task (a poll, a webhook, a confirmed callback).
   * Terminal reports finish the task; others record the raw word. Returns the new row.
   */
  async applyReport(
    task: TaskRow,
    runtime: ProviderRuntime,
    report: StatusReport,
    options: TransitionOptions,
    schedule?: { nextPollAt: number; pollCount: number },
  ): Promise<TaskRow | undefined> {
    const { metrics } = this.engine;
    if (report.status === 'succeeded' && report.outputs.length === 0) {
      // "Done" with nothing to download is not a success a caller can use. The result may land a
      // moment after the status word, so the first such report is confirmed by one more poll
      // soon; the same word again with still nothing fails the task instead of waiting for the
      // deadline.
      if (task.provider_status !== report.providerStatus) {
        return this.transition(
          task,
          {
            provider_status: report.providerStatus,
            status: 'processing',
            next_poll_at: this.engine.clock.now() + this.engine.config.tracking.poll_min_interval_ms,
            ...(schedule ? { poll_count: schedule.pollCount } : {}),
            ...(options.leaseOwner ? { lease_owner: null, lease_until: null } : {}),
          },
          options,
        );
      }
      return this.fail(
        task,
        {
          code: 'provider_error',
          message: `${runtime.id} reported the task as ${report.providerStatus} but gave no result to download`,
          provider_code: report.providerStatus || null,
        },
        options,
        report,
      );
    }
    if (report.status === 'succeeded') return this.succeed(task, runtime, report, options);
    if (report.status === 'failed') {
      const error: TaskError = {
        code: report.error?.code ?? 'provider_error',
        message: report.error?.message ?? `${runtime.id} reported the task as ${report.providerStatus}`,
        provider_code: report.error?.providerCode ?? null,
      };
      return this.fail(task, error, options, report);
    }
    if (report.status === 'unknown') {
      metrics.unknownStatuses.inc({ provider: runtime.id, provider_status: report.providerStatus.slice(0, 40) });
      this.engine.logger.warn(
        { task_id: task.id, provider: runtime.id, provider_status: report.providerStatus },
        'unknown upstream status; task stays in progress',
      );
    }
    const patch: TaskPatch = {
      provider_status: report.providerStatus,
      // An upstream that moved the task back is not believed: it stays processing.
      status: 'processing',
      ...(schedule ? { next_poll_at: schedule.nextPollAt, poll_count: schedule.pollCount } : {}),
      ...(options.leaseOwner ? { lease_owner: null, lease_until: null } : {}),
    };
    if (report.reportedCredits !== undefined) {
      patch.cost_json = JSON.stringify(this.reportedCost(runtime, report.reportedCredits, true));
    }
    return this.transition(task, patch, options);
  }

  async succeed(
    task: TaskRow,
    runtime: ProviderRuntime,
    report: StatusReport,
    options: TransitionOptions,
  ): Promise<TaskRow | undefined> {
    const now = this.engine.clock.now();
    const outputs: TaskOutput[] = report.outputs;
    const previousCost = JSON.parse(task.cost_json) as TaskCost;
    const cost =
      report.reportedCredits !== undefined
        ? this.reportedCost(runtime, report.reportedCredits, false)
        : previousCost;
    const updated = await this.transition(
      task,
      {
        phase: 'done',
        status: 'succeeded',
        provider_status: report.providerStatus,
        outputs_json: JSON.stringify(outputs),
        cost_json: JSON.stringify(cost),
        error_json: null,
        completed_at: now,
        next_poll_at: null,
        lease_owner: null,
        lease_until: null,
      },
      options,
    );
    if (updated) {
      runtime.stats.recordCompletion(now - task.created_at, now);
      this.recordFinish(updated, cost);
    }
    return updated;
  }

  async fail(
    task: TaskRow,
    error: TaskError,
    options: TransitionOptions,
    report?: StatusReport,
  ): Promise<TaskRow | undefined> {
    const now = this.engine.clock.now();
    // A task no provider accepted cost nothing; keep the currency of the estimate for clarity.
    const neverAccepted = task.provider_task_id === null && report === undefined;
    const estimate = JSON.parse(task.cost_json) as TaskCost;
    const unbilled: TaskCost = { credits: 0, estimated: false, currency_amount: 0, currency: estimate.currency };
    const updated = await this.transition(
      task,
      {
        phase: 'done',
        status: 'failed',
        error_json: JSON.stringify(error),
        completed_at: now,
        next_poll_at: null,
        lease_owner: null,
        lease_until: null,
        ...(report ? { provider_status: report.providerStatus } : {}),
        ...(report?.reportedCredits !== undefined && task.provider
          ? { cost_json: JSON.stringify(this.reportedCostFor(task.provider, report.reportedCredits)) }
          : {}),
        ...(neverAccepted ? { cost_json: JSON.stringify(unbilled) } : {}),
      },
      options,
    );
    if (updated) this.recordFinish(updated, JSON.parse(updated.cost_json) as TaskCost);
    return updated;
  }

  private reportedCostFor(providerId: string, credits: number): TaskCost {
    const runtime = this.engine.runtimes.get(providerId);
    return runtime ? this.reportedCost(runtime, credits, false) : { credits, estimated: false, currency_amount: null, currency: null };
  }

  /** The upstream's own figure; `estimated` stays true while the task may still change it. */
  private reportedCost(runtime: ProviderRuntime, credits: number, provisional: boolean): TaskCost {
    if (!runtime.pricing) return { credits, estimated: provisional, currency_amount: null, currency: null };
    const cost = costOf(runtime.pricing, credits);
    return { credits: cost.credits, estimated: provisional, currency_amount: cost.currencyAmount, currency: cost.currency };
  }

  private recordFinish(task: TaskRow, cost: TaskCost): void {
    const { metrics } = this.engine;
    const provider = task.provider ?? 'none';
    const error = task.error_json ? (JSON.parse(task.error_json) as TaskError) : null;
    metrics.taskOutcomes.inc({ provider, model: task.model, status: task.status, error_code: error?.code ?? '' });
    metrics.taskDuration.observe(
      { provider, model: task.model, status: task.status },
      ((task.completed_at ?? task.updated_at) - task.created_at) / 1000,
    );
    if (task.status === 'succeeded' && cost.credits !== null) {
      metrics.creditsSpent.inc({ provider, model: task.model }, cost.credits);
      if (cost.currency_amount !== null && cost.currency) {
        metrics.currencySpent.inc({ provider, model: task.model, currency: cost.currency }, cost.currency_amount);
      }
    }
  }
}

/** The canonical request stored on a task. */
export function requestOf(task: TaskRow): VideoRequest {
  return JSON.parse(task.request_json) as VideoRequest;
}
