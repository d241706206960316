/**
 * Cost truth under random inputs (fast-check, fixed seed), through the real API: random price
 * lists for the three providers (in USD or EUR unless the tenant has a budget; per-second and
 * per-task prices, credit values of many decimals,
 * a dated price change taking effect before, between or after the tasks), a budgeted tenant or
 * none, `failover_on_timeout` on or off, and random tasks (provider, quality, duration; succeeded
 * or failed; the charge kling3api's `consumed_credits` or the legacy `final_unit_deduction`
 * reports, with odd decimals, 0, as text, or none; a create Freepik leaves unanswered, then
 * failed over or failed in doubt), created on both sides of a new month. Checked:
 *
 * - a quote's `estimated_credits` / `estimated_cost` for a provider is what the price list in
 *   effect at that moment gives (credits to 4 decimals, money to 6), and a task Freepik or the
 *   legacy API took shows it as its cost until the provider reports a charge; a reported figure
 *   is the charge, valued at the credit value in effect when the task was created;
 * - a create is refused (402, with what it would reserve) exactly when spent + reserved + its
 *   reserve (the most of its providers' estimates, their sum with `failover_on_timeout`) would
 *   pass the budget of the period it is created in, and the quote then names no provider;
 * - with tasks overlapping, after every step: the budget's `reserved` is what each unfinished
 *   task holds (its create's reserve until a provider accepts it, then its cost and money at
 *   risk), `spent` the finished tasks' charges and money at risk, `remaining` the rest; at the end
 *   nothing is reserved;
 * - `/v1/usage` in every grouping adds up to the tasks' own credits and money (and money at risk,
 *   under the provider that may hold it) per group, the CSV says what the JSON says cell for cell,
 *   every money figure prints as its whole millionths do (never `0.30000000000000004`), and the
 *   grand total is the same whatever the grouping and its order.
 *
 * Fixed seed, 10 runs each on SQLite (a few seconds), 3 of the first on PostgreSQL when one is
 * reachable. `COST_PROPERTY_RUNS` / `COST_PROPERTY_SEED` go deeper.
 */
import fc from 'fast-check';
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import type { Store } from '../../src/store/database.js';

const postgres = await postgresAvailable();

/** Four hours before a new month: tasks are created on both sides of it (a new budget period, another usage day). */
const NOW = Date.UTC(2026, 10, 30, 20, 0, 0);
const PROVIDERS = ['freepik', 'kling3api', 'kling-legacy'] as const;
type Provider = (typeof PROVIDERS)[number];

/** A decimal of up to `digits` places, as the number it spells and its text. */
const decimal = (max: number, digits: number) =>
  fc.tuple(fc.integer({ min: 0, max: max * 10 ** digits }), fc.integer({ min: 0, max: digits })).map(([units, places]) => {
    const scaled = Math.round(units / 10 ** (digits - places));
    return Number((scaled / 10 ** places).toFixed(places));
  });

const creditValue = fc.oneof(
  fc.constantFrom(0.1, 0.2, 0.3, 0.01, 0.14, 0.001, 0.07, 0.0000001, 0.0123457),
  decimal(1, 7).filter((value) => value > 0),
);

const price = fc.oneof(
  decimal(20, 4).map((credits) => ({ credits_per_second: credits })),
  decimal(500, 3).map((credits) => ({ credits_per_task: credits })),
);

const priceList = fc.record({
  /** Budgets are never converted: a budgeted tenant's providers all price in USD. */
  currency: fc.constantFrom('USD', 'EUR'),
  credit_value: creditValue,
  base: price,
  /** A dated rule, from some hours before the first task to after the last; with its own credit value or not. */
  dated: fc.option(fc.record({ hours: fc.integer({ min: -12, max: 24 }), price, credit_value: fc.option(creditValue) })),
});
type PriceList = typeof priceList extends fc.Arbitrary<infer T> ? T : never;

