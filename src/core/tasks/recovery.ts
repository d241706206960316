/**
 * Settles what a replica that stopped mid-create left behind, and creates whose answer was lost
 * (SPEC §5; README "Guarantees"). A submission holds its task under a lease; when the lease runs
 * out with the task still in `submitting`, its attempts tell what the upstream may hold:
 * - the provider accepted (its task id is on the attempt): tracking resumes from it;
 * - a create's answer was lost (the gateway stopped while it was in flight, or the connection
 *   broke after the request was written): the upstream may hold the task. The gateway finds out
 *   before it decides anything — by what the create carried (the legacy API's
 *   `external_task_id`), by a webhook or callback that names the attempt's task, or by a task
 *   list that proves nothing was accepted. Found: the task is adopted (tracked, never sent
 *   again). Proved absent: the attempt failed and the task goes on to the next provider. Neither
 *   yet: the task waits, looked at again every few seconds at first and less often as it waits
 *   (at most once a minute), until the provider's answer could no longer come; then it fails as
 *   before (`interrupted`, or the create's own `timeout`), never resent (paying twice);
 * - nothing was in flight: the task goes back to the queue.
 */
import { TERMINAL_STATUSES, type ErrorCode, type RecoveredBy, type TaskError } from '../model/canonical.js';
import { matchOffering } from '../model/capabilities.js';
import type { ProviderAccount } from '../upstream/provider-account.js';
import type { ProviderRuntime } from '../upstream/provider-runtime.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { CreateLookup, ProviderTaskRef, UnansweredCreate, UpstreamClient } from '../upstream/provider.js';
import { provedAbsentMessage } from './dispatch-decision.js';
import { askableScope } from './askable-scope.js';
import { PerTaskAllowance } from './per-task-allowance.js';
import type { Engine } from './engine.js';
import type { TaskLifecycle } from './task-lifecycle.js';
import type { AttemptRecord, TaskRecord } from './task-records.js';

/** Abandoned submissions settled per call. */
const RECOVERY_BATCH = 100;
/** How soon a create in doubt is looked at again, at first. */
const RECHECK_MS = 3_000;
/**
 * Later, a create in doubt is looked at again after this share of the time since it was sent, up
 * to `MAX_RECHECK_MS`: each look is an upstream request (a Freepik list answers every task of the
 * key) that counts against the account's rate limit, and a create still unresolved after minutes
 * is rarely settled by the next few seconds' look. News (a webhook, a callback) is acted on at
 * once whatever this says.
 */
const RECHECK_SHARE = 0.25;
const MAX_RECHECK_MS = 60_000;

/**
 * Whether a failed status fetch got no answer about its task: no answer at all, one about the
 * call or the account, or one that could not be read (a 2xx not in the provider's shape, a body
 * cut short): only a 4xx refusal speaks of the task.
 */
function saysNothingOfTheTask(error: unknown): boolean {
  if (!(error instanceof UpstreamError) || error.statusCode === undefined) return true;
  return error.statusCode < 400 || error.statusCode >= 500 || [401, 402, 403, 408, 429].includes(error.statusCode);
}

/** How long after `now` a create sent at `sentAt` whose lookup could not tell is looked up again. */
function recheckDelay(sentAt: number, now: number): number {
  return Math.min(MAX_RECHECK_MS, Math.max(RECHECK_MS, Math.round((now - sentAt) * RECHECK_SHARE)));
}
/**
 * Beyond the provider's time limit, how long after sending a create the upstream could still
 * be acting on it: a list read earlier may not show a task it is about to accept.
 */
const SETTLE_MARGIN_MS = 5_000;
/**
 * When the upstream can no longer be acting on the attempt's create: its time limit (the one it
 * was sent under: a restart may have changed the provider's since) + `SETTLE_MARGIN_MS`. Only a
 * lookup sent from then on proves the create was not accepted.
 */
function settledAtOf(attempt: AttemptRecord, runtime: ProviderRuntime | undefined): number {
  return attempt.at + (attempt.timeoutMs ?? runtime?.config.timeout_ms ?? 0) + SETTLE_MARGIN_MS;
}
/** How long a create in doubt waits for a webhook or callback to name its task. */
const NEWS_WAIT_MS = 10 * 60_000;
/** How long a create in doubt is looked up when no news can come (lookups that failed). */
const LOOKUP_WAIT_MS = 2 * 60_000;
/**
 * How long a create found `sending` is left in doubt before it is given up on, even where nothing
 * can tell about it, when other processes share the database (`WORKERS`, replicas). The process
 * that sent it may be alive: a database that refused its writes past the submission's lease (a
 * full disk) lets that lease run out, and the process tries the writes of the answer it holds
 * every 2 s (`Dispatcher.keepRecording`). Once they land on the attempt, the task is tracked from
 * them instead of failed as lost (kling3api cannot be asked).
 */
const SENDER_GRACE_MS = 10_000;

/**
 * Attempt outcomes of a create whose answer the gateway never read: `sending` (the replica that
 * sent it stopped), `interrupted` (so found after a stop, being looked for), `ambiguous` (the
 * connection broke after the request was written, or no answer came in time).
 */
