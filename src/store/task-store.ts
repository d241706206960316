/**
 * Every read and write of tasks, attempts, idempotency keys, inbound webhook ids and outbound
 * deliveries. State changes are conditional updates (`WHERE phase = … AND lease_owner = …`), so
 * when two replicas race for the same step exactly one of them wins and the other sees `false`.
 */
import { sql, type ExpressionBuilder, type Insertable, type Kysely, type RawBuilder, type Selectable, type SelectQueryBuilder, type Transaction, type Updateable } from 'kysely';
import { CompiledShapes, compiledOnce, definedKeys, slotted } from './compiled-query.js';
import type { Store } from './database.js';
import type { StoreTransaction } from './shared-state-store.js';
import { isNotableOutputId, type AttemptsTable, type Database, type DeliveriesTable, type TaskPhase, type TasksTable, type TenantTurnsTable } from './schema.js';

export type TaskRow = Selectable<TasksTable>;
export type NewTaskRow = Insertable<TasksTable>;
export type TaskPatch = Updateable<TasksTable>;

/** Where a task must still be for an update to be written (`TaskStore.updateTask`). */
export interface TaskCondition {
  phases?: readonly TaskPhase[];
  leaseOwner?: string | null;
  version?: number;
  /** A cancel request must be pending (true) or not (false): `cancel_requested_at` set or null. */
  cancelRequested?: boolean;
  /** No live lease at this time: `lease_until` null or before it (a poll that leased the task since voids the change). */
  leaseFreeAt?: number;
}

/** A task waiting in the queue, as a dispatch pass orders it (`listDispatchableQueue`); `candidates` as stored (`,a,b,`). */
export type QueuedTaskRow = Pick<TaskRow, 'id' | 'tenant' | 'created_at' | 'candidates'>;
/** How many tasks of `tenant` hold a slot of `provider` (`countInFlightByTenant`). */
export interface InFlightByTenantRow {
  tenant: string;
  provider: string | null;
  count: number;
}

export type AttemptRow = Selectable<AttemptsTable>;
/** An attempt to append: the store numbers it. */
export type NewAttemptRow = Omit<Insertable<AttemptsTable>, 'id' | 'seq'>;
export type AttemptPatch = Updateable<AttemptsTable>;
/** A task's row with its attempts, as one statement reads them (`getTaskWithAttempts`). */
export type TaskWithAttemptsRow = { task: TaskRow; attempts: AttemptRow[] };
export type DeliveryRow = Selectable<DeliveriesTable>;
export type NewDeliveryRow = Insertable<DeliveriesTable>;

/** How many deliveries a claim may lease of one tenant: `perTenant`, less those it has on their way. */
export interface DeliveryShare {
  perTenant: number;
  /** Deliveries on their way, by tenant (a tenant not named has none). */
  onTheirWay: ReadonlyMap<string, number>;
}
export type DeliveryPatch = Updateable<DeliveriesTable>;

/**
 * Who made a result with a provider id (`output_ids`), as one tenant may know it: another
 * tenant's task, or the newest of its own tasks that made it, and where.
 */
export type OutputIdMaker =
  | { another_tenant: true }
  | { another_tenant: false; task_id: string; provider: string; account: string | null };

/** Phases in which a task holds one of its provider's in-flight slots. */
export const IN_FLIGHT_PHASES: readonly TaskPhase[] = ['submitting', 'tracking'];

/**
 * The WHERE terms of the partial indexes on `tasks` (migration 0010), written exactly as there:
 * a query repeats its index's term word for word (phases as literals, not bound values) so that
 * SQLite and PostgreSQL can prove the index holds every row it asks for.
 */
const QUEUED = sql<boolean>`phase = 'dispatch'`;
const SUBMITTING = sql<boolean>`phase = 'submitting'`;
const IN_FLIGHT = sql<boolean>`phase in ('submitting', 'tracking')`;
const DUE = sql<boolean>`phase in ('tracking', 'storing')`;

/** The account a task names when it names none (`provider:default` in a `TrackingScope`). */
const DEFAULT_ACCOUNT = 'default';

/**
 * What a replica can poll (`claimDueForTracking`): `provider:account` keys of the accounts it
 * holds keys for, and how long past due a task of any other account waits before it is claimed
 * all the same (to be looked at, and ended at its deadline, where no replica can ask about it).
 */
export interface TrackingScope {
  askable: readonly string[];
  strandedAfterMs: number;
}
const UNFINISHED = sql<boolean>`phase in ('dispatch', 'submitting', 'tracking')`;

/** `text` matched literally by LIKE … ESCAPE '\': its `%`, `_` and `\` escaped. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (character) => `\\${character}`);

export interface ListQuery {
  tenant: string;
  status?: string;
  provider?: string;
  model?: string;
  limit: number;
  /** Exclusive: tasks strictly older than this position. */
  before?: { createdAt: number; id: string };
}

export type CreateOutcome =
  | {
      created: true;
      task: TaskRow;
      /** What came of `claim`: the slot taken and the first attempt written (its seq), or why not. */
      first?: { claimed: true; seq: number } | { claimed: false; why: 'queue' | 'full' | 'refused' };
    }
  | { created: false; existing: { taskId: string; requestHash: string } };

/** A slot of `provider`'s `account` (which holds at most `cap` tasks in flight), taken under `owner`'s lease. */
export interface SlotClaim {
  provider: string;
  account: string;
  cap: number;
  owner: string;
  leaseUntil: number;
  now: number;
}

/**
 * A slot for a task in the transaction that creates it (see `createTask`): the task goes straight
 * to `submitting` under `owner`'s lease with its first attempt written `sending`, unless an older
 * task waits for one of `providers`, the account has `cap` tasks in flight, or `admit` says no.
 */
export interface NewTaskClaim extends SlotClaim {
  /** Every provider of the task's plan (an older task waiting for one of them goes first). */
  providers: readonly string[];
  /**
   * Leave to call the provider now; asked last, once the slot is known to be free, inside the
   * create's transaction (handed over, so that what it reads and writes is on its connection).
   */
  admit: (transaction: StoreTransaction) => Promise<boolean>;
  attempt: Omit<NewAttemptRow, 'task_id'>;
  /**
   * The slot's `now` and `leaseUntil`, read again once the provider's lock is held: the create
   * may have waited for it a long while (other replicas' creates), and the submission's lease and
   * its attempt's time (when the request leaves) count from then, not from before the wait.
   */
  lockedAt: () => Pick<SlotClaim, 'now' | 'leaseUntil'>;
}

/** Every column of `attempts`, in the order the JSON of `attemptsAsJson` lists them. */
const ATTEMPT_COLUMNS = [
  'id',
  'task_id',
  'seq',
  'provider',
  'outcome',
  'error_code',
  'provider_code',
  'http_status',
  'latency_ms',
  'message',
  'at',
  'provider_task_id',
  'tracking_json',
  'account',
  'recovered_by',
  'timeout_ms',
  'named_task_id',
] as const satisfies readonly (keyof AttemptsTable)[];
// A column added to `attempts` and not to the list above fails to compile here.
const everyAttemptColumn: Exclude<keyof AttemptsTable, (typeof ATTEMPT_COLUMNS)[number]> extends never ? true : never = true;
void everyAttemptColumn;

/**
 * The attempts of the outer query's task (`tasks.id`) as one JSON array of rows, oldest first:
 * `json_group_array` on SQLite (text), `json_agg` on PostgreSQL (parsed by `pg`; null when the
 * task has none).
 */