/** What a provider's status answer says of the charge: nothing, a number, or the number as text. */
const charge = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(0, 0.1, 0.2, 0.3, 0.0001, 1e-7, 0.3333333),
  decimal(1_000, 6),
).chain((value) => (value === undefined ? fc.constant(undefined) : fc.constantFrom(value, String(value), ` ${value} `)));

const task = fc.record({
  provider: fc.constantFrom<Provider>(...PROVIDERS),
  quality: fc.constantFrom('pro', 'std'),
  duration: fc.constantFrom(5, 10),
  outcome: fc.constantFrom('succeed', 'fail'),
  charge,
  /** Freepik is tried first and never answers the create: with failover_on_timeout it moves on, else fails in doubt. */
  unansweredFirst: fc.boolean(),
  /** Hours the clock moves before the create. */
  after: fc.integer({ min: 0, max: 3 }),
});
type TaskPlan = typeof task extends fc.Arbitrary<infer T> ? T : never;

const world = fc.record({
  prices: fc.record({ freepik: priceList, kling3api: priceList, 'kling-legacy': priceList }),
  budget: fc.oneof(fc.constant(undefined), decimal(10, 2).filter((amount) => amount > 0), decimal(500, 2).filter((amount) => amount > 0)),
  failoverOnTimeout: fc.boolean(),
  tasks: fc.array(task, { minLength: 1, maxLength: 6 }),
});

/** The moment `hours` after NOW, as a date-time in +01:00 without seconds (`2026-11-30T21:00+01:00`). */
const zoned = (hours: number) => `${new Date(NOW + (hours + 1) * 3_600_000).toISOString().slice(0, 16)}+01:00`;

function pricingConfig(list: PriceList, budgeted: boolean) {
  const rules: Record<string, unknown>[] = [{ ...list.base }];
  if (list.dated) {
    rules.push({
      ...list.dated.price,
      effective_from: zoned(list.dated.hours),
      ...(list.dated.credit_value !== null ? { credit_value: list.dated.credit_value } : {}),
    });
  }
  return { currency: budgeted ? 'USD' : list.currency, credit_value: list.credit_value, rules };
}

/** The rule in effect at `at` (the dated one once its moment has come) and what a credit is worth under it. */
function ruleAt(list: PriceList, at: number) {
  const inEffect = list.dated && NOW + list.dated.hours * 3_600_000 <= at ? list.dated : undefined;
  return { rule: inEffect ? inEffect.price : list.base, creditValue: inEffect?.credit_value ?? list.credit_value };
}

/** A decimal (of at most 12 places, as every figure here is) in exact units of 10⁻¹². */
const exact = (value: number) => BigInt(value.toFixed(12).replace('.', ''));
/** `n` units of 10⁻ᵖ to the nearest unit of 10⁻ᵈ, half-way up, as that decimal. */
const halfUp = (n: bigint, places: number, digits: number) => {
  const step = 10n ** BigInt(places - digits);
  return Number((2n * n + step) / (2n * step)) / 10 ** digits;
};

/** Money of `micros` millionths over `seconds`, to the millionth, half-way up. */
const perSecondOf = (micros: number, seconds: number) => Number((2n * BigInt(micros) + BigInt(seconds)) / (2n * BigInt(seconds))) / 1_000_000;

/** Credits to 4 places and their money to 6, as README says a cost is rounded, worked out in exact decimals. */
const rounded = (credits: bigint, creditValue: number) => ({
  credits: halfUp(credits, 12, 4),
  currency_amount: halfUp(credits * exact(creditValue), 24, 6),
});

/** The estimate a price list makes at `at` for `seconds` of video. */
function expectedEstimate(list: PriceList, seconds: number, at: number) {
  const { rule, creditValue } = ruleAt(list, at);
  return rounded('credits_per_task' in rule ? exact(rule.credits_per_task) : exact(rule.credits_per_second) * BigInt(seconds), creditValue);
}

const micros = (amount: number | null | undefined) => Math.round((amount ?? 0) * 1_000_000);
const tenThousandths = (credits: number | null | undefined) => Math.round((credits ?? 0) * 10_000);

