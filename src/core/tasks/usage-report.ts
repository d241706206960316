/**
 * `GET /v1/usage` (SPEC §7): spend and outcomes grouped by provider (and account), model, operation, quality
 * and day — the provider comparison — from the per-task usage lines (narrow, indexed columns),
 * never from the tasks' JSON. Also budget state, and the budget gauges of `/metrics`.
 */
import { z } from 'zod';
import { TERMINAL_STATUSES, type TaskStatus } from '../model/canonical.js';
import { budgetWindow } from '../model/budget.js';
import { problems } from '../model/problems.js';
import { DateOrZonedDateTime, effectiveFromMs, fromMicros, roundTo } from '../model/pricing.js';
import type { Engine } from './engine.js';
import { SpendLedger, describeBudget, type BudgetDescription } from './spend-ledger.js';
import type { UsageAtRiskSums, UsageFilter, UsageGroupColumn, UsageMedian, UsageSums } from './task-repository.js';
import { parseQuery } from './task-service.js';

/** What `group_by` may name; `tenant` only with an admin key. */
export const USAGE_GROUP_KEYS = ['provider', 'account', 'model', 'operation', 'quality', 'day', 'tenant'] as const;
export type UsageGroupKey = (typeof USAGE_GROUP_KEYS)[number];

/** An offset whose `+` a URL query turned into a space (`…T10:00 01:00`). */
const UNENCODED_PLUS_OFFSET = /T[\d:.]+ \d{2}(:?\d{2})?$/;

/**
 * `2026-11-01` (00:00 UTC) or an ISO date-time with a zone, as milliseconds. A refusal quotes
 * what arrived, which for a `+01:00` typed into a URL is a space: zod's own "Invalid ISO date"
 * leaves the caller looking for a mistake in a date that looks right to them.
 */
const Instant = z.string().transform((value, ctx) => {
  if (DateOrZonedDateTime.safeParse(value).success) return effectiveFromMs(value);
  const hint = UNENCODED_PLUS_OFFSET.test(value) ? ': a "+" in a URL query reads as a space, send it as %2B' : '';
  ctx.addIssue({ code: 'custom', message: `expected YYYY-MM-DD (00:00 UTC) or an ISO 8601 date-time with a zone, got ${JSON.stringify(value)}${hint}` });
  return z.NEVER;
});

export const UsageQuery = z
  .strictObject({
    group_by: z
      .string()
      .max(200)
      .optional()
      .transform((value, ctx) => {
        const keys = (value ?? '').split(',').map((key) => key.trim()).filter(Boolean);
        for (const key of keys) {
          if (!(USAGE_GROUP_KEYS as readonly string[]).includes(key)) {
            ctx.addIssue({ code: 'custom', message: `unknown group key "${key}" (one of ${USAGE_GROUP_KEYS.join(', ')})` });
            return z.NEVER;
          }
        }
        if (new Set(keys).size !== keys.length) {
          ctx.addIssue({ code: 'custom', message: 'names a group key more than once' });
          return z.NEVER;
        }
        // Account ids are per provider (every one-account provider's is `default`): a row of one
        // account id alone would add up different providers' accounts as if they were one.
        if (keys.includes('account') && !keys.includes('provider')) {
          ctx.addIssue({ code: 'custom', message: 'account ids are per provider: group by provider too (group_by=provider,account)' });
          return z.NEVER;
        }
        return keys as UsageGroupKey[];
      }),
    from: Instant.optional(),
    to: Instant.optional(),
    format: z.enum(['json', 'csv']).default('json'),
    tenant: z.string().min(1).max(64).optional(),
  })
  .refine((query) => query.from === undefined || query.to === undefined || query.from < query.to, {
    message: 'from must be before to',
    path: ['to'],
  });

/** One row of the report: its group keys, then counts, spend and comparisons. */
export interface UsageRow {
  provider?: string | null;
  account?: string | null;
  model?: string | null;
  operation?: string | null;
  quality?: string | null;
  day?: string | null;
  tenant?: string | null;
  currency: string | null;
  tasks: number;
  succeeded: number;
  failed: number;
  canceled: number;
  in_progress: number;
  video_seconds: number;
  credits: number;
  currency_amount: number | null;
  credits_estimated: number;
  credits_reported: number;
  currency_amount_estimated: number | null;
  currency_amount_reported: number | null;
  tasks_reported: number;
  cost_per_second: number | null;
  success_rate: number | null;
  median_time_to_complete_ms: number | null;
  drift_tasks: number;
  drift_estimated_credits: number;
  drift_reported_credits: number;
  drift_ratio: number | null;
  tasks_at_risk: number;
  credits_at_risk: number;
  currency_amount_at_risk: number | null;
}

