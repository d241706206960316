/**
 * The engine's door to the store: the same operations as `TaskStore`, in typed records
 * (`task-records.ts`) instead of rows. The store keeps the guarantees (conditional updates,
 * slot claims, leases); this class only maps, so it adds no round-trip.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.js';
import type { AttemptOutcome } from '../model/canonical.js';
import type { OpenTransaction } from '../upstream/provider-state.js';
import { FairShares, type WaitingTask } from './fair-queue.js';
import { LAST_LOOK_GRACE_MS } from './polling.js';
import type { DeliveryShare, ListQuery, NewTaskClaim, SlotClaim, TaskRow, TaskStore, TrackingScope } from '../../store/task-store.js';
import {
  UsageStore,
  type BudgetOpening,
  type UsageAtRiskSums,
  type UsageFilter,
  type UsageGroupColumn,
  type UsageMedian,
  type UsageSums,
} from '../../store/usage-store.js';
import {
  attemptFromRow,
  budgetFromRow,
  candidateProviders,
  patchFromUsageChange,
  rowFromUsage,
  usageFromRow,
  deliveryFromRow,
  deliveryStateFromRow,
  patchFromAttemptChange,
  patchFromChange,
  rowFromAttempt,
  rowFromDelivery,
  rowFromTask,
  taskFromRow,
  type AttemptChange,
  type AttemptRecord,
  type DeliveryRecord,
  type DeliveryResult,
  type DeliveryState,
  type NewAttempt,
  type NewDelivery,
  type TaskChange,
  type TaskPhase,
  type TaskRecord,
  type BudgetRecord,
  type UsageChange,
  type UsageRecord,
} from './task-records.js';

/**
 * A provider webhook about to change a task: its id is remembered in the transaction of the
 * first change it makes (a replay then writes nothing), and `remembered` says it was.
 */
export interface InboundMark {
  provider: string;
  webhookId: string;
  at: number;
  remembered: boolean;
}

/** The attempt written with a change had moved on from the outcome it was to still have: nothing was written. */
class AttemptMovedOnError extends Error {}

/** The webhook was seen before: the change it would make was not written. */
export class DuplicateInboundWebhookError extends Error {
  constructor(
    readonly provider: string,
    readonly webhookId: string,
  ) {
    super(`webhook ${webhookId} from ${provider} was already received`);
  }
}

export type { UsageAtRiskSums, UsageFilter, UsageGroupColumn, UsageMedian, UsageSums };

/** What a provider may have charged for a finished task besides the task's own charge (`usage_at_risk`). Money in millionths. */
export interface ChargeAtRiskLine {
  taskId: string;
  provider: string;
  account: string | null;
  tenant: string;
  createdAt: number;
  day: string;
  model: string;
  quality: string;
  operation: string;
  credits: number | null;
  amountMicros: number | null;
  currency: string | null;
}

/**
 * What may be written inside a task's own transaction (its insert or a status change) about
 * money: its usage line, its tenant's budget counters, and account events. In records.
 */
export interface LedgerTransaction {
  usage(taskId: string): Promise<UsageRecord | undefined>;
  insertUsage(usage: UsageRecord): Promise<void>;
  updateUsage(taskId: string, change: UsageChange): Promise<void>;
  /** Writes `change` on a line that is not settled and reserves no budget (most lines): false, writing nothing, otherwise. */
  updateUnbudgetedUsage(taskId: string, change: UsageChange): Promise<boolean>;
  /**
   * Adds to the reserve if spent + reserved + amount stays within the limit; undefined (nothing
   * written) otherwise. A period's row created here starts from what `opening` finds (`BudgetOpening`).
   */
  reserve(input: {
    tenant: string;
    period: string;
    amountMicros: number;
    limitMicros: number;
    now: number;
    opening: BudgetOpening;
  }): Promise<BudgetRecord | undefined>;
  /** Moves money unconditionally (the upstream already holds it). */
  changeBudget(input: {
    tenant: string;
    period: string;
    reservedDeltaMicros: number;
    spentDeltaMicros: number;
    now: number;
  }): Promise<BudgetRecord | undefined>;
  budget(tenant: string, period: string): Promise<BudgetRecord | undefined>;
  /** Records that an alert went out for this period; true only for the first caller. */
  markBudgetAlert(input: { tenant: string; period: string; alert: 'warned' | 'exhausted'; at: number; opening: BudgetOpening }): Promise<boolean>;
  queueDelivery(delivery: NewDelivery): Promise<void>;
  /** The task's attempts as this transaction sees them. */
  attempts(taskId: string): Promise<AttemptRecord[]>;
  insertChargesAtRisk(lines: readonly ChargeAtRiskLine[]): Promise<void>;
}

