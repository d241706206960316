/**
 * The money side of a task's life (SPEC §3, §7). Every task has a usage line, written with it
 * and kept in step by the lifecycle in the same transaction as each change. A tenant with a
 * budget has money reserved at create — the most any provider of the task's plan estimates, so
 * failover cannot overspend (their sum with `failover_on_timeout`, where each may bill) — narrowed
 * to the accepting provider's figure plus what providers left unanswered may have billed, and
 * settled to the final charge (with those) when the task ends (a task nobody accepted, or a canceled one, settles at 0: a
 * release). A create that does not fit is refused before anything is sent. Alerts at 80 % and
 * 100 % of the budget are queued once per period as account events.
 */
import { randomBytes } from 'node:crypto';
import {
  BUDGET_THRESHOLDS,
  budgetWindow,
  reachedThresholds,
  utcDay,
  windowOfKey,
  type BudgetSettings,
  type BudgetThreshold,
  type BudgetWindow,
} from '../model/budget.js';
import { billableSeconds, fromMicros, toMicros } from '../model/pricing.js';
import type { SpendLimit } from '../model/routing.js';
import type { Engine } from './engine.js';
import { refuseLiteralTarget } from './address-guard.js';
import type { ChargeAtRiskLine, LedgerTransaction } from './task-repository.js';
import type { ChargeAtRisk } from '../model/canonical.js';
import type { AttemptRecord, BudgetRecord, TaskChange, TaskRecord, UsageChange, UsageRecord } from './task-records.js';

/** A tenant's budget for the current period, as usage reports and metrics show it. */
export interface BudgetStatus {
  tenant: string;
  settings: BudgetSettings;
  window: BudgetWindow;
  spentMicros: number;
  reservedMicros: number;
  warnedAt: number | null;
  exhaustedAt: number | null;
}

/** A create refused because its reservation would pass the tenant's budget. */
export class BudgetExceededError extends Error {
  override readonly name = 'BudgetExceededError';

  constructor(
    readonly status: BudgetStatus,
    /** What the refused task would have reserved (millionths). */
    readonly requestedMicros: number,
  ) {
    super(`budget of tenant ${status.tenant} exceeded`);
  }
}

/** What caused an alert: a reservation, a settlement, or a refused create. */
export type BudgetTrigger = 'reserved' | 'settled' | 'refused';

/** The public view of a budget (usage report, 402 answers, alert payloads). */
export function describeBudget(status: BudgetStatus) {
  const { settings, window } = status;
  const limit = toMicros(settings.amount);
  const committed = status.spentMicros + status.reservedMicros;
  return {
    tenant: status.tenant,
    amount: settings.amount,
    currency: settings.currency,
    period: settings.period,
    period_key: window.key,
    period_start: new Date(window.start).toISOString(),
    period_end: new Date(window.end).toISOString(),
    per_task_limit: settings.per_task_limit ?? null,
    spent: fromMicros(status.spentMicros),
    reserved: fromMicros(status.reservedMicros),
    remaining: fromMicros(Math.max(0, limit - committed)),
    used_ratio: limit > 0 ? Math.round((committed / limit) * 10_000) / 10_000 : null,
    warned_at: status.warnedAt === null ? null : new Date(status.warnedAt).toISOString(),
    exhausted_at: status.exhaustedAt === null ? null : new Date(status.exhaustedAt).toISOString(),
  };
}
export type BudgetDescription = ReturnType<typeof describeBudget>;

/**
 * Seconds of video a finished task delivered: the providers' durations, else the duration asked
 * for. A video neither says the length of (an edit, whose length is its source's: kling3api's
 * "auto") counts none: the 5 s a price list falls back on would be seconds nobody delivered.
 */
