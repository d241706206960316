/**
 * Follows accepted tasks to the end (SPEC §4). Each due task is leased to one replica for one
 * poll, so a task is polled by exactly one worker at a time. Webhooks and callbacks apply their
 * news at once; polling stays as the safety net; a task past its deadline fails with `timeout`.
 * Client reads never come through here: they only read the store.
 */
import type { TaskError } from '../model/canonical.js';
import { CoalescingRunner } from './coalescing-runner.js';
import { deadlineLength, taskDeadlineMs } from './dispatch-decision.js';
import { askableScope } from './askable-scope.js';
import type { Engine } from './engine.js';
import type { TrackingScope } from './task-repository.js';
import { DEFAULT_ACCOUNT_ID } from '../upstream/provider-account.js';
import { CircuitBreakerOpenError, longestTimeoutMs, type ProviderRuntime } from '../upstream/provider-runtime.js';
import type { ProviderTaskRef, StatusReport } from '../upstream/provider.js';
import { lastPollAt, nextPollDelay } from './polling.js';
import { TaskLifecycle, wordAfter, type TransitionOptions } from './task-lifecycle.js';
import type { TaskRecord } from './task-records.js';
import type { InboundMark } from './task-repository.js';
import { UpstreamError } from '../upstream/upstream-error.js';

/**
 * Polls run at once, and tasks leased per claim: a task is leased only when its poll starts, so no
 * lease runs out while its task waits behind slower polls (another replica would poll it too).
 */
const POLL_CONCURRENCY = 8;
/** Beyond a provider's time limit, how long a poll's lease lasts: its answer may still be recorded. */
const POLL_LEASE_MARGIN_MS = 5_000;
/** At most this many tasks whose account is not configured here are remembered as already logged at warn. */
const MAX_REMEMBERED_STRANDED = 10_000;

export class Tracker {
  readonly lifecycle: TaskLifecycle;
  private readonly runner = new CoalescingRunner(() => this.pollDue());
  /** Tasks whose missing account this process has warned about: each later look of them logs at debug. */
  private readonly strandedLogged = new Set<string>();

  constructor(private readonly engine: Engine) {
    this.lifecycle = new TaskLifecycle(engine);
  }

  private refOf(task: TaskRecord): ProviderTaskRef {
    return { providerTaskId: task.providerTaskId ?? '', tracking: task.tracking ?? {} };
  }

  /** Polls every due task once; fails overdue ones. Overlapping calls fold into one rerun. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  /** Settles once no pass is running; the gateway waits for it before closing the store. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private async pollDue(): Promise<void> {
    // This clock is off the other replicas': its deadlines and leases would be misread (`ClockWatch`).
    if (this.engine.clockWatch.holdReason) return;
    await this.expireOverdue();
    const { tasks, clock, owner } = this.engine;
    for (;;) {
      const due = await tasks.claimDueForTracking(clock.now(), owner, this.pollLeaseMs, POLL_CONCURRENCY, this.scope);
      await Promise.all(due.map((task) => this.pollLeased(task)));
      if (due.length < POLL_CONCURRENCY) break;
    }
  }

  /**
   * What this replica can poll (`askableScope`): where other replicas share the store, a task held
   * by an account not configured here (or by a provider without a key here) is left to a replica
   * that can ask about it — in a rolling deploy adding an account or giving a key back, one still
   * on the old configuration would otherwise take that replica's turns, each look putting the poll
   * off by the longest poll interval, and at the deadline take its last look, failing as timeout a
   * video the upstream made. Once its poll has waited that long interval, no replica could ask,
   * and this one takes it all the same: it is looked at (and warned about) here, and ends at its
   * deadline. A store no other replica shares is claimed from plainly.
   */
  private get scope(): TrackingScope | undefined {
    return askableScope(this.engine);
  }

  /**
   * How long a poll holds its task: `tracking.lease_ms`, but never less than the longest
   * provider time limit and a margin. A poll still within its time limit may yet be answered;
   * a lease shorter than that let another replica poll the task beside it (two status calls, and
   * a task tracked by two workers at once).
   */
  private get pollLeaseMs(): number {
    const { config, runtimes } = this.engine;
    return Math.max(config.tracking.lease_ms, longestTimeoutMs(runtimes.values()) + POLL_LEASE_MARGIN_MS);
  }

  private schedule(task: TaskRecord, runtime: ProviderRuntime): { nextPollAt: number; pollCount: number } {
    const { config, clock, random } = this.engine;
    const pollCount = task.pollCount + 1;
    const delay = nextPollDelay(pollCount, config.tracking, random, task.expectsWebhook, runtime.minimumRunTimeMs(task.request));
    const now = clock.now();
    return { nextPollAt: Math.min(now + delay, lastPollAt(task.deadlineAt, now)), pollCount };
  }

