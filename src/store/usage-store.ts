/**
 * Usage rows (one per task) and budget counters. Budget changes are single conditional
 * `UPDATE`s on one row per tenant and period: PostgreSQL re-checks the condition after taking
 * the row lock and SQLite serializes writers, so replicas reserving at the same moment can never
 * commit more than the limit together. Methods that take `db` run inside the caller's
 * transaction (a task insert or status change), so money moves exactly when the task does.
 */
import { sql, type ExpressionBuilder, type Insertable, type Kysely, type Selectable, type SelectQueryBuilder, type Updateable } from 'kysely';
import { CompiledShapes, definedKeys, slotted } from './compiled-query.js';
import type { Store } from './database.js';
import type { BudgetsTable, Database, TaskUsageTable, UsageAtRiskTable } from './schema.js';

export type UsageRow = Selectable<TaskUsageTable>;
export type NewUsageRow = Insertable<TaskUsageTable>;
export type UsagePatch = Updateable<TaskUsageTable>;
export type BudgetRow = Selectable<BudgetsTable>;
export type NewUsageAtRiskRow = Insertable<UsageAtRiskTable>;

/** A database handle or an open transaction. */
export type Executor = Kysely<Database>;

/** Columns a usage report may group by. */
export const USAGE_GROUP_COLUMNS = ['tenant', 'provider', 'account', 'model', 'operation', 'quality', 'day'] as const;
export type UsageGroupColumn = (typeof USAGE_GROUP_COLUMNS)[number];

/** What a budget row counts when it is created: its period's bounds (ms, end exclusive) and the budget's currency. */
export interface BudgetOpening {
  start: number;
  end: number;
  currency: string;
}

export interface UsageFilter {
  /** Only this tenant's tasks (all tenants when absent). */
  tenant?: string;
  /** Tasks created at or after (ms). */
  from: number;
  /** Tasks created before (ms). */
  to: number;
}

/**
 * The usage lines quote against actual compares: succeeded tasks whose provider reported its
 * charge beside routing's estimate. A failure's charge (a refund, a partial charge) is no
 * measure of how the price list estimates a video, so failures and cancels are left out; so is
 * an estimate of 0 credits, which no ratio divides by (the drift metric observes none for it:
 * added to the sums, its charge alone would move the row's ratio away from the metric's).
 */
const COMPARED = sql`status = 'succeeded' and estimated_credits > 0 and reported_credits is not null`;

/**
 * Sums for one combination of the asked group columns plus `currency`, `status` and `reported`
 * (so the caller can split them as it likes without a second pass over the rows).
 */
export interface UsageSums {
  keys: Partial<Record<UsageGroupColumn, string | null>>;
  currency: string | null;
  status: string;
  reported: number;
  tasks: number;
  /** Tasks with `completed_at`. */
  finished: number;
  video_seconds: number;
  credits: number;
  amount_micros: number;
  /** `amount_micros` of the lines that counted video seconds (the money a second of video is priced by). */
  seconds_amount_micros: number;
  /**
   * Succeeded tasks with both an estimate and a reported figure, and those two sums over them:
   * quote against actual. A failure's charge (a refund, a partial charge) says nothing of how
   * the price list estimates a video.
   */
  compared: number;
  compared_estimated_credits: number;
  compared_reported_credits: number;
}

/** Sums of the charges at risk (`usage_at_risk`) for one combination of the asked group columns plus `currency`. */
export interface UsageAtRiskSums {
  keys: Partial<Record<UsageGroupColumn, string | null>>;
  currency: string | null;
  tasks: number;
  credits: number;
  amount_micros: number;
}

export interface UsageMedian {
  keys: Partial<Record<UsageGroupColumn, string | null>>;
  currency: string | null;
  median_duration_ms: number;
}

/** Most (tenant, period) rows a process remembers as caught up (`UsageStore.caughtUp`). */
export const MAX_CAUGHT_UP = 10_000;

/** A (tenant, period) row's key in `UsageStore.caughtUp`: what `catchUp` remembers is what `pendingFigures` looks up. */
function caughtUpKey(tenant: string, period: string, opening: BudgetOpening): string {
  return JSON.stringify([tenant, period, opening.currency]);
}