export function deliveredSeconds(task: TaskRecord): number {
  if (task.status !== 'succeeded') return 0;
  const videos = task.outputs.filter((output) => output.type === 'video');
  if (videos.length === 0) return 0;
  if (videos.every((video) => video.duration !== null && video.duration !== undefined)) {
    return videos.reduce((sum, video) => sum + (video.duration ?? 0), 0);
  }
  return requestedSeconds(task.request) ?? 0;
}

/** The seconds a request asked for (its duration, or its timed shots'), when it asked for any. */
function requestedSeconds(request: TaskRecord['request']): number | undefined {
  if (request.duration !== undefined) return request.duration;
  const shots = request.multi_shot;
  return shots?.every((shot) => shot.duration !== undefined) ? billableSeconds(request) : undefined;
}

/**
 * A finished task whose create went to a provider and was never answered, when nothing could
 * tell whether the provider holds it (`TaskLifecycle.failInDoubt`, or a queued task canceled after
 * such a create): failed or canceled, with a provider but no upstream id, its cost still that
 * provider's estimate. It may have been billed.
 */
function mayHaveBeenBilled(task: TaskRecord): boolean {
  return (task.status === 'failed' || task.status === 'canceled') && task.provider !== null && task.cost.estimated;
}

/**
 * The task's charge as usage columns: its current `cost`, except that a finished task no
 * provider ever accepted (failed before acceptance, canceled while queued) cost nothing, whatever
 * estimate it still carries; one that may have been billed counts its estimate.
 */
export function chargeOf(task: TaskRecord): Pick<UsageRecord, 'credits' | 'amountMicros' | 'currency' | 'reported' | 'reportedCredits'> {
  const { cost } = task;
  if (task.phase === 'done' && task.providerTaskId === null && !mayHaveBeenBilled(task)) {
    return { credits: 0, amountMicros: 0, currency: cost.currency, reported: false, reportedCredits: null };
  }
  // `estimated: false` on an accepted task means the provider said what it charged; on a task
  // nobody accepted it is the gateway's own certainty that nothing was billed.
  const reported = !cost.estimated && task.providerTaskId !== null && cost.credits !== null;
  return {
    credits: cost.credits,
    amountMicros: cost.currency_amount === null ? null : toMicros(cost.currency_amount),
    currency: cost.currency,
    reported,
    reportedCredits: reported ? cost.credits : null,
  };
}

/** Attempt outcomes whose create reached the provider and was never answered: it may hold the task, and bill it. */
const UNANSWERED_CREATE = new Set(['ambiguous', 'interrupted']);

/**
 * What other providers may have billed for the task besides its own `cost`: each whose create
 * was sent and never answered, when the task then went elsewhere (`failover_on_timeout`), at the
 * estimate its plan made for it. The provider the task ended with is left out: a task failed in
 * doubt already carries that provider's estimate as its cost.
 */
export function chargesAtRisk(task: TaskRecord, attempts: readonly AttemptRecord[]): ChargeAtRisk[] {
  return attempts
    .filter((attempt) => UNANSWERED_CREATE.has(attempt.outcome) && attempt.provider !== task.provider)
    .map((attempt) => {
      const estimate = task.plan.candidates.find((entry) => entry.provider === attempt.provider)?.estimate;
      return {
        provider: attempt.provider,
        account: attempt.account,
        credits: estimate?.credits ?? null,
        estimated: true,
        currency_amount: estimate?.currencyAmount ?? null,
        currency: estimate?.currency ?? null,
      };
    });
}

/** What a task's usage line and its at-risk lines are grouped by in reports: the same for both. */
function usageKeysOf(task: TaskRecord) {
  return {
    taskId: task.id,
    tenant: task.tenant,
    createdAt: task.createdAt,
    day: utcDay(task.createdAt),
    model: task.model,
    quality: task.quality,
    operation: task.operation,
  };
}