  /**
   * When a poll the account could not take now (a cool-down, a full rate window) is asked again:
   * after `retryAt`, jittered upwards by `tracking.poll_jitter` of the wait (at least of the
   * minimum poll interval). Every task postponed together shares one `retryAt`; without the
   * jitter they would all ask the upstream the moment a Retry-After ends.
   */
  private postponedPollAt(retryAt: number): number {
    const { clock, config, random } = this.engine;
    const now = clock.now();
    const at = Math.max(retryAt, now + 100);
    const spread = config.tracking.poll_jitter * Math.max(at - now, config.tracking.poll_min_interval_ms);
    return at + Math.round(spread * random());
  }

  /** One poll of a task this replica has leased. */
  private async pollLeased(task: TaskRecord): Promise<void> {
    const { runtimes, metrics, clock, logger } = this.engine;
    const runtime = task.provider ? runtimes.get(task.provider) : undefined;
    // Only the account that accepted the task can ask about it (its key, its rate windows).
    const account = runtime?.account(task.account);
    if (!runtime || !account) {
      // Provider or account not configured here, or the provider left without a key (a call could
      // only fail, each one logged and counted towards its circuit): nothing can be asked now, and
      // the deadline ends the task unless it comes back. It may: a restart that restores it (as the
      // start's warning advises), or another replica that has it (a rolling deploy adding an
      // account). So the task is looked at again after the longest poll interval, not put off to
      // its deadline: a video finished meanwhile is then fetched within a minute of its account
      // being back. The look asks no upstream.
      const first = !this.strandedLogged.has(task.id);
      if (first && this.strandedLogged.size < MAX_REMEMBERED_STRANDED) this.strandedLogged.add(task.id);
      const why = runtime?.keyless ? 'the provider holding this task has no key configured' : 'the account holding this task is no longer configured';
      logger[first ? 'warn' : 'debug']({ task_id: task.id, provider: task.provider, account: task.account }, why);
      await this.lifecycle.reschedulePoll(task, clock.now() + this.engine.config.tracking.poll_max_interval_ms, false);
      return;
    }
    // Leave to call: cool-down, circuit (one call at a time across replicas while in doubt), rate windows.
    const admission = await account.admit(0);
    if (!admission.granted) {
      metrics.polls.inc({ provider: runtime.id, outcome: admission.reason });
      await this.lifecycle.reschedulePoll(task, this.postponedPollAt(admission.retryAt), false);
      return;
    }
    try {
      const report = await account.call(
        (signal) =>
          runtime.provider.getStatus(this.refOf(task), {
            http: account.clientForTask(task),
            signal,
          }),
        admission.permit,
      );
      metrics.polls.inc({ provider: runtime.id, outcome: report.status });
      if (report.status !== 'succeeded' && report.status !== 'failed' && clock.now() >= task.deadlineAt) {
        // The last look at the deadline found it still running: the deadline ends it.
        this.lifecycle.noteUnknownStatus(task, runtime, report, true);
        await this.writeAfterPoll(task, 0, (current, held) =>
          this.lifecycle.fail(current, this.deadlineError({ ...current, providerStatus: wordAfter(current.providerStatus, report.providerStatus) }), held, report),
        );
        return;
      }
      const schedule = this.schedule(task, runtime);
      // Written on the task as it is now, but judged against the word this poll went to confirm:
      // the same word heard meanwhile (news applied while this answer was on its way) was seen at
      // the same moment, not a later look ("done" with nothing to download fails only when a
      // later poll still says so).
      await this.writeAfterPoll(task, schedule.nextPollAt, (current, held, nextPollAt) =>
        this.lifecycle.applyReport({ ...current, providerStatus: task.providerStatus }, runtime, report, held, { ...schedule, nextPollAt }),
      );
    } catch (error) {
      if (error instanceof CircuitBreakerOpenError) {
        metrics.polls.inc({ provider: runtime.id, outcome: 'circuit_open' });
        await this.lifecycle.reschedulePoll(task, clock.now() + runtime.config.circuit_breaker.half_open_after_ms, false);
        return;
      }
      const code = error instanceof UpstreamError ? error.code : 'unexpected';
      metrics.polls.inc({ provider: runtime.id, outcome: `error_${code}` });
      logger.warn({ task_id: task.id, provider: runtime.id, err: error }, 'status poll failed; will retry');
      if (error instanceof UpstreamError && clock.now() >= task.deadlineAt) {
        // The last look at the deadline failed: the deadline ends the task, saying what that look
        // heard (an upstream that no longer knows the task, an outage), not only that it ran late.
        const late = this.deadlineError(task);
        const timedOut = { ...late, message: `${late.message}; the last status poll failed: ${error.message}`.slice(0, 1000) };
        await this.writeAfterPoll(task, 0, (current, held) => this.lifecycle.fail(current, timedOut, held));
        return;
      }
      const next = this.schedule(task, runtime);
      const retryAfter = error instanceof UpstreamError && error.retryAfterMs !== undefined ? clock.now() + error.retryAfterMs : 0;
      await this.writeAfterPoll(task, Math.max(next.nextPollAt, retryAfter), (current, held, nextPollAt) =>
        this.lifecycle.reschedulePoll(current, nextPollAt, true, held.version),
      );
    }
  }