export class UsageStore {
  constructor(readonly store: Store) {}

  private get db() {
    return this.store.db;
  }

  /** The usage writes every task makes (its line, then each change), compiled once per set of columns. */
  private readonly shapes = new CompiledShapes();

  async insertUsage(db: Executor, row: NewUsageRow): Promise<void> {
    const columns = definedKeys(row) as (keyof NewUsageRow)[];
    await this.shapes.execute(db, `insert:${columns.join(',')}`, columns.map((column) => row[column]), (slots) =>
      db.insertInto('task_usage').values(slotted<NewUsageRow>(columns, slots)),
    );
  }

  async getUsage(taskId: string, db: Executor = this.db): Promise<UsageRow | undefined> {
    return db.selectFrom('task_usage').selectAll().where('task_id', '=', taskId).executeTakeFirst();
  }

  async updateUsage(db: Executor, taskId: string, patch: UsagePatch): Promise<void> {
    await db.updateTable('task_usage').set(patch).where('task_id', '=', taskId).execute();
  }

  /** Writes `patch` on a task's line if it is not settled and reserves no budget; false otherwise (or when there is none). */
  async updateUnbudgetedUsage(db: Executor, taskId: string, patch: UsagePatch): Promise<boolean> {
    const columns = definedKeys(patch) as (keyof UsagePatch)[];
    const values = [...columns.map((column) => patch[column]), taskId];
    const result = await this.shapes.execute(db, `update-unbudgeted:${columns.join(',')}`, values, (slots) =>
      db
        .updateTable('task_usage')
        .set(slotted<UsagePatch>(columns, slots))
        .where('task_id', '=', slots[columns.length] as string)
        .where('settled', '=', 0)
        .where('budget_period', 'is', null),
    );
    return Number(result.numAffectedRows ?? 0) > 0;
  }

  /**
   * Adds `amount` to the reserve of (tenant, period) if spent + reserved + amount stays within
   * `limit`. Returns the row after the change, or undefined when it would not fit (nothing
   * written). All in millionths.
   */
  async reserve(
    db: Executor,
    input: { tenant: string; period: string; amount: number; limit: number; now: number; opening?: BudgetOpening },
  ): Promise<BudgetRow | undefined> {
    await this.openBudget(db, input.tenant, input.period, input.now, input.opening);
    return db
      .updateTable('budgets')
      .set((eb) => ({ reserved_micros: eb('reserved_micros', '+', input.amount), updated_at: input.now }))
      .where('tenant', '=', input.tenant)
      .where('period', '=', input.period)
      .where(sql<number>`spent_micros + reserved_micros + ${input.amount}`, '<=', input.limit)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Creates the (tenant, period) budget row unless it exists. With `opening`, a new row starts from
   * what the tenant's usage lines of the period hold that no row of this period counts yet (tasks
   * created before the budget, or under another period of it): see `openingFigures`. The
   * unbudgeted lines still running are charged to this period as they are counted (their line
   * names it and reserves its figure), so they settle into it, once; the settled ones counted are
   * marked with the period too. Only the caller whose insert made the row does this, in its
   * transaction: a replica inserting the same row at once waits on it and then finds the row,
   * already counted.
   *
   * A row that exists may still miss lines: its budget was taken out of the configuration for a
   * while and put back in the same period, and the tasks created meanwhile reserved nothing. The
   * first use of the row in this process (and each later one until nothing is left to count) adds
   * them the same way (`catchUp`).
   */
  private async openBudget(db: Executor, tenant: string, period: string, now: number, opening?: BudgetOpening): Promise<void> {
    const created = await db
      .insertInto('budgets')
      .values({ tenant, period, spent_micros: 0, reserved_micros: 0, updated_at: now })
      .onConflict((oc) => oc.columns(['tenant', 'period']).doNothing())
      .returning('tenant')
      .executeTakeFirst();
    if (!opening) return;
    if (!created) {
      await this.catchUp(db, tenant, period, opening);
      return;
    }
    // Claimed first, then the settled ones summed: a line settling meanwhile is either claimed
    // (and settles into this row) or settled before the sum reads it.
    const claimed = await db
      .updateTable('task_usage')
      .where(this.runningUnbudgeted(tenant, opening))
      .set({ budget_period: period, reserved_micros: sql<number>`amount_micros` })
      .returning('amount_micros')
      .execute();
    const reserved = claimed.reduce((sum, line) => sum + Number(line.amount_micros ?? 0), 0);
    const spent = await this.countedAsSpent(db, tenant, period, opening);
    // The settled lines no budget counted are this row's now: a catch-up does not count them again.
    await db.updateTable('task_usage').where(this.settledUnbudgeted(tenant, opening)).set({ budget_period: period }).execute();
    if (reserved === 0 && spent === 0) return;
    await db
      .updateTable('budgets')
      .set({ spent_micros: spent, reserved_micros: reserved })
      .where('tenant', '=', tenant)
      .where('period', '=', period)
      .execute();
  }

