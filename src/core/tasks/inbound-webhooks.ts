/**
 * News from providers about their tasks (SPEC §4). A signed webhook is verified by the
 * provider's adapter (signature, timestamp) and de-duplicated by its id before it changes
 * anything. An unsigned callback is accepted only on a task's secret token and never believed
 * as such: it makes the task poll now. Both answer with what the sender should be told.
 */
import { ProblemError, problems } from '../model/problems.js';
import type { InboundWebhook, StatusReport, VideoProvider, WebhookVerification } from '../upstream/provider.js';
import { PerTaskAllowance } from './per-task-allowance.js';
import type { Engine } from './engine.js';
import type { TaskRecord } from './task-records.js';
import { DuplicateInboundWebhookError, type InboundMark } from './task-repository.js';
import { attemptKeyOf, type Recovery } from './recovery.js';
import type { Tracker } from './tracker.js';

/** How long a sender is asked to wait when news arrives before its task is recorded. */
const WEBHOOK_RETRY_AFTER_S = 5;
/**
 * Beyond the provider's time limit, how long news kept here waits for another replica to record
 * the answer of the create it is about (then the safety poll is left to learn the rest).
 */
const ELSEWHERE_MARGIN_MS = 5_000;
/** At most this many tasks are followed here for news kept while another replica sends their create. */
const MAX_FOLLOWED_ELSEWHERE = 10_000;
/** At most this many tasks are remembered as confirmed lately for a callback (`confirmCallback`). */
const MAX_CONFIRMED_LATELY = 10_000;

/** A verified webhook that named the task of a create still on its way, applied once that create is recorded. */
interface NotedWebhook {
  providerTaskId: string;
  webhookId: string;
  report: StatusReport | undefined;
  requestId: string | undefined;
}

/**
 * News about a task whose create another replica is sending, kept here until that create's
 * answer is recorded there (the task leaves `submitting`).
 */
interface NewsAwaitingCreate {
  readonly provider: VideoProvider;
  /** The callback to act on: the latest, except that one claiming the task finished is not replaced by a progress one. */
  callback?: { body: unknown; claimsFinished: boolean };
  /** The signed webhook to apply (an attempt's upstream task is noted once, so one at most). */
  webhook?: NotedWebhook;
  /** Stops following the task. */
  stop(): void;
}

/** The first verification of `secrets` (tried in order) that succeeds, or the first's refusal when none does. */
function verifiedByAny(secrets: readonly string[], verify: (secret: string) => WebhookVerification): WebhookVerification {
  let refused: WebhookVerification | undefined;
  for (const secret of secrets) {
    const result = verify(secret);
    if (result.ok) return result;
    refused ??= result;
  }
  return refused!;
}

/** The body of the 200 answer to a provider. */
export type WebhookReceipt = { received: true; matched: boolean } | { received: true; duplicate: true };

export class InboundWebhooks {
  /** Webhooks and callbacks acted on once the create they came before is recorded (`whenRecorded`). */
  private readonly pending = new Set<Promise<void>>();
  /** News kept while another replica sends its task's create, by task id: one follow per task. */
  private readonly keptElsewhere = new Map<string, NewsAwaitingCreate>();
  /** Set by a stop: no task is followed for kept news any more. */
  private stopped = false;
  /** A confirming poll per task and `tracking.poll_min_interval_ms`, for callbacks (`confirmCallback`). */
  private readonly confirmations = new PerTaskAllowance(1, MAX_CONFIRMED_LATELY);

  constructor(
    private readonly engine: Engine,
    private readonly tracker: Tracker,
    /** Adopts the task of a create whose answer was lost, when news names it. */
    private readonly recovery?: Recovery,
  ) {}

  /** Whether `providerId`'s webhooks are signed (then a path token names an attempt, not a task). */
  isSigned(providerId: string): boolean {
    return this.engine.runtimes.get(providerId)?.provider.inboundWebhook === 'signed';
  }