const IN_DOUBT = new Set(['sending', 'interrupted', 'ambiguous']);
/** At most this many tasks are remembered as having had the provider asked lately about a task nothing tracks (`adoptNamed`). */
const MAX_ASKED_UNTRACKED = 10_000;
/** How many such asks a task's callbacks may make at once, before one per `tracking.poll_min_interval_ms`. */
const ASKS_AT_ONCE = 3;

/** Whether the provider may hold the task from this attempt's create: it accepted, or its answer is not known. */
export function mayBeHeldUpstream(attempt: Pick<AttemptRecord, 'outcome'>): boolean {
  return attempt.outcome === 'accepted' || IN_DOUBT.has(attempt.outcome);
}

/**
 * Whether news of an attempt in doubt comes after the task went on from it (`failover_on_timeout`)
 * to another provider whose create is on its way (`busy`: its answer decides, and the news is
 * asked again), or once another attempt holds the task (`none`): a later provider took it, or an
 * earlier create also left in doubt was found and adopted (two creates in doubt in a row).
 * Adopting this one then would leave the other's upstream task, which bills, tracked by nobody and
 * counted nowhere. This one stays in doubt, its estimate listed with the task's cost as what may
 * also be billed. Undefined when nothing else holds the task.
 */
function wentOnFrom(attempt: AttemptRecord, attempts: readonly AttemptRecord[]): { kind: 'busy' } | { kind: 'none' } | undefined {
  if (attempts.some((candidate) => candidate.seq !== attempt.seq && candidate.outcome === 'accepted')) return { kind: 'none' };
  if (attempts.some((candidate) => candidate.seq > attempt.seq && candidate.outcome === 'sending')) return { kind: 'busy' };
  return undefined;
}

/**
 * Why the task an attempt's create made upstream is tracked by no gateway task, if it is not: the
 * create was counted as not accepted (refused, or proved absent by a lookup while the upstream
 * had yet to act on it), or it was left in doubt and the task then ended, or went on to another
 * provider that took it. The provider may bill for it all the same.
 */
function untrackedBy(task: TaskRecord, attempt: AttemptRecord, attempts: readonly AttemptRecord[]): string | undefined {
  if (attempt.outcome === 'failed') return 'counted as not accepted';
  if (!IN_DOUBT.has(attempt.outcome)) return undefined;
  if (TERMINAL_STATUSES.has(task.status)) return `left in doubt, after the task ended ${task.status}`;
  if (wentOnFrom(attempt, attempts)?.kind === 'none') return 'left in doubt, after another provider took the task';
  return undefined;
}

/** The attempt whose create the provider accepted, naming its upstream task, if any. */
function acceptedOf(attempts: readonly AttemptRecord[]): AttemptRecord | undefined {
  return attempts.find((attempt) => attempt.outcome === 'accepted' && attempt.providerTaskId);
}

/** The message of an attempt whose upstream task was found after its create's answer was lost or named beside an error. */
function adoptedMessage(provider: string, via: RecoveredBy): string {
  if (via === 'answer') return `${provider} answered the create with a server error naming a task, and its status shows that task`;
  return `the create's answer was lost; ${provider} holds the task, found by ${via === 'external_id' ? 'the id the create carried' : 'its webhook or callback'}`;
}

/**
 * How the task an attempt keeps as named (`namedTaskId`) was named: by its create's server-error
 * answer, or, when the create got no such answer, by a callback whose status fetch could not be
 * made at the time (`Recovery.keepUnconfirmed`).
 */
function namedVia(attempt: AttemptRecord): RecoveredBy {
  return attempt.httpStatus !== null && attempt.httpStatus >= 500 ? 'answer' : 'webhook';
}

/** The attempt key a create carried upstream (`SubmitContext.attemptKey`). */
export function attemptKeyOf(taskId: string, seq: number): string {
  return `${taskId}-${seq}`;
}

function parseAttemptKey(key: string): { taskId: string; seq: number } | undefined {
  const match = /^(.+)-(\d{1,6})$/.exec(key);
  return match ? { taskId: match[1]!, seq: Number(match[2]) } : undefined;
}

/** What news naming an attempt's upstream task came to. */
export type NamedTaskOutcome =
  | { kind: 'adopted'; task: TaskRecord | undefined }
  /** The create is still being answered here or by a live replica: its answer records it. */
  | { kind: 'busy' }
  /**
   * The create is still being answered here or by a replica whose lease runs, and signed news
   * named its upstream task: that is now written on the attempt, so the task is tracked even if
   * the answer never comes (that replica stopped), once the lease runs out.
   */
  | {
      kind: 'noted';
      /** The gateway's id of the task. */
      taskId: string;
      /**
       * When the create is on its way in this process: settles once its dispatch has ended (its
       * answer recorded, or given up on), so the news can then be applied to the tracked task.
       */
      recorded?: Promise<void>;
    }
  /**
   * An unsigned callback named the upstream task of a create in doubt whose status could not be
   * asked now: kept on the attempt, asked about again by recovery (`keepUnconfirmed`).
   */
  | { kind: 'kept' }
  /**
   * Signed news (or a callback the provider's status confirmed) of a task made for a create
   * counted as not accepted, or left in doubt once its task ended or went on (`untrackedBy`):
   * logged, counted, tracked by no task.
   */
  | { kind: 'ruled_out' }
  /** A signed webhook on the path of an attempt another account than its signer's sent: believed of nothing. */
  | { kind: 'foreign'; account: string }
  /** Not an attempt in doubt (unknown, answered, or not this provider's). */
  | { kind: 'none' };

