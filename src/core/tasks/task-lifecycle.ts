/**
 * The only place a task changes state. Each state change has a name (`startTracking`,
 * `requeue`, `reschedulePoll`, `fail` …) and is one conditional store update, with the
 * client's webhook queued in the same transaction when the public status changes; then
 * events, metrics and stats. A change that loses a race (the task already moved on) writes
 * nothing and returns undefined.
 */
import { randomBytes } from 'node:crypto';
import { TERMINAL_STATUSES, type AttemptOutcome, type ChargeAtRisk, type TaskCost, type TaskError, type TaskStatus } from '../model/canonical.js';
import { costOf, type CostEstimate } from '../model/pricing.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import type { StatusReport, SubmitResult } from '../upstream/provider.js';
import { chargeToKeep } from '../upstream/remembered-charge.js';
import { failureCounts } from '../upstream/provider-stats.js';
import type { Engine } from './engine.js';
import type { ChangeCondition, InboundMark } from './task-repository.js';
import { holdsSlot, newOutput, withAttemptChange, type AttemptChange, type AttemptRecord, type NewDelivery, type OutputRecord, type TaskChange, type TaskPhase, type TaskRecord } from './task-records.js';
import { lastPollAt } from './polling.js';
import { MAX_STATUS_CHARS, toTask } from './task-resource.js';
import { SpendLedger, chargeOf, deliveredSeconds } from './spend-ledger.js';
import { fromMicros, toMicros } from '../model/pricing.js';

/** Outbound webhook event for a status (SPEC §4); `queued` has none. */
const EVENT_TYPES: Partial<Record<TaskStatus, string>> = {
  processing: 'video.processing',
  succeeded: 'video.succeeded',
  failed: 'video.failed',
  canceled: 'video.canceled',
};

/**
 * A spend or at-risk metric's `account` label: one of the configuration's account ids (`default`
 * for the one-account shorthand), `none` for a charge no account took.
 */
function accountLabel(account: string | null | undefined): string {
  return account ?? 'none';
}

/** True for an absolute http: or https: URL. */
function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** Why a task ended that no provider took before its `cancel_after` ran out. */
function overdueReason(task: TaskRecord): string {
  const seconds = task.cancelAt !== null ? Math.round((task.cancelAt - task.createdAt) / 1000) : 0;
  return `still queued after cancel_after (${seconds} s); no provider took it`;
}

/** Why a task ended whose caller canceled it while its create was on its way, which no provider took. */
const CANCELED_WHILE_SENT = 'canceled by the caller while its create was on its way; no provider took it';

/** Gives the task's lease back: part of every change made by the lease's holder. */
const RELEASE_LEASE = { leaseOwner: null, leaseUntil: null } as const satisfies TaskChange;


/** What a task no provider accepted cost: nothing, in the currency of its estimate. */
function unbilled(task: TaskRecord): TaskCost {
  return { credits: 0, estimated: false, currency_amount: 0, currency: task.cost.currency };
}

/**
 * The upstream word a task shows once `heard` is applied: that word, or, when the answer carried
 * none (left out, or blank), the word the task showed before (null until one was heard). A blank
 * is no word to keep (SPEC §2 keeps the raw word): the last word heard stays the task's.
 */
export function wordAfter(shown: string | null, heard: string): string | null {
  return heard.trim() === '' ? shown : heard;
}

export function costFromEstimate(estimate: CostEstimate | undefined): TaskCost {
  return estimate
    ? { credits: estimate.credits, estimated: true, currency_amount: estimate.currencyAmount, currency: estimate.currency }
    : { credits: null, estimated: true, currency_amount: null, currency: null };
}

/** Where the caller found the task: the change is written only if it is still there. */
export interface TransitionOptions extends ChangeCondition {
  phases: readonly TaskPhase[];
  /** The provider webhook the change comes from, remembered with the first change it makes. */
  inbound?: InboundMark;
}

export class TaskLifecycle {
  private readonly ledger: SpendLedger;

  constructor(private readonly engine: Engine) {
    this.ledger = new SpendLedger(engine);
  }

  /** The condition under which this replica changes a task it holds in `phase`. */
  private held(phase: TaskPhase): TransitionOptions {
    return { phases: [phase], leaseOwner: this.engine.owner };
  }