function attemptsAsJson(dialect: Store['dialect']): RawBuilder<unknown> {
  const fields = sql.join(ATTEMPT_COLUMNS.map((column) => sql`${sql.lit(column)}, a.${sql.ref(column)}`));
  return dialect === 'postgres'
    ? sql`(select json_agg(json_build_object(${fields}) order by a.seq) from attempts a where a.task_id = tasks.id)`
    : sql`(select json_group_array(json_object(${fields}) order by a.seq) from attempts a where a.task_id = tasks.id)`;
}

export class TaskStore {
  constructor(readonly store: Store) {}

  private get db() {
    return this.store.db;
  }

  // The reads every create and every `GET /v1/videos/{id}` makes, compiled once.
  private readonly selectTask = compiledOnce((id: string) => this.db.selectFrom('tasks').selectAll().where('id', '=', id), 1);
  private readonly selectAttempts = compiledOnce(
    (taskId: string) => this.db.selectFrom('attempts').selectAll().where('task_id', '=', taskId).orderBy('seq'),
    1,
  );
  /** `GET /v1/videos/{id}`'s one statement: the task and its attempts. */
  private readonly selectTaskWithAttempts = compiledOnce(
    (id: string) =>
      this.db
        .selectFrom('tasks')
        .selectAll('tasks')
        .select(attemptsAsJson(this.store.dialect).as('attempts_json'))
        .where('tasks.id', '=', id),
    1,
  );
  /** One probe of the queue's partial index: empty when nothing waits. */
  private readonly selectAnyQueued = compiledOnce(() => this.db.selectFrom('tasks').select('id').where(QUEUED).limit(1), 0);
  private readonly selectPhase = compiledOnce(
    (id: string) => this.db.selectFrom('tasks').select(['provider', 'account', 'phase']).where('id', '=', id),
    1,
  );
  /** SQLite: the count its triggers keep (migration 0014), one row read instead of a walk over the account's tasks in flight. */
  private readonly readAccountInFlight = compiledOnce(
    (provider: string, account: string) =>
      this.db.selectFrom('account_in_flight').select('tasks as count').where('provider', '=', provider).where('account', '=', account),
    2,
  );
  private readonly countAccountInFlight = compiledOnce(
    (provider: string, account: string) =>
      this.db
        .selectFrom('tasks')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('provider', '=', provider)
        .where('account', '=', account)
        .where(IN_FLIGHT),
    2,
  );
  private readonly lastAttemptSeq = compiledOnce(
    (taskId: string) =>
      this.db
        .selectFrom('attempts')
        .select((eb) => eb.fn.max('seq').as('seq'))
        .where('task_id', '=', taskId),
    1,
  );
  /** The task an inbound webhook or a found create names (every webhook looks it up). */
  private readonly selectByProviderTask = compiledOnce(
    (provider: string, providerTaskId: string) =>
      this.db.selectFrom('tasks').selectAll().where('provider', '=', provider).where('provider_task_id', '=', providerTaskId),
    2,
  );
  /** A webhook's id, kept once: the row comes back only for its first delivery. */
  private readonly insertInboundWebhook = compiledOnce(
    (provider: string, webhookId: string, receivedAt: number) =>
      this.db
        .insertInto('inbound_webhooks')
        .values({ provider, webhook_id: webhookId, received_at: receivedAt })
        .onConflict((oc) => oc.columns(['provider', 'webhook_id']).doNothing())
        .returning('webhook_id'),
    3,
  );
  /** Inserts and updates, compiled once per set of columns they write. */
  private readonly shapes = new CompiledShapes();
  /** `hasOlderWaitingTask`'s query for each number of providers it is asked about. */
  private readonly olderWaiting = new Map<number, ReturnType<typeof this.compileOlderWaiting>>();