/** A money figure prints as its whole millionths do: `0.3`, never `0.30000000000000004`. */
function expectPrintsAsMillionths(label: string, amount: number | null) {
  if (amount === null) return;
  expect([label, String(amount)]).toEqual([label, String(micros(amount) / 1_000_000)]);
  expect([label, Number.isInteger(Math.round(amount * 1e6 * 1e3) / 1e3)]).toEqual([label, true]);
}

function terminalBody(provider: Provider, providerTaskId: string, plan: TaskPlan) {
  const figure = plan.charge;
  if (provider === 'kling3api') {
    const data: Record<string, unknown> = {
      task_id: providerTaskId,
      status: plan.outcome === 'succeed' ? 'SUCCESS' : 'FAILED',
      ...(plan.outcome === 'succeed' ? { response: ['https://cdn.example.com/videos/a.mp4'] } : { error_message: 'generation failed' }),
      ...(figure !== undefined ? { consumed_credits: figure } : {}),
    };
    return { code: 200, message: 'success', data };
  }
  const data: Record<string, unknown> = {
    task_id: providerTaskId,
    task_status: plan.outcome === 'succeed' ? 'succeed' : 'failed',
    task_status_msg: plan.outcome === 'succeed' ? '' : 'generation failed',
    ...(plan.outcome === 'succeed' ? { task_result: { videos: [{ id: 'v1', url: 'https://cdn.example.com/videos/a.mp4', duration: String(plan.duration) }] } } : {}),
    ...(figure !== undefined ? { final_unit_deduction: String(figure) } : {}),
  };
  return { code: 0, message: 'SUCCEED', request_id: 'req-done', data };
}

const GROUPINGS = ['', 'provider', 'model', 'operation', 'quality', 'day', 'provider,model', 'quality,provider', 'day,quality,operation,model,provider'];

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/**
 * Checks `property` on drawn worlds (`COST_PROPERTY_RUNS`, default `defaultRuns`; seed
 * `COST_PROPERTY_SEED`), closing each run's gateway after it; stops at the first failure.
 */
async function forDrawnWorlds<T>(worlds: fc.Arbitrary<T>, defaultRuns: number, property: (w: T) => Promise<void>): Promise<void> {
  const runs = Number(process.env.COST_PROPERTY_RUNS ?? defaultRuns);
  const seed = Number(process.env.COST_PROPERTY_SEED ?? 4242);
  await fc.assert(
    fc.asyncProperty(worlds, async (w) => {
      try {
        await property(w);
      } finally {
        await gw?.close();
        gw = undefined;
      }
    }),
    { numRuns: runs, seed, endOnFailure: true },
  );
}

type World = typeof world extends fc.Arbitrary<infer T> ? T : never;