/** How long each further request of a lookup (the next page of a task list) may wait for its rate allowance. */
const FURTHER_REQUEST_RATE_WAIT_MS = 2_000;

/**
 * `client` for a call whose first request `admit` let through, asking the account's leave for
 * each further one: a lookup may read a task list page by page, and the upstream counts every
 * page against its rate limit. A page that may not go in time ends the lookup (it cannot tell
 * now), which is asked again later.
 */
function eachRequestAdmitted(account: ProviderAccount, client: UpstreamClient): UpstreamClient {
  let sent = 0;
  return {
    apiShape: client.apiShape,
    send: async (request, signal) => {
      if (sent++ > 0) await account.admitFurtherRequest(FURTHER_REQUEST_RATE_WAIT_MS, signal);
      return client.send(request, signal);
    },
  };
}

export class Recovery {
  /** Asks of the provider about a task nothing tracks, per gateway task on whose token callbacks came (`mayAskAboutUntracked`). */
  private readonly askedUntracked = new PerTaskAllowance(ASKS_AT_ONCE, MAX_ASKED_UNTRACKED);

  constructor(
    private readonly engine: Engine,
    private readonly lifecycle: TaskLifecycle,
    /** The task's dispatch this process is still running (then it is not abandoned), if any. */
    private readonly dispatchHere: (taskId: string) => Promise<unknown> | undefined,
  ) {}