/** The condition a change is written under: the task must still be where the caller left it. */
export interface ChangeCondition {
  /** Phases the task must still be in. */
  phases?: readonly TaskPhase[];
  /** Lease the caller must still hold (`null`: no lease held; undefined: not checked). */
  leaseOwner?: string | null;
  /** The version the caller read: any change since voids this one (undefined: not checked). */
  version?: number;
  /** Whether a cancel request must be pending (true) or not (false) (undefined: not checked). */
  cancelRequested?: boolean;
  /** No live lease at this time (undefined: not checked): a lease taken since voids the change. */
  leaseFreeAt?: number;
}

export type CreateOutcome =
  | {
      created: true;
      task: TaskRecord;
      /** What came of the first slot claim asked for: taken with the first attempt written (its seq), or why not. */
      first?: { claimed: true; seq: number } | { claimed: false; why: 'queue' | 'full' | 'refused' };
    }
  | { created: false; existing: { taskId: string; requestHash: string } };

export type { SlotClaim };
/** What a replica can poll or settle (`askable-scope.ts`), for the files of `core/tasks/` that may not import `store/`. */
export type { TrackingScope };

/** A slot claimed in the transaction that creates the task (`TaskStore.createTask`), with its first attempt. */
export interface FirstClaim extends SlotClaim {
  /** Leave to call the provider now, asked last, inside that transaction (`ProviderAccount.admitWithin`). */
  admit: (transaction: OpenTransaction) => Promise<boolean>;
  attempt: NewAttempt;
  /** The slot's `now` and `leaseUntil` once the provider's lock is held (the create may have waited for it): the lease and the attempt's time count from then. */
  lockedAt: () => Pick<SlotClaim, 'now' | 'leaseUntil'>;
}

/** Tasks holding each provider's slots, and tasks waiting for one. */
export interface TaskLoad {
  /** Tasks in flight with the provider (all accounts), or with one of its accounts. */
  inFlight(provider: string, account?: string): number;
  queued: number;
  /** Creation time of the oldest waiting task, null when none waits. */
  oldestQueuedAt: number | null;
}

export class TaskRepository {
  private readonly usageStore: UsageStore;

  constructor(
    private readonly store: TaskStore,
    usageStore?: UsageStore,
  ) {
    this.usageStore = usageStore ?? new UsageStore(store.store);
  }

