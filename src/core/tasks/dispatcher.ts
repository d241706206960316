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
import { pickAccounts, type CallPermit, type ProviderAccount, type ProviderRuntime } from '../upstream/provider-runtime.js';
import type { SubmitResult, UpstreamClient } from '../upstream/provider.js';
import { ClaimLine, type ClaimTurn } from './claim-line.js';
import { CoalescingRunner } from './coalescing-runner.js';
import {
  afterCreateFailure,
  attemptHistory,
  circuitOpenAttempt,
  conclude,
  deadlineError,
  taskDeadlineMs,
  decideCandidate,
  type CandidateOutcome,
  type CandidateStep,
  type ProviderStanding,
  type SameAddressAccounts,
} from './dispatch-decision.js';
import type { Engine } from './engine.js';
import { fairOrder, oneTenant, type WaitingTask } from './fair-queue.js';
import { boundAccountMessage, circuitOpenFailure, classifyCreateFailure, isAccountTrouble, isAddressTrouble } from './failover.js';
import { firstPollDelay, lastPollAt } from './polling.js';
import { Recovery, attemptKeyOf } from './recovery.js';
import { TaskLifecycle } from './task-lifecycle.js';
import type { AttemptChange, NewAttempt, PlanEntry, TaskRecord } from './task-records.js';
import type { FirstClaim, SlotClaim } from './task-repository.js';

/** A slot and first attempt taken with the task, handed to the dispatch that sends it. */
interface FirstTaken {
  provider: string;
  account: ProviderAccount;
  permit: CallPermit;
  seq: number;
  step: Extract<CandidateStep, { kind: 'try' }>;
}

/** A create's first provider, tried in the transaction that writes the task (`Dispatcher.firstTry`). */
export interface FirstTry {
  runtime: ProviderRuntime;
  account: ProviderAccount;
  entry: PlanEntry;
  step: Extract<CandidateStep, { kind: 'try' }>;
  /** What the store takes in the create's transaction. */
  claim: FirstClaim;
  /** The leave to call, once `claim.admit` gave it. */
  permit: () => CallPermit | undefined;
}

/** What one pass of the dispatcher has learned, shared by the tasks it dispatches. */
interface PassState {
  /** Providers found without a free slot in this pass: later tasks do not ask again. */
  full: Set<string>;
  /** The order in which the pass's tasks claim slots: the pass's (fair) order, per provider. */
  line: ClaimLine;
}

/** How trying one provider ended: the task is settled (accepted, failed, taken by someone else), or the plan goes on. */
type TryResult =
  | { settled: true; task: TaskRecord | undefined }
  | { settled: false; task: TaskRecord; outcome: CandidateOutcome };

/** Longest a create waits in-line for a rate allowance before the task is queued instead. */
const MAX_INLINE_RATE_WAIT_MS = 2_000;

/**
 * How long a create may wait for the rate allowance of account `index` of the `count` it tries,
 * in order: none while another account may have room now, `MAX_INLINE_RATE_WAIT_MS` for the last.
 */
export function inlineRateWaitMs(index: number, count: number): number {
  return index === count - 1 ? MAX_INLINE_RATE_WAIT_MS : 0;
}
/** Tasks dispatched at once by one pass. */
export const DISPATCH_CONCURRENCY = 8;
/** Waiting tasks read per page. */
const DISPATCH_PAGE = 200;
/**
 * Pauses between tries of the store writes after an upstream accepted (a dropped connection, a
 * database restarting, a busy file): from the first, doubling up to the last.
 */
const PERSIST_FIRST_PAUSE_MS = 100;
const PERSIST_LONGEST_PAUSE_MS = 2_000;
/** What `recordAccepted` writes down of an accepted create, beside the provider's answer. */
interface AcceptedDetails {
  seq: number;
  /** Until when the writes are tried again before the create is answered (the submission's lease). */
  persistUntil: number;
  latencyMs: number;
  httpStatus?: number;
  estimate?: CostEstimate;
  warnings: string[];
  callbackUrl: string | undefined;
}

/** What the log lines about an accepted create's writes name: the task, the provider and its upstream task. */
function acceptedLogContext(task: TaskRecord, runtime: ProviderRuntime, result: SubmitResult): Record<string, string> {
  return { task_id: task.id, provider: runtime.id, provider_task_id: result.ref.providerTaskId };
}

/**
 * A create's answer only this process knows, not yet written down: what its log lines name (task,
 * provider, upstream id), and whether the provider accepted the create (`provider_task_id`) or
 * only named a task beside a server error (`named_task_id`).
 */
export type UnrecordedCreate = Record<string, string> & { answer: 'accepted' | 'named_task' };

/** How long, beyond the provider's time limit (and a rate wait), a submission owns its task. */
const SUBMISSION_LEASE_MARGIN_MS = 10_000;

/**
 * The account a plan entry is bound to (the one that made its source video), while it is still
 * configured; undefined for an entry any account may take, or whose account is gone.
 */
function boundAccount(runtime: ProviderRuntime, entry: PlanEntry): ProviderAccount | undefined {
  return entry.account === undefined ? undefined : runtime.account(entry.account);
}

/** What one dispatch has done so far that a graceful stop asks about. */
interface DispatchSends {
  /** A create of this dispatch has gone on the wire. */
  sent: boolean;
}

/** A listed task, as `fairOrder` places it. */
function waitingOf(task: TaskRecord): WaitingTask & { task: TaskRecord } {
  return { id: task.id, tenant: task.tenant, createdAt: task.createdAt, providers: task.plan.candidates.map((entry) => entry.provider), task };
}

export class Dispatcher {
  private readonly lifecycle: TaskLifecycle;
  /** Settles submissions a stopped replica left behind; run before every pass. */
  readonly recovery: Recovery;
  private readonly runner = new CoalescingRunner(() => this.dispatchWaiting());
  /** A freed slot's probe of the queue, then a pass when a task waits; a burst of freed slots folds into one probe. */
  private readonly afterFreedSlot = new CoalescingRunner(async () => {
    if (!this.holding && (await this.engine.tasks.anyQueued())) await this.runner.run();
  });
  /** Dispatches running in this process, by task id (recovery leaves them alone; shutdown waits). */
  private readonly inFlight = new Map<string, Promise<TaskRecord | undefined>>();
  /**
   * Creates whose answer the store kept refusing past their submission (a full disk, a long
   * outage) — accepted, or a server error naming a task —, by task id: still written down in the
   * background (`keepRecording`), and left alone by recovery meanwhile, as a dispatch running here is.
   */
  private readonly recording = new Map<string, Promise<void>>();
  /**
   * Creates a provider accepted (or answered naming a task) whose writes the store has not taken
   * yet, by task id (what their log lines name): a stop that cannot wait for them (the database
   * not answering) says each, with the upstream id only this process knows (`unrecordedCreates`).
   */
  private readonly unrecorded = new Map<string, UnrecordedCreate>();
  /** Aborted as the gateway closes its store: the background writes of accepted creates end. */
  private readonly closing = new AbortController();
  /** Set by a graceful stop: passes start no queued task any more (those stay queued for the next start). */
  private stopped = false;