  /** When this process is running the task's dispatch: settles once it has ended (its create's answer recorded, or given up on). */
  private dispatchEndHere(taskId: string): Promise<void> | undefined {
    return this.dispatchHere(taskId)?.then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * When `attempt`'s create is still on its way in this process (sent, not answered): settles
   * once the task's dispatch has ended, so news that came first can then be acted on.
   */
  createOnItsWayHere(task: TaskRecord, attempt: AttemptRecord): Promise<void> | undefined {
    return attempt.outcome === 'sending' ? this.dispatchEndHere(task.id) : undefined;
  }

  /** Whether this process is still running the task's dispatch. */
  private dispatchingHere(taskId: string): boolean {
    return this.dispatchHere(taskId) !== undefined;
  }

  /**
   * After a restart. With a database no other replica shares, this is the only process, so every
   * lease left in it belongs to the previous run and ends now (tracking resumes at once). With
   * shared PostgreSQL other replicas may be alive: their leases are left to run out. The
   * submissions left behind are settled by the first dispatch pass (`recoverAbandoned`), which
   * runs once the gateway listens: settling them asks the providers (a lookup each), and the
   * webhooks that name them can then already arrive.
   */
  async atStart(): Promise<void> {
    if (!this.engine.tasks.sharedByReplicas) await this.engine.tasks.expireLeftoverLeases();
  }

  /** Settles submissions whose lease ran out, except those this process is still running. */
  async recoverAbandoned(now = this.engine.clock.now()): Promise<number> {
    const { tasks } = this.engine;
    // Where other replicas share the store, one that has the account (or the provider's key) this
    // one lacks is left to settle a create in doubt through it: only it can look the create up
    // (`askableScope`). Here it would be held in doubt, turn after turn, until its deadline.
    const abandoned = (await tasks.listAbandonedSubmissions(now, RECOVERY_BATCH, askableScope(this.engine))).filter((task) => !this.dispatchingHere(task.id));
    for (const found of abandoned) {
      try {
        // Ours first (if nobody changed it since it was read), so no other replica settles it too.
        const task = await this.lifecycle.takeOverAbandoned(found, now + this.engine.config.tracking.lease_ms);
        if (!task) continue;
        const attempts = await tasks.attempts(task.id);
        const accepted = acceptedOf(attempts);
        const last = attempts[attempts.length - 1];
        if (accepted) await this.resumeAccepted(task, accepted, now);
        else if (last && IN_DOUBT.has(last.outcome)) await this.resolve(task, last);
        else await this.lifecycle.requeue(task, now, task.leaseOwner);
      } catch (error) {
        this.engine.logger.error({ task_id: found.id, err: error }, 'could not settle an abandoned submission; trying again later');
      }
    }
    return abandoned.length;
  }

  /**
   * Settles a create whose answer was lost (its attempt `sending` after a stop, or `ambiguous`
   * after a broken connection or a timeout): adopts the upstream task when the provider shows
   * it, goes on to the next provider when it proves there is none, waits while it may still
   * tell, and gives up when it no longer can. Returns the task as it ends up. `lookUp: false`
   * (a create's own dispatch during a graceful stop) asks the provider nothing now: the task is
   * held in doubt as when a lookup cannot tell, and looked up at a later turn. `namedInAnswer`
   * (otherwise the attempt's `namedTaskId`, kept from that answer) is the upstream task the
   * create's own server-error answer named: adopted first if the provider's status shows it (an
   * id the answer made up is not tracked until the deadline). Not asked now (a stop, or the
   * account cannot be called before the task's deadline), the task is held in doubt for it.
   */
  async resolve(task: TaskRecord, found: AttemptRecord, options: { lookUp?: boolean; namedInAnswer?: string } = {}): Promise<TaskRecord | undefined> {
    const { runtimes, clock, tasks } = this.engine;
    let attempt = found;
    // A signed webhook named the upstream task while the create's answer was awaited (`adoptNamed`).
    const named = found.providerTaskId ? this.refOfNamed(task, found, found.providerTaskId) : undefined;
    if (named) return this.adopt(task, found, named, found.recoveredBy ?? 'webhook');
    // Until when the process that sent the create may still write down the answer it holds.
    let senderMayWrite = 0;
    if (attempt.outcome === 'sending') {
      // Left by a replica that stopped, or by a live one whose writes the database refused past
      // its lease: only while the attempt is still `sending` (that process's answer not written).
      const message = 'the gateway stopped while this request was in flight';
      if (!(await tasks.updateSendingAttempt(task.id, attempt.seq, { outcome: 'interrupted', message }))) return this.recordedMeanwhile(task);
      attempt = { ...attempt, outcome: 'interrupted', message };
      // A database no other process shares: the process that sent it is this one's previous run.
      if (tasks.sharedByReplicas) senderMayWrite = clock.now() + SENDER_GRACE_MS;
    }
    const runtime = runtimes.get(attempt.provider);
    // Only the account that sent the create can ask about it (its key sees its tasks).
    const account = runtime?.account(attempt.account ?? task.account);
    const create = runtime && this.unansweredCreate(task, attempt, runtime);
    const settledAt = settledAtOf(attempt, runtime);
    // Whether the task the answer named is still to be asked about (its status not asked now).
    let namedUnasked = false;
    // Whether its provider did not show it when asked too early to prove it has none.
    let namedEarly = false;
    const namedInAnswer = options.namedInAnswer ?? attempt.namedTaskId ?? undefined;
    const namedRef = runtime && account && create && namedInAnswer !== undefined ? runtime.provider.refOfCreate?.(create, namedInAnswer) : undefined;
    if (runtime && account && namedRef) {
      if (options.lookUp === false) namedUnasked = true;
      else {
        const namedAskedAt = clock.now();
        const shown = await this.shows(task, runtime, account, namedRef, 'a create answer named a task its provider does not show');
        if (shown === 'shown') return this.adopt(task, attempt, namedRef, namedVia(attempt));
        // Not shown, asked once the upstream could no longer be acting on the create (as a
        // lookup's negative counts): proof, not asked again at each later turn. Asked earlier,
        // the provider may not show a task it is still making: asked again until then.
        namedEarly = shown === 'not_shown' && namedAskedAt < settledAt;
        if (shown === 'not_shown' && !namedEarly && attempt.namedTaskId !== null) await tasks.updateAttempt(task.id, attempt.seq, { namedTaskId: null });
        namedUnasked = (shown === 'busy' || namedEarly) && clock.now() < task.deadlineAt;
      }
    }
    // A negative proves something only if the upstream was asked once the create's answer could
    // no longer come: when the lookup was sent, not when its (maybe slow) answer arrived.
    const askedAt = clock.now();
    // The account that sent it is not configured now (removed at a restart, as the start's warning
    // says): nothing can ask about the create until it is back, so the task waits for it until its
    // deadline rather than failing at once while the provider may be making the video (where it
    // gives a way to find it, a lookup or news naming the task, or the create's answer named it:
    // another kling3api one could not be found with the account back either).
    const accountGone =
      runtime !== undefined &&
      account === undefined &&
      (runtime.provider.findCreate !== undefined ||
        (runtime.provider.refOfCreate !== undefined && (runtime.provider.inboundWebhook !== 'none' || namedInAnswer !== undefined)));
    const lookup: CreateLookup | undefined =
      runtime && account && create
        ? await this.lookUp(task, runtime, account, create, options.lookUp !== false)
        : accountGone
          ? {
              kind: 'unknown',
              why: runtime.keyless
                ? `${attempt.provider} has no key in this gateway's configuration, so nothing could ask about it`
                : `account ${attempt.account ?? task.account ?? 'default'} of ${attempt.provider}, which the create went through, is no longer configured, so nothing could ask about it`,
            }
          : undefined;
    const now = clock.now();
    if (lookup?.kind === 'found') return this.adopt(task, attempt, lookup.ref, 'external_id');

    if (lookup?.kind === 'absent' && askedAt >= settledAt) return this.provedAbsent(task, attempt, lookup.why);

    const hearsNews = runtime !== undefined && account !== undefined && create !== undefined && this.mayHearOf(task, runtime, account);
    const looksUp = runtime?.provider.findCreate !== undefined && account !== undefined && create !== undefined;
    const asked = accountGone ? task.deadlineAt : hearsNews || looksUp ? Math.min(task.deadlineAt, Math.max(settledAt, attempt.at + (hearsNews ? NEWS_WAIT_MS : LOOKUP_WAIT_MS))) : now;
    const waitEnd = Math.max(asked, senderMayWrite);
    // A "not found" asked too early that arrives once the wait is over is no reason to give up:
    // the next lookup, asked now, proves it either way.
    const askAgain = lookup?.kind === 'absent' && now >= settledAt;
    // Nor is a lookup left unasked during a stop (`lookUp: false`): also past the wait (the task's
    // deadline passed while its create was on the wire), the one lookup is made at a later turn.
    // Nor is the task the answer named, while its status could not be asked.
    const unasked = (options.lookUp === false && looksUp) || namedUnasked;
    if (now < waitEnd || askAgain || unasked) {
      const next = lookup?.kind === 'absent' || namedEarly ? Math.max(now + 100, Math.min(settledAt, now + RECHECK_MS)) : now + recheckDelay(attempt.at, now);
      // The sender's time is waited out in this one hold when nothing else keeps the create in
      // doubt as long: the next look finds the attempt `interrupted`, not when it was so found.
      const until = senderMayWrite > asked ? senderMayWrite : now >= waitEnd ? next : Math.min(next, waitEnd);
      return this.lifecycle.holdInDoubt(task, until, task.leaseOwner);
    }
    return this.giveUp(task, attempt, lookup);
  }

  /**
   * A create whose answer was lost, which the task goes on from (`routing.failover_on_timeout`):
   * a provider that finds a task by the create's own id (`findsCreateById`, the legacy API's
   * `external_task_id`) is asked once first, so a video it is making is not made and paid for
   * again elsewhere. Shown: the task is adopted there (returned as it ends up). Proved absent (as
   * `resolve` counts a "not found": asked once the upstream could no longer be acting on the
   * create), the attempt is failed, what `said` the create's failure (else the attempt's message)
   * followed by why it was not accepted, and that message returned (`ruledOut`): the task goes on.
   * A lookup that gets no answer, or a "not found" asked earlier, proves nothing: undefined, the
   * attempt left in doubt.
   */
  async findBeforeGoingOn(
    task: TaskRecord,
    attempt: AttemptRecord,
    said?: string,
  ): Promise<{ task: TaskRecord | undefined } | { ruledOut: string } | undefined> {
    const runtime = this.engine.runtimes.get(attempt.provider);
    const account = runtime?.account(attempt.account ?? task.account);
    const create = runtime?.provider.findsCreateById && this.unansweredCreate(task, attempt, runtime);
    if (!runtime || !account || !create) return undefined;
    const askedAt = this.engine.clock.now();
    const lookup = await this.lookUp(task, runtime, account, create);
    if (lookup.kind === 'found') return { task: await this.adopt(task, attempt, lookup.ref, 'external_id') };
    // News (a callback the provider confirmed) named the task while the lookup was on its way.
    if (acceptedOf(await this.engine.tasks.attempts(task.id))) return { task: await this.recordedMeanwhile(task) };
    if (lookup.kind === 'absent' && askedAt >= settledAtOf(attempt, runtime)) return { ruledOut: await this.ruleOut(task, attempt, lookup.why, said) };
    return undefined;
  }

  /**
   * News (a verified webhook on the attempt's own path, a callback on the task's token) that
   * names the upstream task of an attempt in doubt. `confirm` asks the provider first (an
   * unsigned callback proves nothing by itself). News of a task nothing tracks any more is
   * reported (`ruled_out`), never adopted.
   */
  async adoptNamed(
    provider: string,
    attemptKey: string,
    providerTaskId: string,
    how: { confirm: boolean; signedBy?: ReadonlySet<string> },
  ): Promise<NamedTaskOutcome> {
    const { tasks, runtimes, clock } = this.engine;
    const key = parseAttemptKey(attemptKey);
    const runtime = runtimes.get(provider);
    if (!key || !runtime?.provider.refOfCreate) return { kind: 'none' };
    const task = await tasks.get(key.taskId);
    if (!task) return { kind: 'none' };
    const attempts = await tasks.attempts(task.id);
    const attempt = attempts.find((candidate) => candidate.seq === key.seq);
    if (!attempt || attempt.provider !== provider || attempt.providerTaskId) return { kind: 'none' };
    // A signed webhook counts only when the account that sent the create signed it.
    if (how.signedBy && attempt.account !== null && !how.signedBy.has(attempt.account)) return { kind: 'foreign', account: attempt.account };
    // News of a task nothing tracks (`untrackedBy`), signed or confirmed by the provider's own
    // status answer (an unsigned callback proves nothing by itself): said loudly, for the operator
    // to settle, and never adopted.
    const untracked = untrackedBy(task, attempt, attempts);
    if (untracked !== undefined && (how.signedBy || how.confirm)) {
      if (!how.signedBy) {
        const account = runtime.account(attempt.account ?? task.account);
        const ref = account && this.refOfNamed(task, attempt, providerTaskId);
        if (!account || !ref || !this.mayAskAboutUntracked(task.id)) return { kind: 'none' };
        const shown = await this.shows(task, runtime, account, ref, 'a callback named a task the provider does not confirm');
        if (shown !== 'shown') return { kind: shown === 'busy' ? 'busy' : 'none' };
      }
      this.engine.metrics.untrackedUpstreamTasks.inc({ provider, found_by: 'webhook' });
      this.engine.logger.error(
        { task_id: task.id, provider, account: attempt.account, provider_task_id: providerTaskId, attempt: attempt.seq },
        `${provider} made a task for a create the gateway ${untracked}: it may bill, and no task tracks it (cancel or keep it in ${provider}'s own dashboard)`,
      );
      return { kind: 'ruled_out' };
    }
    // A create the task was failed over from (`failover_on_timeout`) while the task now waits in
    // the gateway's queue, taken by no provider: the news is adopted, as the next create would
    // make and bill the same video again.
    const fromQueue = task.phase === 'dispatch' && attempt.outcome === 'ambiguous';
    if (!fromQueue && (task.phase !== 'submitting' || !IN_DOUBT.has(attempt.outcome))) return { kind: 'none' };
    const wentOn = wentOnFrom(attempt, attempts);
    if (wentOn) return wentOn;
    const account = runtime.account(attempt.account ?? task.account);
    if (!account) return { kind: 'none' };
    const sendingHere = this.dispatchingHere(task.id);
    // A create still on its way here records its own answer: an unsigned callback is not worth a fetch then.
    if (attempt.outcome === 'sending' && sendingHere && how.confirm) return { kind: 'busy' };
    // A clock off the other replicas' would read a live lease as run out: nothing is taken over then.
    const abandoned = (task.leaseUntil ?? 0) < clock.now() && !sendingHere && !this.engine.clockWatch.holdReason;
    const ref = this.refOfNamed(task, attempt, providerTaskId);
    if (!ref) return { kind: 'none' };
    if (how.confirm) {
      const shown = await this.shows(task, runtime, account, ref, 'a callback named a task the provider does not confirm');
      if (shown === 'not_shown') return { kind: 'none' };
      if (shown === 'busy') return fromQueue ? { kind: 'busy' } : this.keepUnconfirmed(task, attempt, providerTaskId);
    }
    if (fromQueue) {
      const change = { outcome: 'accepted' as const, providerTaskId: ref.providerTaskId, tracking: ref.tracking, recoveredBy: 'webhook' as const, message: adoptedMessage(attempt.provider, 'webhook') };
      const adopted = await this.lifecycle.adoptQueued(task, { ...attempt, ...change }, change, attempt.outcome, clock.now());
      // Claimed for another create meanwhile (or changed): the news is asked again, and read against that create then.
      if (!adopted) return { kind: 'busy' };
      this.engine.logger.warn(
        { task_id: task.id, provider, provider_task_id: ref.providerTaskId, recovered_by: 'webhook' },
        'adopted an upstream task of a create the task was failed over from, while it waited in the queue',
      );
      return { kind: 'adopted', task: adopted };
    }
    if (attempt.outcome === 'sending' && !abandoned) {
      // A signed webhook, or a callback on the task's token that the provider confirmed, is proof
      // enough of what the upstream holds. Telling its sender to retry until the lease runs out
      // could outlast its retries when the replica sending the create has died (its lease
      // outlives the upstream's timeout); then nothing would ever name the task. So the upstream
      // id is written on the attempt now: the create's answer, if it comes, records the same,
      // and if it never does, recovery resumes tracking from the attempt.
      const noted = await tasks.updateSendingAttempt(task.id, attempt.seq, {
        outcome: 'accepted',
        providerTaskId: ref.providerTaskId,
        tracking: ref.tracking,
        recoveredBy: 'webhook',
      });
      if (!noted) return { kind: 'busy' };
      const recorded = this.dispatchEndHere(task.id);
      return recorded ? { kind: 'noted', taskId: task.id, recorded } : { kind: 'noted', taskId: task.id };
    }
    return { kind: 'adopted', task: await this.adopt(task, attempt, ref, 'webhook') };
  }

  /**
   * A callback named the upstream task of a create in doubt, and the provider's status could not
   * be asked about it now (no answer, a server error, throttling): that says nothing of the task,
   * and the callback may be the only news of it (the legacy API documents no callback retries).
   * The id is kept on the attempt (`namedTaskId`) as one a create's answer named is: recovery
   * asks about it until the task's deadline and adopts it once shown. Not when the attempt keeps
   * another id already (its create's answer named that one).
   */
  private async keepUnconfirmed(task: TaskRecord, attempt: AttemptRecord, providerTaskId: string): Promise<NamedTaskOutcome> {
    if (attempt.namedTaskId !== null && attempt.namedTaskId !== providerTaskId) return { kind: 'busy' };
    if (attempt.namedTaskId === null) await this.engine.tasks.updateAttempt(task.id, attempt.seq, { namedTaskId: providerTaskId });
    this.engine.logger.warn(
      { task_id: task.id, provider: attempt.provider, provider_task_id: providerTaskId, attempt: attempt.seq },
      'a callback named the task of a create in doubt that its provider could not be asked about now; kept, and asked about again',
    );
    return { kind: 'kept' };
  }

  /**
   * Whether a callback on `taskId`'s token may have the provider asked about a task nothing
   * tracks now: `ASKS_AT_ONCE` at once (the provider's own callbacks come one per status change),
   * then one per `tracking.poll_min_interval_ms`, per task (in this process). Whoever holds the token may post as often as they like, naming any task, for as long
   * as the gateway task is kept: unbounded, each post cost one status call on the account, whose
   * rate windows every tenant's creates and polls share. A callback past the allowance is
   * answered as naming a task the provider does not show; only the report of a task nobody
   * tracks can be missed that way, never a task's own news.
   */
  private mayAskAboutUntracked(taskId: string): boolean {
    return this.askedUntracked.take(taskId, this.engine.clock.now(), this.engine.config.tracking.poll_min_interval_ms) === true;
  }

  /**
   * Whether the provider's status answer shows the upstream task `ref` names (`busy`: it cannot
   * be asked now); `unshown` is logged when it does not.
   */
  private async shows(
    task: TaskRecord,
    runtime: ProviderRuntime,
    account: ProviderAccount,
    ref: ProviderTaskRef,
    unshown: string,
  ): Promise<'shown' | 'not_shown' | 'busy'> {
    const admission = await account.admit(0);
    if (!admission.granted) return 'busy';
    try {
      await account.call((signal) => runtime.provider.getStatus(ref, { http: account.clientForTask(task), signal }), admission.permit);
      return 'shown';
    } catch (error) {
      // Only an answer about the task says it is not there; a call that got none (no connection,
      // a timeout, a server error, throttling, the key refused) tells nothing: asked again later.
      if (!saysNothingOfTheTask(error)) {
        this.engine.logger.warn({ task_id: task.id, provider: runtime.id, provider_task_id: ref.providerTaskId, err: error }, unshown);
        return 'not_shown';
      }
      this.engine.logger.warn({ task_id: task.id, provider: runtime.id, provider_task_id: ref.providerTaskId, err: error }, 'could not ask about a task the provider may hold; asking again later');
      return 'busy';
    }
  }

  /** The upstream task `providerTaskId` as the attempt's provider tracks a create's; undefined when it cannot tell. */
  private refOfNamed(task: TaskRecord, attempt: AttemptRecord, providerTaskId: string): ProviderTaskRef | undefined {
    const runtime = this.engine.runtimes.get(attempt.provider);
    const create = runtime?.provider.refOfCreate && this.unansweredCreate(task, attempt, runtime);
    return create ? runtime.provider.refOfCreate!(create, providerTaskId) : undefined;
  }

  /** What the create of `attempt` was, as the provider's adapter needs it; undefined when no offering fits any more. */
  private unansweredCreate(task: TaskRecord, attempt: AttemptRecord, runtime: ProviderRuntime): UnansweredCreate | undefined {
    const match = matchOffering(runtime.provider.offerings, { request: task.request, explicit: new Set(task.plan.explicit) });
    return match.offering ? { request: task.request, offering: match.offering, attemptKey: attemptKeyOf(task.id, attempt.seq) } : undefined;
  }

  /** Whether a webhook or callback could still name the task of this create. */
  private mayHearOf(task: TaskRecord, runtime: ProviderRuntime, account: ProviderAccount): boolean {
    if (!runtime.provider.refOfCreate) return false;
    if (runtime.provider.inboundWebhook === 'signed') return account.webhookSecrets.length > 0;
    if (runtime.provider.inboundWebhook === 'token') return task.callbackToken !== null;
    return false;
  }

  /** Asks the provider about the create; any failure to ask is "cannot tell now". */
  private async lookUp(task: TaskRecord, runtime: ProviderRuntime, account: ProviderAccount, create: UnansweredCreate, ask = true): Promise<CreateLookup> {
    const { provider } = runtime;
    if (!provider.findCreate) return { kind: 'unknown', why: `${runtime.id} documents no way to find a task by what the create carried` };
    if (!ask) return { kind: 'unknown', why: 'the gateway is stopping: not looked up now' };
    const admission = await account.admit(0);
    if (!admission.granted) return { kind: 'unknown', why: `${runtime.id} cannot be called now (${admission.reason})` };
    try {
      return await account.call(
        (signal) =>
          provider.findCreate!(create, {
            http: eachRequestAdmitted(account, account.clientForTask(task)),
            signal,
            knownTaskIds: (ids) => this.engine.tasks.knownProviderTaskIds(runtime.id, ids),
            recordedTaskCount: (tracking) => this.engine.tasks.countRecordedProviderTasks(runtime.id, account.id, tracking),
          }),
        admission.permit,
      );
    } catch (error) {
      this.engine.logger.warn({ task_id: task.id, provider: runtime.id, err: error }, 'could not look up a create whose answer was lost');
      return { kind: 'unknown', why: `the lookup failed: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  /** Records the upstream task on the attempt, then tracks it: no second create. */
  private async adopt(task: TaskRecord, attempt: AttemptRecord, ref: ProviderTaskRef, via: RecoveredBy): Promise<TaskRecord | undefined> {
    const { tasks, clock, logger } = this.engine;
    const message = adoptedMessage(attempt.provider, via);
    await tasks.updateAttempt(task.id, attempt.seq, {
      outcome: 'accepted',
      providerTaskId: ref.providerTaskId,
      tracking: ref.tracking,
      recoveredBy: via,
      message,
    });
    const adopted = { ...attempt, outcome: 'accepted' as const, providerTaskId: ref.providerTaskId, tracking: ref.tracking, recoveredBy: via };
    const tracked = await this.lifecycle.resumeTracking(task, adopted, clock.now());
    logger.warn({ task_id: task.id, provider: attempt.provider, provider_task_id: ref.providerTaskId, recovered_by: via }, 'adopted an upstream task whose create answer was lost');
    return tracked ?? tasks.get(task.id);
  }

  /** The provider proved it holds nothing from this create: the attempt failed, and the task goes on. */
  private async provedAbsent(task: TaskRecord, attempt: AttemptRecord, why: string): Promise<TaskRecord | undefined> {
    const { tasks, clock, metrics } = this.engine;
    if (acceptedOf(await tasks.attempts(task.id))) return this.recordedMeanwhile(task);
    await this.ruleOut(task, attempt, why);
    metrics.failovers.inc({ provider: attempt.provider, reason: 'proved_absent' });
    return (await this.lifecycle.requeue(task, clock.now(), task.leaseOwner)) ?? tasks.get(task.id);
  }

  /**
   * Writes down that the provider proved it holds nothing from the attempt's create: what `said`
   * the create's failure (else the attempt's message), then why. The message written is returned.
   */
  private async ruleOut(task: TaskRecord, attempt: AttemptRecord, why: string, said?: string): Promise<string> {
    const message = provedAbsentMessage(said ?? attempt.message ?? 'the create was not answered', why);
    await this.engine.tasks.updateAttempt(task.id, attempt.seq, { outcome: 'failed', errorCode: attempt.errorCode ?? 'provider_error', message });
    return message;
  }

  /** Nothing can tell any more: the task fails as the upstream may hold it, and is never sent again. */
  private async giveUp(task: TaskRecord, attempt: AttemptRecord, lookup: CreateLookup | undefined): Promise<TaskRecord | undefined> {
    const { tasks } = this.engine;
    if (acceptedOf(await tasks.attempts(task.id))) return this.recordedMeanwhile(task);
    const provider = attempt.provider;
    const why = lookup && lookup.kind !== 'found' ? lookup.why : `${provider} documents no way to find a task by anything the gateway sent`;
    // The attempt's message is written with the failure, and both only while the attempt is still
    // as read: the process that sent the create may write its answer on it at any moment.
    const stopped = attempt.outcome === 'interrupted';
    const error: TaskError = stopped
      ? {
          code: 'provider_error',
          message:
            `the gateway stopped while submitting to ${provider}; the provider may have accepted the task and ${why}, ` +
            'so it was not sent again (to avoid paying twice)',
          provider_code: null,
        }
      : {
          code: (attempt.errorCode ?? 'provider_error') as ErrorCode,
          message: `${attempt.message ?? `${provider} did not answer`}; ${why}`,
          provider_code: attempt.providerCode,
        };
    const attemptMessage = stopped ? `the gateway stopped while this request was in flight; ${why}` : `${attempt.message ?? ''}; ${why}`;
    const failed = await this.lifecycle.failInDoubt(task, error, { phases: ['submitting'], leaseOwner: task.leaseOwner }, provider, {
      seq: attempt.seq,
      change: { message: attemptMessage.slice(0, 500) },
      still: attempt.outcome,
    }, attempt.account);
    return failed ?? this.recordedMeanwhile(task);
  }

  /**
   * The process that sent the create wrote its answer on the attempt while this one was settling
   * it (its lease had run out while the database refused its writes): tracks the task from it.
   */
  private async recordedMeanwhile(task: TaskRecord): Promise<TaskRecord | undefined> {
    const { tasks, clock } = this.engine;
    const accepted = acceptedOf(await tasks.attempts(task.id));
    if (accepted) await this.resumeAccepted(task, accepted, clock.now());
    return tasks.get(task.id);
  }

  /** Tracks an upstream task whose acceptance was recorded on the attempt but not yet on the task. */
  private async resumeAccepted(task: TaskRecord, attempt: AttemptRecord, now: number): Promise<void> {
    // Not held here any more (another process tracks it, or took it over): nothing to say.
    if (!(await this.lifecycle.resumeTracking(task, attempt, now))) return;
    this.engine.logger.warn(
      { task_id: task.id, provider: attempt.provider, provider_task_id: attempt.providerTaskId },
      'resumed tracking of a task accepted upstream before the gateway stopped',
    );
  }
}