  /**
   * Writes `change`; when the public status changes, queues the client's webhook in the same
   * transaction, and keeps the task's usage line and its tenant's budget in step (a terminal
   * change settles or releases the reservation, whichever transition ends the task), then
   * publishes the change.
   */
  private async transition(
    task: TaskRecord,
    change: TaskChange,
    options: TransitionOptions,
    /**
     * An attempt's change written in the same transaction (only if the task's change is); with
     * `still`, only while the attempt's outcome is still that (else nothing is written).
     */
    attempt?: { seq: number; change: AttemptChange; still?: AttemptOutcome },
  ): Promise<TaskRecord | undefined> {
    if (change.status !== undefined && TERMINAL_STATUSES.has(change.status) && task.status === 'queued' && task.providerTaskId !== null) {
      // A task that waited in its provider's queue and ends there (a webhook or poll that says
      // it is done without a word of it running, its deadline) is `processing` first, in a
      // version and event of its own: every task a provider held goes queued → processing →
      // its end, as clients following it and `processingBetween` expect. The provider webhook's
      // id is remembered with the end only, so that a webhook whose end is not written can
      // come again. `task` may be a stale read (another replica wrote `processing` meanwhile):
      // the write then changes no status and sends no event (see `delivery` below).
      const { inbound: _inbound, ...started } = options;
      const running = await this.transition(task, { status: 'processing' }, started);
      if (!running) return undefined;
      return this.transition(running, change, options.version === undefined ? options : { ...options, version: running.version }, attempt);
    }
    const { tasks, clock } = this.engine;
    const now = clock.now();
    const statusChanges = change.status !== undefined && change.status !== task.status;
    const eventType = statusChanges && change.status ? EVENT_TYPES[change.status] : undefined;
    const recorded = eventType && task.webhookUrl ? await tasks.attempts(task.id) : [];
    // The event carries the task as it reads after this write, the attempt written with it included.
    const attempts = attempt ? recorded.map((entry) => (entry.seq === attempt.seq ? withAttemptChange(entry, attempt.change) : entry)) : recorded;
    const { links } = this.engine;
    // Sent only when this write gave the task its status (it took it at this version): `task` may
    // be a stale read, and a replica that heard the same news first (a poll and a webhook both
    // saying a task in its provider's queue runs) has sent the event already.
    const delivery =
      eventType && task.webhookUrl
        ? (changed: TaskRecord): NewDelivery | undefined =>
            changed.statusVersion !== changed.version
              ? undefined
              : {
                  id: `msg_${randomBytes(12).toString('hex')}`,
                  taskId: changed.id,
                  tenant: changed.tenant,
                  url: changed.webhookUrl ?? '',
                  eventType,
                  payload: JSON.stringify({ type: eventType, timestamp: new Date(now).toISOString(), data: toTask(changed, attempts, links, this.engine.secrets) }),
                  createdAt: now,
                }
        : undefined;
    // What other providers may have billed, as the ledger found it in the transaction that ended
    // the task (its last try): counted below only if that change was written, so once.
    let atRisk: readonly ChargeAtRisk[] = [];
    const alongside = this.ledger.follow(task, change, (charges) => {
      atRisk = charges;
    });
    const updated = await tasks.update(
      task.id,
      { ...change, updatedAt: now },
      options,
      { ...(delivery ? { delivery } : {}), ...(alongside ? { alongside } : {}), ...(attempt ? { attempt } : {}), ...(options.inbound ? { inbound: options.inbound } : {}) },
    );
    if (updated) {
      this.engine.events.publish(updated);
      if (holdsSlot(task.phase) && !holdsSlot(updated.phase)) this.engine.onSlotFreed?.();
      this.recordAtRisk(updated, atRisk);
    }
    return updated;
  }

  /**
   * Writes a change that is bookkeeping, not news (when to poll next): `updated_at` stays and
   * nothing is published.
   */
  private async writeQuietly(task: TaskRecord, change: TaskChange, options: TransitionOptions): Promise<TaskRecord | undefined> {
    return this.engine.tasks.update(task.id, change, options, options.inbound ? { inbound: options.inbound } : {});
  }

  /**
   * The provider took the task (from `submitting`, held by this replica): it is now tracked, and
   * `processing` unless the provider answered that it waits in its queue (Freepik `CREATED`,
   * legacy `submitted`: `queued`, SPEC §2). `accepted` (the attempt's upstream id) is written in the same transaction; when
   * the task is no longer held here nothing is written, and the caller writes the attempt alone.
   */
  async startTracking(
    task: TaskRecord,
    runtime: ProviderRuntime,
    result: SubmitResult,
    extra: { estimate?: CostEstimate; warnings: string[]; expectsWebhook: boolean; firstPollAt: number },
    accepted?: { seq: number; change: AttemptChange },
  ): Promise<TaskRecord | undefined> {
    const updated = await this.transition(
      task,
      {
        phase: 'tracking',
        status: result.status === 'queued' ? 'queued' : 'processing',
        provider: runtime.id,
        providerTaskId: result.ref.providerTaskId,
        providerStatus: wordAfter(task.providerStatus, result.providerStatus),
        tracking: result.ref.tracking,
        cost: this.reportedCost(task, runtime, result.reportedCredits, true) ?? costFromEstimate(extra.estimate),
        warnings: extra.warnings,
        expectsWebhook: extra.expectsWebhook,
        nextPollAt: extra.firstPollAt,
        pollCount: 0,
        ...RELEASE_LEASE,
      },
      this.held('submitting'),
      accepted,
    );
    if (updated && (result.status === 'succeeded' || result.status === 'failed')) {
      // Judged against the task as it was before this answer, so an empty success is confirmed.
      return this.applyReport({ ...updated, providerStatus: null }, runtime, result, { phases: ['tracking'] });
    }
    return updated;
  }