  constructor(private readonly engine: Engine) {
    this.lifecycle = new TaskLifecycle(engine);
    this.recovery = new Recovery(engine, this.lifecycle, (taskId) => this.inFlight.get(taskId) ?? this.recording.get(taskId));
  }

  /**
   * The webhook or callback URL the upstream should use for this attempt, if any. A signed
   * provider's webhooks come to the attempt's own path, so one for a task whose create answer was
   * lost still says which attempt it is about (the signature, not the path, proves it genuine).
   */
  callbackUrlFor(runtime: ProviderRuntime, account: ProviderAccount, task: TaskRecord, attemptKey: string): string | undefined {
    const base = this.engine.publicUrl.replace(/\/+$/, '');
    switch (runtime.provider.inboundWebhook) {
      case 'signed':
        // Verified with the secret of the account that sent the task (`InboundWebhooks`).
        return account.webhookSecrets.length > 0 ? `${base}/v1/webhooks/${runtime.id}/${encodeURIComponent(attemptKey)}` : undefined;
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
    return Math.max(this.engine.config.tracking.lease_ms, runtime.config.timeout_ms + MAX_INLINE_RATE_WAIT_MS + SUBMISSION_LEASE_MARGIN_MS);
  }

  /** A slot of `account` taken now by this replica, for as long as a submission owns its task. */
  private slotOf(runtime: ProviderRuntime, account: ProviderAccount, now: number): SlotClaim {
    return { provider: runtime.id, account: account.id, cap: account.maxInFlight, owner: this.engine.owner, leaseUntil: now + this.submissionLeaseMs(runtime), now };
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
    /** Its first provider's slot and attempt, written with it (`sendFirst`). */
    first?: FirstTaken,
    /** Its place in its pass's line for slots (`ClaimLine`), given on however the dispatch ends. */
    turn?: ClaimTurn,
  ): Promise<TaskRecord | undefined> {
    const running = this.inFlight.get(taskId);
    if (running) {
      // Already on its way outside this pass's line: younger tasks need not wait for it.
      turn?.releaseAll();
      return running;
    }
    const promise = this.dispatchOnce(taskId, context, pass, created, first, turn).finally(() => {
      turn?.releaseAll();
      this.inFlight.delete(taskId);
    });
    this.inFlight.set(taskId, promise);
    return promise;
  }

  /** Whether a dispatch is running in this process, or an accepted create is still being written down (`keepRecording`). */
  get busy(): boolean {
    return this.inFlight.size > 0 || this.recording.size > 0;
  }

  /** Resolves once no dispatch runs in this process, including ones started while waiting. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0 || this.recording.size > 0) await Promise.allSettled([...this.inFlight.values(), ...this.recording.values()]);
  }

  /**
   * The store is about to close: accepted creates still not written down stop being tried (each
   * logged with its upstream id, which only this process knew), and this settles once they have.
   */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.recording.values()]);
  }

  /**
   * Creates a provider accepted, or answered naming a task, whose writes the store has not taken
   * (nor been given up on, logged): task, provider, upstream id, and which of the two (`answer`).
   */
  unrecordedCreates(): UnrecordedCreate[] {
    return [...this.unrecorded.values()];
  }

  /**
   * What a create may take in the transaction that writes it: a slot of its first provider's best
   * account, when that provider is to be tried now. The store then also checks the queue, the
   * account's cap and, last, the circuit and rate windows (`FirstClaim.admit`, asked inside that
   * transaction), and writes the first attempt `sending`; `sendFirst` sends it.
   */
  async firstTry(task: TaskRecord): Promise<FirstTry | undefined> {
    const { runtimes, clock, config } = this.engine;
    // A clock off the other replicas' takes no slot: the task is written queued, for a replica whose clock agrees.
    if (this.engine.clockWatch.holdReason) return undefined;
    const entry = task.plan.candidates[0];
    const runtime = entry && runtimes.get(entry.provider);
    if (!entry || !runtime) return undefined;
    const step = decideCandidate(entry, this.standingOf(runtime, undefined, entry), {
      request: { request: task.request, explicit: new Set(task.plan.explicit) },
      history: attemptHistory([]),
      now: clock.now(),
      retryMs: config.tracking.tick_ms,
      replicas: this.engine.replicas === true,
    });
    if (step.kind !== 'try') return undefined;
    const [account] = await this.accountsToTry(runtime, entry);
    if (!account) return undefined;
    const now = clock.now();
    let permit: CallPermit | undefined;
    return {
      runtime,
      account,
      entry,
      step,
      claim: {
        ...this.slotOf(runtime, account, now),
        // Only a call that may go at once: one that would wait for its rate window goes the usual way.
        admit: async (transaction) => {
          const admission = await account.admitWithin(transaction);
          if (admission.granted) permit = admission.permit;
          return admission.granted;
        },
        attempt: { provider: runtime.id, account: account.id, outcome: 'sending', at: now, timeoutMs: runtime.config.timeout_ms },
        // Counted again once the provider's lock is held: a long wait for it must not leave the
        // submission's lease run out, or its attempt look sent long ago, as the request leaves.
        lockedAt: () => this.slotOf(runtime, account, clock.now()),
      },
      permit: () => permit,
    };
  }

  /**
   * Sends the create of a task whose slot and first attempt were written with it (`firstTry`), and
   * goes on through the plan as any dispatch would if that provider turns it down.
   */
  sendFirst(task: TaskRecord, first: FirstTry, seq: number, context: Record<string, string> = {}): Promise<TaskRecord | undefined> {
    const permit = first.permit();
    if (!permit) throw new Error(`task ${task.id} has no leave to call ${first.runtime.id}`);
    return this.dispatch(task.id, context, undefined, task, { provider: first.runtime.id, account: first.account, permit, seq, step: first.step });
  }

  /** Walks the task's plan, one decision per provider, and carries out the conclusion. */
  private async dispatchOnce(
    taskId: string,
    context: Record<string, string>,
    pass?: PassState,
    created?: TaskRecord,
    first?: FirstTaken,
    turn?: ClaimTurn,
  ): Promise<TaskRecord | undefined> {
    const { tasks, runtimes, clock, config, owner } = this.engine;
    let task = created ?? (await tasks.get(taskId));
    // Queued; or, with its first slot taken as it was created, held here.
    const held = first !== undefined && task?.phase === 'submitting' && task.leaseOwner === owner;
    if (!task || !(task.phase === 'dispatch' || held)) return task;
    // This clock is off the other replicas': the task stays queued (`ClockWatch`).
    if (!held && this.engine.clockWatch.holdReason) return task;
    if (clock.now() >= task.deadlineAt) {
      // Never send upstream (and pay for) a task the gateway has already given up on.
      if (held) {
        await this.withdrawFirst(task, first, "not sent: the task's deadline passed while it was being written");
        // Its slot goes back too: sent nowhere, it shows no provider (as one that timed out in the queue).
        const unsent = await this.lifecycle.requeue(task, clock.now());
        if (unsent?.phase !== 'dispatch') return unsent ?? (await tasks.get(taskId));
        return this.failSubmission(unsent, deadlineError(taskDeadlineMs(unsent)));
      }
      return this.failSubmission(task, deadlineError(taskDeadlineMs(task)));
    }
    if (task.cancelAt !== null && clock.now() >= task.cancelAt) {
      // Nor one whose `cancel_after` ran out since the pass read it (the tasks ahead of it took that
      // long), or while it was written with its first create (a slow database).
      if (!held) return (await this.lifecycle.cancelOverdueQueued(task)) ?? (await tasks.get(taskId));
      await this.withdrawFirst(task, first, "not sent: the task's cancel_after ran out while it was being written");
      return (await this.lifecycle.cancelOverdueUnsent(task)) ?? (await tasks.get(taskId));
    }
    const request = { request: task.request, explicit: new Set(task.plan.explicit) };
    const history = attemptHistory(created ? [] : await tasks.attempts(taskId), this.sameAddress);
    const outcomes: CandidateOutcome[] = [];
    // Whether this dispatch has put a create on the wire: during a graceful stop it sends no other.
    const sending: DispatchSends = { sent: false };
    for (const entry of task.plan.candidates) {
      // The slot taken with the task was taken on this decision: its attempt is on its way.
      const given = first && first.provider === entry.provider ? first : undefined;
      // A create written with its task (`sendFirst`) was looked at just before this loop.
      if (!given && clock.now() >= task.deadlineAt) {
        // Its deadline passed while an earlier provider had its create: no other is sent, and
        // the conclusion fails it with timeout.
        turn?.releaseAll();
        outcomes.push({ kind: 'wait', until: clock.now() });
        break;
      }
      if (!given && task.cancelAt !== null && clock.now() >= task.cancelAt) {
        // Its `cancel_after` ran out while an earlier provider had its create: canceled, sent nowhere else.
        turn?.releaseAll();
        return (await this.cancelOverdue(task)) ?? (await tasks.get(taskId));
      }
      const runtime = runtimes.get(entry.provider);
      const step =
        given?.step ??
        decideCandidate(entry, runtime && this.standingOf(runtime, pass, entry), {
          request,
          history,
          now: clock.now(),
          retryMs: config.tracking.tick_ms,
          replicas: this.engine.replicas === true,
        });
      if (step.kind === 'try') {
        // Only a configured provider is ever tried.
        const refusedAccounts = history.refusedAccounts.get(entry.provider) ?? new Set<string>();
        const tried = await this.tryProvider(task, runtime!, entry, step, context, pass, refusedAccounts, sending, given, turn);
        turn?.release(entry.provider);
        if (tried.settled) return tried.task;
        task = tried.task;
        outcomes.push(tried.outcome);
      } else {
        turn?.release(entry.provider);
        // A provider no task can go to from here (unusable on this replica, left to another):
        // later tasks of the pass are passed over without a read, as behind a full one.
        if (step.kind === 'wait' && step.full && entry.account === undefined) pass?.full.add(entry.provider);
        if (step.record) await this.recordSkip(task, step.record);
        outcomes.push(step);
      }
    }

    const conclusion = conclude(outcomes, { now: clock.now(), deadlineAt: task.deadlineAt, deadlineMs: taskDeadlineMs(task) });
    if (conclusion.kind === 'fail') return this.failSubmission(task, conclusion.error);
    if (task.phase === 'dispatch' && outcomes.some((outcome) => outcome.kind === 'wait' && outcome.full)) {
      // Waiting for a slot, which frees at no known time: the task stays due, so the pass that
      // runs when one frees lists it in its place (`fairOrder`). Postponed, it would be skipped by
      // that pass and a task behind it still due (a create queued behind it) would take the slot.
      return task;
    }
    // Every usable provider is busy or asked for a pause: wait in line, durably.
    const waiting =
      task.phase === 'submitting'
        ? await this.lifecycle.requeue(task, conclusion.until)
        : await this.lifecycle.postpone(task, conclusion.until);
    return waiting ?? (await tasks.get(taskId));
  }

  /**
   * The create written with its task (`sendFirst`) is not sent after all: its attempt reads
   * `skipped` (never `sending`, as if on its way), and its rate allowance goes back to the account.
   */
  private async withdrawFirst(task: TaskRecord, first: FirstTaken, message: string): Promise<void> {
    await this.engine.tasks.updateSendingAttempt(task.id, first.seq, { outcome: 'skipped', message });
    await first.account.giveBack(first.permit);
  }

  /** Cancels a task no provider took whose `cancel_after` ran out, queued or held here between creates. */
  private cancelOverdue(task: TaskRecord): Promise<TaskRecord | undefined> {
    return task.phase === 'submitting' ? this.lifecycle.cancelOverdueUnsent(task) : this.lifecycle.cancelOverdueQueued(task);
  }

  /**
   * How the provider stands for a plan entry: for one bound to an account (the one that made its
   * source video), that account's circuit and cool-down are the provider's.
   */
  private standingOf(runtime: ProviderRuntime, pass: PassState | undefined, entry: PlanEntry): ProviderStanding {
    const standing = boundAccount(runtime, entry) ?? runtime;
    return {
      usable: runtime.enabled,
      ...(runtime.disabledReason !== undefined ? { disabledReason: runtime.disabledReason } : {}),
      circuitOpen: standing.circuit === 'open',
      coolingDownUntil: standing.coolingDownUntil,
      offerings: runtime.provider.offerings,
      knownFull: pass?.full.has(runtime.id) ?? false,
      accounts: runtime.accounts.map((account) => account.id),
    };
  }

  private async recordSkip(task: TaskRecord, attempt: NewAttempt): Promise<void> {
    await this.engine.tasks.addAttempt(task.id, attempt);
    this.engine.metrics.failovers.inc({ provider: attempt.provider, reason: attempt.errorCode ?? 'skipped' });
  }

  /**
   * The provider's accounts reached where `account` is, when another of its accounts is reached
   * elsewhere (its own region): an address that is down there leaves those others to try.
   */
  private readonly sameAddress: SameAddressAccounts = (provider, account) => {
    const accounts = this.engine.runtimes.get(provider)?.accounts ?? [];
    const at = accounts.find((candidate) => candidate.id === account)?.address;
    const here = accounts.filter((candidate) => candidate.address === at).map((candidate) => candidate.id);
    return at !== undefined && here.length < accounts.length ? here : undefined;
  };

  /**
   * The provider's accounts to try for a new task, best first (`pickAccounts`: free slots,
   * least loaded relative to its cap, then healthiest). A lone account is simply tried: its
   * slot claim and admission say whether it can take the task. So is the account a plan entry is
   * bound to (the one that made its source video), alone: no other holds that video (none when it
   * is no longer configured).
   */
  private async accountsToTry(runtime: ProviderRuntime, entry: PlanEntry): Promise<readonly ProviderAccount[]> {
    if (entry.account !== undefined) {
      const bound = boundAccount(runtime, entry);
      return bound ? [bound] : [];
    }
    if (runtime.accounts.length === 1) return runtime.accounts;
    const counts = await this.engine.tasks.inFlightByAccount(runtime.id);
    const loads = runtime.accounts.map((account) => ({ account, inFlight: counts.get(account.id) ?? 0 }));
    return pickAccounts(loads, this.engine.clock.now());
  }

  /**
   * Sends the create through one of the provider's accounts, best first. When an account turns it
   * down for a reason of its own (a 429, its key refused, its credits gone), the next account
   * gets it at once; what the last one said decides the rest.
   */
  private async tryProvider(
    task: TaskRecord,
    runtime: ProviderRuntime,
    entry: PlanEntry,
    step: Extract<CandidateStep, { kind: 'try' }>,
    context: Record<string, string>,
    pass: PassState | undefined,
    refusedAccounts: ReadonlySet<string>,
    /** Whether the dispatch has put a create on the wire (set here as one leaves). */
    sending: DispatchSends,
    /** A slot and attempt already taken (`sendFirst`): sent before anything else. */
    given?: FirstTaken,
    turn?: ClaimTurn,
  ): Promise<TryResult> {
    const tried = new Set<string>(refusedAccounts);
    let current = task;
    let refusal: CandidateOutcome | undefined;
    let first = given;
    for (;;) {
      let taken: Awaited<ReturnType<Dispatcher['takeAccount']>>;
      if (first) {
        taken = { kind: 'taken', task: current, account: first.account, permit: first.permit };
      } else if (this.engine.clockWatch.holdReason) {
        // The clock went off while this create was on its way: no other account or provider is
        // asked from here; the task waits in line for a replica whose clock agrees.
        return { settled: false, task: current, outcome: { kind: 'wait', until: this.engine.clock.now() + this.engine.config.tracking.tick_ms } };
      } else if (this.stopped && sending.sent) {
        // The gateway is stopping and this dispatch's create was turned down: no other account or
        // provider is sent the task now. Its create could outlast the drain and be cut there (the
        // client's request reset; a task kling3api made then failed as interrupted by the next
        // start). The task waits in the queue for the next start or another replica.
        return { settled: false, task: current, outcome: { kind: 'wait', until: this.engine.clock.now() } };
      } else {
        if (turn) {
          await turn.waitFor(runtime.id);
          // A task ahead of it in this pass found no free slot here: one freed since is for the first in the next pass's order, not this one.
          if (!refusal && pass?.full.has(runtime.id)) {
            return { settled: false, task: current, outcome: { kind: 'wait', until: this.engine.clock.now() + this.engine.config.tracking.tick_ms, full: true } };
          }
        }
        const accounts = (await this.accountsToTry(runtime, entry)).filter((account) => !tried.has(account.id));
        if (refusal && accounts.length === 0) {
          // An account the task has not been through yet is busy: it may take the task later. A
          // task bound to the account that made its source video has no other.
          const untried = runtime.accounts.some(
            (account) => !tried.has(account.id) && account.circuit !== 'open' && (entry.account === undefined || account.id === entry.account),
          );
          const outcome: CandidateOutcome = untried && refusal.kind === 'refused' ? { kind: 'wait', until: this.engine.clock.now() + this.engine.config.tracking.tick_ms } : refusal;
          return { settled: false, task: current, outcome };
        }
        taken = await this.takeAccount(current, runtime, accounts, pass, entry);
      }
      if (taken.kind === 'settled') return taken.result;
      const { account, permit } = taken;
      current = taken.task;
      if (!first && this.engine.clock.now() >= current.deadlineAt) {
        // Its deadline passed while an earlier account had its create, or while this one's rate
        // allowance was waited for: nothing is sent, and the allowance goes back to the account.
        await account.giveBack(permit);
        turn?.releaseAll();
        const now = this.engine.clock.now();
        const sent = (await this.engine.tasks.attempts(current.id)).filter((attempt) => attempt.outcome !== 'skipped');
        const last = sent.at(-1);
        if (last) {
          // Failed here, shown under the provider (and account) tried last, not the one whose
          // slot it holds and was never sent to; charged nothing unless an earlier create is in doubt.
          const failed = await this.lifecycle.failSubmission(current, deadlineError(taskDeadlineMs(current)), { provider: last.provider, account: last.account });
          return { settled: true, task: failed ?? (await this.engine.tasks.get(current.id)) };
        }
        // No create of it went anywhere: its slot goes back too, so the task the conclusion fails
        // shows no provider (as one that timed out in the queue), not one it was never sent to.
        const unsent = await this.lifecycle.requeue(current, now);
        if (unsent?.phase !== 'dispatch') return { settled: true, task: unsent ?? (await this.engine.tasks.get(current.id)) };
        return { settled: false, task: unsent, outcome: { kind: 'wait', until: now } };
      }
      if (!first && current.cancelAt !== null && this.engine.clock.now() >= current.cancelAt) {
        // Likewise its `cancel_after`: canceled instead of sent.
        await account.giveBack(permit);
        turn?.releaseAll();
        return { settled: true, task: (await this.cancelOverdue(current)) ?? (await this.engine.tasks.get(current.id)) };
      }
      // Claimed, with leave to call: the request leaves side by side with the younger tasks' claims.
      turn?.releaseAll();
      sending.sent = true;
      const sent = await this.sendThrough(current, runtime, account, permit, entry, step, context, first?.seq);
      first = undefined;
      if (sent.kind === 'settled') return sent.result;
      // An address that is down is so for every account reached there; those reached elsewhere may take the task.
      const downHere = sent.addressTrouble ? this.sameAddress(runtime.id, account.id) : undefined;
      for (const id of downHere ?? [account.id]) tried.add(id);
      refusal = sent.outcome;
      if (!sent.accountTrouble && !downHere) return { settled: false, task: current, outcome: refusal };
    }
  }

  /**
   * Takes a slot of the first of `accounts` that has one free and gives leave to call now (the
   * task moves to `submitting` under this replica's lease): its cool-down, circuit (one call at a
   * time across replicas while in doubt) and rate windows. Only the last account waits in line
   * for a rate allowance; the others give way to the next account.
   */
  private async takeAccount(
    task: TaskRecord,
    runtime: ProviderRuntime,
    accounts: readonly ProviderAccount[],
    pass: PassState | undefined,
    entry: PlanEntry,
  ): Promise<{ kind: 'settled'; result: TryResult } | { kind: 'taken'; task: TaskRecord; account: ProviderAccount; permit: CallPermit }> {
    const { tasks, clock, config } = this.engine;
    const retryMs = config.tracking.tick_ms;
    let claimed: TaskRecord | undefined;
    let retryAt = Number.POSITIVE_INFINITY;
    for (const [index, account] of accounts.entries()) {
      const now = clock.now();
      const holder = claimed ?? task;
      const slot = await tasks.claimSlot(holder, this.slotOf(runtime, account, now));
      if (!slot) {
        const latest = await tasks.get(task.id);
        // Someone else took the task (another replica, or it finished): not ours any more.
        if (!latest || latest.phase !== holder.phase) return { kind: 'settled', result: { settled: true, task: latest } };
        retryAt = Math.min(retryAt, now + retryMs);
        continue;
      }
      claimed = slot;
      // A dispatch of a pass holds this provider's turn (`ClaimLine`) while it waits here: a
      // younger task would want the same window (only the last account is waited for), and the
      // window lets through whoever asks first once it has room, so giving the turn on could let
      // a younger create leave while this one gives up and queues again. Other providers' tasks
      // do not wait for it.
      const admission = await account.admit(inlineRateWaitMs(index, accounts.length));
      if (admission.granted) return { kind: 'taken', task: slot, account, permit: admission.permit };
      if (admission.reason !== 'circuit_open') retryAt = Math.min(retryAt, admission.retryAt);
    }
    if (!claimed) {
      // No account has a free slot (of a bound task's one account: the others may have one).
      if (entry.account === undefined) pass?.full.add(runtime.id);
      return { kind: 'settled', result: { settled: false, task, outcome: { kind: 'wait', until: Math.min(retryAt, clock.now() + retryMs), full: true } } };
    }
    if (Number.isFinite(retryAt) || (boundAccount(runtime, entry) ?? runtime).circuit !== 'open') {
      const until = Number.isFinite(retryAt) ? retryAt : clock.now() + retryMs;
      return { kind: 'settled', result: { settled: false, task: claimed, outcome: { kind: 'wait', until } } };
    }
    // Every account's circuit opened since the plan was read (another replica's failures): passed over, as it would have been.
    await this.recordSkip(claimed, circuitOpenAttempt(runtime.id, clock.now()));
    return { kind: 'settled', result: { settled: false, task: claimed, outcome: { kind: 'refused', failure: circuitOpenFailure(runtime.id) } } };
  }

  /** Writes the attempt, sends the create through `account`, and writes down what happened. */
  private async sendThrough(
    claimed: TaskRecord,
    runtime: ProviderRuntime,
    account: ProviderAccount,
    permit: CallPermit,
    entry: PlanEntry,
    step: Extract<CandidateStep, { kind: 'try' }>,
    context: Record<string, string>,
    /** The attempt, when it was written with the slot claim (`sendFirst`). */
    written?: number,
  ): Promise<{ kind: 'settled'; result: TryResult } | { kind: 'refused'; outcome: CandidateOutcome; accountTrouble: boolean; addressTrouble: boolean }> {
    const { tasks, clock, config, metrics } = this.engine;
    const retryMs = config.tracking.tick_ms;
    const seq = written ?? (await this.writeSending(claimed, runtime, account));
    if (seq === undefined) {
      // No longer held here (canceled while this dispatch waited for the rate allowance), or its
      // caller asked to cancel while an earlier create was on its way: nothing is sent, the
      // allowance goes back to the account's next call, and a task asked to be canceled ends so.
      await account.giveBack(permit);
      const canceled = await this.lifecycle.cancelAsRequested(claimed);
      return { kind: 'settled', result: { settled: true, task: canceled ?? (await tasks.get(claimed.id)) } };
    }
    const started = clock.now();
    const attemptKey = attemptKeyOf(claimed.id, seq);
    const callbackUrl = this.callbackUrlFor(runtime, account, claimed, attemptKey);
    // The callback URL carries the task's token: an upstream quoting the request must not show it.
    const client = account.clientForTask(claimed, context);
    // The HTTP status of the answer that gave the task, for its attempt (refusals carry theirs).
    let answeredStatus: number | undefined;
    const http: UpstreamClient = {
      apiShape: client.apiShape,
      send: async (upstreamRequest, signal) => {
        const answer = await client.send(upstreamRequest, signal);
        answeredStatus = answer.status;
        return answer;
      },
    };
    let result: SubmitResult;
    try {
      result = await account.call(
        (signal) =>
          runtime.provider.submit(claimed.request, step.offering, {
            http,
            signal,
            taskId: claimed.id,
            attemptKey,
            ...(callbackUrl ? { callbackUrl } : {}),
          }),
        permit,
      );
    } catch (error) {
      const classified = classifyCreateFailure(error, config.routing.failover_on_timeout);
      // Trouble of the account's own moves a task on to the next account, but not one bound to this account: say so.
      let failure =
        entry.account !== undefined && isAccountTrouble(classified) ? { ...classified, message: boundAccountMessage(classified.message, account.id) } : classified;
      // Why the task leaves the provider, as `failovers_total` counts it.
      let failoverReason: string = failure.reason;
      const failed = {
        outcome: failure.outcome,
        errorCode: failure.code,
        providerCode: failure.providerCode,
        httpStatus: failure.httpStatus,
        latencyMs: clock.now() - started,
        message: failure.message.slice(0, 500),
        // The upstream task the answer named beside its server error, kept until the provider's
        // status is asked about it (not during a graceful stop): a later turn, the next start or
        // another replica adopts it when shown (`Recovery.resolve`).
        ...(failure.namedTaskId !== undefined ? { namedTaskId: failure.namedTaskId } : {}),
      };
      // A named task is the only way to find what the provider may be making and billing: its
      // write is tried again on store errors while the submission's lease runs, and then in the
      // background, as an accepted create's is (else recovery would find the attempt `sending`,
      // and fail it unasked).
      const moved =
        failure.namedTaskId === undefined
          ? await tasks.updateSendingAttempt(claimed.id, seq, failed)
          : await this.recordNamed(claimed, runtime, seq, failed, failure.namedTaskId, started + runtime.config.timeout_ms + SUBMISSION_LEASE_MARGIN_MS);
      // Still being written in the background: answered with the task as the store has it.
      if (moved === 'kept') return { kind: 'settled', result: { settled: true, task: await tasks.get(claimed.id).catch(() => claimed) } };
      if (!moved) {
        // Signed news (a webhook, a confirmed callback) named the upstream task while the create
        // was on its way (`Recovery.adoptNamed`): the provider holds it, whatever answer reached
        // us (a proxy's error, a timeout). It is tracked there, never sent on (paid twice) nor
        // canceled at no cost while the provider bills it.
        const noted = (await tasks.attempts(claimed.id)).find((candidate) => candidate.seq === seq);
        if (noted?.providerTaskId) return { kind: 'settled', result: { settled: true, task: await this.recovery.resolve(claimed, noted) } };
        await tasks.updateAttempt(claimed.id, seq, failed);
      }
      if (failure.outcome === 'ambiguous' && failure.failover && !this.stopped) {
        // Going on from a create whose answer was lost (`failover_on_timeout`): a provider that
        // finds the task by the create's own id is asked once first, and the task adopted there
        // when shown, not made and paid for again elsewhere. A stopping gateway sends no lookup.
        const attempt = (await tasks.attempts(claimed.id)).find((candidate) => candidate.seq === seq);
        const found = attempt && (await this.recovery.findBeforeGoingOn(claimed, attempt, failure.said));
        if (found && 'task' in found) return { kind: 'settled', result: { settled: true, task: found.task } };
        // Proved never accepted: the task (and its error, if no provider is left) says so, as a
        // create recovery proves absent does; nothing of it is at risk.
        if (found) {
          failure = { ...failure, outcome: 'failed', message: found.ruledOut };
          failoverReason = 'proved_absent';
        }
      }
      if (failure.failover) metrics.failovers.inc({ provider: runtime.id, reason: failoverReason });
      if (failure.outcome === 'ambiguous' && !failure.failover) {
        // The upstream may hold the task: find out before failing it (adopt it, or go on when
        // the provider proves it has none); recovery keeps at it while the answer may come.
        // A stopping gateway sends no lookup (it may take the provider's time limit again, past
        // the drain): the task is held in doubt, and recovery looks it up after the stop.
        const attempt = (await tasks.attempts(claimed.id)).find((candidate) => candidate.seq === seq);
        // A task the answer named beside its server error (kept on the attempt) is asked about
        // first, adopted when shown; during a stop it is asked about at a later turn.
        if (attempt) return { kind: 'settled', result: { settled: true, task: await this.recovery.resolve(claimed, attempt, { lookUp: !this.stopped }) } };
      }
      // "Too many requests" is not a refusal of this task: the account is asked again after
      // Retry-After (its cool-down began as the call failed, `ProviderAccount.call`).
      const next = afterCreateFailure(failure, { now: clock.now(), retryMs, coolingDownUntil: runtime.coolingDownUntil });
      if (next.kind === 'fail') return { kind: 'settled', result: { settled: true, task: await this.failSubmission(claimed, next.error) } };
      return { kind: 'refused', outcome: next, accountTrouble: isAccountTrouble(failure), addressTrouble: isAddressTrouble(failure) };
    }

    // Accepted upstream. From here on the upstream id must not be lost.
    return {
      kind: 'settled',
      result: {
        settled: true,
        task: await this.recordAccepted(claimed, runtime, result, {
          seq,
          // The submission's lease outlasts the answer by the margin: the writes may be tried until then.
          persistUntil: started + runtime.config.timeout_ms + SUBMISSION_LEASE_MARGIN_MS,
          latencyMs: clock.now() - started,
          ...(answeredStatus !== undefined ? { httpStatus: answeredStatus } : {}),
          ...(entry.estimate ? { estimate: entry.estimate } : {}),
          warnings: step.warnings,
          callbackUrl,
        }),
      },
    };
  }

  /**
   * Writes a create's server-error answer that named a task (`namedTaskId`) on its attempt still
   * `sending` (false when it is not any more), tried again on store errors until `until`. If the
   * store still refuses then, it is written in the background (`keepRecording`): `kept`.
   */
  private async recordNamed(
    task: TaskRecord,
    runtime: ProviderRuntime,
    seq: number,
    change: AttemptChange,
    namedTaskId: string,
    until: number,
  ): Promise<boolean | 'kept'> {
    const { tasks, clock, logger } = this.engine;
    const logContext = { task_id: task.id, provider: runtime.id, named_task_id: namedTaskId };
    const what = 'record a create answer that named a task the provider may hold';
    this.unrecorded.set(task.id, { ...logContext, answer: 'named_task' });
    const written = await this.persist(logContext, what, until, false, () => tasks.updateSendingAttempt(task.id, seq, change));
    if (written.ok) {
      this.unrecorded.delete(task.id);
      return written.value;
    }
    logger.error(logContext, `could not ${what}; trying until the database takes it`);
    // As the dispatch does with a write that lands: an attempt no longer `sending` that no news
    // named a task on (a process that took the task over marked it lost) gets the answer all the same.
    // Whether the named task is tracked by nobody: its task was settled without it meanwhile.
    const writeNamed = async (): Promise<boolean> => {
      if (await tasks.updateSendingAttempt(task.id, seq, change)) return false;
      const noted = (await tasks.attempts(task.id)).find((candidate) => candidate.seq === seq);
      if (noted?.providerTaskId) return false;
      await tasks.updateAttempt(task.id, seq, change);
      const now = await tasks.get(task.id);
      return now !== undefined && now.phase !== 'submitting' && now.providerTaskId !== namedTaskId;
    };
    const write = async () => {
      const written = await this.persist(logContext, what, clock.now(), true, writeNamed);
      if (!written.ok) return false;
      if (written.value) {
        this.reportLateAnswer(runtime, logContext, 'the provider named a task in its answer to a create (beside a server error), and that answer was written down after its task was settled without it: the named task may bill, and is tracked by nobody');
      } else logger.info(logContext, 'recorded a create answer that named a task the provider may hold while the database refused writes');
      return true;
    };
    this.keepRecording(task.id, logContext, write, {
      closed: 'the gateway closed its database before it could record a create answer that named a task the provider may hold; that task is not tracked',
      failed: 'could not record a create answer that named a task the provider may hold',
    });
    return 'kept';
  }

  /**
   * Writes the attempt of a create about to leave, only while the task is still held here (a
   * cancel may have ended it during the wait for a rate allowance) and no cancel was asked for
   * while an earlier create was on its way, with the submission's lease counted from now; its
   * seq, or undefined when the task is not held here any more or is to be canceled.
   */
  private async writeSending(task: TaskRecord, runtime: ProviderRuntime, account: ProviderAccount): Promise<number | undefined> {
    const { tasks, clock, owner } = this.engine;
    const now = clock.now();
    return tasks.addHeldAttempt(
      task.id,
      { provider: runtime.id, account: account.id, outcome: 'sending', at: now, timeoutMs: runtime.config.timeout_ms },
      { owner, leaseUntil: now + this.submissionLeaseMs(runtime) },
    );
  }

  /**
   * Writes down an accepted create: the upstream id on the attempt and the task's move to
   * tracking, in one transaction (so a crash at any moment leaves both or neither: with neither,
   * recovery finds the attempt still `sending` and looks the create up). Retried on store errors
   * while the submission's lease runs: only this process knows the upstream id, and a database
   * restart of a few seconds must not turn a known answer into a lost one (kling3api's could never
   * be found again). If the task is no longer held here (its lease was taken over), the upstream
   * id is still written on the attempt alone, so whoever resumes the task adopts it instead of
   * looking for it. If the store still refuses at the lease's end (a full disk), the create is
   * answered with the task as stored and the writes go on in the background (`keepRecording`).
   */
  private async recordAccepted(task: TaskRecord, runtime: ProviderRuntime, result: SubmitResult, details: AcceptedDetails): Promise<TaskRecord | undefined> {
    const { tasks, clock, logger } = this.engine;
    const logContext = acceptedLogContext(task, runtime, result);
    this.unrecorded.set(task.id, { ...logContext, answer: 'accepted' });
    const written = await this.writeAccepted(task, runtime, result, details, details.persistUntil);
    if (written.ok) {
      this.unrecorded.delete(task.id);
      return written.task;
    }
    // The store kept failing for the whole submission (a full disk lasts longer than a database
    // restart). Only this process knows the upstream id: given up on, a provider that cannot be
    // asked by what the create carried (kling3api) would keep rendering and billing a video
    // nobody could find. It is written down in the background for as long as this process runs;
    // the create is answered now, with the task as the store has it.
    logger.error(logContext, 'could not record a create the provider accepted; trying until the database takes it');
    this.keepRecording(
      task.id,
      logContext,
      async () => {
        const written = await this.writeAccepted(task, runtime, result, details, clock.now(), true);
        if (written.ok && !written.untracked) logger.info(logContext, 'recorded a create the provider accepted while the database refused writes');
        return written.ok;
      },
      {
        closed: 'the gateway closed its database before it could record a create the provider accepted; its upstream task is not tracked',
        failed: 'could not record a create the provider accepted',
      },
    );
    return tasks.get(task.id).catch(() => task);
  }

  /**
   * Tries `write` (a create's answer only this process knows: true once the store took it) again
   * every `PERSIST_LONGEST_PAUSE_MS`, its failures not logged each time, until it is taken or the
   * store closes; recovery in this process leaves the task alone meanwhile (`recording`), and a
   * graceful stop waits for it (its drain).
   */
  private keepRecording(
    taskId: string,
    logContext: Record<string, string>,
    write: () => Promise<boolean>,
    said: { recorded?: string; closed: string; failed: string },
  ): void {
    const { clock, logger } = this.engine;
    const run = async () => {
      while (!this.closing.signal.aborted) {
        await clock.sleep(PERSIST_LONGEST_PAUSE_MS, this.closing.signal).catch(() => undefined);
        if (this.closing.signal.aborted) break;
        if (await write()) {
          if (said.recorded) logger.info(logContext, said.recorded);
          return;
        }
      }
      logger.error(logContext, said.closed);
    };
    const recording = run()
      .catch((error: unknown) => logger.error({ ...logContext, err: error }, said.failed))
      .finally(() => {
        // Recorded, or its failure logged with the upstream id.
        this.recording.delete(taskId);
        this.unrecorded.delete(taskId);
      });
    this.recording.set(taskId, recording);
  }

  /**
   * The writes of an accepted create, each tried until `until`: the move to tracking with the
   * attempt, or (the task no longer held here) the upstream id on the attempt alone. `untracked`:
   * the task was settled without it meanwhile (failed as lost), which the error log says.
   */
  private async writeAccepted(
    task: TaskRecord,
    runtime: ProviderRuntime,
    result: SubmitResult,
    details: AcceptedDetails,
    until: number,
    quiet = false,
  ): Promise<{ ok: true; task: TaskRecord | undefined; untracked?: true } | { ok: false }> {
    const { tasks, clock, config, logger, random } = this.engine;
    const logContext = acceptedLogContext(task, runtime, result);
    const acceptedAttempt = {
      seq: details.seq,
      change: {
        outcome: 'accepted' as const,
        latencyMs: details.latencyMs,
        ...(details.httpStatus !== undefined ? { httpStatus: details.httpStatus } : {}),
        providerTaskId: result.ref.providerTaskId,
        tracking: result.ref.tracking,
        // The answer came: a webhook that named the task first (`Recovery.adoptNamed`) recovered nothing.
        recoveredBy: null,
        // Written on the attempt alone (below), it may have been marked lost meanwhile by the process
        // that took the task over (`Recovery`): that message is no longer true.
        message: null,
      },
    };
    const expectsWebhook = details.callbackUrl !== undefined;
    const tracked = await this.persist(logContext, 'move the accepted task to tracking', until, quiet, () =>
      this.lifecycle.startTracking(
        task,
        runtime,
        result,
        {
          ...(details.estimate ? { estimate: details.estimate } : {}),
          warnings: details.warnings,
          expectsWebhook,
          firstPollAt: Math.min(
            clock.now() + firstPollDelay(runtime.minimumRunTimeMs(task.request), config.tracking, random, expectsWebhook),
            lastPollAt(task.deadlineAt, clock.now()),
          ),
        },
        acceptedAttempt,
      ),
    );
    if (tracked.ok && tracked.value) return { ok: true, task: tracked.value };
    // Another process took the task over (its lease ran out while the store refused these writes):
    // it tracks the task from the attempt written now, unless it already settled it (said below).
    if (tracked.ok) logger.warn(logContext, 'task accepted upstream after its submission lease was taken over: its upstream id is written on the attempt, for the process that took it over');
    const noted = await this.persist(logContext, 'record the accepted attempt', until, quiet, () => tasks.updateAttempt(task.id, acceptedAttempt.seq, acceptedAttempt.change));
    if (!noted.ok) return { ok: false };
    const now = await tasks.get(task.id).catch(() => undefined);
    if (now && now.phase !== 'submitting' && now.providerTaskId !== result.ref.providerTaskId) {
      // Settled meanwhile as lost (failed, or gone on): nobody tracks the task from the attempt.
      this.reportLateAnswer(runtime, logContext, 'a create the provider accepted was written down after its task was settled without it: its upstream task is tracked by nobody');
      return { ok: true, task: now, untracked: true };
    }
    return { ok: true, task: now ?? task };
  }

  /**
   * A create's answer (accepted, or a server error naming a task) written down after its task was
   * settled without it: the upstream task may bill and nothing tracks it. Said as an error (naming
   * it, `message`) and counted in `untracked_upstream_tasks_total{found_by="late_answer"}`.
   */
  private reportLateAnswer(runtime: ProviderRuntime, logContext: Record<string, string>, message: string): void {
    this.engine.logger.error(logContext, message);
    this.engine.metrics.untrackedUpstreamTasks.inc({ provider: runtime.id, found_by: 'late_answer' });
  }

  /**
   * Runs `write`, tried again after pauses on store errors until `until` (then once more at most).
   * `quiet`: the failures are not logged (the background writes of `keepRecording`, said once).
   */
  private async persist<T>(
    logContext: Record<string, string>,
    what: string,
    until: number,
    quiet: boolean,
    write: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    const { clock, logger } = this.engine;
    for (let pause = PERSIST_FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, PERSIST_LONGEST_PAUSE_MS)) {
      try {
        return { ok: true, value: await write() };
      } catch (error) {
        const now = clock.now();
        if (now >= until || this.closing.signal.aborted) {
          if (!quiet) logger.error({ ...logContext, err: error }, `could not ${what}`);
          return { ok: false };
        }
        if (!quiet) logger.warn({ ...logContext, err: error }, `could not ${what}; trying again`);
        await clock.sleep(Math.min(pause, until - now));
      }
    }
  }

  private async failSubmission(task: TaskRecord, error: TaskError): Promise<TaskRecord | undefined> {
    return (await this.lifecycle.failSubmission(task, error)) ?? (await this.engine.tasks.get(task.id));
  }

  /** Dispatches waiting tasks in fair order (`fairOrder`). Calls while one runs are folded into one rerun. */
  tick(): Promise<void> {
    return this.runner.run();
  }

  /**
   * A provider slot freed in this process: a pass at once when a task waits in the queue. Most
   * tasks end with nothing queued, and a pass (recovery's scans, the queue's page) for each of
   * them would cost every task's end three queries for nothing; the probe is one index lookup.
   */
  slotFreed(): Promise<void> {
    return this.afterFreedSlot.run();
  }

  /** Settles once no pass (nor a freed slot's probe) is running; the gateway waits for it before closing the store. */
  async idle(): Promise<void> {
    await this.afterFreedSlot.idle();
    await this.runner.idle();
  }

  /**
   * A graceful stop takes no more work: a pass running now finishes the creates it started and
   * sends no other queued task. Dispatches of creates that arrived before the stop still run.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Whether passes start no queued task now: stopping, or this clock is off the other replicas'. */
  private get holding(): boolean {
    return this.stopped || this.engine.clockWatch.holdReason !== undefined;
  }

  private async dispatchWaiting(): Promise<void> {
    if (this.holding) return;
    await this.recovery.recoverAbandoned();
    const pass: PassState = { full: new Set(), line: new ClaimLine() };
    for await (const page of this.queueInFairOrder()) {
      for (let next = 0; next < page.length; ) {
        if (this.holding) return;
        const batch: TaskRecord[] = [];
        for (; next < page.length && batch.length < DISPATCH_CONCURRENCY; next++) {
          // Tasks whose every provider was found full earlier in this pass are left alone without a query.
          if (!this.allFull(page[next]!, pass)) batch.push(page[next]!);
        }
        await Promise.all(
          batch.map((task) => {
            // Each joins the line in the pass's order (fair, `fairOrder`): slots go in that order, creates still leave side by side.
            const turn = pass.line.join(task.plan.candidates.map((entry) => entry.provider));
            return this.dispatch(task.id, {}, pass, undefined, undefined, turn).catch((error) =>
              this.engine.logger.error({ task_id: task.id, err: error }, 'dispatch failed'),
            );
          }),
        );
      }
    }
  }

  /**
   * The tasks a pass may dispatch, in pages, in fair order (`fairOrder`). A queue that fits one
   * page is read whole, as before; the tenants' tasks in flight and last turns are read only when
   * it holds more than one tenant. A longer queue is first listed in narrow columns (its order is decided on the
   * whole of it, at the pass's start, so no cursor drifts while tasks move), then its rows are
   * read by id, a page at a time; with one tenant the pages are read in age order as before.
   */
  private async *queueInFairOrder(): AsyncGenerator<TaskRecord[]> {
    const { tasks, clock } = this.engine;
    const first = await tasks.listDispatchable(clock.now(), DISPATCH_PAGE);
    if (first.length < DISPATCH_PAGE) {
      yield oneTenant(first) ? first : fairOrder(first.map(waitingOf), await tasks.fairShares()).map((waiting) => waiting.task);
      return;
    }
    const queue = await tasks.listDispatchableQueue(clock.now());
    if (oneTenant(queue)) {
      for (let page = first; ; ) {
        yield page;
        const last = page[page.length - 1];
        if (!last || page.length < DISPATCH_PAGE) return;
        page = await tasks.listDispatchable(clock.now(), DISPATCH_PAGE, { createdAt: last.createdAt, id: last.id });
      }
    }
    const order = fairOrder(queue, await tasks.fairShares());
    const read = new Map(first.map((task) => [task.id, task]));
    for (let start = 0; start < order.length; start += DISPATCH_PAGE) {
      const ids = order.slice(start, start + DISPATCH_PAGE).map((waiting) => waiting.id);
      const loaded = await tasks.getDispatchable(clock.now(), ids.filter((id) => !read.has(id)));
      for (const task of loaded) read.set(task.id, task);
      const page: TaskRecord[] = [];
      for (const id of ids) {
        const task = read.get(id);
        read.delete(id);
        if (task) page.push(task);
      }
      yield page;
    }
  }

  private allFull(task: TaskRecord, pass: PassState): boolean {
    const { candidates } = task.plan;
    return candidates.length > 0 && candidates.every((entry) => pass.full.has(entry.provider));
  }
}