  /** The ledger operations bound to one open transaction. */
  private ledgerIn(db: Kysely<Database>): LedgerTransaction {
    const usage = this.usageStore;
    return {
      usage: async (taskId) => {
        const row = await usage.getUsage(taskId, db);
        return row && usageFromRow(row);
      },
      insertUsage: (record) => usage.insertUsage(db, rowFromUsage(record)),
      updateUsage: (taskId, change) => usage.updateUsage(db, taskId, patchFromUsageChange(change)),
      updateUnbudgetedUsage: (taskId, change) => usage.updateUnbudgetedUsage(db, taskId, patchFromUsageChange(change)),
      reserve: async (input) => {
        const row = await usage.reserve(db, {
          tenant: input.tenant,
          period: input.period,
          amount: input.amountMicros,
          limit: input.limitMicros,
          now: input.now,
          opening: input.opening,
        });
        return row && budgetFromRow(row);
      },
      changeBudget: async (input) => {
        const row = await usage.changeBudget(db, {
          tenant: input.tenant,
          period: input.period,
          reservedDelta: input.reservedDeltaMicros,
          spentDelta: input.spentDeltaMicros,
          now: input.now,
        });
        return row && budgetFromRow(row);
      },
      budget: async (tenant, period) => {
        const row = await usage.getBudget(tenant, period, db);
        return row && budgetFromRow(row);
      },
      markBudgetAlert: (input) =>
        usage.markBudgetAlert(db, {
          tenant: input.tenant,
          period: input.period,
          column: input.alert === 'warned' ? 'warned_at' : 'exhausted_at',
          at: input.at,
          opening: input.opening,
        }),
      queueDelivery: (delivery) => this.store.insertDelivery(rowFromDelivery(delivery), db),
      attempts: async (taskId) => (await this.store.getAttemptsIn(db, taskId)).map(attemptFromRow),
      insertChargesAtRisk: (lines) =>
        usage.insertAtRisk(
          db,
          lines.map((line) => ({
            task_id: line.taskId,
            provider: line.provider,
            account: line.account,
            tenant: line.tenant,
            created_at: line.createdAt,
            day: line.day,
            model: line.model,
            quality: line.quality,
            operation: line.operation,
            credits: line.credits,
            amount_micros: line.amountMicros,
            currency: line.currency,
          })),
        ),
    };
  }

  /** Runs ledger work in a transaction of its own (e.g. an alert about a refused create). */
  inLedgerTransaction<T>(work: (ledger: LedgerTransaction) => Promise<T>): Promise<T> {
    return this.usageStore.transaction((db) => work(this.ledgerIn(db)));
  }

  /** A tenant's budget counters for one period, if any money moved in it. */
  async budget(tenant: string, period: string): Promise<BudgetRecord | undefined> {
    const row = await this.usageStore.getBudget(tenant, period);
    return row && budgetFromRow(row);
  }

  /**
   * What a tenant's budget row for a period would start from if a create made it now (money in
   * millionths): for a budget no create has touched in its period yet.
   */
  budgetOpening(tenant: string, period: string, opening: BudgetOpening): Promise<{ spent: number; reserved: number }> {
    return this.usageStore.openingFigures(tenant, period, opening);
  }

  /**
   * What an existing budget row of a period does not count yet and its next use adds (money in
   * millionths): tasks created while the budget was out of the configuration.
   */
  budgetPending(tenant: string, period: string, opening: BudgetOpening): Promise<{ spent: number; reserved: number }> {
    return this.usageStore.pendingFigures(tenant, period, opening);
  }

  /** Usage sums per group (plus currency, status and whether the figure was reported). */
  usageSums(filter: UsageFilter, groupBy: readonly UsageGroupColumn[]): Promise<UsageSums[]> {
    return this.usageStore.sums(filter, groupBy);
  }

  /** Charges other providers may have made for finished tasks, per group plus currency. */
  usageAtRiskSums(filter: UsageFilter, groupBy: readonly UsageGroupColumn[]): Promise<UsageAtRiskSums[]> {
    return this.usageStore.atRiskSums(filter, groupBy);
  }

  /** Median time to complete of the tasks with `status`, per group plus currency. */
  usageMedians(filter: UsageFilter, groupBy: readonly UsageGroupColumn[], status: string): Promise<UsageMedian[]> {
    return this.usageStore.medianDurations(filter, groupBy, status);
  }

  async usage(taskId: string): Promise<UsageRecord | undefined> {
    const row = await this.usageStore.getUsage(taskId);
    return row && usageFromRow(row);
  }

  /** Which engine holds the tasks (`sqlite`, `postgres`). */
  get engineName(): string {
    return this.store.store.dialect;
  }