/** A charge at risk as the usage line beside the task's own: the task's grouping keys, the provider's estimate. */
function atRiskLine(task: TaskRecord, entry: ChargeAtRisk): ChargeAtRiskLine {
  return {
    ...usageKeysOf(task),
    provider: entry.provider,
    account: entry.account,
    credits: entry.credits,
    amountMicros: entry.currency_amount === null ? null : toMicros(entry.currency_amount),
    currency: entry.currency,
  };
}

/** The charges in `currency` (a budget's), in millionths; others cannot be added to it. */
function microsIn(currency: string | undefined, charges: readonly ChargeAtRisk[]): number {
  return charges
    .filter((entry) => entry.currency === currency && entry.currency_amount !== null)
    .reduce((sum, entry) => sum + toMicros(entry.currency_amount ?? 0), 0);
}

/** The estimate routing made for the provider that holds the task. */
function plannedCredits(task: TaskRecord): number | null {
  const entry = task.provider ? task.plan.candidates.find((candidate) => candidate.provider === task.provider) : undefined;
  return entry?.estimate?.credits ?? null;
}

/**
 * What a new task reserves (millionths): the most any provider of its plan may cost, so failover
 * never needs more. With `failover_on_timeout` every provider tried may bill it (each create
 * left unanswered, the last one taken), so it reserves them all: a create is refused rather
 * than let the tenant overspend.
 */
export function reserveFor(candidates: readonly { estimate?: { currencyAmount: number | null } | undefined }[], failoverOnTimeout = false): number {
  const amounts = candidates.map((entry) => toMicros(entry.estimate?.currencyAmount ?? 0));
  return failoverOnTimeout ? amounts.reduce((sum, amount) => sum + amount, 0) : Math.max(0, ...amounts);
}

/**
 * What a budget's row counts when it is first made in a period (a budget added, or its period
 * changed, while the tenant already spent): the tenant's usage lines created in the period that
 * no row of it counts, in the budget's currency. Settled ones at their final charge (and what
 * other providers may have billed), as spent; ones still running without a budget at their
 * current figure, as reserved, and charged to the period so they settle into it, once; ones still
 * running under another period's budget at what they hold there, as spent.
 */
function openingOf(settings: BudgetSettings, window: BudgetWindow) {
  return { start: window.start, end: window.end, currency: settings.currency };
}

export class SpendLedger {
  constructor(private readonly engine: Engine) {}

  /** What a task with these candidates reserves under the configured failover (`reserveFor`). */
  reservation(candidates: Parameters<typeof reserveFor>[0]): number {
    return reserveFor(candidates, this.engine.config.routing.failover_on_timeout);
  }

  private settingsOf(tenant: string): BudgetSettings | undefined {
    return this.engine.config.tenants[tenant]?.budget;
  }

  /** What routing must respect for this tenant's tasks (undefined without a budget). */
  spendLimit(tenant: string): SpendLimit | undefined {
    const settings = this.settingsOf(tenant);
    if (!settings) return undefined;
    return {
      tenant,
      currency: settings.currency,
      ...(settings.per_task_limit !== undefined ? { perTask: settings.per_task_limit } : {}),
    };
  }

  /** The tenant's budget in the period that `at` falls in (undefined without a budget). */
  async status(tenant: string, at = this.engine.clock.now()): Promise<BudgetStatus | undefined> {
    const settings = this.settingsOf(tenant);
    if (!settings) return undefined;
    const window = budgetWindow(settings.period, at);
    const record = await this.engine.tasks.budget(tenant, window.key);
    if (record) {
      // Tasks created while the budget was out of the configuration, which the row's next use counts.
      const pending = await this.engine.tasks.budgetPending(tenant, window.key, openingOf(settings, window));
      const status = this.statusOf(tenant, settings, window, record);
      return { ...status, spentMicros: status.spentMicros + pending.spent, reservedMicros: status.reservedMicros + pending.reserved };
    }
    // No create has touched the period's budget yet: what its first one will find (`openingOf`).
    const opening = await this.engine.tasks.budgetOpening(tenant, window.key, openingOf(settings, window));
    return { ...this.statusOf(tenant, settings, window, undefined), spentMicros: opening.spent, reservedMicros: opening.reserved };
  }