async function run(w: World, store?: Store) {
  gw = await startTestGateway({
    ...(store ? { store } : {}),
    clock: new ManualClock(NOW),
    config: {
      routing: { failover_on_timeout: w.failoverOnTimeout },
      limits: { creates_per_minute: 100_000 },
      tenants: { acme: w.budget !== undefined ? { budget: { amount: w.budget, currency: 'USD', period: 'month' } } : {} },
      providers: {
        freepik: { pricing: pricingConfig(w.prices.freepik, w.budget !== undefined), timeout_ms: 150 },
        kling3api: { pricing: pricingConfig(w.prices.kling3api, w.budget !== undefined) },
        'kling-legacy': { pricing: pricingConfig(w.prices['kling-legacy'], w.budget !== undefined) },
      },
    },
  });
  const g = gw;
  const done: any[] = [];
  /** Per budget period (the UTC month of creation): the finished tasks' charges and money at risk. */
  const spent = new Map<string, number>();
  for (const [index, plan] of w.tasks.entries()) {
    if (plan.after > 0) await g.advance(plan.after * 3_600_000);
    const at = g.clock.now();
    const period = new Date(at).toISOString().slice(0, 7);
    const spentMicros = spent.get(period) ?? 0;
    const body = { model: 'kling-v3', quality: plan.quality, duration: plan.duration, prompt: `task ${index}` };
    const route: string[] = plan.unansweredFirst && plan.provider !== 'freepik' ? ['freepik', plan.provider] : [plan.provider];
    const request = { ...body, routing: { providers: route } };

    // The quote: each provider's estimate is its price list's, whatever the budget says.
    const quote = (await g.request('POST', '/v1/videos/quote', request)).body;
    const estimates = new Map<string, { credits: number; currency_amount: number }>();
    for (const provider of route) {
      const entry = quote.providers.find((p: any) => p.provider === provider);
      const expected = expectedEstimate(w.prices[provider as Provider], plan.duration, at);
      expect([provider, entry?.estimated_credits, entry?.estimated_cost]).toEqual([provider, expected.credits, expected.currency_amount]);
      expectPrintsAsMillionths(`quote ${provider}`, entry.estimated_cost);
      estimates.set(provider, expected);
    }
    // The budget's rule: the reserve is the most of the plan's estimates (their sum with failover_on_timeout).
    const amounts = route.map((provider) => micros(estimates.get(provider)!.currency_amount));
    const reserve = w.failoverOnTimeout ? amounts.reduce((a, b) => a + b, 0) : Math.max(...amounts);
    const refusedByRule = w.budget !== undefined && spentMicros + reserve > micros(w.budget);

    // The quote answers as the create will: no provider eligible exactly when the reserve does not fit.
    expect([index, 'quote order', quote.order.length > 0]).toEqual([index, 'quote order', !refusedByRule]);

    if (route[0] === 'freepik' && route.length > 1) g.simulator('freepik').injectFault({ transport: 'hang' });
    else if (plan.provider === 'freepik') g.simulator('freepik').setOutcome(plan.outcome === 'succeed' ? 'succeed' : 'fail');
    const created = await g.create(request);
    g.simulator('freepik').clearFaults();
    if (refusedByRule) {
      expect([index, created.status, created.body.requested]).toEqual([index, 402, reserve / 1_000_000]);
      continue;
    }
    expect([index, created.status, created.body.detail]).toEqual([index, 202, undefined]);
    const taskId = created.body.id;
    const holder: string | null = created.body.provider;

    // Before any report, the task costs what the quote said for the provider that holds it
    // (kling3api's create answer already reports `consumed_credits`: that is its charge).
    if (holder !== null && holder !== 'kling3api') {
      const expected = estimates.get(holder)!;
      expect([holder, created.body.cost.credits, created.body.cost.currency_amount]).toEqual([holder, expected.credits, expected.currency_amount]);
    }

    if (holder === 'kling3api' || holder === 'kling-legacy') {
      const simulator = g.simulator(holder);
      const upstream = simulator.tasks.at(-1)!;
      simulator.injectFault({ on: 'status', status: 200, times: 1_000, body: terminalBody(holder, upstream.id, plan) });
    }
    const finished = await g.finish(taskId);
    g.simulator('kling3api').clearFaults();
    g.simulator('kling-legacy').clearFaults();
    expect(['succeeded', 'failed', 'canceled']).toContain(finished.status);
    expectPrintsAsMillionths(`task ${index}`, finished.cost.currency_amount);
    for (const entry of finished.cost.at_risk ?? []) expectPrintsAsMillionths(`task ${index} at risk`, entry.currency_amount);
    expect(Date.parse(finished.created_at)).toBe(at);
    // A reported figure is the charge, valued at the credit value in effect when the task was created.
    const figure = plan.charge === undefined ? undefined : Number(plan.charge);
    if (figure !== undefined && (holder === 'kling3api' || holder === 'kling-legacy')) {
      const expected = rounded(exact(figure), ruleAt(w.prices[holder], at).creditValue);
      expect([index, holder, finished.cost.credits, finished.cost.currency_amount, finished.cost.estimated]).toEqual([index, holder, expected.credits, expected.currency_amount, false]);
    }
    done.push(finished);
    spent.set(period, spentMicros + micros(finished.cost.currency_amount) + (finished.cost.at_risk ?? []).reduce((sum: number, entry: any) => sum + micros(entry.currency_amount), 0));

    const usage = (await g.request('GET', '/v1/usage')).body;
    if (w.budget !== undefined) {
      // Settled: the sum of the finished tasks' charges and what they put at risk; nothing held.
      expect([index, usage.budgets[0].period_key, micros(usage.budgets[0].spent), usage.budgets[0].reserved]).toEqual([index, period, spent.get(period), 0]);
      expectPrintsAsMillionths('budget spent', usage.budgets[0].spent);
      expectPrintsAsMillionths('budget remaining', usage.budgets[0].remaining);
    }
  }

  // Usage, every grouping, against the tasks' own figures.
  const keyOf = (t: any, key: string) => (key === 'day' ? t.created_at.slice(0, 10) : (t[key] ?? null));
  let grand: string | undefined;
  for (const grouping of GROUPINGS) {
    const keys = grouping ? grouping.split(',') : [];
    const expected = new Map<string, { tasks: number; succeeded: number; failed: number; canceled: number; video_seconds: number; seconds_micros: number; credits: number; micros: number; at_risk_tasks: number; at_risk_micros: number; at_risk_credits: number }>();
    const rowOf = (id: string) => {
      const row = expected.get(id) ?? { tasks: 0, succeeded: 0, failed: 0, canceled: 0, video_seconds: 0, seconds_micros: 0, credits: 0, micros: 0, at_risk_tasks: 0, at_risk_micros: 0, at_risk_credits: 0 };
      expected.set(id, row);
      return row;
    };
    for (const t of done) {
      const row = rowOf(JSON.stringify([...keys.map((key) => keyOf(t, key)), t.cost.currency]));
      row.tasks += 1;
      row[t.status as 'succeeded' | 'failed' | 'canceled'] += 1;
      // Every task here asked for its seconds (and the legacy answers say the same): a success delivered them.
      const seconds = t.status === 'succeeded' ? t.request.duration : 0;
      row.video_seconds += seconds;
      // What a second of video cost: the successes that delivered seconds, and every failure.
      if (t.status !== 'succeeded' || seconds > 0) row.seconds_micros += micros(t.cost.currency_amount);
      row.credits += tenThousandths(t.cost.credits);
      row.micros += micros(t.cost.currency_amount);
      for (const entry of t.cost.at_risk ?? []) {
        const risk = rowOf(JSON.stringify([...keys.map((key) => (key === 'provider' ? entry.provider : keyOf(t, key))), entry.currency]));
        risk.at_risk_tasks += 1;
        risk.at_risk_micros += micros(entry.currency_amount);
        risk.at_risk_credits += tenThousandths(entry.credits);
      }
    }
    const query = `from=2026-11-01&to=2027-01-01${grouping ? `&group_by=${grouping}` : ''}`;
    const json = (await g.request('GET', `/v1/usage?${query}`)).body.data;
    const csv = (await g.request('GET', `/v1/usage?${query}&format=csv`)).body as string;
    const [header, ...lines] = csv.trim().split('\r\n');
    const columns = header!.split(',');
    const csvRows = lines.map((line) => Object.fromEntries(line.split(',').map((value, i) => [columns[i]!, value])));
    expect([grouping, csvRows.length]).toEqual([grouping, json.length]);
    const seen = new Map<string, unknown>();
    const totals: Record<string, { tasks: number; micros: number; at_risk_micros: number }> = {};
    json.forEach((row: any, i: number) => {
      const id = JSON.stringify([...keys.map((key) => row[key]), row.currency]);
      const want = expected.get(id);
      for (const column of columns) {
        // The CSV says what the JSON says, cell for cell.
        expect([grouping, id, column, csvRows[i]![column]]).toEqual([grouping, id, column, row[column] === null ? '' : String(row[column])]);
      }
      for (const column of ['currency_amount', 'currency_amount_estimated', 'currency_amount_reported', 'currency_amount_at_risk', 'cost_per_second']) {
        expectPrintsAsMillionths(`${grouping} ${id} ${column}`, row[column]);
      }
      expect([grouping, id, micros(row.currency_amount)]).toEqual([grouping, id, micros(row.currency_amount_estimated) + micros(row.currency_amount_reported)]);
      seen.set(id, {
        tasks: row.tasks,
        succeeded: row.succeeded,
        failed: row.failed,
        canceled: row.canceled,
        video_seconds: row.video_seconds,
        seconds_micros: want?.seconds_micros,
        credits: tenThousandths(row.credits),
        micros: micros(row.currency_amount),
        at_risk_tasks: row.tasks_at_risk,
        at_risk_micros: micros(row.currency_amount_at_risk),
        at_risk_credits: tenThousandths(row.credits_at_risk),
      });
      const total = (totals[row.currency] ??= { tasks: 0, micros: 0, at_risk_micros: 0 });
      total.tasks += row.tasks;
      total.micros += micros(row.currency_amount);
      total.at_risk_micros += micros(row.currency_amount_at_risk);
      // A second of video costs the row's money over its seconds, to the millionth (half-way up).
      expect([grouping, id, 'cost_per_second', row.cost_per_second]).toEqual([
        grouping,
        id,
        'cost_per_second',
        want && want.video_seconds > 0 ? perSecondOf(want.seconds_micros, want.video_seconds) : null,
      ]);
    });
    expect([grouping, Object.fromEntries(seen)]).toEqual([grouping, Object.fromEntries(expected)]);
    const printed = JSON.stringify(Object.entries(totals).sort(([a], [b]) => a.localeCompare(b)));
    grand ??= printed;
    expect([grouping, printed]).toEqual([grouping, grand]);
  }
}