  /** Whether other replicas may share this database (their leases must then run out by themselves). */
  get sharedByReplicas(): boolean {
    return this.store.store.shared;
  }

  ping(): Promise<void> {
    return this.store.ping();
  }

  registerProviders(ids: readonly string[]): Promise<void> {
    return this.store.registerProviders(ids);
  }

  /**
   * Inserts a new task, with its idempotency key in the same transaction, and `alongside`'s
   * ledger writes (its usage line, a budget reservation). If `alongside` throws, nothing is written.
   */
  async create(
    task: TaskRecord,
    idempotency?: { key: string; requestHash: string; expiresAt: number },
    alongside?: (ledger: LedgerTransaction) => Promise<void>,
    /**
     * A slot of the first provider taken in the same transaction, with the first attempt written
     * `sending` (unless an older task waits for one of the task's providers, the account is full,
     * or `admit` says no: then the task is created queued).
     */
    claim?: FirstClaim,
  ): Promise<CreateOutcome> {
    let first: NewTaskClaim | undefined;
    if (claim) {
      const { task_id: _taskId, ...attemptRow } = rowFromAttempt(task.id, claim.attempt);
      first = { ...claim, providers: task.plan.candidates.map((entry) => entry.provider), attempt: attemptRow };
    }
    const outcome = await this.store.createTask(rowFromTask(task), idempotency, alongside && ((trx) => alongside(this.ledgerIn(trx))), first);
    if (!outcome.created) return outcome;
    return { created: true, task: taskFromRow(outcome.task), ...(outcome.first ? { first: outcome.first } : {}) };
  }

  /**
   * Who made the result with this provider id (`outputs[].upstream_id`, what `video_id` names):
   * a task of another tenant than `tenant`; else the provider and account of `tenant`'s newest
   * task that made it (such a video exists only in that upstream account); undefined when no task
   * made one.
   */
  async sourceVideoMaker(
    upstreamId: string,
    tenant: string,
  ): Promise<{ anotherTenant: true } | { anotherTenant: false; taskId: string; provider: string; account: string | null } | undefined> {
    const row = await this.store.outputIdMaker(upstreamId, tenant);
    if (!row) return undefined;
    return row.another_tenant ? { anotherTenant: true } : { anotherTenant: false, taskId: row.task_id, provider: row.provider, account: row.account };
  }

  /** The task an unexpired idempotency key of `tenant` made, and the hash of the body it came with. */
  async idempotencyKey(tenant: string, key: string, now: number): Promise<{ taskId: string; requestHash: string } | undefined> {
    const row = await this.store.getIdempotencyKey(tenant, key);
    return row && row.expires_at > now ? { taskId: row.task_id, requestHash: row.request_hash } : undefined;
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    const row = await this.store.getTask(id);
    return row && taskFromRow(row);
  }

  /** The task and its attempts, read together (one statement). */
  async getWithAttempts(id: string): Promise<{ task: TaskRecord; attempts: AttemptRecord[] } | undefined> {
    const found = await this.store.getTaskWithAttempts(id);
    return found && { task: taskFromRow(found.task), attempts: found.attempts.map(attemptFromRow) };
  }

  async list(query: ListQuery): Promise<TaskRecord[]> {
    return (await this.store.listTasks(query)).map(taskFromRow);
  }

  async attempts(taskId: string): Promise<AttemptRecord[]> {
    return (await this.store.getAttempts(taskId)).map(attemptFromRow);
  }

  async attemptsOf(taskIds: readonly string[]): Promise<Map<string, AttemptRecord[]>> {
    const rows = await this.store.getAttemptsFor(taskIds);
    return new Map([...rows].map(([taskId, attempts]) => [taskId, attempts.map(attemptFromRow)]));
  }