  /** Makes sure each provider has a row to lock when counting slots. */
  async registerProviders(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      await this.db.insertInto('providers').values({ id }).onConflict((oc) => oc.column('id').doNothing()).execute();
    }
  }

  /**
   * Inserts a task, and its idempotency key in the same transaction. When the key exists (and
   * has not expired) nothing is written and the existing task id is returned. `alongside` runs
   * in the same transaction after the insert; if it throws, nothing is written.
   */
  async createTask(
    row: NewTaskRow,
    idempotency?: { key: string; requestHash: string; expiresAt: number },
    alongside?: (trx: Kysely<Database>, task: TaskRow) => Promise<void>,
    claim?: NewTaskClaim,
  ): Promise<CreateOutcome> {
    return this.db.transaction().execute(async (trx) => {
      if (idempotency) {
        await trx
          .deleteFrom('idempotency_keys')
          .where('tenant', '=', row.tenant)
          .where('key', '=', idempotency.key)
          .where('expires_at', '<=', row.created_at)
          .execute();
        // On PostgreSQL the key another create holds may be purged (past its time) between the
        // insert that met it and the read of it: then nothing holds the key, and it is taken again.
        for (let tries = 1; ; tries++) {
          const inserted = await trx
            .insertInto('idempotency_keys')
            .values({
              tenant: row.tenant,
              key: idempotency.key,
              request_hash: idempotency.requestHash,
              task_id: row.id,
              created_at: row.created_at,
              expires_at: idempotency.expiresAt,
            })
            .onConflict((oc) => oc.columns(['tenant', 'key']).doNothing())
            .returning('task_id')
            .executeTakeFirst();
          if (inserted) break;
          const existing = await trx
            .selectFrom('idempotency_keys')
            .select(['task_id', 'request_hash'])
            .where('tenant', '=', row.tenant)
            .where('key', '=', idempotency.key)
            .executeTakeFirst();
          if (existing) return { created: false, existing: { taskId: existing.task_id, requestHash: existing.request_hash } };
          if (tries >= 3) throw new Error(`the idempotency key was neither taken nor held after ${tries} tries`);
        }
      }
      // Insert the task before its key row commits: both happen in this one transaction.
      const columns = definedKeys(row) as (keyof NewTaskRow)[];
      const { rows } = await this.shapes.execute(trx, `insert-task:${columns.join(',')}`, columns.map((column) => row[column]), (slots) =>
        trx
          .insertInto('tasks')
          .values(slotted<NewTaskRow>(columns, slots))
          .returningAll(),
      );
      const task = rows[0] as TaskRow;
      const inLine = claim !== undefined && (await this.olderWaitingIn(trx, task.created_at, task.id, claim.providers));
      // The provider's lock comes before `alongside`'s writes (a budget reservation): a slot claim
      // holds that lock while it waits for a task's row, and a status change holds a task's row
      // while it waits for its budget's, so a create holding a budget row and waiting for the lock
      // could close a circle of waits.
      if (claim && !inLine) await this.lockProvider(trx, claim.provider);
      await alongside?.(trx, task);
      if (!claim) return { created: true, task };
      if (inLine) return { created: true, task, first: { claimed: false, why: 'queue' } };
      const first = await this.claimNew(trx, task, claim);
      return first.claimed ? { created: true, task: first.task, first: { claimed: true, seq: first.seq } } : { created: true, task, first };
    });
  }

  /**
   * `createTask`'s slot claim and first attempt, in its transaction and under the provider's lock
   * (as `claimSlot` and `addAttempt` do apart).
   */
  private async claimNew(
    trx: Transaction<Database>,
    task: TaskRow,
    claim: NewTaskClaim,
  ): Promise<{ claimed: true; task: TaskRow; seq: number } | { claimed: false; why: 'full' | 'refused' }> {
    if ((await this.countInFlight(claim.provider, claim.account, trx)) >= claim.cap) return { claimed: false, why: 'full' };
    if (!(await claim.admit({ store: this.store, db: trx }))) return { claimed: false, why: 'refused' };
    const slot = { ...claim, ...claim.lockedAt() };
    const claimed = await this.takeSlot(trx, slot, task.id, ['dispatch'], false);
    await this.insertAttempt(trx, { ...claim.attempt, at: slot.now, task_id: task.id, seq: 1 });
    return { claimed: true, task: claimed!, seq: 1 };
  }

  /** Serializes slot claims of `provider` across replicas (a row lock in PostgreSQL; SQLite serializes writers anyway). */
  private async lockProvider(trx: Transaction<Database>, provider: string): Promise<void> {
    if (this.store.dialect === 'postgres') {
      await trx.selectFrom('providers').select('id').where('id', '=', provider).forUpdate().execute();
    }
  }

  /** Moves the task into `submitting` on `slot`'s account, if it is still in one of `fromPhases` (and, when `owned`, held by the slot's owner). */
  private async takeSlot(
    trx: Transaction<Database>,
    slot: SlotClaim,
    taskId: string,
    fromPhases: readonly TaskPhase[],
    owned: boolean,
  ): Promise<TaskRow | undefined> {
    const values = [slot.provider, slot.account, slot.owner, slot.leaseUntil, slot.now, taskId, ...fromPhases, ...(owned ? [slot.owner] : [])];
    const { rows } = await this.shapes.execute(trx, `claim-slot:${fromPhases.length}|${owned}`, values, (slots) => {
      let update = trx
        .updateTable('tasks')
        .set((eb) => ({
          phase: 'submitting' as const,
          provider: slots[0] as string,
          account: slots[1] as string,
          lease_owner: slots[2] as string,
          lease_until: slots[3] as number,
          updated_at: slots[4] as number,
          version: eb('version', '+', 1),
        }))
        .where('id', '=', slots[5] as string)
        .where('phase', 'in', fromPhases.map((_, index) => slots[6 + index] as TaskPhase));
      if (owned) update = update.where('lease_owner', '=', slots[6 + fromPhases.length] as string);
      return update.returningAll();
    });
    const row = rows[0] as TaskRow | undefined;
    // The tenant's turn at the provider, for the queue's fair order (`listTenantTurns`).
    if (row) await this.recordTurn(trx, slot.provider, row.tenant, slot.now);
    return row;
  }

  private readonly recordTurn = compiledOnce(
    (provider: string, tenant: string, servedAt: number) =>
      this.db
        .insertInto('tenant_turns')
        .values({ provider, tenant, served_at: servedAt })
        .onConflict((oc) => oc.columns(['provider', 'tenant']).doUpdateSet((eb) => ({ served_at: eb.ref('excluded.served_at') }))),
    3,
  );

  /** When a task of each tenant last took a slot of each provider (the queue's fair order reads it). */
  async listTenantTurns(): Promise<Selectable<TenantTurnsTable>[]> {
    const { rows } = await this.selectTenantTurns(this.db);
    return rows.map((row) => ({ ...row, served_at: Number(row.served_at) }));
  }

  private readonly selectTenantTurns = compiledOnce(() => this.db.selectFrom('tenant_turns').selectAll(), 0);

  private async insertAttempt(trx: Kysely<Database>, row: NewAttemptRow & { seq: number }): Promise<void> {
    const columns = definedKeys(row) as (keyof typeof row)[];
    await this.shapes.execute(trx, `insert-attempt:${columns.join(',')}`, columns.map((column) => row[column]), (slots) =>
      trx.insertInto('attempts').values(slotted<typeof row>(columns, slots)),
    );
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    return (await this.selectTask(this.db, id)).rows[0];
  }

  /** The task and its attempts (by `seq`) in one statement: one read where `getTask` and `getAttempts` make two. */
  async getTaskWithAttempts(id: string): Promise<TaskWithAttemptsRow | undefined> {
    const row = (await this.selectTaskWithAttempts(this.db, id)).rows[0];
    if (!row) return undefined;
    const { attempts_json: json, ...task } = row as TaskRow & { attempts_json: unknown };
    const attempts = (typeof json === 'string' ? JSON.parse(json) : (json ?? [])) as AttemptRow[];
    return { task, attempts };
  }

  async getAttempts(taskId: string): Promise<AttemptRow[]> {
    return (await this.selectAttempts(this.db, taskId)).rows;
  }

  /** The task's attempts as the open transaction `trx` sees them (those it wrote included). */
  async getAttemptsIn(trx: Kysely<Database>, taskId: string): Promise<AttemptRow[]> {
    return (await this.selectAttempts(trx, taskId)).rows;
  }

  async getAttemptsFor(taskIds: readonly string[]): Promise<Map<string, AttemptRow[]>> {
    const byTask = new Map<string, AttemptRow[]>();
    if (taskIds.length === 0) return byTask;
    const rows = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('task_id', 'in', taskIds)
      .orderBy('task_id')
      .orderBy('seq')
      .execute();
    for (const row of rows) {
      const list = byTask.get(row.task_id) ?? [];
      list.push(row);
      byTask.set(row.task_id, list);
    }
    return byTask;
  }

  /** Newest first, keyset-paginated on (created_at, id). */
  async listTasks(query: ListQuery): Promise<TaskRow[]> {
    let select = this.db.selectFrom('tasks').selectAll().where('tenant', '=', query.tenant);
    if (query.status) select = select.where('status', '=', query.status);
    if (query.provider) select = select.where('provider', '=', query.provider);
    if (query.model) select = select.where('model', '=', query.model);
    const before = query.before;
    // One row-value comparison, not `created_at < ? OR (created_at = ? AND id < ?)`: SQLite and
    // PostgreSQL start the index search at the cursor with it, where the OR made them walk the
    // tenant's newer tasks, page after page, to reach it (a page deep in a long list cost as much
    // as reading every page before it).
    if (before) select = select.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(before.createdAt, before.id)));
    return select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).execute();
  }

  /**
   * Applies `patch` when the task is still in one of `phases` (and, when given, owned by
   * `leaseOwner`). Bumps the version. When `delivery` is given it is inserted in the same
   * transaction, so an outbound webhook is never lost between the two writes; `alongside` runs
   * in that transaction too, only when the update was written. Returns the updated row, or
   * undefined if the condition no longer held (and then nothing is written).
   */
  async updateTask(
    id: string,
    patch: TaskPatch,
    condition: TaskCondition = {},
    delivery?: (task: TaskRow) => NewDeliveryRow | undefined,
    alongside?: (trx: Kysely<Database>, task: TaskRow) => Promise<void>,
    /** Runs first in the same transaction; if it throws, nothing is written. */
    before?: (trx: Kysely<Database>) => Promise<void>,
  ): Promise<TaskRow | undefined> {
    const columns = definedKeys(patch) as (keyof TaskPatch)[];
    const { phases, leaseOwner, version, cancelRequested, leaseFreeAt } = condition;
    const shape =
      `update:${columns.join(',')}|${phases?.length ?? '-'}|${leaseOwner === undefined ? '-' : leaseOwner === null ? 'null' : '='}` +
      `|${version === undefined ? '-' : 'v'}|${cancelRequested === undefined ? '-' : cancelRequested ? 'c' : 'nc'}|${leaseFreeAt === undefined ? '-' : 'f'}`;
    const ownerBound = leaseOwner !== undefined && leaseOwner !== null;
    const values = [
      ...columns.map((column) => patch[column]),
      id,
      ...(phases ?? []),
      ...(ownerBound ? [leaseOwner] : []),
      ...(version === undefined ? [] : [version]),
      ...(leaseFreeAt === undefined ? [] : [leaseFreeAt]),
    ];
    const run = async (db: Kysely<Database>) => {
      await before?.(db);
      const { rows } = await this.shapes.execute(db, shape, values, (slots) => {
        const set = slotted<TaskPatch>(columns, slots);
        let at = columns.length;
        // A write that gives the task another status records the version it took it at (the old
        // row's values are read on the right of SET, in SQLite as in PostgreSQL).
        const statusVersion =
          set.status === undefined
            ? {}
            : { status_version: sql<number | null>`case when status = ${set.status} then status_version else version + 1 end` };
        let update = db
          .updateTable('tasks')
          .set((eb) => ({ ...set, ...statusVersion, version: eb('version', '+', 1) }))
          .where('id', '=', slots[at++] as string);
        if (phases) update = update.where('phase', 'in', phases.map(() => slots[at++] as TaskPhase));
        if (leaseOwner !== undefined) {
          update = leaseOwner === null ? update.where('lease_owner', 'is', null) : update.where('lease_owner', '=', slots[at++] as string);
        }
        if (version !== undefined) update = update.where('version', '=', slots[at++] as number);
        if (cancelRequested !== undefined) update = update.where('cancel_requested_at', cancelRequested ? 'is not' : 'is', null);
        if (leaseFreeAt !== undefined) {
          const freeAt = slots[at++] as number;
          update = update.where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', freeAt)]));
        }
        return update.returningAll();
      });
      const row = rows[0] as TaskRow | undefined;
      const deliveryRow = row && delivery?.(row);
      if (deliveryRow) await this.insertDelivery(deliveryRow, db);
      if (row) await alongside?.(db, row);
      return row;
    };
    return delivery || alongside || before ? this.db.transaction().execute(run) : run(this.db);
  }

  /** Tasks holding a slot of `provider`'s `account`. */
  async countInFlight(provider: string, account: string, trx?: Transaction<Database>): Promise<number> {
    const read = this.store.dialect === 'sqlite' ? this.readAccountInFlight : this.countAccountInFlight;
    const { rows } = await read(trx ?? this.db, provider, account);
    return Number(rows[0]?.count ?? 0);
  }

  /** Tasks holding a slot of each account of `provider` (accounts with none are absent). */
  async countInFlightByAccount(provider: string): Promise<Map<string, number>> {
    if (this.store.dialect === 'sqlite') {
      const kept = await this.db
        .selectFrom('account_in_flight')
        .select(['account', 'tasks'])
        .where('provider', '=', provider)
        .where('tasks', '>', 0)
        .execute();
      return new Map(kept.map((row) => [row.account, Number(row.tasks)]));
    }
    const rows = await this.db
      .selectFrom('tasks')
      .select('account')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('provider', '=', provider)
      .where(IN_FLIGHT)
      .groupBy('account')
      .execute();
    return new Map(rows.map((row) => [row.account ?? '', Number(row.count)]));
  }

  /** Whether a create to `provider` is being sent right now (its answer not yet recorded). */
  async isSubmittingTo(provider: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('tasks')
      .select('id')
      .where(SUBMITTING)
      .where('provider', '=', provider)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Unfinished tasks by phase, provider and account; each part read through the partial index that holds it. */
  async countByPhase(): Promise<Map<string, number>> {
    /** The tasks `where` holds (in `only` of its phases, when given), grouped. */
    const count = (where: typeof QUEUED, only?: TaskPhase) => {
      let query = this.db
        .selectFrom('tasks')
        .select(['phase', 'provider', 'account'])
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where(where);
      if (only) query = query.where('phase', '=', only);
      return query.groupBy(['phase', 'provider', 'account']).execute();
    };
    const parts = await Promise.all([count(QUEUED), count(IN_FLIGHT), count(DUE, 'storing')]);
    const counts = new Map<string, number>();
    for (const row of parts.flat()) {
      const key = `${row.phase}:${row.provider ?? ''}:${row.account ?? ''}`;
      counts.set(key, (counts.get(key) ?? 0) + Number(row.count));
    }
    return counts;
  }

  /** Creation time of the oldest task waiting in the queue, if any (indexed by phase and time). */
  async oldestWaitingSince(): Promise<number | null> {
    const row = await this.db
      .selectFrom('tasks')
      .select('created_at')
      .where(QUEUED)
      .orderBy('created_at')
      .limit(1)
      .executeTakeFirst();
    return row?.created_at ?? null;
  }

  /**
   * Takes an in-flight slot of `provider` for the task, if fewer than `cap` are in use, and
   * moves the task into `submitting` under `owner`'s lease. Serialized per provider (a row lock
   * in PostgreSQL; SQLite serializes writers anyway), so replicas never overshoot the cap.
   */
  async claimSlot(
    input: SlotClaim & {
      taskId: string;
      /** The task must be in one of these phases (and, for `submitting`, owned by `owner`). */
      fromPhases: readonly TaskPhase[];
    },
  ): Promise<TaskRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      await this.lockProvider(trx, input.provider);
      const current = (await this.selectPhase(trx, input.taskId)).rows[0];
      if (!current || !input.fromPhases.includes(current.phase)) return undefined;
      // A task moving between providers or accounts frees its old slot as it takes the new one.
      const alreadyHolds =
        current.provider === input.provider && current.account === input.account && IN_FLIGHT_PHASES.includes(current.phase);
      const inFlight = await this.countInFlight(input.provider, input.account, trx);
      if (!alreadyHolds && inFlight >= input.cap) return undefined;
      return this.takeSlot(trx, input, input.taskId, input.fromPhases, current.phase === 'submitting');
    });
  }

  /** Whether any task waits in the queue (due or not): one index probe, nothing found when none does. */
  async anyQueued(): Promise<boolean> {
    return (await this.selectAnyQueued(this.db)).rows.length > 0;
  }

  /**
   * Queued tasks that may be dispatched now and are still within their deadline, oldest first,
   * one page after `after`.
   */
  async listDispatchable(now: number, limit: number, after?: { createdAt: number; id: string }): Promise<TaskRow[]> {
    const page = after
      ? await this.selectDispatchableAfter(this.db, now, limit, after.createdAt, after.id)
      : await this.selectDispatchable(this.db, now, limit);
    return page.rows;
  }

  /**
   * The whole dispatchable queue, oldest first, as a few narrow columns (a dispatch pass orders it
   * fairly between tenants, then reads the rows it sends with `getDispatchable`).
   */
  async listDispatchableQueue(now: number): Promise<QueuedTaskRow[]> {
    return (await this.selectDispatchableQueue(this.db, now)).rows;
  }

  /** Those of `ids` that are still dispatchable at `now`, in no particular order. */
  async getDispatchable(now: number, ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return [];
    return this.dispatchable(now).where('id', 'in', ids).execute();
  }

  /** Tasks holding a slot (`submitting`, `tracking`), by tenant and provider (pairs with none are absent). */
  async countInFlightByTenant(): Promise<InFlightByTenantRow[]> {
    const { rows } = await this.selectInFlightByTenant(this.db);
    return rows.map((row) => ({ tenant: row.tenant, provider: row.provider, count: Number(row.count) }));
  }

  /** Queued, due and within its deadline; a task whose `cancel_after` has passed is canceled, not sent. */
  private dispatchable(now: number) {
    return this.dispatchableWhere(this.db.selectFrom('tasks').selectAll(), now);
  }

  private dispatchableWhere<Query extends SelectQueryBuilder<Database, 'tasks', object>>(query: Query, now: number): Query {
    return query
      .where(QUEUED)
      .where('dispatch_after', '<=', now)
      .where('deadline_at', '>', now)
      .where((eb) => eb.or([eb('cancel_at', 'is', null), eb('cancel_at', '>', now)])) as Query;
  }

  private readonly selectDispatchableQueue = compiledOnce(
    (now: number) =>
      this.dispatchableWhere(this.db.selectFrom('tasks').select(['id', 'tenant', 'created_at', 'candidates']), now)
        .orderBy('created_at')
        .orderBy('id'),
    1,
  );
  private readonly selectInFlightByTenant = compiledOnce(
    () =>
      this.db
        .selectFrom('tasks')
        .select(['tenant', 'provider'])
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where(IN_FLIGHT)
        .groupBy(['tenant', 'provider']),
    0,
  );

  private readonly selectDispatchable = compiledOnce(
    (now: number, limit: number) => this.dispatchable(now).orderBy('created_at').orderBy('id').limit(limit),
    2,
  );
  private readonly selectDispatchableAfter = compiledOnce(
    (now: number, limit: number, createdAt: number, id: string) =>
      this.dispatchable(now)
        .where((eb) => eb.or([eb('created_at', '>', createdAt), eb.and([eb('created_at', '=', createdAt), eb('id', '>', id)])]))
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit),
    4,
  );

  /**
   * Whether a task created before this one still waits for one of the same providers (then the
   * new one queues behind it, so nobody jumps the line for a slot).
   */
  async hasOlderWaitingTask(createdAt: number, id: string, providers: readonly string[]): Promise<boolean> {
    return this.olderWaitingIn(this.db, createdAt, id, providers);
  }

  private async olderWaitingIn(db: Kysely<Database>, createdAt: number, id: string, providers: readonly string[]): Promise<boolean> {
    if (providers.length === 0) return false;
    let query = this.olderWaiting.get(providers.length);
    if (!query) {
      query = this.compileOlderWaiting(providers.length);
      this.olderWaiting.set(providers.length, query);
    }
    const { rows } = await query(db, createdAt, id, ...providers.map((provider) => `%,${provider},%`));
    return rows.length > 0;
  }

  /**
   * Walks the queue's index (created_at, id) over queued tasks up to this one's creation time: with
   * nothing queued that is this task alone, so the check costs one index probe. Only the tasks
   * it finds are matched against the providers.
   */
  private compileOlderWaiting(providerCount: number) {
    return compiledOnce(
      (createdAt: number, id: string, ...patterns: string[]) =>
        this.db
          .selectFrom('tasks')
          .select('id')
          .where(QUEUED)
          .where('created_at', '<=', createdAt)
          .where((eb) => eb.or([eb('created_at', '<', createdAt), eb('id', '<', id)]))
          .where((eb) => eb.or(patterns.map((pattern) => eb('candidates', 'like', pattern))))
          .limit(1),
      2 + providerCount,
    );
  }

  /**
   * Leases up to `limit` tracked tasks whose next poll is due and that no live lease holds.
   * In PostgreSQL `FOR UPDATE SKIP LOCKED` lets replicas claim disjoint batches.
   */
  claimDueForTracking(now: number, owner: string, leaseMs: number, limit: number, only?: TrackingScope): Promise<TaskRow[]> {
    if (!only) return this.claimDue('tracking', now, owner, leaseMs, limit);
    return this.claimDueAskable(now, owner, leaseMs, limit, only);
  }

  /**
   * `claimDueForTracking` for a replica that can ask about the tasks of `scope.askable` only: a
   * task held by another account (or a provider without a key here) is left to a replica that
   * can ask about it, unless its poll has waited `scope.strandedAfterMs` (no replica could).
   */
  private async claimDueAskable(now: number, owner: string, leaseMs: number, limit: number, scope: TrackingScope): Promise<TaskRow[]> {
    const { askable } = scope;
    const values = [now, ...askable, now - scope.strandedAfterMs];
    const pick = (slots: readonly unknown[]) =>
      this.dueTasks('tracking', slots[0] as number).where((eb) =>
        eb.or([...this.askableTerm(eb, slots.slice(1, 1 + askable.length) as string[]), eb('next_poll_at', '<=', slots[1 + askable.length] as number)]),
      );
    const any = await this.shapes.execute(this.db, `any-due-askable:${askable.length}`, values, (slots) => pick(slots).limit(1));
    if (any.rows.length === 0) return [];
    const { rows } = await this.shapes.execute(this.db, `lease-due-askable:${askable.length}`, [...values, owner, now + leaseMs, limit], (slots) =>
      this.db
        .updateTable('tasks')
        .set({ lease_owner: slots[values.length] as string, lease_until: slots[values.length + 1] as number })
        .where('id', 'in', this.lockedForLease(pick(slots).limit(slots[values.length + 2] as number)))
        .returningAll(),
    );
    return rows as TaskRow[];
  }

  /** Leases up to `limit` tasks whose outputs are due to be copied into storage (as `claimDueForTracking`). */
  claimDueForStorage(now: number, owner: string, leaseMs: number, limit: number): Promise<TaskRow[]> {
    return this.claimDue('storing', now, owner, leaseMs, limit);
  }

  /**
   * Leases up to `limit` succeeded tasks holding an output whose later copy is due (`recopy_at`,
   * through the partial index `tasks_recopy`: its WHERE term is repeated) and that no live lease
   * holds. On PostgreSQL the pick locks the rows it takes and skips those another claim holds.
   */
  async claimDueForRecopy(now: number, owner: string, leaseMs: number, limit: number): Promise<TaskRow[]> {
    if ((await this.anyRecopyDue(this.db, now)).rows.length === 0) return [];
    return (await this.leaseRecopyDue(this.db, now, owner, now + leaseMs, limit)).rows;
  }

  private recopyDueTasks(now: number) {
    return this.db
      .selectFrom('tasks')
      .select('id')
      .where('recopy_at', 'is not', null)
      .where('recopy_at', '<=', now)
      .where('phase', '=', 'done')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('recopy_at');
  }

  private readonly anyRecopyDue = compiledOnce((now: number) => this.recopyDueTasks(now).limit(1), 1);
  private readonly leaseRecopyDue = compiledOnce(
    (now: number, owner: string, leaseUntil: number, limit: number) =>
      this.db
        .updateTable('tasks')
        .set({ lease_owner: owner, lease_until: leaseUntil })
        .where('id', 'in', this.lockedForLease(this.recopyDueTasks(now).limit(limit)))
        .returningAll(),
    4,
  );

  /**
   * Tasks in `phase` whose `next_poll_at` is due and that no live lease holds, leased to `owner`.
   * A read first asks whether anything is due: on most worker ticks nothing is, and then no
   * transaction is opened (on SQLite one took the write lock every time). Then one statement
   * picks the batch and leases it, so replicas and workers claiming at once take one batch after
   * another; on PostgreSQL its pick locks the rows it takes and skips those another claim holds.
   */
  private async claimDue(phase: TaskPhase, now: number, owner: string, leaseMs: number, limit: number): Promise<TaskRow[]> {
    if ((await this.anyDue(this.db, phase, now)).rows.length === 0) return [];
    return (await this.leaseDue(this.db, phase, now, owner, now + leaseMs, limit)).rows;
  }

  /**
   * Tasks in `phase` due at `now` that no live lease holds, most overdue first. The polled phases
   * are also written as literals (`DUE`): SQLite then proves the partial index `tasks_due` covers
   * the pick (a bound phase alone left it scanning every task).
   */
  private dueTasks(phase: TaskPhase, now: number) {
    return this.db
      .selectFrom('tasks')
      .select('id')
      .where(DUE)
      .where('phase', '=', phase)
      .where('next_poll_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('next_poll_at');
  }

  private readonly anyDue = compiledOnce((phase: TaskPhase, now: number) => this.dueTasks(phase, now).limit(1), 2);
  private readonly leaseDue = compiledOnce(
    (phase: TaskPhase, now: number, owner: string, leaseUntil: number, limit: number) =>
      this.db
        .updateTable('tasks')
        .set({ lease_owner: owner, lease_until: leaseUntil })
        .where('id', 'in', this.lockedForLease(this.dueTasks(phase, now).limit(limit)))
        .returningAll(),
    5,
  );

  /** A pick of rows to lease: on PostgreSQL it locks them and skips rows another claim holds (SQLite has one writer). */
  private lockedForLease<Pick extends { forUpdate(): { skipLocked(): Pick } }>(pick: Pick): Pick {
    return this.store.dialect === 'postgres' ? pick.forUpdate().skipLocked() : pick;
  }

  /** Queued tasks whose `cancel_after` has passed. */
  async listCancelDue(now: number, limit: number): Promise<TaskRow[]> {
    return (await this.selectCancelDue(this.db, now, limit)).rows;
  }

  // The reads of every worker tick, compiled once.
  private readonly selectCancelDue = compiledOnce(
    (now: number, limit: number) => this.db.selectFrom('tasks').selectAll().where(QUEUED).where('cancel_at', '<=', now).limit(limit),
    2,
  );
  private readonly selectAbandonedSubmissions = compiledOnce(
    (now: number, limit: number) => this.db.selectFrom('tasks').selectAll().where(SUBMITTING).where('lease_until', '<', now).limit(limit),
    2,
  );
  private readonly selectOverdue = compiledOnce(
    (now: number, limit: number, lastLookGraceMs: number) =>
      this.db
        .selectFrom('tasks')
        .selectAll()
        .where(UNFINISHED)
        // A submission is settled by recovery (its create may be upstream), never by its deadline.
        .where('phase', '!=', 'submitting')
        // A tracked task's last look at the upstream, due at its deadline (or, its account not
        // taking calls then, within `lastLookGraceMs` past it), comes first.
        .where((eb) =>
          eb.or([eb('phase', '!=', 'tracking'), eb('next_poll_at', 'is', null), eb('next_poll_at', '>', eb(eb.ref('deadline_at'), '+', lastLookGraceMs))]),
        )
        .where('deadline_at', '<', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .limit(limit),
    3,
  );

  /** Tasks with a stored output whose retention ended. */
  /**
   * Finished tasks holding a copy whose retention ended by `now`, in the order it ended; `after`
   * (the last task of the previous page) pages on past tasks left as they were.
   */
  async listStorageExpired(now: number, limit: number, after?: { storageExpiresAt: number; id: string }): Promise<TaskRow[]> {
    let query = this.db.selectFrom('tasks').selectAll().where('phase', '=', 'done').where('storage_expires_at', '<=', now);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('storage_expires_at', '>', after.storageExpiresAt),
          eb.and([eb('storage_expires_at', '=', after.storageExpiresAt), eb('id', '>', after.id)]),
        ]),
      );
    }
    return query.orderBy('storage_expires_at').orderBy('id').limit(limit).execute();
  }

  /**
   * Submissions whose owner's lease ran out (the replica died or hung mid-create). With `only` (a
   * replica that can ask about the tasks of `only.askable` alone), a submission of another account
   * (or of a provider without a key here) is left to a replica that can look its create up, unless
   * its lease has been out `only.strandedAfterMs` (no replica could).
   */
  async listAbandonedSubmissions(now: number, limit: number, only?: TrackingScope): Promise<TaskRow[]> {
    if (!only) return (await this.selectAbandonedSubmissions(this.db, now, limit)).rows;
    const { askable } = only;
    const values = [now, ...askable, now - only.strandedAfterMs, limit];
    const { rows } = await this.shapes.execute(this.db, `abandoned-askable:${askable.length}`, values, (slots) =>
      this.db
        .selectFrom('tasks')
        .selectAll()
        .where(SUBMITTING)
        .where('lease_until', '<', slots[0] as number)
        .where((eb) => eb.or([...this.askableTerm(eb, slots.slice(1, 1 + askable.length) as string[]), eb('lease_until', '<', slots[1 + askable.length] as number)]))
        .limit(slots[2 + askable.length] as number),
    );
    return rows as TaskRow[];
  }

  /** The term that a task's `provider:account` is one of `keys` (none when there are none). */
  private askableTerm(eb: ExpressionBuilder<Database, 'tasks'>, keys: readonly string[]) {
    return keys.length > 0 ? [eb(sql<string>`provider || ':' || coalesce(account, ${DEFAULT_ACCOUNT})`, 'in', [...keys])] : [];
  }

  /**
   * Queued and tracked tasks past their deadline that no live lease holds (submissions are
   * recovery's), a tracked task only once its poll at the deadline was made (or is no longer due
   * within `lastLookGraceMs` past the deadline: it waited for its account to take the call).
   */
  async listOverdue(now: number, limit: number, lastLookGraceMs: number): Promise<TaskRow[]> {
    return (await this.selectOverdue(this.db, now, limit, lastLookGraceMs)).rows;
  }

  async findByProviderTask(provider: string, providerTaskId: string): Promise<TaskRow | undefined> {
    return (await this.selectByProviderTask(this.db, provider, providerTaskId)).rows[0];
  }

  /** Which of `providerTaskIds` an attempt at `provider` recorded (accepted, or adopted). */
  async knownProviderTaskIds(provider: string, providerTaskIds: readonly string[]): Promise<Set<string>> {
    if (providerTaskIds.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('attempts')
      .select('provider_task_id')
      .where('provider', '=', provider)
      .where('provider_task_id', 'in', [...providerTaskIds])
      .execute();
    return new Set(rows.flatMap((row) => (row.provider_task_id ? [row.provider_task_id] : [])));
  }

  /**
   * How many upstream tasks attempts on `account` at `provider` recorded (accepted, or adopted)
   * whose tracking holds every one of `tracking`'s values.
   */
  async countRecordedProviderTasks(provider: string, account: string, tracking: Readonly<Record<string, string>>): Promise<number> {
    // Tracking is kept as JSON.stringify wrote it: each entry is the text `"key":"value"`.
    const entries = Object.entries(tracking).map(([key, value]) => `%${escapeLike(`${JSON.stringify(key)}:${JSON.stringify(value)}`)}%`);
    const row = await this.db
      .selectFrom('attempts')
      .select(sql<number | string>`count(distinct provider_task_id)`.as('count'))
      .where('provider', '=', provider)
      .where('account', '=', account)
      .where('provider_task_id', 'is not', null)
      .where((eb) => eb.and(entries.map((pattern) => sql<boolean>`tracking_json like ${pattern} escape '\\'`)))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  async findByCallbackToken(token: string): Promise<TaskRow | undefined> {
    return this.db.selectFrom('tasks').selectAll().where('callback_token', '=', token).executeTakeFirst();
  }

  /**
   * Appends an attempt with the next sequence number. Two replicas appending to one task at the
   * same moment may pick the same number; the unique (task_id, seq) key refuses the second, which
   * then simply tries again with the next one.
   */
  async addAttempt(attempt: NewAttemptRow): Promise<number> {
    return this.numbering(() => this.db.transaction().execute((trx) => this.appendAttempt(trx, attempt)));
  }

  /**
   * Writes a create's attempt only while its task is still `submitting` under `hold.owner`'s lease,
   * and renews that lease to `hold.leaseUntil` in the same transaction, which moves the task's
   * version: a cancel that found no request in flight writes on the version it read, so of the
   * two exactly one is written. Nor is it written once a cancel was asked for while an earlier
   * create was on its way (`cancel_requested_at`): the caller no longer wants the task, so no
   * further create leaves. Its seq; undefined, with nothing written, when the task is not held so.
   */
  async addHeldAttempt(attempt: NewAttemptRow, hold: { owner: string; leaseUntil: number }): Promise<number | undefined> {
    return this.numbering(async () => {
      let seq: number | undefined;
      const held = await this.updateTask(
        attempt.task_id,
        { lease_until: hold.leaseUntil },
        { phases: ['submitting'], leaseOwner: hold.owner, cancelRequested: false },
        undefined,
        async (trx) => {
          seq = await this.appendAttempt(trx, attempt);
        },
      );
      return held && seq;
    });
  }

  /** Runs `write` again when another writer took the attempt number it chose (a unique violation). */
  private async numbering<T>(write: () => Promise<T>): Promise<T> {
    for (let round = 1; ; round++) {
      try {
        return await write();
      } catch (error) {
        if (round >= 10 || !isUniqueViolation(error)) throw error;
      }
    }
  }

  /** Inserts the attempt after the task's last one; its seq. */
  private async appendAttempt(trx: Kysely<Database>, attempt: NewAttemptRow): Promise<number> {
    const last = (await this.lastAttemptSeq(trx, attempt.task_id)).rows[0];
    const seq = Number(last?.seq ?? 0) + 1;
    await this.insertAttempt(trx, { ...attempt, seq });
    return seq;
  }

  async updateAttempt(taskId: string, seq: number, patch: AttemptPatch, db: Kysely<Database> = this.db): Promise<void> {
    const columns = definedKeys(patch) as (keyof AttemptPatch)[];
    await this.shapes.execute(db, `update-attempt:${columns.join(',')}`, [...columns.map((column) => patch[column]), taskId, seq], (slots) =>
      db
        .updateTable('attempts')
        .set(slotted<AttemptPatch>(columns, slots))
        .where('task_id', '=', slots[columns.length] as string)
        .where('seq', '=', slots[columns.length + 1] as number),
    );
  }

  /**
   * Writes `patch` on an attempt whose outcome is still `outcome`; false when it has moved on
   * (another process wrote the create's answer). In PostgreSQL the attempt's row then stays
   * locked by `db`'s transaction: a write of that answer waits for it to end.
   */
  async updateAttemptStill(taskId: string, seq: number, outcome: string, patch: AttemptPatch, db: Kysely<Database> = this.db): Promise<boolean> {
    const result = await db
      .updateTable('attempts')
      .set(patch)
      .where('task_id', '=', taskId)
      .where('seq', '=', seq)
      .where('outcome', '=', outcome)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * Writes `patch` on an attempt still `sending` that names no upstream task yet; false when the
   * attempt has moved on (its answer was recorded, or it was settled otherwise).
   */
  async updateSendingAttempt(taskId: string, seq: number, patch: AttemptPatch): Promise<boolean> {
    const result = await this.db
      .updateTable('attempts')
      .set(patch)
      .where('task_id', '=', taskId)
      .where('seq', '=', seq)
      .where('outcome', '=', 'sending')
      .where('provider_task_id', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Remembers an inbound webhook id; false when it was seen before (a replay). */
  async rememberInboundWebhook(provider: string, webhookId: string, now: number, db: Kysely<Database> = this.db): Promise<boolean> {
    const { rows } = await this.insertInboundWebhook(db, provider, webhookId, now);
    return rows.length > 0;
  }

  async forgetInboundWebhook(provider: string, webhookId: string): Promise<void> {
    await this.db
      .deleteFrom('inbound_webhooks')
      .where('provider', '=', provider)
      .where('webhook_id', '=', webhookId)
      .execute();
  }

  /**
   * Notes which tenant's task made the results with these provider ids (`output_ids`), in the
   * transaction that writes the outputs; ids noted already are kept as they are. An id with a NUL,
   * or longer than any `video_id`, is left out: PostgreSQL cannot store one (the write, and the
   * outputs with it, would fail), and no request can name one (`video_id` refuses it).
   */
  async recordOutputIds(task: { id: string; tenant: string; provider: string }, upstreamIds: readonly string[], db: Kysely<Database> = this.db): Promise<void> {
    const storable = upstreamIds.filter(isNotableOutputId);
    if (storable.length === 0) return;
    await db
      .insertInto('output_ids')
      .values(storable.map((upstreamId) => ({ upstream_id: upstreamId, task_id: task.id, tenant: task.tenant, provider: task.provider })))
      .onConflict((conflict) => conflict.doNothing())
      .execute();
  }

  /**
   * Who made the result with this provider id (`output_ids`), as `tenant` may know it, in one
   * query: a task of another tenant (whatever `tenant`'s tasks made too), else the provider and
   * account of the newest task of `tenant` that made it; undefined when no task did.
   */
  async outputIdMaker(upstreamId: string, tenant: string): Promise<OutputIdMaker | undefined> {
    // None is noted that `output_ids` cannot hold, and PostgreSQL refuses a query that binds a NUL.
    if (!isNotableOutputId(upstreamId)) return undefined;
    // Every row has its task (a foreign key that deletes the rows with it), so the join drops none.
    const row = await this.db
      .selectFrom('output_ids')
      .innerJoin('tasks', 'tasks.id', 'output_ids.task_id')
      .select(['output_ids.task_id', 'output_ids.tenant', 'output_ids.provider', 'tasks.account'])
      .where('output_ids.upstream_id', '=', upstreamId)
      // Another tenant's row first; then this tenant's newest.
      .orderBy(sql`case when output_ids.tenant = ${tenant} then 1 else 0 end`)
      .orderBy('tasks.created_at', 'desc')
      .orderBy('tasks.id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.tenant !== tenant) return { another_tenant: true };
    return { another_tenant: false, task_id: row.task_id, provider: row.provider, account: row.account };
  }

  async getIdempotencyKey(tenant: string, key: string) {
    return this.db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('tenant', '=', tenant)
      .where('key', '=', key)
      .executeTakeFirst();
  }

  /** Drops idempotency keys past their time and inbound webhook ids older than `webhookIdsBefore`. */
  async purgeExpired(now: number, webhookIdsBefore: number): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('inbound_webhooks').where('received_at', '<', webhookIdsBefore).execute();
  }

  async insertDelivery(row: NewDeliveryRow, db: Kysely<Database> = this.db): Promise<void> {
    const columns = definedKeys(row) as (keyof NewDeliveryRow)[];
    await this.shapes.execute(db, `insert-delivery:${columns.join(',')}`, columns.map((column) => row[column]), (slots) =>
      db.insertInto('deliveries').values(slotted<NewDeliveryRow>(columns, slots)),
    );
  }

  /**
   * Pending deliveries due at `now` that no live lease holds, leased to `owner` (as `claimDue` leases
   * tasks), earliest first: of the earliest `limit` (of tenants with room left), those within their
   * tenant's room in `share` (what it may have on its way less what it has), so a tenant's backlog
   * is never leased only to be given back.
   */
  async claimDueDeliveries(now: number, owner: string, leaseMs: number, limit: number, share: DeliveryShare = { perTenant: limit, onTheirWay: new Map() }): Promise<DeliveryRow[]> {
    if ((await this.anyDeliveryDue(this.db, now)).rows.length === 0) return [];
    if (share.onTheirWay.size === 0) return (await this.leaseDueDeliveries(this.db, now, owner, now + leaseMs, limit, share.perTenant)).rows;
    // Only while a tenant has deliveries on their way: built each time, its list of tenants varies.
    return this.db
      .updateTable('deliveries')
      .set({ lease_owner: owner, lease_until: now + leaseMs })
      .where('id', 'in', this.lockedForLease(this.dueDeliveries(now).where('id', 'in', this.dueWithinRoom(now, limit, share.perTenant, share.onTheirWay)).limit(limit)))
      .returningAll()
      .execute();
  }

  /**
   * Pending deliveries due at `now` that no live lease holds, and that no earlier event of the
   * same task to the same URL is still waiting for (pending, on its way or to be retried): a
   * receiver gets a task's events one at a time, in the order they happened. Earlier: written
   * before it, or in the same millisecond and `video.processing` beside a later status's event.
   */
  private pendingDue(now: number) {
    return this.db
      .selectFrom('deliveries')
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('deliveries as earlier')
              .select('earlier.id')
              .whereRef('earlier.task_id', '=', 'deliveries.task_id')
              .whereRef('earlier.url', '=', 'deliveries.url')
              .where('earlier.status', '=', 'pending')
              .where((inner) =>
                inner.or([
                  inner('earlier.created_at', '<', inner.ref('deliveries.created_at')),
                  inner.and([
                    inner('earlier.created_at', '=', inner.ref('deliveries.created_at')),
                    inner('earlier.event_type', '=', 'video.processing'),
                    inner('deliveries.event_type', '!=', 'video.processing'),
                  ]),
                ]),
              ),
          ),
        ),
      );
  }

  /** Pending deliveries due at `now` that no live lease holds, earliest first. */
  private dueDeliveries(now: number) {
    return this.pendingDue(now).select('id').orderBy('next_attempt_at');
  }

  /**
   * The ids of the earliest `limit` due deliveries of tenants with room left, within each tenant's
   * room: `perTenant` less those it has on their way. Only those `limit` are ranked, so a long
   * backlog costs a claim no more than a plain pick of `limit` (a tenant whose backlog filled its
   * room is passed over by the next claim). Ranked apart from the pick that locks them (PostgreSQL
   * takes no row locks in a select with a window function); the pick checks again that each is
   * still due and unleased. The earliest are themselves picked past rows another claim holds: an
   * unlocked pick would rank the rows a concurrent claim is leasing, find them all skipped by the
   * locking pick, and lease nothing while later ones are due.
   */
  private dueWithinRoom(now: number, limit: number, perTenant: number, onTheirWay: ReadonlyMap<string, number>) {
    const full = [...onTheirWay].filter(([, count]) => count >= perTenant).map(([tenant]) => tenant);
    let earliest = this.pendingDue(now).select(['id', 'tenant', 'next_attempt_at']).orderBy('next_attempt_at').limit(limit);
    if (full.length > 0) earliest = earliest.where('tenant', 'not in', full);
    const ranked = this.db
      .selectFrom(this.lockedForLease(earliest).as('earliest'))
      .select(['id', 'tenant', sql<number>`row_number() over (partition by tenant order by next_attempt_at)`.as('turn')]);
    return this.db
      .selectFrom(ranked.as('ranked'))
      .select('ranked.id')
      .where((eb) => {
        if (onTheirWay.size === 0) return eb('ranked.turn', '<=', perTenant);
        const taken = sql<number>`case ${sql.ref('ranked.tenant')} ${sql.join([...onTheirWay].map(([tenant, count]) => sql`when ${tenant} then ${count}`), sql` `)} else 0 end`;
        return eb(eb('ranked.turn', '+', taken), '<=', perTenant);
      });
  }

  private readonly anyDeliveryDue = compiledOnce((now: number) => this.dueDeliveries(now).limit(1), 1);
  private readonly leaseDueDeliveries = compiledOnce(
    (now: number, owner: string, leaseUntil: number, limit: number, perTenant: number) =>
      this.db
        .updateTable('deliveries')
        .set({ lease_owner: owner, lease_until: leaseUntil })
        .where('id', 'in', this.lockedForLease(this.dueDeliveries(now).where('id', 'in', this.dueWithinRoom(now, limit, perTenant, new Map())).limit(limit)))
        .returningAll(),
    5,
  );

  /** Writes `patch` on a delivery `owner` holds the lease of; false when it does not (nothing written). */
  async updateDelivery(id: string, owner: string, patch: DeliveryPatch): Promise<boolean> {
    const result = await this.db.updateTable('deliveries').set(patch).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * The earliest delivery of task `taskId` to `url` that ended `failed` on an answer of
   * `lastStatus`, if any: one indexed read (by task) per try.
   */
  async failedDeliveryAnswered(taskId: string, url: string, lastStatus: number): Promise<DeliveryRow | undefined> {
    return (await this.selectFailedDeliveryAnswered(this.db, taskId, url, lastStatus)).rows[0];
  }

  private readonly selectFailedDeliveryAnswered = compiledOnce(
    (taskId: string, url: string, lastStatus: number) =>
      this.db
        .selectFrom('deliveries')
        .selectAll()
        .where('task_id', '=', taskId)
        .where('url', '=', url)
        .where('status', '=', 'failed')
        .where('last_status', '=', lastStatus)
        .orderBy('created_at')
        .limit(1),
    3,
  );

  /**
   * Writes `patch` on the pending deliveries of task `taskId` to `url` that no live lease holds at
   * `now` (one on its way records its own try); those written.
   */
  async settlePendingDeliveries(taskId: string, url: string, now: number, patch: DeliveryPatch): Promise<Pick<DeliveryRow, 'id' | 'event_type'>[]> {
    return this.db
      .updateTable('deliveries')
      .set(patch)
      .where('task_id', '=', taskId)
      .where('url', '=', url)
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .returning(['id', 'event_type'])
      .execute();
  }

  /** Tasks waiting in the queue, by the providers they may be sent to (`candidates` as stored: `,a,b,`). */
  async countQueuedByCandidates(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('tasks')
      .select('candidates')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where(QUEUED)
      .groupBy('candidates')
      .execute();
    return new Map(rows.map((row) => [row.candidates, Number(row.count)]));
  }

  /** Deliveries still to be sent, by tenant (tenants with none are absent). */
  async countPendingDeliveriesByTenant(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('deliveries')
      .select('tenant')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('status', '=', 'pending')
      .groupBy('tenant')
      .execute();
    return new Map(rows.map((row) => [row.tenant, Number(row.count)]));
  }

  async listDeliveries(taskId: string): Promise<DeliveryRow[]> {
    return this.db.selectFrom('deliveries').selectAll().where('task_id', '=', taskId).orderBy('created_at').execute();
  }

  /**
   * Ends leases on unfinished tasks and pending deliveries, so their work can be taken up at once:
   * every lease, for a database no other process shares (each is then left over from a previous
   * run), or those `owner` holds (a replica known to be dead; a lease it no longer holds is left
   * alone).
   */
  async expireLeases(owner?: string): Promise<void> {
    // Every phase but `done`, through the partial indexes that hold them (queued, submitted and
    // tracked tasks by their deadlines; tasks being stored by their due copies): `phase != 'done'`
    // read every task ever made, at each start and each worker's death. Succeeded tasks whose
    // outputs wait for a later copy too, through theirs (`tasks_recopy`).
    for (const unfinished of [UNFINISHED, sql<boolean>`${DUE} and phase = 'storing'`, sql<boolean>`recopy_at is not null and phase = 'done'`]) {
      let tasks = this.db.updateTable('tasks').set({ lease_until: 0 }).where(unfinished);
      tasks = owner === undefined ? tasks.where('lease_owner', 'is not', null) : tasks.where('lease_owner', '=', owner);
      await tasks.execute();
    }
    let deliveries = this.db.updateTable('deliveries').set({ lease_until: 0 }).where('status', '=', 'pending');
    if (owner !== undefined) deliveries = deliveries.where('lease_owner', '=', owner);
    await deliveries.execute();
  }

  /** Cheap query for readiness. */
  async ping(): Promise<void> {
    await this.db.selectFrom('providers').select('id').limit(1).execute();
  }
}

/** A unique-key violation, in PostgreSQL (23505) or SQLite terms. */
function isUniqueViolation(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: string };
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