it('costs agree across quote, task, budget and usage (JSON and CSV, every grouping) for random prices and charges', async () => {
  await forDrawnWorlds(world, 10, (w) => run(w));
}, 120_000);

it.skipIf(!postgres)('costs agree across quote, task, budget and usage on PostgreSQL too (its sums and casts)', async () => {
  await forDrawnWorlds(world, 3, async (w) => {
    const schema = newSchemaName();
    try {
      await run(w, await openPostgresStore(schema));
    } finally {
      // The gateway lets go of the schema before it is dropped.
      await gw?.close();
      gw = undefined;
      await dropSchema(schema);
    }
  });
}, 120_000);

/** Steps of the budget run: a create, or time moving (workers run) while tasks are in flight. */
const step = fc.oneof(
  { weight: 3, arbitrary: task.map((plan) => ({ kind: 'create' as const, plan })) },
  { weight: 2, arbitrary: fc.integer({ min: 500, max: 3_000 }).map((ms) => ({ kind: 'advance' as const, ms })) },
);

const budgetWorld = fc.record({
  prices: fc.record({ freepik: priceList, kling3api: priceList, 'kling-legacy': priceList }),
  budget: decimal(20, 2).filter((amount) => amount > 0),
  failoverOnTimeout: fc.boolean(),
  steps: fc.array(step, { minLength: 1, maxLength: 12 }),
});
type BudgetWorld = typeof budgetWorld extends fc.Arbitrary<infer T> ? T : never;