  /**
   * Writes `change` if `condition` still holds, and queues the delivery `delivery` builds from
   * the changed task in the same transaction, with `alongside`'s ledger writes. Undefined when
   * the condition no longer held. The lifecycle is the only caller: every status change goes
   * through it.
   */
  async update(
    id: string,
    change: TaskChange,
    condition: ChangeCondition,
    writes: {
      /** The client's webhook to queue, built from the changed task. */
      delivery?: (task: TaskRecord) => NewDelivery | undefined;
      /** Ledger writes that go with the change. */
      alongside?: (ledger: LedgerTransaction, changed: TaskRecord) => Promise<void>;
      /**
       * An attempt's change written with the task's (only if the task's is). `still`: only while
       * the attempt's outcome is still that; else nothing is written.
       */
      attempt?: { seq: number; change: AttemptChange; still?: AttemptOutcome };
      /** The provider webhook this change comes from, remembered in the same transaction (see `InboundMark`). */
      inbound?: InboundMark;
    } = {},
  ): Promise<TaskRecord | undefined> {
    const { delivery, alongside, attempt } = writes;
    // A webhook is remembered by the first change it makes; a replay writes nothing.
    const inbound = writes.inbound && !writes.inbound.remembered ? writes.inbound : undefined;
    // The changed row is mapped to a record once, however many of the hooks read it.
    let record: { row: TaskRow; task: TaskRecord } | undefined;
    const recordOf = (row: TaskRow): TaskRecord => {
      if (record?.row !== row) record = { row, task: taskFromRow(row) };
      return record.task;
    };
    // The provider's ids of the results this change writes, noted with the tenant that made them (`sourceVideoMaker`).
    const upstreamIds = [...new Set((change.outputs ?? []).flatMap((output) => (output.upstreamId ? [output.upstreamId] : [])))];
    const writesAlongside = alongside !== undefined || attempt !== undefined || upstreamIds.length > 0;
    const updating = this.store.updateTask(
      id,
      patchFromChange(change),
      condition,
      delivery &&
        ((changed) => {
          const queued = delivery(recordOf(changed));
          return queued && rowFromDelivery(queued);
        }),
      writesAlongside
        ? async (trx, changed) => {
            if (attempt?.still !== undefined) {
              if (!(await this.store.updateAttemptStill(id, attempt.seq, attempt.still, patchFromAttemptChange(attempt.change), trx))) throw new AttemptMovedOnError();
            } else if (attempt) await this.store.updateAttempt(id, attempt.seq, patchFromAttemptChange(attempt.change), trx);
            if (upstreamIds.length > 0 && changed.provider !== null) {
              await this.store.recordOutputIds({ id, tenant: changed.tenant, provider: changed.provider }, upstreamIds, trx);
            }
            await alongside?.(this.ledgerIn(trx), recordOf(changed));
          }
        : undefined,
      inbound &&
        (async (trx) => {
          if (!(await this.store.rememberInboundWebhook(inbound.provider, inbound.webhookId, inbound.at, trx))) {
            throw new DuplicateInboundWebhookError(inbound.provider, inbound.webhookId);
          }
        }),
    );
    let row: TaskRow | undefined;
    try {
      row = await updating;
    } catch (error) {
      if (error instanceof AttemptMovedOnError) return undefined;
      throw error;
    }
    if (inbound) inbound.remembered = true;
    return row && recordOf(row);
  }

  /** Takes a slot of `provider`'s `account` and moves the task into `submitting` under `owner`'s lease (see `TaskStore.claimSlot`). */
  async claimSlot(task: TaskRecord, slot: SlotClaim): Promise<TaskRecord | undefined> {
    const row = await this.store.claimSlot({ ...slot, taskId: task.id, fromPhases: [task.phase] });
    return row && taskFromRow(row);
  }

  /** Whether any task waits in the queue: what a freed slot asks before it starts a dispatch pass. */
  anyQueued(): Promise<boolean> {
    return this.store.anyQueued();
  }