  /**
   * (tenant, period) rows this process found nothing more to count for (`catchUp`), the latest
   * `MAX_CAUGHT_UP`: a new period each day or month would otherwise add an entry for good. One
   * forgotten (a past period's) costs its next use a look that finds nothing.
   */
  private readonly caughtUp = new Set<string>();

  private rememberCaughtUp(key: string): void {
    if (this.caughtUp.has(key)) return;
    if (this.caughtUp.size >= MAX_CAUGHT_UP) {
      const oldest = this.caughtUp.values().next();
      if (!oldest.done) this.caughtUp.delete(oldest.value);
    }
    this.caughtUp.add(key);
  }

  /** Transactions whose catch-up counted lines: until they commit, finding nothing more in them proves nothing. */
  private readonly countedIn = new WeakSet<Executor>();

  /**
   * Adds to an existing (tenant, period) row the tenant's lines of the period that no budget
   * counts (created while the budget was out of the configuration): the running ones are charged
   * to the period and reserved, the settled ones marked and spent (with what other providers may
   * have billed for them). Each line is marked as it is counted, so it is counted once, also by
   * replicas catching up at the same moment. Once nothing is left, this process stops looking:
   * budgets change only with the configuration, at a start.
   */
  private async catchUp(db: Executor, tenant: string, period: string, opening: BudgetOpening): Promise<void> {
    const key = caughtUpKey(tenant, period, opening);
    if (this.caughtUp.has(key)) return;
    const claimed = await db
      .updateTable('task_usage')
      .where(this.runningUnbudgeted(tenant, opening))
      .set({ budget_period: period, reserved_micros: sql<number>`amount_micros` })
      .returning('amount_micros')
      .execute();
    const settled = await db
      .updateTable('task_usage')
      .where(this.settledUnbudgeted(tenant, opening))
      .set({ budget_period: period })
      .returning(['task_id', 'amount_micros', 'currency'])
      .execute();
    if (claimed.length === 0 && settled.length === 0) {
      // Nothing left as the store stands, unless this transaction itself counted lines (it may still roll back).
      if (!this.countedIn.has(db)) this.rememberCaughtUp(key);
      return;
    }
    this.countedIn.add(db);
    const reserved = claimed.reduce((sum, line) => sum + Number(line.amount_micros ?? 0), 0);
    let spent = settled.reduce((sum, line) => sum + (line.currency === opening.currency ? Number(line.amount_micros ?? 0) : 0), 0);
    const ids = settled.map((line) => line.task_id);
    for (let start = 0; start < ids.length; start += 500) {
      const atRisk = await db
        .selectFrom('usage_at_risk')
        .where('currency', '=', opening.currency)
        .where('task_id', 'in', ids.slice(start, start + 500))
        .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount'))
        .executeTakeFirst();
      spent += Number(atRisk?.amount ?? 0);
    }
    if (reserved === 0 && spent === 0) return;
    await db
      .updateTable('budgets')
      .set((eb) => ({ reserved_micros: eb('reserved_micros', '+', reserved), spent_micros: eb('spent_micros', '+', spent) }))
      .where('tenant', '=', tenant)
      .where('period', '=', period)
      .execute();
  }