  /**
   * Tracks a task whose acceptance was written on its attempt but never on the task (the
   * replica holding it stopped in between, or the create's answer was lost and the task was
   * found upstream): polled at once. Its cost becomes the estimate of the provider that holds it,
   * as `startTracking` does: until now it was the plan's first provider's, which may have refused it.
   */
  resumeTracking(task: TaskRecord, accepted: AttemptRecord, now: number): Promise<TaskRecord | undefined> {
    return this.transition(task, this.trackingFrom(task, accepted, now), { phases: ['submitting'], leaseOwner: task.leaseOwner });
  }

  /**
   * Tracks a task waiting in the gateway's queue at the provider of a create it was failed over
   * from (`failover_on_timeout`), which news showed holds it: `accepted` is that attempt as it now
   * reads, written in the same transaction, and both only while the task is still queued (no
   * dispatcher claimed it for another create) and the attempt still as it was read.
   */
  adoptQueued(task: TaskRecord, accepted: AttemptRecord, change: AttemptChange, still: AttemptOutcome, now: number): Promise<TaskRecord | undefined> {
    return this.transition(task, this.trackingFrom(task, accepted, now), { phases: ['dispatch'] }, { seq: accepted.seq, change, still });
  }

  /** The change that tracks `task` at the provider of its accepted attempt, polled at `now`. */
  private trackingFrom(task: TaskRecord, accepted: AttemptRecord, now: number): TaskChange {
    const entry = task.plan.candidates.find((candidate) => candidate.provider === accepted.provider);
    return {
      phase: 'tracking',
      status: 'processing',
      provider: accepted.provider,
      // The account the accepted request went through is the one that can ask about it.
      ...(accepted.account ? { account: accepted.account } : {}),
      providerTaskId: accepted.providerTaskId,
      tracking: accepted.tracking ?? {},
      cost: costFromEstimate(entry?.estimate),
      warnings: entry?.warnings ?? [],
      nextPollAt: now,
      pollCount: 0,
      ...RELEASE_LEASE,
    };
  }

  /**
   * Takes over a submission whose holder's lease ran out, until `until`, only if the task is
   * still exactly as it was read (its version): two replicas that read the same abandoned task
   * must not both act on it. Without the version, a holder that put the task back and claimed it
   * again for another create (same owner, same phase) would look unchanged, and a second replica
   * would send it again.
   */
  takeOverAbandoned(task: TaskRecord, until: number): Promise<TaskRecord | undefined> {
    return this.writeQuietly(
      task,
      { leaseOwner: this.engine.owner, leaseUntil: until },
      { phases: ['submitting'], leaseOwner: task.leaseOwner, version: task.version },
    );
  }