  async listDispatchable(now: number, limit: number, after?: { createdAt: number; id: string }): Promise<TaskRecord[]> {
    return (await this.store.listDispatchable(now, limit, after)).map(taskFromRow);
  }

  /** The whole dispatchable queue, oldest first, as a pass orders it (`fairOrder`). */
  async listDispatchableQueue(now: number): Promise<WaitingTask[]> {
    return (await this.store.listDispatchableQueue(now)).map((row) => ({
      id: row.id,
      tenant: row.tenant,
      createdAt: row.created_at,
      providers: candidateProviders(row.candidates),
    }));
  }

  /** Those of `ids` still dispatchable at `now`, in no particular order. */
  async getDispatchable(now: number, ids: readonly string[]): Promise<TaskRecord[]> {
    return (await this.store.getDispatchable(now, ids)).map(taskFromRow);
  }

  /** Tasks holding a slot, and when one last took a slot, by tenant and provider: what the queue's fair order weighs. */
  async fairShares(): Promise<FairShares> {
    const [inFlight, turns] = await Promise.all([this.store.countInFlightByTenant(), this.store.listTenantTurns()]);
    return new FairShares(
      inFlight,
      turns.map((turn) => ({ tenant: turn.tenant, provider: turn.provider, servedAt: turn.served_at })),
    );
  }

  /** Whether an older task still waits for one of this task's providers (then this one queues behind it). */
  hasOlderWaitingTask(task: TaskRecord): Promise<boolean> {
    return this.store.hasOlderWaitingTask(
      task.createdAt,
      task.id,
      task.plan.candidates.map((entry) => entry.provider),
    );
  }

  /**
   * Leases up to `limit` tracked tasks due for a poll; with `only`, those of the `provider:account`
   * keys it names, and others only once their poll has waited `only.strandedAfterMs`.
   */
  async claimDueForTracking(
    now: number,
    owner: string,
    leaseMs: number,
    limit: number,
    only?: TrackingScope,
  ): Promise<TaskRecord[]> {
    return (await this.store.claimDueForTracking(now, owner, leaseMs, limit, only)).map(taskFromRow);
  }

  /** Leases up to `limit` succeeded tasks with an output whose later copy is due. */
  async claimDueForRecopy(now: number, owner: string, leaseMs: number, limit: number): Promise<TaskRecord[]> {
    return (await this.store.claimDueForRecopy(now, owner, leaseMs, limit)).map(taskFromRow);
  }

  async claimDueForStorage(now: number, owner: string, leaseMs: number, limit: number): Promise<TaskRecord[]> {
    return (await this.store.claimDueForStorage(now, owner, leaseMs, limit)).map(taskFromRow);
  }

  /** Queued tasks whose `cancel_after` has passed. */
  async listCancelDue(now: number, limit: number): Promise<TaskRecord[]> {
    return (await this.store.listCancelDue(now, limit)).map(taskFromRow);
  }

  /** Finished tasks with a stored output whose retention ended. */
  async listStorageExpired(now: number, limit: number, after?: { storageExpiresAt: number; id: string }): Promise<TaskRecord[]> {
    return (await this.store.listStorageExpired(now, limit, after)).map(taskFromRow);
  }

  /**
   * Submissions whose owner's lease ran out; with `only`, those of the `provider:account` keys it
   * names, and others only once their lease has been out `only.strandedAfterMs`.
   */
  async listAbandonedSubmissions(now: number, limit: number, only?: TrackingScope): Promise<TaskRecord[]> {
    return (await this.store.listAbandonedSubmissions(now, limit, only)).map(taskFromRow);
  }

  async listOverdue(now: number, limit: number): Promise<TaskRecord[]> {
    return (await this.store.listOverdue(now, limit, LAST_LOOK_GRACE_MS)).map(taskFromRow);
  }

  async findByProviderTask(provider: string, providerTaskId: string): Promise<TaskRecord | undefined> {
    const row = await this.store.findByProviderTask(provider, providerTaskId);
    return row && taskFromRow(row);
  }