  /**
   * A signed webhook to `/v1/webhooks/<provider>`, or to `/v1/webhooks/<provider>/<attempt key>`
   * (the path the gateway gives each create). Throws problem details when it is refused. Only
   * after the signature checks out does the path count: a webhook for a task the gateway never
   * recorded — its create's answer was lost — is matched to its attempt and the task adopted.
   * `onTask` is told the gateway's id of the task the webhook turned out to be about, for the
   * request's log line.
   */
  async receiveSigned(
    providerId: string,
    webhook: InboundWebhook,
    requestId?: string,
    attemptKey?: string,
    onTask?: (taskId: string) => void,
  ): Promise<WebhookReceipt> {
    const { runtimes, metrics, tasks, clock, logger } = this.engine;
    const runtime = runtimes.get(providerId);
    if (!runtime || runtime.provider.inboundWebhook !== 'signed' || !runtime.provider.verifyWebhook) {
      throw problems.notFound(`no signed webhooks for provider ${providerId}`);
    }
    const verify = runtime.provider.verifyWebhook.bind(runtime.provider);
    // Each account signs with its own secret: those that verify name the accounts the webhook may be from.
    const signers = runtime.accounts.filter((account) => account.webhookSecrets.length > 0);
    if (signers.length === 0) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'no_secret' });
      throw problems.notFound(`webhooks for ${providerId} are not configured (no webhook secret)`);
    }
    // An account holds several secrets while its provider rotates it: any one of them verifying is enough.
    const now = clock.now();
    const results = signers.map((account) => ({ account, result: verifiedByAny(account.webhookSecrets, (secret) => verify(webhook, secret, now)) }));
    const verifiedBy = new Set(results.filter(({ result }) => result.ok).map(({ account }) => account.id));
    const verification = results.find(({ result }) => result.ok)?.result ?? results[0]!.result;
    if (!verification.ok) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'rejected' });
      logger.warn({ provider: providerId, reason: verification.reason, request_id: requestId }, 'webhook rejected');
      throw new ProblemError(401, 'bad-signature', 'Webhook not verified', verification.reason);
    }
    if (verification.providerTaskId === undefined) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unreadable' });
      logger.warn(
        { provider: providerId, webhook_id: verification.webhookId, request_id: requestId },
        'signed webhook names no task; polling covers it',
      );
      return { received: true, matched: false };
    }
    const found = await tasks.findByProviderTask(providerId, verification.providerTaskId);
    if (found) onTask?.(found.id);
    // News about a task is believed only from the account that holds it (another account's
    // secret proves nothing about it).
    let task = found && (found.account === null || verifiedBy.has(found.account)) ? found : undefined;
    if (found && !task) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'rejected' });
      logger.warn({ provider: providerId, account: found.account, task_id: found.id, request_id: requestId }, 'webhook signed by another account than the task\'s');
      throw new ProblemError(401, 'bad-signature', 'Webhook not verified', 'signed by another account than the one holding the task');
    }
    if (!found && attemptKey && this.recovery) {
      // On an attempt's own path: the task of a create whose answer was lost, adopted when the
      // account that sent the create signed this.
      const adoption = await this.recovery.adoptNamed(providerId, attemptKey, verification.providerTaskId, { confirm: false, signedBy: verifiedBy });
      if (adoption.kind === 'foreign') {
        // As on the plain path: news is believed only from the account that holds the task.
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'rejected' });
        logger.warn({ provider: providerId, account: adoption.account, request_id: requestId }, "webhook signed by another account than the create's");
        throw new ProblemError(401, 'bad-signature', 'Webhook not verified', 'signed by another account than the one that sent the create');
      }
      if (adoption.kind === 'ruled_out') {
        // Logged by recovery; nothing here tracks it, and a retry would change nothing.
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'ruled_out' });
        return { received: true, matched: false };
      }
      if (adoption.kind === 'busy') {
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'retry_later' });
        throw problems.retryLater('the create this webhook is about is still being recorded; retry shortly', WEBHOOK_RETRY_AFTER_S);
      }
      if (adoption.kind === 'noted') {
        // Written on the attempt; the replica sending the create (or recovery) takes it from there.
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'noted' });
        // The sender is told it arrived and will not send it again: its news is applied once
        // the create's answer is recorded — here, or by the replica sending it — not left to the
        // safety poll.
        const webhook: NotedWebhook = { providerTaskId: verification.providerTaskId, webhookId: verification.webhookId, report: verification.report, requestId };
        if (adoption.recorded) this.applyOnceRecorded(providerId, webhook, adoption.recorded);
        else this.keepUntilRecordedElsewhere(runtime.provider, adoption.taskId, (news) => (news.webhook = webhook));
        return { received: true, matched: true };
      }
      if (adoption.kind === 'adopted') {
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'adopted' });
        task = adoption.task;
        if (task) onTask?.(task.id);
      }
    }
    if (!task) {
      // Not known (yet?). While a create to this provider is still being recorded it may be
      // about that task: ask the sender to retry shortly rather than drop the news. Otherwise it
      // is not ours (another client of the same account), and a retry would change nothing.
      if (await tasks.isSubmittingTo(providerId)) {
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'retry_later' });
        throw problems.retryLater('a create to this provider is still being recorded; retry shortly', WEBHOOK_RETRY_AFTER_S);
      }
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unmatched' });
      return { received: true, matched: false };
    }
    return this.apply(providerId, task, verification.webhookId, verification.report);
  }

  /** Applies a verified webhook's news to the task it names, once per webhook id. */
  private async apply(providerId: string, task: TaskRecord, webhookId: string, report: StatusReport | undefined): Promise<WebhookReceipt> {
    const { metrics, tasks, clock } = this.engine;
    // The id is remembered in the transaction of the change the webhook makes (a replay then
    // writes nothing), or on its own when it changes nothing.
    const mark: InboundMark = { provider: providerId, webhookId, at: clock.now(), remembered: false };
    const duplicate = () => {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'duplicate' });
      return { received: true, duplicate: true } as const;
    };
    try {
      // Read here, not through the upstream client that scrubs answers: the same secrets come out of it.
      await this.tracker.onWebhook(task, report && this.engine.secrets.scrubDeep(report), mark);
    } catch (error) {
      if (error instanceof DuplicateInboundWebhookError) return duplicate();
      // Not applied: forget the id so the sender's retry is not taken for a replay.
      if (mark.remembered) await tasks.forgetInboundWebhook(providerId, webhookId).catch(() => undefined);
      throw error;
    }
    if (!mark.remembered && !(await tasks.rememberInboundWebhook(providerId, webhookId, mark.at))) return duplicate();
    metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'applied' });
    return { received: true, matched: true };
  }

  /**
   * A verified webhook that named the task of a create still on its way in this process: applied
   * once that create's dispatch has ended and the task is tracked. If it is not tracked then (the
   * create was given up on, or the store failed), recovery and the polls take it from there.
   */
  private applyOnceRecorded(providerId: string, webhook: NotedWebhook, recorded: Promise<void>): void {
    this.whenRecorded(
      recorded,
      () => this.applyNoted(providerId, webhook),
      { provider: providerId, webhook_id: webhook.webhookId, request_id: webhook.requestId },
      'could not apply a webhook that came before its create was recorded',
    );
  }

  /** A noted webhook, applied to its task now that its create is recorded (nothing when that create was given up on). */
  private async applyNoted(providerId: string, webhook: NotedWebhook): Promise<void> {
    const task = await this.engine.tasks.findByProviderTask(providerId, webhook.providerTaskId);
    if (task) await this.apply(providerId, task, webhook.webhookId, webhook.report);
  }

  /** A callback kept until its task's create was recorded, acted on as on a tracked task (`mayWait` false). */
  private async actOnRecordedCallback(provider: VideoProvider, taskId: string, body: unknown): Promise<void> {
    const task = await this.engine.tasks.get(taskId);
    if (task && task.provider === provider.id) await this.actOnCallback(provider, task, body, false);
  }

  /** Runs `act` once the create `recorded` is about has ended; a graceful stop waits for it (`idle`). */
  private whenRecorded(recorded: Promise<void>, act: () => Promise<unknown>, logContext: Record<string, unknown>, failure: string): void {
    this.track(recorded.then(act), logContext, failure);
  }

  /** Work a graceful stop waits for (`idle`); its failure is logged. */
  private track(work: Promise<unknown>, logContext: Record<string, unknown>, failure: string): void {
    const late = work.then(() => undefined);
    this.pending.add(late);
    late.catch((error: unknown) => this.engine.logger.warn({ ...logContext, err: error }, failure)).finally(() => this.pending.delete(late));
  }

  /**
   * Keeps news (`add` puts it in) about a task whose create another replica is sending, and acts
   * on it as soon as this replica hears that the create's answer is recorded — the other
   * replica's change comes over the replica feed (`TaskEvents`) — rather than at the safety poll.
   * One follow per task however much news comes, bounded by the provider's time limit and a
   * margin (the task is read once more at its end, in case the message was lost); past it (the
   * sending replica died: recovery tracks the task from the attempt once its lease ends) or after
   * a stop, the safety poll learns the rest. Returns whether it is kept.
   */
  private keepUntilRecordedElsewhere(provider: VideoProvider, taskId: string, add: (news: NewsAwaitingCreate) => void): boolean {
    let news = this.keptElsewhere.get(taskId);
    if (!news) {
      if (this.stopped || this.keptElsewhere.size >= MAX_FOLLOWED_ELSEWHERE) return false;
      news = this.followElsewhere(provider, taskId);
    }
    add(news);
    return true;
  }

  /** Follows a task until it leaves `submitting` (then its kept news is acted on), for a bounded time. */
  private followElsewhere(provider: VideoProvider, taskId: string): NewsAwaitingCreate {
    const { events, clock, tasks, runtimes } = this.engine;
    const onChange = (task: TaskRecord) => {
      if (task.phase !== 'submitting') this.actOnKept(task.id);
    };
    const look = (then?: () => void) =>
      this.track(
        tasks
          .get(taskId)
          .then((task) => task && onChange(task))
          .finally(then),
        { provider: provider.id, task_id: taskId },
        'could not read a task whose create another replica is sending',
      );
    const unsubscribe = events.subscribe(taskId, onChange);
    const forMs = (runtimes.get(provider.id)?.config.timeout_ms ?? 0) + ELSEWHERE_MARGIN_MS;
    // A last look at the end catches a lost message up; then the news is let go.
    const timer = clock.setTimeout(() => look(() => this.dropKept(taskId)), forMs);
    const news: NewsAwaitingCreate = {
      provider,
      stop: () => {
        unsubscribe();
        timer.cancel();
      },
    };
    this.keptElsewhere.set(taskId, news);
    // The answer may have been recorded before this replica listened for it.
    look();
    return news;
  }

  /** The task's create was answered elsewhere: its kept news is acted on, as on the replica that sent it. */
  private actOnKept(taskId: string): void {
    const news = this.keptElsewhere.get(taskId);
    if (!news) return;
    this.dropKept(taskId);
    const { provider, callback, webhook } = news;
    this.track(
      (async () => {
        if (webhook) await this.applyNoted(provider.id, webhook);
        if (callback) await this.actOnRecordedCallback(provider, taskId, callback.body);
      })(),
      { provider: provider.id, task_id: taskId, ...(webhook ? { webhook_id: webhook.webhookId, request_id: webhook.requestId } : {}) },
      'could not act on news that came while another replica sent its create',
    );
  }

  private dropKept(taskId: string): void {
    this.keptElsewhere.get(taskId)?.stop();
    this.keptElsewhere.delete(taskId);
  }

  /**
   * A stop no longer follows tasks whose create another replica is sending: waiting for that
   * replica's answer could outlast the stop's own budget, and nothing is lost by not waiting —
   * the upstream id is on the attempt, so the task's own tracking (its safety poll) learns the
   * rest. News already being acted on is still waited for (`idle`).
   */
  stopFollowing(): void {
    this.stopped = true;
    for (const taskId of [...this.keptElsewhere.keys()]) this.dropKept(taskId);
  }

  /** Resolves once the webhooks and callbacks waiting for their create to be recorded have been acted on. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /**
   * An unsigned callback to `/v1/webhooks/<provider>/<token>`; `body` is its parsed JSON, if it
   * parsed. `onTask` is told the id of the task the token belongs to.
   */
  async receiveCallback(providerId: string, token: string, body: unknown, onTask?: (taskId: string) => void): Promise<WebhookReceipt> {
    const { runtimes, metrics, tasks } = this.engine;
    const runtime = runtimes.get(providerId);
    if (!runtime || runtime.provider.inboundWebhook !== 'token') {
      throw problems.notFound(`no callbacks for provider ${providerId}`);
    }
    const task = await tasks.findByCallbackToken(token);
    if (task) {
      const news = await this.newsOfCreateLeftBehind(runtime.provider, task, body);
      if (news) {
        onTask?.(task.id);
        return news;
      }
    }
    if (!task || task.provider !== providerId) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unknown_token' });
      throw problems.notFound('unknown callback');
    }
    onTask?.(task.id);
    return this.actOnCallback(runtime.provider, task, body, true);
  }

  /**
   * A callback on `task`'s token naming an upstream task the task does not track, while a create
   * of it to this provider was left without one (failed over from, left in doubt as the task
   * ended, counted as not accepted): the provider may hold that task and bill it. Confirmed by
   * the provider's status answer (`Recovery.adoptNamed`), then adopted while the task waits in the
   * queue, or else reported as a task nobody tracks (error log, `untracked_upstream_tasks_total`)
   * and answered `200`: the news was received, and a resend would change nothing. Undefined when
   * no such create is there or the provider does not show the task (then the callback is
   * answered as before).
   */
  private async newsOfCreateLeftBehind(provider: VideoProvider, task: TaskRecord, body: unknown, mayWait = true): Promise<WebhookReceipt | undefined> {
    const { metrics, tasks } = this.engine;
    const named = provider.readCallbackTaskId?.(body);
    if (!named || !this.recovery) return undefined;
    // The task's own news (`actOnCallback`): a create to this provider on its way, or its tracked task.
    if (task.provider === provider.id && (task.phase === 'submitting' || task.providerTaskId === named)) return undefined;
    const attempts = await tasks.attempts(task.id);
    const leftBehind = attempts.filter((attempt) => attempt.provider === provider.id && !attempt.providerTaskId).reverse();
    // A task another gateway task tracks is not one nobody tracks (the callback is answered as before).
    if (leftBehind.length === 0 || (await tasks.findByProviderTask(provider.id, named))) return undefined;
    // A create to another provider on its way in this process: whether the task is still to be
    // taken (adopted here) or went on (reported) is known once its dispatch ends. A callback may
    // come only once (the legacy Kling-API documents no retries), so it is kept until then, not
    // answered 503.
    const last = attempts[attempts.length - 1];
    const recorded = mayWait && task.phase === 'submitting' && last ? this.recovery.createOnItsWayHere(task, last) : undefined;
    if (recorded) {
      metrics.inboundWebhooks.inc({ provider: provider.id, outcome: 'awaiting_create' });
      this.whenRecorded(
        recorded,
        async () => {
          const now = await tasks.get(task.id);
          if (now) await this.newsOfCreateLeftBehind(provider, now, body, false);
        },
        { provider: provider.id, task_id: task.id },
        'could not act on a callback about a create left behind that came while another create was on its way',
      );
      return { received: true, matched: true };
    }
    for (const attempt of leftBehind) {
      const adoption = await this.recovery.adoptNamed(provider.id, attemptKeyOf(task.id, attempt.seq), named, { confirm: true });
      switch (adoption.kind) {
        case 'none':
          continue;
        case 'ruled_out':
          // Logged and counted by recovery; nothing here tracks it.
          metrics.inboundWebhooks.inc({ provider: provider.id, outcome: 'ruled_out' });
          return { received: true, matched: false };
        case 'adopted':
          metrics.inboundWebhooks.inc({ provider: provider.id, outcome: 'adopted' });
          if (adoption.task) await this.tracker.pollSoon(adoption.task);
          return { received: true, matched: true };
        case 'busy':
          metrics.inboundWebhooks.inc({ provider: provider.id, outcome: 'retry_later' });
          throw problems.retryLater('the task this callback is about is changing, or its provider could not be asked now; retry shortly', WEBHOOK_RETRY_AFTER_S);
        default:
          metrics.inboundWebhooks.inc({ provider: provider.id, outcome: adoption.kind === 'kept' ? 'kept_unconfirmed' : 'noted' });
          return { received: true, matched: true };
      }
    }
    return undefined;
  }

  /**
   * What a callback on `task`'s token makes the gateway do. `mayWait`: when the create it is
   * about is still on its way in this process, it is acted on once that create's answer is
   * recorded (`actOnceRecorded`) rather than refused.
   */
  private async actOnCallback(provider: VideoProvider, task: TaskRecord, body: unknown, mayWait: boolean): Promise<WebhookReceipt> {
    const { metrics, tasks } = this.engine;
    const providerId = provider.id;
    const named = provider.readCallbackTaskId?.(body);
    if (task.phase === 'submitting') {
      const attempts = await tasks.attempts(task.id);
      const last = attempts[attempts.length - 1];
      const sent = last && last.provider === providerId ? last : undefined;
      const recorded = mayWait && sent ? this.recovery?.createOnItsWayHere(task, sent) : undefined;
      if (recorded) {
        // A callback may come only once (the legacy Kling-API documents no retries): a 503 would
        // leave its news to the safety poll. The create's answer says which upstream task this
        // is; the callback is acted on then, checked against it like any other.
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'awaiting_create' });
        this.actOnceRecorded(provider, task.id, body, recorded);
        return { received: true, matched: true };
      }
      if (sent?.outcome === 'accepted' && sent.providerTaskId) {
        // Its upstream task is already on the attempt (news noted it, or the answer is being
        // recorded): checked against it now, and acted on once the task is tracked.
        if (named && named !== sent.providerTaskId) throw this.mismatch(providerId);
        if (this.keepCallback(provider, task.id, body)) {
          metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'awaiting_create' });
          return { received: true, matched: true };
        }
      }
      if (named && sent && this.recovery) {
        // A create whose answer was lost: the callback names its task, which the provider confirms.
        const adoption = await this.recovery.adoptNamed(providerId, attemptKeyOf(task.id, sent.seq), named, { confirm: true });
        if (adoption.kind === 'adopted') {
          metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'adopted' });
          if (adoption.task) await this.tracker.pollSoon(adoption.task);
          return { received: true, matched: true };
        }
        if (adoption.kind === 'noted') {
          // Written on the attempt; the replica sending the create (or recovery) tracks the task,
          // and the callback is acted on here once that create's answer is recorded.
          metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'noted' });
          this.keepCallback(provider, task.id, body);
          return { received: true, matched: true };
        }
        if (adoption.kind === 'ruled_out') {
          // A task the provider showed for a create nothing tracks any more: logged and counted by recovery.
          metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'ruled_out' });
          return { received: true, matched: false };
        }
        if (adoption.kind === 'kept') {
          // The provider could not be asked now (no answer, a server error, throttling): the task
          // it names is kept on the attempt and asked about again by recovery, not refused with
          // "retry later" — a callback may come only once.
          metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'kept_unconfirmed' });
          this.keepCallback(provider, task.id, body);
          return { received: true, matched: true };
        }
      }
      // Acted on late, the create's dispatch here has ended without tracking the task (given up
      // on, or the store failed): recovery and the polls take it from there.
      if (!mayWait) return { received: true, matched: false };
      // The create's answer is not recorded yet, so there is nothing to confirm against: retry.
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'retry_later' });
      throw problems.retryLater('the create is still being recorded; retry shortly', WEBHOOK_RETRY_AFTER_S);
    }
    if (named && task.providerTaskId && named !== task.providerTaskId) throw this.mismatch(providerId);
    // Unsigned: believe nothing in the body. A claim that the task finished is confirmed by
    // asking the provider now; so is news of a task still in the provider's queue (`queued`: it
    // may run now, which its caller would otherwise learn only at the safety poll). A progress
    // claim about a running task changes nothing and waits for the next poll.
    const claimsFinished = provider.callbackClaimsFinished?.(body) ?? true;
    metrics.inboundWebhooks.inc({ provider: providerId, outcome: claimsFinished ? 'confirming' : 'progress' });
    if (claimsFinished || task.status === 'queued') await this.confirmCallback(task);
    return { received: true, matched: true };
  }

  /**
   * Asks the provider about `task` for a callback: at once, unless a callback made it due less
   * than `tracking.poll_min_interval_ms` ago here; then once that interval has passed (the task's
   * poll is made due then, no sooner). Whoever holds a task's callback URL may post to it as often
   * as they like; without this each post cost one status call on the account, whose rate windows
   * every tenant's creates and polls share. A callback that comes sooner is confirmed late, not
   * dropped: the task may have finished just after the last confirmation.
   */
  private async confirmCallback(task: TaskRecord): Promise<void> {
    const { clock, config } = this.engine;
    const taken = this.confirmations.take(task.id, clock.now(), config.tracking.poll_min_interval_ms);
    if (taken === true) await this.tracker.pollSoon(task);
    else await this.tracker.lifecycle.pollBy(task, taken);
  }

  /** A callback naming another upstream task than its task's: counted, and refused. */
  private mismatch(providerId: string): ProblemError {
    this.engine.metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'mismatch' });
    return problems.validation([{ path: 'task_id', message: 'does not match this callback' }]);
  }

  /** Keeps a callback until the task's create is recorded by the replica sending it (`keepUntilRecordedElsewhere`). */
  private keepCallback(provider: VideoProvider, taskId: string, body: unknown): boolean {
    const claimsFinished = provider.callbackClaimsFinished?.(body) ?? true;
    return this.keepUntilRecordedElsewhere(provider, taskId, (news) => {
      if (!news.callback?.claimsFinished || claimsFinished) news.callback = { body, claimsFinished };
    });
  }

  /**
   * A callback that came while its task's create was on its way in this process: acted on once
   * that create's dispatch has ended, on the task as it was then recorded (a callback naming
   * another upstream task than the answer's is not believed). Not awaited by its sender, but by
   * a graceful stop (`idle`).
   */
  private actOnceRecorded(provider: VideoProvider, taskId: string, body: unknown, recorded: Promise<void>): void {
    this.whenRecorded(
      recorded,
      () => this.actOnRecordedCallback(provider, taskId, body),
      { provider: provider.id, task_id: taskId },
      'could not act on a callback that came before its create was recorded',
    );
  }
}