/** Metric columns in the order CSV writes them, after the group keys. */
export const USAGE_METRIC_COLUMNS = [
  'currency',
  'tasks',
  'succeeded',
  'failed',
  'canceled',
  'in_progress',
  'video_seconds',
  'credits',
  'currency_amount',
  'credits_estimated',
  'credits_reported',
  'currency_amount_estimated',
  'currency_amount_reported',
  'tasks_reported',
  'cost_per_second',
  'success_rate',
  'median_time_to_complete_ms',
  'drift_tasks',
  'drift_estimated_credits',
  'drift_reported_credits',
  'drift_ratio',
  'tasks_at_risk',
  'credits_at_risk',
  'currency_amount_at_risk',
] as const satisfies readonly (keyof UsageRow)[];

export interface UsageResult {
  object: 'usage';
  from: string;
  to: string;
  group_by: UsageGroupKey[];
  /** The tenant the rows cover; null when an admin reads every tenant. */
  tenant: string | null;
  data: UsageRow[];
  budgets: BudgetDescription[];
  format: 'json' | 'csv';
}

/** Half-way figures up, as a task's cost rounds (its floating-point dust decides nothing). */
const ratio = (part: number, whole: number, digits = 6) => (whole > 0 ? roundTo(part / whole, digits) : null);

interface Accumulator {
  row: UsageRow;
  estimatedMicros: number;
  reportedMicros: number;
  /** Money the row's video seconds are priced by: of the succeeded tasks that counted seconds, and of every failed or canceled one. */
  secondsMicros: number;
  atRiskMicros: number;
}

export class UsageReport {
  private readonly ledger: SpendLedger;

  constructor(private readonly engine: Engine) {
    this.ledger = new SpendLedger(engine);
  }

  private isAdmin(tenant: string): boolean {
    return this.engine.config.tenants[tenant]?.admin === true;
  }

  /** The report for the caller: its own tenant, or every tenant for an admin key. */
  async report(caller: string, query: unknown): Promise<UsageResult> {
    const parsed = parseQuery(UsageQuery, query);
    const { group_by: groupBy = [], format } = parsed;
    const admin = this.isAdmin(caller);
    if (!admin && groupBy.includes('tenant')) throw problems.forbidden('Grouping by tenant needs an admin key.');
    if (!admin && parsed.tenant !== undefined && parsed.tenant !== caller) {
      throw problems.forbidden("Only an admin key can read another tenant's usage.");
    }
    const now = this.engine.clock.now();
    const from = parsed.from ?? budgetWindow('month', now).start;
    const to = parsed.to ?? budgetWindow('day', now).end;
    if (from >= to) {
      // Both given are refused by the query's own rule; here one end is a default the caller may
      // not know of ("up to October" meets the 1st of this month), so the answer names it.
      throw problems.validation([
        parsed.from === undefined
          ? { path: 'to', message: `must be after from, which was not given and defaults to the first of the current UTC month, ${new Date(from).toISOString()}: give from too` }
          : { path: 'from', message: `must be before to, which was not given and defaults to the end of the current UTC day, ${new Date(to).toISOString()}: give to too` },
      ]);
    }
    const tenant = admin ? parsed.tenant : caller;
    const filter: UsageFilter = { from, to, ...(tenant !== undefined ? { tenant } : {}) };
    const columns = groupBy as UsageGroupColumn[];
    const [sums, medians, atRisk] = await Promise.all([
      this.engine.tasks.usageSums(filter, columns),
      this.engine.tasks.usageMedians(filter, columns, 'succeeded'),
      this.engine.tasks.usageAtRiskSums(filter, columns),
    ]);
    return {
      object: 'usage',
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      group_by: groupBy,
      tenant: tenant ?? null,
      data: this.rows(groupBy, sums, medians, atRisk),
      budgets: await this.budgets(tenant === undefined ? undefined : [tenant]),
      format,
    };
  }