  private statusOf(tenant: string, settings: BudgetSettings, window: BudgetWindow, record: BudgetRecord | undefined): BudgetStatus {
    return {
      tenant,
      settings,
      window,
      spentMicros: record?.spentMicros ?? 0,
      reservedMicros: record?.reservedMicros ?? 0,
      warnedAt: record?.warnedAt ?? null,
      exhaustedAt: record?.exhaustedAt ?? null,
    };
  }

  /**
   * Why a create reserving `reserveMicros` now would be refused for the tenant's budget (the
   * 402 of `open`, as a quote says it), or undefined when it fits or the tenant has no budget.
   */
  async shortfall(tenant: string, reserveMicros: number, at = this.engine.clock.now()): Promise<string | undefined> {
    const status = await this.status(tenant, at);
    if (!status) return undefined;
    if (status.spentMicros + status.reservedMicros + reserveMicros <= toMicros(status.settings.amount)) return undefined;
    const budget = describeBudget(status);
    return (
      `this task would reserve ${fromMicros(reserveMicros)} ${budget.currency}, but tenant ${budget.tenant} has ${budget.remaining} ${budget.currency} ` +
      `left of its ${budget.period === 'day' ? 'daily' : 'monthly'} budget of ${budget.amount} ${budget.currency} ` +
      `(spent ${budget.spent}, reserved ${budget.reserved}); a create is refused with 402`
    );
  }

  /**
   * The writes that go with a new task: its usage line and, for a budgeted tenant, the
   * reservation. Throws `BudgetExceededError` (inside the transaction, so nothing is written)
   * when the reservation does not fit.
   */
  open(task: TaskRecord): (ledger: LedgerTransaction) => Promise<void> {
    const settings = this.settingsOf(task.tenant);
    const window = settings ? budgetWindow(settings.period, task.createdAt) : undefined;
    const reserve = this.reservation(task.plan.candidates);
    const line: UsageRecord = {
      ...usageKeysOf(task),
      provider: task.provider,
      account: task.account,
      status: task.status,
      completedAt: null,
      durationMs: null,
      videoSeconds: 0,
      ...chargeOf(task),
      reported: false,
      reportedCredits: null,
      estimatedCredits: null,
      budgetPeriod: window?.key ?? null,
      reservedMicros: settings ? reserve : 0,
      settled: false,
    };
    return async (ledger) => {
      await ledger.insertUsage(line);
      if (!settings || !window) return;
      const now = this.engine.clock.now();
      const limit = toMicros(settings.amount);
      const reserved = await ledger.reserve({
        tenant: task.tenant,
        period: window.key,
        amountMicros: reserve,
        limitMicros: limit,
        now,
        opening: openingOf(settings, window),
      });
      if (!reserved) {
        const current = await ledger.budget(task.tenant, window.key);
        throw new BudgetExceededError(this.statusOf(task.tenant, settings, window, current), reserve);
      }
      await this.alertIfReached(ledger, task.tenant, reserved, 'reserved');
    };
  }