  /**
   * Writes what this replica's poll of `task` learned, under its lease, on the task as it is now.
   * The poll's answer may have left the upstream before news that reached a replica while it was
   * on its way: a callback claiming the task finished makes it due at once (`pollSoon`), and the
   * poll's own schedule must not push that back to the next poll (a legacy callback comes once; it
   * was lost until the safety poll, minutes later). So the write holds only on the version the
   * poll read; when something changed the task meanwhile, it is read again, and if its next poll
   * was moved meanwhile, written with the earlier of the two times (other news, a progress webhook,
   * leaves the poll's own schedule) — unless it left tracking or this replica's lease (nothing to
   * write).
   */
  private async writeAfterPoll(
    task: TaskRecord,
    nextPollAt: number,
    write: (current: TaskRecord, held: TransitionOptions & { version: number }, nextPollAt: number) => Promise<TaskRecord | undefined>,
  ): Promise<void> {
    const { tasks, owner } = this.engine;
    let current = task;
    for (let round = 0; round < 3; round++) {
      if (await write(current, { phases: ['tracking'], leaseOwner: owner, version: current.version }, nextPollAt)) return;
      const latest = await tasks.get(task.id);
      if (!latest || latest.phase !== 'tracking' || latest.leaseOwner !== owner) return;
      if (latest.nextPollAt !== null && latest.nextPollAt !== current.nextPollAt) nextPollAt = Math.min(nextPollAt, latest.nextPollAt);
      current = latest;
    }
  }

  /** Tasks past their deadline fail with `timeout` (SPEC §5); all of them, page by page. */
  async expireOverdue(): Promise<number> {
    let total = 0;
    for (;;) {
      const expired = await this.expireOverduePage();
      total += expired;
      if (expired < 100) return total;
    }
  }

  private async expireOverduePage(): Promise<number> {
    const { tasks, clock } = this.engine;
    const now = clock.now();
    const overdue = await tasks.listOverdue(now, 100);
    for (const task of overdue) {
      // Not under a poll that leased it since it was read: that poll may learn it succeeded (a paid
      // video), and applies the deadline itself when the task is still running.
      await this.lifecycle.fail(task, this.deadlineError(task), { phases: ['dispatch', 'tracking'], leaseFreeAt: now });
    }
    return overdue.length;
  }

  /** Why a task past its deadline fails. */
  private deadlineError(task: TaskRecord): TaskError {
    // The deadline the task was created with: `TASK_DEADLINE_MS` may have changed since.
    const length = deadlineLength(taskDeadlineMs(task));
    return {
      code: 'timeout',
      message:
        task.phase === 'dispatch'
          ? `no provider took the task within the ${length} deadline`
          : `the task did not finish within the ${length} deadline` +
            (task.providerStatus ? ` (last upstream status: ${task.providerStatus})` : '') +
            this.unaskable(task),
      provider_code: null,
    };
  }

  /**
   * Why nothing here could ask about a tracked task, when that is so: its provider or the account
   * holding it is not configured (a restart that dropped it), or the provider has no key. The deadline then ends a task the
   * upstream may long have finished, and the error says so rather than blame a slow provider.
   */
  private unaskable(task: TaskRecord): string {
    if (task.provider === null) return '';
    const runtime = this.engine.runtimes.get(task.provider);
    if (runtime?.account(task.account)) return '';
    if (runtime?.keyless) return `; nothing could ask about it: ${task.provider} has no key in this gateway's configuration`;
    const holder = runtime ? `${task.provider} account ${task.account ?? DEFAULT_ACCOUNT_ID}` : `provider ${task.provider}`;
    return `; nothing could ask about it: ${holder} is not in this gateway's configuration`;
  }

  /**
   * News from a verified webhook. A report that parsed is applied at once; otherwise the task is
   * polled right away to learn the truth.
   */
  async onWebhook(task: TaskRecord, report: StatusReport | undefined, inbound?: InboundMark): Promise<void> {
    const runtime = task.provider ? this.engine.runtimes.get(task.provider) : undefined;
    if (!runtime || task.phase !== 'tracking') return;
    if (report) {
      // The webhook's id is remembered in the transaction of the change it makes.
      await this.lifecycle.applyReport(task, runtime, report, { phases: ['tracking'], ...(inbound ? { inbound } : {}) });
      return;
    }
    await this.pollSoon(task);
  }

  /** Makes a task due for polling now (a callback to confirm, a webhook we could not read). */
  async pollSoon(task: TaskRecord): Promise<void> {
    await this.lifecycle.pollNow(task);
    this.tick().catch((error) => this.engine.logger.error({ err: error }, 'tracking pass failed'));
  }
}