  /** Folds the store's sums (split by status and reported) into one row per group and currency. */
  private rows(
    groupBy: readonly UsageGroupKey[],
    sums: readonly UsageSums[],
    medians: readonly UsageMedian[],
    atRisk: readonly UsageAtRiskSums[],
  ): UsageRow[] {
    const keyOf = (keys: Partial<Record<string, string | null>>, currency: string | null) =>
      JSON.stringify([...groupBy.map((key) => keys[key] ?? null), currency]);
    const groups = new Map<string, Accumulator>();
    const groupOf = (keys: Partial<Record<string, string | null>>, currency: string | null) => {
      const id = keyOf(keys, currency);
      let group = groups.get(id);
      if (!group) {
        group = { row: emptyRow(groupBy, keys, currency), estimatedMicros: 0, reportedMicros: 0, secondsMicros: 0, atRiskMicros: 0 };
        groups.set(id, group);
      }
      return group;
    };
    // Under the provider that may hold them (a row of its own when it took no task itself).
    for (const sum of atRisk) {
      const group = groupOf(sum.keys, sum.currency);
      group.row.tasks_at_risk += sum.tasks;
      group.row.credits_at_risk += sum.credits;
      group.atRiskMicros += sum.amount_micros;
    }
    for (const sum of sums) {
      const group = groupOf(sum.keys, sum.currency);
      const { row } = group;
      const status = sum.status as TaskStatus;
      row.tasks += sum.tasks;
      if (status === 'succeeded') row.succeeded += sum.tasks;
      else if (status === 'failed') row.failed += sum.tasks;
      else if (status === 'canceled') row.canceled += sum.tasks;
      else row.in_progress += sum.tasks;
      // Money counts once a task is finished: its charge is then final.
      if (!TERMINAL_STATUSES.has(status)) continue;
      row.video_seconds += sum.video_seconds;
      // A succeeded task that counted no seconds (an edit of no known length, an image) bought
      // none this row can name; a charged failure is part of what the delivered seconds cost.
      group.secondsMicros += status === 'succeeded' ? sum.seconds_amount_micros : sum.amount_micros;
      if (sum.reported) {
        row.credits_reported += sum.credits;
        group.reportedMicros += sum.amount_micros;
        row.tasks_reported += sum.tasks;
      } else {
        row.credits_estimated += sum.credits;
        group.estimatedMicros += sum.amount_micros;
      }
      row.drift_tasks += sum.compared;
      row.drift_estimated_credits += sum.compared_estimated_credits;
      row.drift_reported_credits += sum.compared_reported_credits;
    }
    const medianOf = new Map(medians.map((median) => [keyOf(median.keys, median.currency), median.median_duration_ms]));
    const rows = [...groups.entries()].map(([id, { row, estimatedMicros, reportedMicros, secondsMicros, atRiskMicros }]) => {
      // Tasks of providers without a price list have credits but no currency value.
      const priced = row.currency !== null;
      const amountMicros = estimatedMicros + reportedMicros;
      row.video_seconds = roundTo(row.video_seconds, 3);
      row.credits = roundTo(row.credits_estimated + row.credits_reported, 4);
      row.credits_estimated = roundTo(row.credits_estimated, 4);
      row.credits_reported = roundTo(row.credits_reported, 4);
      row.currency_amount = priced ? fromMicros(amountMicros) : null;
      row.currency_amount_estimated = priced ? fromMicros(estimatedMicros) : null;
      row.currency_amount_reported = priced ? fromMicros(reportedMicros) : null;
      row.cost_per_second = priced && row.video_seconds > 0 ? roundTo(fromMicros(secondsMicros) / row.video_seconds, 6) : null;
      row.success_rate = ratio(row.succeeded, row.succeeded + row.failed, 4);
      const median = medianOf.get(id);
      row.median_time_to_complete_ms = median === undefined ? null : Math.round(median);
      row.drift_estimated_credits = roundTo(row.drift_estimated_credits, 4);
      row.drift_reported_credits = roundTo(row.drift_reported_credits, 4);
      row.drift_ratio = ratio(row.drift_reported_credits, row.drift_estimated_credits);
      row.credits_at_risk = roundTo(row.credits_at_risk, 4);
      row.currency_amount_at_risk = priced ? fromMicros(atRiskMicros) : null;
      return row;
    });
    const sortKey = (row: UsageRow) => [...groupBy.map((key) => row[key] ?? ''), row.currency ?? ''];
    return rows.sort((a, b) => {
      const ka = sortKey(a);
      const kb = sortKey(b);
      for (let i = 0; i < ka.length; i++) {
        const order = String(ka[i]).localeCompare(String(kb[i]));
        if (order !== 0) return order;
      }
      return 0;
    });
  }

  /** Budget state for these tenants (every budgeted tenant when undefined). */
  async budgets(tenants?: readonly string[]): Promise<BudgetDescription[]> {
    const names = tenants ?? Object.keys(this.engine.config.tenants);
    const descriptions: BudgetDescription[] = [];
    for (const tenant of [...names].sort()) {
      const status = await this.ledger.status(tenant);
      if (status) descriptions.push(describeBudget(status));
    }
    return descriptions;
  }

  /** Sets the budget gauges from the store (what every replica has committed), on each scrape. */
  async updateBudgetGauges(): Promise<void> {
    const { metrics } = this.engine;
    for (const budget of await this.budgets()) {
      metrics.budgetAmount.set({ tenant: budget.tenant, currency: budget.currency, period: budget.period }, budget.amount);
      metrics.budgetSpent.set({ tenant: budget.tenant, currency: budget.currency }, budget.spent);
      metrics.budgetReserved.set({ tenant: budget.tenant, currency: budget.currency }, budget.reserved);
    }
  }
}

function emptyRow(groupBy: readonly UsageGroupKey[], keys: Partial<Record<string, string | null>>, currency: string | null): UsageRow {
  const row = {} as UsageRow;
  for (const key of groupBy) row[key] = keys[key] ?? null;
  return Object.assign(row, {
    currency,
    tasks: 0,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    in_progress: 0,
    video_seconds: 0,
    credits: 0,
    currency_amount: null,
    credits_estimated: 0,
    credits_reported: 0,
    currency_amount_estimated: null,
    currency_amount_reported: null,
    tasks_reported: 0,
    cost_per_second: null,
    success_rate: null,
    median_time_to_complete_ms: null,
    drift_tasks: 0,
    drift_estimated_credits: 0,
    drift_reported_credits: 0,
    drift_ratio: null,
    tasks_at_risk: 0,
    credits_at_risk: 0,
    currency_amount_at_risk: null,
  });
}