  /**
   * The ledger writes that keep a task's usage line and budget in step with `change`, to run
   * in the change's transaction; undefined when the change moves no money and no status.
   * A terminal change settles: the reserve is released and the final charge is spent.
   */
  follow(
    before: TaskRecord,
    change: TaskChange,
    /** Told what other providers may have billed when the change ends the task (again if its transaction is tried again). */
    noteAtRisk?: (charges: readonly ChargeAtRisk[]) => void,
  ): ((ledger: LedgerTransaction, after: TaskRecord) => Promise<void>) | undefined {
    const terminal = change.phase === 'done' && before.phase !== 'done';
    const costChanged = change.cost !== undefined && JSON.stringify(change.cost) !== JSON.stringify(before.cost);
    const statusChanged = change.status !== undefined && change.status !== before.status;
    const providerChanged =
      (change.provider !== undefined && change.provider !== before.provider) || (change.account !== undefined && change.account !== before.account);
    // A provider taking the task may change neither its status nor its cost nor, as the task reads,
    // its provider (a slot claim names it beforehand): the first provider of the plan answering
    // that the task waits in its own queue (Freepik `CREATED`, legacy `submitted`). Its line still
    // names no provider, and its reserve still covers the dearest provider of the plan. Other
    // phase changes (a copy starting, a task put back in the queue) move no money by themselves.
    const taken = change.phase === 'tracking' && before.phase !== 'tracking';
    if (!terminal && !costChanged && !statusChanged && !providerChanged && !taken) return undefined;
    return async (ledger, after) => {
      const charge = chargeOf(after);
      // What other providers may have billed is written beside the line once the task ends.
      const atRisk = terminal ? chargesAtRisk(after, await ledger.attempts(after.id)) : undefined;
      if (atRisk) noteAtRisk?.(atRisk);
      if (atRisk && atRisk.length > 0) await ledger.insertChargesAtRisk(atRisk.map((entry) => atRiskLine(after, entry)));
      const common: UsageChange = { status: after.status, provider: after.provider, account: after.account, estimatedCredits: plannedCredits(after), ...charge };
      const completedAt = after.completedAt ?? after.updatedAt;
      const settlement: UsageChange = {
        ...common,
        completedAt,
        durationMs: completedAt - after.createdAt,
        videoSeconds: deliveredSeconds(after),
        reservedMicros: 0,
        settled: true,
      };
      // Most lines reserve no budget: one conditional write keeps them in step, without reading them first.
      if (await ledger.updateUnbudgetedUsage(after.id, terminal ? settlement : common)) return;
      const line = await ledger.usage(after.id);
      if (!line || line.settled) return;
      // A budget counts what other providers may have billed as spent: the gateway cannot tell
      // it was not, and would rather refuse a later create than let the tenant overspend.
      const riskMicros = line.budgetPeriod
        ? microsIn(this.settingsOf(after.tenant)?.currency, atRisk ?? chargesAtRisk(after, await ledger.attempts(after.id)))
        : 0;
      if (terminal) {
        await ledger.updateUsage(after.id, settlement);
        if (line.budgetPeriod) {
          await this.moveBudget(ledger, after.tenant, line.budgetPeriod, -line.reservedMicros, (charge.amountMicros ?? 0) + riskMicros, 'settled');
        }
        return;
      }
      // Once a provider has accepted the task (tracked, or its result being stored), the reserve
      // is that provider's figure (its estimate, or what it reports charging) and what others may
      // have billed; before that it stays what the create reserved.
      const accepted = after.providerTaskId !== null && after.phase !== 'dispatch' && after.phase !== 'submitting';
      const hold = line.budgetPeriod && accepted && charge.amountMicros !== null ? charge.amountMicros + riskMicros : line.reservedMicros;
      await ledger.updateUsage(after.id, { ...common, reservedMicros: hold });
      if (line.budgetPeriod && hold !== line.reservedMicros) {
        await this.moveBudget(ledger, after.tenant, line.budgetPeriod, hold - line.reservedMicros, 0, 'reserved');
      }
    };
  }

  /** After a refused create: the 100 % alert, if it has not gone out this period. */
  async noteRefusal(error: BudgetExceededError): Promise<void> {
    const { status } = error;
    await this.engine.tasks.inLedgerTransaction(async (ledger) => {
      const threshold = BUDGET_THRESHOLDS.find((entry) => entry.percent === 100);
      const current = await ledger.budget(status.tenant, status.window.key);
      if (threshold) await this.alert(ledger, status.tenant, status.window.key, threshold, current, 'refused');
    });
  }