  /**
   * Keeps a submission whose create answer was lost in `submitting` while the gateway finds out
   * what the upstream holds: this replica takes its lease until `until`, when recovery looks
   * again. Its provider slot stays taken — the upstream may be running it.
   */
  holdInDoubt(task: TaskRecord, until: number, leaseOwner: string | null): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { leaseOwner: this.engine.owner, leaseUntil: until }, { phases: ['submitting'], leaseOwner });
  }

  /**
   * Puts a submission back in the queue, to be tried again from `at`: its provider slot and
   * lease are freed. `leaseOwner` is the holder the caller found (this replica, or one that died).
   * A submission whose caller asked to cancel it while its create was on its way ends canceled
   * instead (`cancelAsRequested`): no provider took it, and none is to be asked again.
   */
  async requeue(task: TaskRecord, at: number, leaseOwner: string | null = this.engine.owner): Promise<TaskRecord | undefined> {
    const requeued = await this.transition(
      task,
      { phase: 'dispatch', status: 'queued', provider: null, account: null, dispatchAfter: at, ...RELEASE_LEASE },
      { phases: ['submitting'], leaseOwner, cancelRequested: false },
    );
    return requeued ?? this.cancelAsRequested(task, leaseOwner);
  }

  /**
   * Remembers, on the task, that its caller asked to cancel it while a create of it is on its way
   * (`submitting`): whichever replica runs the submission then sends no further create, and ends
   * the task `canceled` unless that create is accepted. Bookkeeping until then: nothing is
   * published. Undefined when the task is no longer `submitting`.
   */
  requestCancel(task: TaskRecord): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { cancelRequestedAt: task.cancelRequestedAt ?? this.engine.clock.now() }, { phases: ['submitting'] });
  }

  /**
   * Ends a submission whose caller asked to cancel it while its create was on its way
   * (`requestCancel`), once that create was not accepted: written only while a cancel request is
   * pending and the task is still held by `leaseOwner`, so of this and a next create exactly one
   * happens (`TaskRepository.addHeldAttempt` refuses a create once a cancel request is written).
   * Costed as `cancelQueued` costs it: nothing, unless a create of it may exist upstream.
   */
  async cancelAsRequested(task: TaskRecord, leaseOwner: string | null = this.engine.owner): Promise<TaskRecord | undefined> {
    const options: TransitionOptions = { phases: ['submitting'], leaseOwner, cancelRequested: true };
    return this.cancelNotTaken(task, CANCELED_WHILE_SENT, options, { provider: null, account: null });
  }

  /** Keeps this replica's lease on a task it holds in `phase` until `until` (bookkeeping: nothing published). */
  extendLease(task: TaskRecord, phase: TaskPhase, until: number): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { leaseUntil: until }, this.held(phase));
  }

  /** A queued task waits in line until `at` (every usable provider is busy or asked for a pause). */
  postpone(task: TaskRecord, at: number): Promise<TaskRecord | undefined> {
    return this.transition(task, { dispatchAfter: at }, { phases: ['dispatch'] });
  }

  /**
   * Gives back this replica's polling lease with the time of the next poll, without news from
   * upstream; with `version`, only if the task is still as it was read then.
   */
  reschedulePoll(task: TaskRecord, at: number, countAsPoll: boolean, version?: number): Promise<TaskRecord | undefined> {
    return this.writeQuietly(
      task,
      {
        nextPollAt: Math.min(at, lastPollAt(task.deadlineAt, this.engine.clock.now())),
        ...(countAsPoll ? { pollCount: task.pollCount + 1 } : {}),
        ...RELEASE_LEASE,
      },
      { ...this.held('tracking'), ...(version !== undefined ? { version } : {}) },
    );
  }

  /** Makes a tracked task due for polling now (a callback to confirm, a webhook we could not read). */
  pollNow(task: TaskRecord): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { nextPollAt: this.engine.clock.now() }, { phases: ['tracking'] });
  }

  /** Makes a tracked task due for polling by `at` (sooner than it was due), or leaves it as it is. */
  async pollBy(task: TaskRecord, at: number): Promise<TaskRecord | undefined> {
    if (task.nextPollAt !== null && task.nextPollAt <= at) return task;
    return this.writeQuietly(task, { nextPollAt: at }, { phases: ['tracking'] });
  }

  /**
   * Applies what the upstream said about a task (a poll, a webhook, a confirmed callback).
   * Terminal reports finish the task; others record the raw word. Returns the new record.
   */
  async applyReport(
    task: TaskRecord,
    runtime: ProviderRuntime,
    report: StatusReport,
    options: TransitionOptions,
    schedule?: { nextPollAt: number; pollCount: number },
  ): Promise<TaskRecord | undefined> {
    const releaseHeldLease = options.leaseOwner ? RELEASE_LEASE : {};
    // What the adapter learned about where to ask goes with the task's next poll.
    const learned = report.tracking ? { tracking: report.tracking } : {};
    if (report.status === 'succeeded' && report.outputs.length === 0) {
      // "Done" with nothing to download is not a success a caller can use. The result may land a
      // moment after the status word, so the first such report is confirmed by one more poll
      // soon; the same word again with still nothing fails the task instead of waiting for the
      // deadline.
      if (task.providerStatus !== report.providerStatus) {
        return this.transition(
          task,
          {
            providerStatus: report.providerStatus,
            status: 'processing',
            nextPollAt: this.engine.clock.now() + this.engine.config.tracking.poll_min_interval_ms,
            ...(schedule ? { pollCount: schedule.pollCount } : {}),
            ...releaseHeldLease,
            ...learned,
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
    if (report.status === 'succeeded') {
      // A result URL is handed to callers and fetched by custody: anything but http(s)
      // (javascript:, data:, file:) is the provider's error, never a success.
      const unusable = report.outputs.find((output) => !isHttpUrl(output.url));
      if (unusable) {
        this.engine.logger.warn({ task_id: task.id, provider: runtime.id }, 'provider reported a result URL that is not http(s)');
        return this.fail(
          task,
          { code: 'provider_error', message: `${runtime.id} reported a result URL that is not http(s); nothing to deliver`, provider_code: null },
          options,
          report,
        );
      }
      return this.succeed(task, runtime, report, options);
    }
    if (report.status === 'failed') {
      const error: TaskError = {
        code: report.error?.code ?? 'provider_error',
        message: report.error?.message ?? `${runtime.id} reported the task as ${report.providerStatus}`,
        provider_code: report.error?.providerCode ?? null,
      };
      return this.fail(task, error, options, report);
    }
    this.noteUnknownStatus(task, runtime, report);
    const reported = this.reportedCost(task, runtime, report.reportedCredits, true);
    // Still in the provider's queue (or a word not known, which moves nothing): `queued`; once
    // it runs, `processing`. An upstream that moves a running task back is not believed.
    const stillWaiting = task.status === 'queued' && (report.status === 'queued' || report.status === 'unknown');
    return this.transition(
      task,
      {
        providerStatus: wordAfter(task.providerStatus, report.providerStatus),
        status: stillWaiting ? 'queued' : 'processing',
        ...(schedule ? { nextPollAt: schedule.nextPollAt, pollCount: schedule.pollCount } : {}),
        ...releaseHeldLease,
        ...(reported ? { cost: reported } : {}),
        ...learned,
      },
      options,
    );
  }

  /**
   * Counts and logs a status word the adapter does not know (SPEC §2), wherever it was heard: a
   * report applied to the task, or the deadline's last look that then ends it.
   */
  noteUnknownStatus(task: TaskRecord, runtime: ProviderRuntime, report: StatusReport, atDeadline = false): void {
    if (report.status !== 'unknown') return;
    // The word itself goes to the log only: a label of it would add a series per made-up word.
    this.engine.metrics.unknownStatuses.inc({ provider: runtime.id });
    this.engine.logger.warn(
      { task_id: task.id, provider: runtime.id, provider_status: report.providerStatus.slice(0, MAX_STATUS_CHARS) },
      atDeadline ? 'unknown upstream status at the deadline; task fails with timeout' : 'unknown upstream status; task stays in progress',
    );
  }

  /**
   * The upstream finished the task. With result custody on, the task first moves to `storing`
   * (still `processing` to callers) until its outputs are copied (`ResultCustody`); otherwise it
   * reports `succeeded` at once.
   */
  async succeed(
    task: TaskRecord,
    runtime: ProviderRuntime,
    report: StatusReport,
    options: TransitionOptions,
  ): Promise<TaskRecord | undefined> {
    const { clock, storage, config } = this.engine;
    const now = clock.now();
    const cost = this.reportedCost(task, runtime, report.reportedCredits, false) ?? task.cost;
    const willCopy = storage !== undefined && config.storage.mode === 'copy';
    const outputs = report.outputs.map((output) => newOutput(output, now, runtime.provider.resultLifetimeMs, willCopy));
    const finished = { providerStatus: report.providerStatus, outputs, cost, error: null, ...RELEASE_LEASE } satisfies TaskChange;
    if (willCopy && outputs.length > 0) {
      const storing = await this.transition(task, { ...finished, phase: 'storing', status: 'processing', nextPollAt: now, pollCount: 0 }, options);
      if (storing) {
        runtime.stats.recordCompletion(now - task.createdAt, now);
        this.engine.onOutputsDue?.();
      }
      return storing;
    }
    const updated = await this.transition(
      task,
      { ...finished, phase: 'done', status: 'succeeded', completedAt: now, nextPollAt: null },
      options,
    );
    if (updated) {
      runtime.stats.recordCompletion(now - task.createdAt, now);
      this.recordFinish(updated);
    }
    return updated;
  }

  /** Every output of a task this replica holds in `storing` is settled (stored or given up on): it reports `succeeded`. */
  async finishStoring(task: TaskRecord, outputs: OutputRecord[]): Promise<TaskRecord | undefined> {
    const now = this.engine.clock.now();
    const updated = await this.transition(
      task,
      { phase: 'done', status: 'succeeded', outputs, completedAt: now, nextPollAt: null, ...RELEASE_LEASE },
      this.held('storing'),
    );
    if (updated) this.recordFinish(updated);
    return updated;
  }

  /** Some copies failed and will be tried again at `at`: their attempts are written down, the lease given back. */
  retryStoringAt(task: TaskRecord, outputs: OutputRecord[], at: number): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { outputs, nextPollAt: at, ...RELEASE_LEASE }, this.held('storing'));
  }

  /**
   * Stored copies were deleted at the end of their retention: the outputs say so. Only over the
   * outputs as read (`version`): a later copy may have stored another output of the task since,
   * which outputs read before it would undo. Not written, the next pass finds the copy again
   * (deleting a key that holds nothing does nothing) and writes it then.
   */
  expireStored(task: TaskRecord, outputs: OutputRecord[]): Promise<TaskRecord | undefined> {
    return this.transition(task, { outputs }, { phases: ['done'], version: task.version });
  }

  /**
   * The outcome of later copies of a succeeded task this replica leased (`fresh`, read again just
   * before, so that a change made since its claim is kept): the outputs as they are now, the lease
   * given back. The status stays what it is: no event is sent, the change is published to those
   * following the task.
   */
  recopied(fresh: TaskRecord, outputs: OutputRecord[]): Promise<TaskRecord | undefined> {
    return this.transition(fresh, { outputs, ...RELEASE_LEASE }, { ...this.held('done'), version: fresh.version });
  }

  /** Gives back the lease of a succeeded task whose later copies were stopped (the gateway is stopping). */
  releaseRecopy(task: TaskRecord): Promise<TaskRecord | undefined> {
    return this.writeQuietly(task, { ...RELEASE_LEASE }, this.held('done'));
  }

  /**
   * A task no provider has taken (`queued`) ends `canceled` at no cost, unless a dispatcher
   * claimed it first (then nothing is written and undefined is returned).
   */
  cancelQueued(task: TaskRecord, reason: string): Promise<TaskRecord | undefined> {
    return this.cancelNotTaken(task, reason, { phases: ['dispatch'] });
  }

  /**
   * Ends `canceled` a task no provider took: at no cost, or — when a create of it may exist
   * upstream (`inDoubtProvider`) — at that provider's estimate, shown under it. `holder` is what
   * the task shows otherwise.
   */
  private async cancelNotTaken(
    task: TaskRecord,
    reason: string,
    options: TransitionOptions,
    holder: Pick<TaskChange, 'provider' | 'account'> = {},
  ): Promise<TaskRecord | undefined> {
    const inDoubt = await this.inDoubtProvider(task);
    if (inDoubt) return this.cancel(task, reason, options, this.inDoubtCost(task, inDoubt.provider), { ...holder, ...inDoubt });
    return this.cancel(task, reason, options, unbilled(task), holder);
  }

  /**
   * A submission whose create has not left (its dispatcher waits for a rate allowance, or turns to
   * another account) ends `canceled` at no cost, as a queued task does. `task` was read together
   * with its attempts, none of which a provider may hold, and the change is written only at the
   * version read: a dispatcher moves the version as it writes its attempt, before the request
   * leaves (`TaskRepository.addHeldAttempt`), so of the cancel and the send exactly one happens.
   * Nothing went to the provider the task was held for, so none is shown.
   */
  cancelUnsent(task: TaskRecord, reason: string): Promise<TaskRecord | undefined> {
    return this.cancel(task, reason, { phases: ['submitting'], version: task.version }, unbilled(task), { provider: null, account: null });
  }

  /** A task still queued when its `cancel_after` ran out ends `canceled`, costed as `cancelQueued` costs it. */
  cancelOverdueQueued(task: TaskRecord): Promise<TaskRecord | undefined> {
    return this.cancelQueued(task, overdueReason(task));
  }

  /**
   * A submission held here whose `cancel_after` ran out before its next create left (a provider
   * turned the last one down after that, or its rate allowance was waited for) ends `canceled`,
   * costed as `cancelQueued` costs it: nothing, unless a create of it may exist upstream.
   */
  cancelOverdueUnsent(task: TaskRecord): Promise<TaskRecord | undefined> {
    return this.cancelNotTaken(task, overdueReason(task), this.held('submitting'), { provider: null, account: null });
  }

  /** The provider canceled a task it held, at the caller's request (providers that can). */
  cancelTracked(task: TaskRecord, reason: string): Promise<TaskRecord | undefined> {
    return this.cancel(task, reason, { phases: ['tracking'] }, task.cost);
  }

  private async cancel(
    task: TaskRecord,
    reason: string,
    options: TransitionOptions,
    cost: TaskCost,
    /** Which provider and account the task shows, when that changes. */
    holder: Pick<TaskChange, 'provider' | 'account'> = {},
  ): Promise<TaskRecord | undefined> {
    const updated = await this.transition(
      task,
      {
        phase: 'done',
        status: 'canceled',
        error: { code: 'canceled', message: reason, provider_code: null },
        cost,
        ...holder,
        completedAt: this.engine.clock.now(),
        nextPollAt: null,
        ...RELEASE_LEASE,
      },
      options,
    );
    if (updated) this.recordFinish(updated);
    return updated;
  }

  async fail(
    task: TaskRecord,
    error: TaskError,
    options: TransitionOptions,
    report?: StatusReport,
    /** The provider and account the task is shown under, when not the ones it holds (a slot claimed for a create never sent). */
    shownUnder?: { provider: string; account: string | null },
  ): Promise<TaskRecord | undefined> {
    // A task no provider accepted cost nothing (`unbilled`), unless one may hold it after all.
    const neverAccepted = task.providerTaskId === null && report === undefined;
    const inDoubt = neverAccepted ? await this.inDoubtProvider(task) : undefined;
    if (inDoubt) return this.failInDoubt(task, error, options, inDoubt.provider, undefined, inDoubt.account);
    // Without a last answer (a deadline while the status could not be read), what the provider
    // already said it charged (kling3api at creation) is still its own figure. A last answer of a
    // task still running (the deadline's last look) that says 0 has charged nothing yet, which is
    // no certain charge of 0: the figure the task had stands, as while it ran.
    const credits = report ? chargeToKeep(report) : this.chargedCredits(task);
    const reported = credits !== undefined && task.provider ? this.reportedCostFor(task, task.provider, credits) : undefined;
    return this.writeFailure(task, error, options, neverAccepted ? unbilled(task) : reported, report, shownUnder?.provider, undefined, shownUnder?.account);
  }

  /**
   * Fails a task whose create went to `provider` and was never answered (a broken connection
   * after the request was written, or a stop mid-request) when nothing can tell whether the
   * provider holds it: it may have been generated and billed, so the cost stays that provider's
   * estimate, still `estimated`, rather than a certain 0.
   */
  failInDoubt(
    task: TaskRecord,
    error: TaskError,
    options: TransitionOptions,
    provider: string,
    /** The attempt in doubt's change, written with the failure only while its outcome is still `still`. */
    attempt?: { seq: number; change: AttemptChange; still: AttemptOutcome },
    /** The account that create went to, when the task shows another (it moved on from there). */
    account?: string | null,
  ): Promise<TaskRecord | undefined> {
    return this.writeFailure(task, error, options, this.inDoubtCost(task, provider), undefined, provider, attempt, account);
  }

  /** What a task costs that `provider` may hold (its create sent, never answered): that provider's estimate, still `estimated`. */
  private inDoubtCost(task: TaskRecord, provider: string): TaskCost {
    return costFromEstimate(task.plan.candidates.find((entry) => entry.provider === provider)?.estimate);
  }

  /**
   * The provider that may hold a task no provider accepted: the last one whose create was sent
   * and never answered, and which the task was failed over from (`failover_on_timeout`) or
   * moved on from, with the account its create went to (the task shows it under both, not under
   * the account of a provider tried after it). Undefined when every provider certainly refused
   * it, or none was tried.
   */
  private async inDoubtProvider(task: TaskRecord): Promise<{ provider: string; account: string | null } | undefined> {
    if (task.providerTaskId !== null) return undefined;
    const attempts = await this.engine.tasks.attempts(task.id);
    const attempt = attempts.findLast((entry) => entry.outcome === 'ambiguous' || entry.outcome === 'interrupted');
    return attempt ? { provider: attempt.provider, account: attempt.account } : undefined;
  }

  private async writeFailure(
    task: TaskRecord,
    error: TaskError,
    options: TransitionOptions,
    cost: TaskCost | undefined,
    report?: StatusReport,
    provider?: string,
    attempt?: { seq: number; change: AttemptChange; still: AttemptOutcome },
    account?: string | null,
  ): Promise<TaskRecord | undefined> {
    const now = this.engine.clock.now();
    const updated = await this.transition(
      task,
      {
        phase: 'done',
        status: 'failed',
        error,
        completedAt: now,
        nextPollAt: null,
        ...RELEASE_LEASE,
        ...(report ? { providerStatus: wordAfter(task.providerStatus, report.providerStatus) } : {}),
        ...(cost ? { cost } : {}),
        ...(provider ? { provider } : {}),
        ...(account !== undefined ? { account } : {}),
      },
      options,
      attempt,
    );
    if (updated) {
      // A task its provider accepted and failed counts against it under `fastest`, as the tasks
      // table says it to a restart and to other replicas (`recentCompletions`).
      if (updated.provider && failureCounts(updated)) this.engine.runtimes.get(updated.provider)?.stats.recordFailure(now);
      this.recordFinish(updated);
    }
    return updated;
  }

  /**
   * Fails a task that is not tracked yet: still queued, or in this replica's submission. A
   * submission whose caller asked to cancel it meanwhile ends canceled instead (`cancelAsRequested`).
   * `shownUnder`: the provider and account it is shown under, when not those of the slot it holds.
   */
  async failSubmission(task: TaskRecord, error: TaskError, shownUnder?: { provider: string; account: string | null }): Promise<TaskRecord | undefined> {
    if (task.phase !== 'submitting') return this.fail(task, error, { phases: ['dispatch'] }, undefined, shownUnder);
    return (await this.fail(task, error, { ...this.held('submitting'), cancelRequested: false }, undefined, shownUnder)) ?? this.cancelAsRequested(task);
  }

  /** What the provider holding `task` already said it charged for it, when it keeps that with the task's tracking. */
  private chargedCredits(task: TaskRecord): number | undefined {
    if (task.provider === null || task.providerTaskId === null) return undefined;
    const provider = this.engine.runtimes.get(task.provider)?.provider;
    return provider?.chargedCredits?.({ providerTaskId: task.providerTaskId, tracking: task.tracking ?? {} });
  }

  private reportedCostFor(task: TaskRecord, providerId: string, credits: number): TaskCost | undefined {
    const runtime = this.engine.runtimes.get(providerId);
    return runtime ? this.reportedCost(task, runtime, credits, false) : { credits, estimated: false, currency_amount: null, currency: null };
  }

  /**
   * The upstream's own figure; `estimated` stays true while the task may still change it. A running
   * task's figure of 0 is no charge yet, not a charge of nothing (a legacy task may report
   * `final_unit_deduction` while it runs, and a 0 then is not said to be its final charge): the figure the
   * task had (the estimate, reserved in its tenant's budget) stands until one the task ends with.
   * Credits are valued at what one credit was worth under the rule that priced the task when it
   * was created, so a later price change does not rewrite it. Undefined when nothing was
   * reported, or when the figure is worth more than money is added up exactly in (whole
   * millionths within a safe integer, about 9 billion currency units: also what a PostgreSQL
   * bigint holds): no video costs that, and such a figure would wreck every sum it entered, so
   * the figure the task had stands, and the log says why.
   */
  private reportedCost(task: TaskRecord, runtime: ProviderRuntime, credits: number | undefined, provisional: boolean): TaskCost | undefined {
    if (credits === undefined || (provisional && credits === 0)) return undefined;
    if (!runtime.pricing) return { credits, estimated: provisional, currency_amount: null, currency: null };
    const planned = task.plan.candidates.find((entry) => entry.provider === runtime.id);
    const creditValue = planned?.creditValue ?? runtime.pricing.credit_value;
    // The currency goes with the credit value: the one of the price list that priced the task,
    // even if the provider's list is in another currency now.
    const currency = planned?.creditValue !== undefined && planned.estimate ? planned.estimate.currency : runtime.pricing.currency;
    const cost = costOf({ credit_value: creditValue, currency }, credits);
    if (!Number.isSafeInteger(toMicros(cost.currencyAmount))) {
      this.engine.logger.warn(
        { task_id: task.id, provider: runtime.id },
        `${runtime.id} reported a charge of ${credits} credits (${cost.currencyAmount} ${cost.currency}), more than a charge ` +
          'the gateway can add up exactly; not taken: the figure the task had stands',
      );
      return undefined;
    }
    return { credits: cost.credits, estimated: provisional, currency_amount: cost.currencyAmount, currency: cost.currency };
  }

  /**
   * What a finished task's other providers may have billed (`cost.at_risk`), apart from its spend,
   * as `/v1/usage` adds it up in `credits_at_risk`.
   */
  private recordAtRisk(task: TaskRecord, charges: readonly ChargeAtRisk[]): void {
    const { metrics } = this.engine;
    for (const charge of charges) {
      const account = accountLabel(charge.account);
      if (charge.credits !== null && charge.credits > 0) metrics.creditsAtRisk.inc({ provider: charge.provider, account, model: task.model }, charge.credits);
      if (charge.currency_amount !== null && charge.currency_amount > 0 && charge.currency) {
        metrics.currencyAtRisk.inc({ provider: charge.provider, account, model: task.model, currency: charge.currency }, charge.currency_amount);
      }
    }
  }

  /**
   * Metrics of a finished task. Spend counts every task's final charge, failed ones included
   * (a provider that reports charging for a failure was paid), exactly as `/v1/usage` adds it up.
   */
  private recordFinish(task: TaskRecord): void {
    const { metrics } = this.engine;
    const provider = task.provider ?? 'none';
    const charge = chargeOf(task);
    metrics.taskOutcomes.inc({ provider, model: task.model, status: task.status, error_code: task.error?.code ?? '' });
    metrics.taskDuration.observe(
      { provider, model: task.model, status: task.status },
      ((task.completedAt ?? task.updatedAt) - task.createdAt) / 1000,
    );
    if (charge.credits !== null && charge.credits > 0) {
      const account = accountLabel(task.account);
      metrics.creditsSpent.inc({ provider, account, model: task.model }, charge.credits);
      if (charge.amountMicros !== null && charge.currency) {
        metrics.currencySpent.inc({ provider, account, model: task.model, currency: charge.currency }, fromMicros(charge.amountMicros));
      }
    }
    const seconds = deliveredSeconds(task);
    if (seconds > 0) metrics.videoSeconds.inc({ provider, model: task.model }, seconds);
    // Quote against actual: the provider's figure over the estimate routing made for it, for a
    // delivered video only (a failure's refund or partial charge is no measure of the price list).
    const estimated = task.plan.candidates.find((entry) => entry.provider === task.provider)?.estimate?.credits;
    if (task.status === 'succeeded' && estimated !== undefined && estimated > 0 && charge.reportedCredits !== null) {
      metrics.costDrift.observe({ provider, model: task.model }, charge.reportedCredits / estimated);
    }
  }
}