/** A task's money as the budget holds it: its cost and what it put at risk, in millionths. */
const heldMicros = (t: any) => micros(t.cost.currency_amount) + (t.cost.at_risk ?? []).reduce((sum: number, entry: any) => sum + micros(entry.currency_amount), 0);

async function budgetRun(w: BudgetWorld) {
  gw = await startTestGateway({
    clock: new ManualClock(Date.UTC(2026, 10, 22, 12, 0, 0)),
    config: {
      routing: { failover_on_timeout: w.failoverOnTimeout },
      limits: { creates_per_minute: 100_000 },
      tenants: { acme: { budget: { amount: w.budget, currency: 'USD', period: 'month' } } },
      providers: {
        freepik: { pricing: pricingConfig(w.prices.freepik, true), timeout_ms: 150, circuit_breaker: { consecutive_failures: 1_000 } },
        kling3api: { pricing: pricingConfig(w.prices.kling3api, true) },
        'kling-legacy': { pricing: pricingConfig(w.prices['kling-legacy'], true) },
      },
    },
  });
  const g = gw;
  /** Every task made, with what its create reserved (what it holds until a provider accepts it). */
  const made: { id: string; reserve: number }[] = [];
  const read = async () => {
    const tasks = await Promise.all(made.map(async (entry) => ({ ...entry, task: (await g.get(entry.id)).body })));
    const budget = (await g.request('GET', '/v1/usage')).body.budgets[0];
    return { tasks, budget };
  };
  /** Spent: the finished tasks' charges and money at risk; reserved: what each unfinished one holds. */
  const check = async (label: string) => {
    const { tasks, budget } = await read();
    const finished = tasks.filter(({ task }) => ['succeeded', 'failed', 'canceled'].includes(task.status));
    const running = tasks.filter(({ task }) => !['succeeded', 'failed', 'canceled'].includes(task.status));
    const spent = finished.reduce((sum, { task }) => sum + heldMicros(task), 0);
    const reserved = running.reduce((sum, { task, reserve }) => sum + (task.provider_task_id ? heldMicros(task) : reserve), 0);
    expect([label, micros(budget.spent), micros(budget.reserved)]).toEqual([label, spent, reserved]);
    expectPrintsAsMillionths(`${label} spent`, budget.spent);
    expectPrintsAsMillionths(`${label} reserved`, budget.reserved);
    expectPrintsAsMillionths(`${label} remaining`, budget.remaining);
    expect([label, micros(budget.remaining)]).toEqual([label, Math.max(0, micros(w.budget) - spent - reserved)]);
    return { spent, reserved, running: running.length };
  };
  for (const [index, s] of w.steps.entries()) {
    if (s.kind === 'advance') {
      await g.advance(s.ms);
      await check(`step ${index} advance`);
      continue;
    }
    const { plan } = s;
    const route: string[] = plan.unansweredFirst && plan.provider !== 'freepik' ? ['freepik', plan.provider] : [plan.provider];
    const request = { model: 'kling-v3', quality: plan.quality, duration: plan.duration, prompt: `task ${index}`, routing: { providers: route } };
    const at = g.clock.now();
    const amounts = route.map((provider) => micros(expectedEstimate(w.prices[provider as Provider], plan.duration, at).currency_amount));
    const reserve = w.failoverOnTimeout ? amounts.reduce((a, b) => a + b, 0) : Math.max(...amounts);
    const before = await check(`step ${index} before create`);
    const refusedByRule = before.spent + before.reserved + reserve > micros(w.budget);
    if (route.length > 1) g.simulator('freepik').injectFault({ transport: 'hang' });
    else if (plan.provider === 'freepik') g.simulator('freepik').setOutcome(plan.outcome === 'succeed' ? 'succeed' : 'fail');
    else g.simulator(plan.provider).setOutcome(plan.outcome === 'succeed' ? 'succeed' : 'fail');
    const created = await g.create(request);
    g.simulator('freepik').clearFaults();
    expect([index, created.status]).toEqual([index, refusedByRule ? 402 : 202]);
    if (refusedByRule) {
      expect([index, micros(created.body.requested), micros(created.body.spent), micros(created.body.reserved)]).toEqual([index, reserve, before.spent, before.reserved]);
    } else {
      made.push({ id: created.body.id, reserve });
    }
    await check(`step ${index} after create`);
  }
  // Then every task to its end: nothing reserved, the charges spent.
  for (let pass = 0; pass < 60 && (await check('draining')).running > 0; pass++) await g.advance(1_000);
  const end = await check('end');
  expect(end.running).toBe(0);
  expect(end.reserved).toBe(0);
}

it('a budget reserves, narrows and settles to the tasks\' own costs, and refuses a create exactly by its rule, under random prices and overlapping tasks', async () => {
  await forDrawnWorlds(budgetWorld, 10, (w) => budgetRun(w));
}, 120_000);