  private async moveBudget(
    ledger: LedgerTransaction,
    tenant: string,
    period: string,
    reservedDeltaMicros: number,
    spentDeltaMicros: number,
    trigger: BudgetTrigger,
  ): Promise<void> {
    if (reservedDeltaMicros === 0 && spentDeltaMicros === 0) return;
    const now = this.engine.clock.now();
    const record = await ledger.changeBudget({ tenant, period, reservedDeltaMicros, spentDeltaMicros, now });
    if (record) await this.alertIfReached(ledger, tenant, record, trigger);
  }

  private async alertIfReached(ledger: LedgerTransaction, tenant: string, record: BudgetRecord, trigger: BudgetTrigger): Promise<void> {
    const settings = this.settingsOf(tenant);
    if (!settings) return;
    for (const threshold of reachedThresholds(record.spentMicros + record.reservedMicros, toMicros(settings.amount))) {
      await this.alert(ledger, tenant, record.period, threshold, record, trigger);
    }
  }

  /** Marks the alert for the period (once, across replicas) and queues its event to the tenant's events URL. */
  private async alert(
    ledger: LedgerTransaction,
    tenant: string,
    period: string,
    threshold: BudgetThreshold,
    record: BudgetRecord | undefined,
    trigger: BudgetTrigger,
  ): Promise<void> {
    const tenantSettings = this.engine.config.tenants[tenant];
    const settings = tenantSettings?.budget;
    if (!settings) return;
    const now = this.engine.clock.now();
    const alert = threshold.percent >= 100 ? 'exhausted' : 'warned';
    const first = await ledger.markBudgetAlert({ tenant, period, alert, at: now, opening: openingOf(settings, windowOfKey(period)) });
    if (!first) return;
    this.engine.logger.warn({ tenant, period, threshold: threshold.percent, trigger }, `budget ${threshold.event}`);
    const url = tenantSettings.events_url;
    if (!url) return;
    const marked = await ledger.budget(tenant, period);
    const status = this.statusOf(tenant, settings, windowOfKey(period), marked ?? record);
    const payload = {
      type: threshold.event,
      timestamp: new Date(now).toISOString(),
      data: { object: 'budget', threshold_percent: threshold.percent, trigger, ...describeBudget(status) },
    };
    await ledger.queueDelivery({
      id: `msg_${randomBytes(12).toString('hex')}`,
      taskId: null,
      tenant,
      url,
      eventType: threshold.event,
      payload: JSON.stringify(payload),
      createdAt: now,
    });
  }
}

/**
 * What is wrong with the tenants' budget settings against the providers actually running:
 * budgets are never converted between currencies, so every priced provider a budgeted tenant
 * could use must price in the budget's currency; an events URL must be a target webhooks may
 * reach. One line per problem, naming the field.
 */
export function budgetSettingsProblems(
  tenants: Engine['config']['tenants'],
  /** The providers as they would run (the runtimes at start, `check-config`'s plan of them). */
  providers: Iterable<{ id: string; enabled: boolean; pricing?: { currency: string } | null | undefined }>,
  allowPrivateTargets: boolean,
): string[] {
  const problems: string[] = [];
  for (const [tenant, settings] of Object.entries(tenants)) {
    const budget = settings.budget;
    if (budget) {
      for (const runtime of providers) {
        if (!runtime.enabled || !runtime.pricing || runtime.pricing.currency === budget.currency) continue;
        problems.push(
          `tenants.${tenant}.budget.currency: ${budget.currency}, but provider ${runtime.id} prices in ` +
            `${runtime.pricing.currency}; budgets are not converted between currencies (give them the same currency)`,
        );
      }
    }
    const refused = settings.events_url ? refuseLiteralTarget(settings.events_url, allowPrivateTargets) : undefined;
    if (refused) problems.push(`tenants.${tenant}.events_url: ${refused} (set webhooks.allow_private_targets to allow it)`);
  }
  return problems;
}
