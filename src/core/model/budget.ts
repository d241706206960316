/**
 * Tenant budgets as policy: what a budget says, which period a moment falls in (UTC calendar
 * days and months), and which alert thresholds a spend has reached. No I/O.
 */
import { z } from 'zod';
import { configNumber } from './config-number.js';
import { CurrencyCode } from './pricing.js';

export const BUDGET_PERIODS = ['day', 'month'] as const;
export const BudgetPeriod = z.enum(BUDGET_PERIODS);
export type BudgetPeriod = z.infer<typeof BudgetPeriod>;

/** `tenants.<name>.budget` in config.yaml. */
export const BudgetSettings = z.strictObject({
  /** Most the tenant may commit (spent + reserved) in one period, in `currency`. */
  amount: configNumber(z.number().positive()),
  /** ISO 4217 code; every provider a budgeted tenant can use must price in it (no conversion). */
  currency: CurrencyCode,
  /** Calendar day or month, in UTC. */
  period: BudgetPeriod,
  /** Largest estimated cost of one task, in `currency`; providers quoting more are passed over. */
  per_task_limit: configNumber(z.number().positive()).optional(),
});
export type BudgetSettings = z.infer<typeof BudgetSettings>;

/** One budget period: its key (`2026-11-22` for a day, `2026-11` for a month) and bounds in ms. */
export interface BudgetWindow {
  key: string;
  /** Inclusive start, UTC. */
  start: number;
  /** Exclusive end, UTC. */
  end: number;
}

/** The UTC calendar day or month that `at` falls in. */
export function budgetWindow(period: BudgetPeriod, at: number): BudgetWindow {
  const date = new Date(at);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  if (period === 'month') {
    return {
      key: `${year}-${String(month + 1).padStart(2, '0')}`,
      start: Date.UTC(year, month, 1),
      end: Date.UTC(year, month + 1, 1),
    };
  }
  const day = date.getUTCDate();
  return { key: utcDay(at), start: Date.UTC(year, month, day), end: Date.UTC(year, month, day + 1) };
}

/** `YYYY-MM-DD` of a moment, in UTC. */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** Alert thresholds, in percent of the budget, with the webhook event each sends (once per period). */
export const BUDGET_THRESHOLDS = [
  { percent: 80, event: 'budget.warning' },
  { percent: 100, event: 'budget.exhausted' },
] as const;
export type BudgetThreshold = (typeof BUDGET_THRESHOLDS)[number];

/**
 * The thresholds `committed` (spent + reserved, in millionths) has reached against `limit`
 * (in millionths). Integer arithmetic: 80 % of a budget is reached exactly at 80 %.
 */
export function reachedThresholds(committedMicros: number, limitMicros: number): BudgetThreshold[] {
  return BUDGET_THRESHOLDS.filter((threshold) => committedMicros * 100 >= limitMicros * threshold.percent);
}

/** The window a stored period key stands for (`2026-11-22` a day, `2026-11` a month). */
export function windowOfKey(key: string): BudgetWindow {
  if (/^\d{4}-\d{2}$/.test(key)) return budgetWindow('month', Date.parse(`${key}-01T00:00:00Z`));
  return budgetWindow('day', Date.parse(`${key}T00:00:00Z`));
}