  /** Which of these upstream task ids an attempt at `provider` recorded. */
  knownProviderTaskIds(provider: string, providerTaskIds: readonly string[]): Promise<ReadonlySet<string>> {
    return this.store.knownProviderTaskIds(provider, providerTaskIds);
  }

  /** How many upstream tasks the gateway recorded on `account` at `provider` whose tracking holds `tracking`'s values. */
  countRecordedProviderTasks(provider: string, account: string, tracking: Readonly<Record<string, string>>): Promise<number> {
    return this.store.countRecordedProviderTasks(provider, account, tracking);
  }

  async findByCallbackToken(token: string): Promise<TaskRecord | undefined> {
    const row = await this.store.findByCallbackToken(token);
    return row && taskFromRow(row);
  }

  /** Whether a create to `provider` is being sent right now (its answer not yet recorded). */
  isSubmittingTo(provider: string): Promise<boolean> {
    return this.store.isSubmittingTo(provider);
  }

  /** Appends an attempt; returns its sequence number. */
  addAttempt(taskId: string, attempt: NewAttempt): Promise<number> {
    return this.store.addAttempt(rowFromAttempt(taskId, attempt));
  }

  /**
   * Writes a create's attempt while the task is still `submitting` under `hold.owner`'s lease, renewing
   * that lease (and moving the task's version) in the same transaction: its seq, or undefined,
   * with nothing written, when the task is not held so any more (see `TaskStore.addHeldAttempt`).
   */
  addHeldAttempt(taskId: string, attempt: NewAttempt, hold: { owner: string; leaseUntil: number }): Promise<number | undefined> {
    return this.store.addHeldAttempt(rowFromAttempt(taskId, attempt), hold);
  }

  updateAttempt(taskId: string, seq: number, change: AttemptChange): Promise<void> {
    return this.store.updateAttempt(taskId, seq, patchFromAttemptChange(change));
  }

  /** Writes `change` on an attempt still `sending` with no upstream id; false when it has moved on. */
  updateSendingAttempt(taskId: string, seq: number, change: AttemptChange): Promise<boolean> {
    return this.store.updateSendingAttempt(taskId, seq, patchFromAttemptChange(change));
  }

  /** Tasks in flight with each account of `provider`, by account id. */
  inFlightByAccount(provider: string): Promise<Map<string, number>> {
    return this.store.countInFlightByAccount(provider);
  }

  async load(): Promise<TaskLoad> {
    const counts = await this.store.countByPhase();
    let queued = 0;
    for (const [key, count] of counts) if (key.startsWith('dispatch:')) queued += count;
    const inFlight = (provider: string, account: string | undefined) => {
      let total = 0;
      for (const [key, count] of counts) {
        const [phase, taskProvider, taskAccount] = key.split(':');
        if ((phase === 'submitting' || phase === 'tracking') && taskProvider === provider && (account === undefined || taskAccount === account)) {
          total += count;
        }
      }
      return total;
    };
    return {
      inFlight,
      queued,
      oldestQueuedAt: queued > 0 ? await this.store.oldestWaitingSince() : null,
    };
  }

  /** Remembers an inbound webhook id; false when it was seen before (a replay). */
  rememberInboundWebhook(provider: string, webhookId: string, now: number): Promise<boolean> {
    return this.store.rememberInboundWebhook(provider, webhookId, now);
  }

  forgetInboundWebhook(provider: string, webhookId: string): Promise<void> {
    return this.store.forgetInboundWebhook(provider, webhookId);
  }

  purgeExpired(now: number, webhookIdsBefore: number): Promise<void> {
    return this.store.purgeExpired(now, webhookIdsBefore);
  }

  async claimDueDeliveries(now: number, owner: string, leaseMs: number, limit: number, share?: DeliveryShare): Promise<DeliveryRecord[]> {
    return (await this.store.claimDueDeliveries(now, owner, leaseMs, limit, share)).map(deliveryFromRow);
  }