  /**
   * What an existing (tenant, period) row does not count yet (`catchUp`), read without writing,
   * so the budget shows it before the row's next use; nothing once this process caught up.
   */
  async pendingFigures(tenant: string, period: string, opening: BudgetOpening, db: Executor = this.db): Promise<{ spent: number; reserved: number }> {
    const key = caughtUpKey(tenant, period, opening);
    if (this.caughtUp.has(key)) return { spent: 0, reserved: 0 };
    const uncounted = await db
      .selectFrom('task_usage')
      .where((eb) => eb.or([this.runningUnbudgeted(tenant, opening)(eb), this.settledUnbudgeted(tenant, opening)(eb)]))
      .select('task_id')
      .limit(1)
      .executeTakeFirst();
    if (!uncounted) {
      // Read outside any transaction: nothing is left to count (`catchUp` stops looking too).
      if (db === this.db) this.rememberCaughtUp(key);
      return { spent: 0, reserved: 0 };
    }
    const running = await db
      .selectFrom('task_usage')
      .where(this.runningUnbudgeted(tenant, opening))
      .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('reserved'))
      .executeTakeFirst();
    const settled = () => db.selectFrom('task_usage').where(this.settledUnbudgeted(tenant, opening));
    const charged = await settled()
      .where('currency', '=', opening.currency)
      .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount'))
      .executeTakeFirst();
    const atRisk = await db
      .selectFrom('usage_at_risk')
      .where('currency', '=', opening.currency)
      .where('task_id', 'in', settled().select('task_id'))
      .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount'))
      .executeTakeFirst();
    return { spent: Number(charged?.amount ?? 0) + Number(atRisk?.amount ?? 0), reserved: Number(running?.reserved ?? 0) };
  }

  /**
   * What a (tenant, period) budget row would start from if it were created now (`openBudget`),
   * read without writing: for a budget no create has touched in its period yet.
   */
  async openingFigures(tenant: string, period: string, opening: BudgetOpening, db: Executor = this.db): Promise<{ spent: number; reserved: number }> {
    const running = await db
      .selectFrom('task_usage')
      .where(this.runningUnbudgeted(tenant, opening))
      .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('reserved'))
      .executeTakeFirst();
    return { spent: await this.countedAsSpent(db, tenant, period, opening), reserved: Number(running?.reserved ?? 0) };
  }

  /** The tenant's lines of the period created without a budget and settled, that no budget counts yet. */
  private settledUnbudgeted(tenant: string, opening: BudgetOpening) {
    return (eb: ExpressionBuilder<Database, 'task_usage'>) =>
      eb.and([
        eb('tenant', '=', tenant),
        eb('created_at', '>=', opening.start),
        eb('created_at', '<', opening.end),
        eb('settled', '=', 1),
        eb('budget_period', 'is', null),
      ]);
  }

  /** The tenant's lines of the period created without a budget, still running, priced in the budget's currency. */
  private runningUnbudgeted(tenant: string, opening: BudgetOpening) {
    return (eb: ExpressionBuilder<Database, 'task_usage'>) =>
      eb.and([
        eb('tenant', '=', tenant),
        eb('created_at', '>=', opening.start),
        eb('created_at', '<', opening.end),
        eb('settled', '=', 0),
        eb('budget_period', 'is', null),
        eb('currency', '=', opening.currency),
        eb('amount_micros', 'is not', null),
      ]);
  }

  /**
   * Money of the tenant's lines of the period that no row of this period counts, in the budget's
   * currency: the final charge of each settled line and what other providers may have billed for
   * it (`usage_at_risk`), and what a line still running under another period's budget holds there
   * (it settles into that period's row; this one keeps its reserve as spent).
   */
  private async countedAsSpent(db: Executor, tenant: string, period: string, opening: BudgetOpening): Promise<number> {
    const uncounted = (table: 'task_usage' | 'usage_at_risk') =>
      db
        .selectFrom(table as 'task_usage')
        .where('tenant', '=', tenant)
        .where('created_at', '>=', opening.start)
        .where('created_at', '<', opening.end);
    const otherPeriod = sql<boolean>`(budget_period is null or budget_period <> ${period})`;
    const lines = await uncounted('task_usage')
      .where(otherPeriod)
      .select([
        sql<number>`cast(coalesce(sum(case when settled = 1 and currency = ${opening.currency} then amount_micros end), 0) as bigint)`.as('charged'),
        sql<number>`cast(coalesce(sum(case when settled = 0 and budget_period is not null then reserved_micros end), 0) as bigint)`.as('held'),
      ])
      .executeTakeFirst();
    const atRisk = await uncounted('usage_at_risk')
      .where('currency', '=', opening.currency)
      .where('task_id', 'in', uncounted('task_usage').where(otherPeriod).where('settled', '=', 1).select('task_id'))
      .select(sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount'))
      .executeTakeFirst();
    return Number(lines?.charged ?? 0) + Number(lines?.held ?? 0) + Number(atRisk?.amount ?? 0);
  }

  /** Moves money within (tenant, period) unconditionally: the upstream already holds it. */
  async changeBudget(
    db: Executor,
    input: { tenant: string; period: string; reservedDelta: number; spentDelta: number; now: number },
  ): Promise<BudgetRow | undefined> {
    return db
      .updateTable('budgets')
      .set((eb) => ({
        reserved_micros: eb('reserved_micros', '+', input.reservedDelta),
        spent_micros: eb('spent_micros', '+', input.spentDelta),
        updated_at: input.now,
      }))
      .where('tenant', '=', input.tenant)
      .where('period', '=', input.period)
      .returningAll()
      .executeTakeFirst();
  }

  /** Sets `column` to `at` if it is still empty; true for the one caller that set it. */
  async markBudgetAlert(
    db: Executor,
    input: { tenant: string; period: string; column: 'warned_at' | 'exhausted_at'; at: number; opening?: BudgetOpening },
  ): Promise<boolean> {
    await this.openBudget(db, input.tenant, input.period, input.at, input.opening);
    const row = await db
      .updateTable('budgets')
      .set({ [input.column]: input.at })
      .where('tenant', '=', input.tenant)
      .where('period', '=', input.period)
      .where(input.column, 'is', null)
      .returning('tenant')
      .executeTakeFirst();
    return row !== undefined;
  }

  async getBudget(tenant: string, period: string, db: Executor = this.db): Promise<BudgetRow | undefined> {
    return db.selectFrom('budgets').selectAll().where('tenant', '=', tenant).where('period', '=', period).executeTakeFirst();
  }

  /** Records what other providers may have charged for a task as it ends; a second write of the same is a no-op. */
  async insertAtRisk(db: Executor, rows: readonly NewUsageAtRiskRow[]): Promise<void> {
    if (rows.length === 0) return;
    await db
      .insertInto('usage_at_risk')
      .values([...rows])
      .onConflict((oc) => oc.columns(['task_id', 'provider']).doNothing())
      .execute();
  }

  /** Runs `work` in one transaction. */
  transaction<T>(work: (db: Executor) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  /** Sums of usage rows in the filter, per asked group plus currency, status and reported. */
  async sums(filter: UsageFilter, groupBy: readonly UsageGroupColumn[]): Promise<UsageSums[]> {
    const keys = [...groupBy, 'currency', 'status', 'reported'] as const;
    const rows = await this.filtered(filter)
      .select(keys)
      .select((eb) => [
        eb.fn.countAll<number>().as('tasks'),
        eb.fn.count<number>('completed_at').as('finished'),
        sql<number>`cast(coalesce(sum(video_seconds), 0) as double precision)`.as('video_seconds'),
        sql<number>`cast(coalesce(sum(credits), 0) as double precision)`.as('credits'),
        sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount_micros'),
        sql<number>`cast(coalesce(sum(case when video_seconds > 0 then amount_micros end), 0) as bigint)`.as('seconds_amount_micros'),
        sql<number>`sum(case when ${COMPARED} then 1 else 0 end)`.as('compared'),
        sql<number>`cast(coalesce(sum(case when ${COMPARED} then estimated_credits end), 0) as double precision)`.as('compared_estimated_credits'),
        sql<number>`cast(coalesce(sum(case when ${COMPARED} then reported_credits end), 0) as double precision)`.as('compared_reported_credits'),
      ])
      .groupBy([...keys])
      .execute();
    return rows.map((row) => {
      const record = row as unknown as Record<string, unknown>;
      return {
        keys: groupKeysOf(groupBy, record),
        currency: row.currency,
        status: row.status,
        reported: Number(row.reported),
        tasks: Number(row.tasks),
        finished: Number(row.finished),
        video_seconds: Number(row.video_seconds),
        credits: Number(row.credits),
        amount_micros: Number(row.amount_micros),
        seconds_amount_micros: Number(row.seconds_amount_micros),
        compared: Number(row.compared),
        compared_estimated_credits: Number(row.compared_estimated_credits),
        compared_reported_credits: Number(row.compared_reported_credits),
      };
    });
  }

  /** Sums of the charges at risk in the filter (by the tasks' creation), per asked group plus currency. */
  async atRiskSums(filter: UsageFilter, groupBy: readonly UsageGroupColumn[]): Promise<UsageAtRiskSums[]> {
    const keys = [...groupBy, 'currency'] as const;
    const rows = await this.filtered(filter, 'usage_at_risk')
      .select(keys)
      .select((eb) => [
        eb.fn.count<number>('task_id').distinct().as('tasks'),
        sql<number>`cast(coalesce(sum(credits), 0) as double precision)`.as('credits'),
        sql<number>`cast(coalesce(sum(amount_micros), 0) as bigint)`.as('amount_micros'),
      ])
      .groupBy([...keys])
      .execute();
    return rows.map((row) => {
      const record = row as unknown as Record<string, unknown>;
      return {
        keys: groupKeysOf(groupBy, record),
        currency: row.currency,
        tasks: Number(row.tasks),
        credits: Number(row.credits),
        amount_micros: Number(row.amount_micros),
      };
    });
  }

  /**
   * Median of `duration_ms` over the rows with `status`, per asked group plus currency: the
   * middle row (or the mean of the middle two) by window functions, which SQLite and PostgreSQL
   * both run, so no duration leaves the database.
   */
  async medianDurations(filter: UsageFilter, groupBy: readonly UsageGroupColumn[], status: string): Promise<UsageMedian[]> {
    const keys = [...groupBy, 'currency'] as const;
    const partition = sql.join(keys.map((key) => sql.ref(key)));
    const ranked = this.filtered(filter)
      .where('status', '=', status)
      .where('duration_ms', 'is not', null)
      .select(keys)
      .select([
        'duration_ms',
        sql<number>`row_number() over (partition by ${partition} order by duration_ms)`.as('position'),
        sql<number>`count(*) over (partition by ${partition})`.as('size'),
      ]);
    const rows = await this.db
      .selectFrom(ranked.as('ranked'))
      .select(keys.map((key) => `ranked.${key}` as const))
      .select(sql<number>`cast(avg(duration_ms) as double precision)`.as('median'))
      .where(sql<boolean>`position in ((size + 1) / 2, (size + 2) / 2)`)
      .groupBy(keys.map((key) => `ranked.${key}` as const))
      .execute();
    return rows.map((row) => {
      const record = row as unknown as Record<string, unknown>;
      return {
        keys: groupKeysOf(groupBy, record),
        currency: (record.currency as string | null) ?? null,
        median_duration_ms: Number(record.median),
      };
    });
  }

  /**
   * The rows of `table` (usage lines, or the at-risk lines beside them) in the filter: both carry
   * the task's creation time and tenant under the same names.
   */
  private filtered(filter: UsageFilter): SelectQueryBuilder<Database, 'task_usage', {}>;
  private filtered(filter: UsageFilter, table: 'usage_at_risk'): SelectQueryBuilder<Database, 'usage_at_risk', {}>;
  private filtered(
    filter: UsageFilter,
    table: 'task_usage' | 'usage_at_risk' = 'task_usage',
  ): SelectQueryBuilder<Database, 'task_usage', {}> | SelectQueryBuilder<Database, 'usage_at_risk', {}> {
    let select = this.db.selectFrom(table as 'task_usage').where('created_at', '>=', filter.from).where('created_at', '<', filter.to);
    if (filter.tenant !== undefined) select = select.where('tenant', '=', filter.tenant);
    return select;
  }
}

/** A row's values of the asked group columns (null where the group has none). */
function groupKeysOf(groupBy: readonly UsageGroupColumn[], row: Record<string, unknown>): Record<string, string | null> {
  return Object.fromEntries(groupBy.map((column) => [column, (row[column] as string | null) ?? null]));
}