  /**
   * The deliveries of one task's events, oldest first. A pending event held behind an earlier one
   * to the same URL (a task's events go one at a time, in order) says it is tried no sooner than
   * that one's next try, not that it is due now.
   */
  async deliveriesOf(taskId: string): Promise<DeliveryState[]> {
    return heldBehindEarlier((await this.store.listDeliveries(taskId)).map(deliveryStateFromRow));
  }

  /**
   * The delivery of task `taskId`'s events to `url` that its receiver answered `410 Gone`, if any:
   * the receiver said it takes no more of them (Standard Webhooks: stop sending).
   */
  async goneDeliveryOf(taskId: string, url: string): Promise<DeliveryState | undefined> {
    const row = await this.store.failedDeliveryAnswered(taskId, url, 410);
    return row && deliveryStateFromRow(row);
  }

  /**
   * Ends, as `failed` and not sent, the deliveries of task `taskId` to `url` still waiting for a
   * try (none on its way: that one records its own), with `error` as their last error; the event
   * type of each.
   */
  async abandonPendingDeliveries(taskId: string, url: string, now: number, error: string): Promise<string[]> {
    const ended = await this.store.settlePendingDeliveries(taskId, url, now, { status: 'failed', last_error: error, lease_owner: null, lease_until: null });
    return ended.map((row) => row.event_type);
  }

  /**
   * Records how `owner`'s delivery try ended and gives its lease back; false (nothing written)
   * when the lease is no longer `owner`'s: it ran out and another replica took the delivery over,
   * whose own record stands.
   */
  recordDelivery(id: string, owner: string, result: DeliveryResult): Promise<boolean> {
    const released = { lease_owner: null, lease_until: null };
    if ('notSent' in result) return this.store.updateDelivery(id, owner, { status: 'failed', last_error: result.error, ...released });
    return this.store.updateDelivery(
      id,
      owner,
      result.delivered
        ? {
            status: 'delivered',
            attempts: result.attempts,
            last_status: result.lastStatus,
            last_error: null,
            delivered_at: result.at,
            ...released,
          }
        : {
            status: result.giveUp ? 'failed' : 'pending',
            attempts: result.attempts,
            last_status: result.lastStatus,
            last_error: result.error,
            next_attempt_at: result.retryAt,
            ...released,
          },
    );
  }

  /**
   * Ends every lease at once, so work left behind by a previous run is taken up now. Only when
   * no other replica shares the database (`sharedByReplicas` false).
   */
  expireLeftoverLeases(): Promise<void> {
    return this.store.expireLeases();
  }
}

/**
 * `deliveries` (oldest first) with each pending one held behind an earlier pending one to the same
 * URL given that one's next try when it is later than its own: the store sends it only once the
 * earlier one is delivered or ends (in the same millisecond, `video.processing` goes first).
 */
export function heldBehindEarlier(deliveries: DeliveryState[]): DeliveryState[] {
  const inTurn = [...deliveries].sort((a, b) => a.createdAt - b.createdAt || Number(b.eventType === 'video.processing') - Number(a.eventType === 'video.processing'));
  const heldUntil = new Map<string, number>();
  const shown = new Map<string, DeliveryState>();
  for (const delivery of inTurn) {
    if (delivery.status !== 'pending' || delivery.nextAttemptAt === null) {
      shown.set(delivery.id, delivery);
      continue;
    }
    const earlier = heldUntil.get(delivery.url);
    const nextAttemptAt = earlier !== undefined && earlier > delivery.nextAttemptAt ? earlier : delivery.nextAttemptAt;
    heldUntil.set(delivery.url, nextAttemptAt);
    shown.set(delivery.id, nextAttemptAt === delivery.nextAttemptAt ? delivery : { ...delivery, nextAttemptAt });
  }
  return deliveries.map((delivery) => shown.get(delivery.id)!);
}
