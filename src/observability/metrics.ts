/**
 * Prometheus metrics (SPEC §6), prefix `kling_gateway_`. One registry per gateway instance so
 * tests and benchmarks can run several side by side. Labels never carry keys, ids or URLs; the
 * `account` label is an account id from the configuration (`default` for the one-account shorthand).
 */
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type LabelValues,
  type MetricObjectWithValues,
  type MetricValue,
} from 'prom-client';

const PREFIX = 'kling_gateway_';

/** Time buckets for HTTP and upstream calls (seconds). */
const CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Time buckets for whole tasks (seconds). */
const TASK_BUCKETS = [5, 15, 30, 60, 120, 180, 300, 600, 900, 1800];
/** Reported ÷ estimated credits: 1 is an exact price list; the buckets are tight around it. */
const DRIFT_BUCKETS = [0.5, 0.75, 0.9, 0.95, 0.99, 1, 1.01, 1.05, 1.1, 1.25, 1.5, 2];

export type CircuitStateName = 'closed' | 'open' | 'half_open' | 'isolated';
const CIRCUIT_STATE_VALUE: Record<CircuitStateName, number> = { closed: 0, open: 1, half_open: 2, isolated: 3 };

/** One process's metrics as prom-client's JSON (what workers send for a scrape). */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

/**
 * Amounts added up exactly by label set, in whole `1 / scale` units (money in millionths, as the
 * gateway counts it; credits in ten-thousandths, as it rounds them), so that a sum reads as
 * `/v1/usage` shows it (0.882), not as a float's (0.8819999999999999).
 */
class ExactTotals {
  private readonly totals = new Map<string, { labels: MetricValue<string>['labels']; units: number }>();

  constructor(readonly scale: number) {}

  add(labels: MetricValue<string>['labels'], amount: number): void {
    // One key for a set of labels, whatever order they were given in.
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
    const entry = this.totals.get(key) ?? { labels, units: 0 };
    entry.units += Math.round(amount * this.scale);
    this.totals.set(key, entry);
  }

  values(): MetricValue<string>[] {
    return [...this.totals.values()].map(({ labels, units }) => ({ labels, value: units / this.scale }));
  }
}

/** A counter whose amounts are added up exactly (`ExactTotals`), written afresh on every scrape. */
class ExactSumCounter<T extends string> {
  private readonly totals: ExactTotals;
  readonly name: string;

  constructor(config: Omit<CounterConfiguration<T>, 'collect'>, scale: number) {
    this.name = config.name;
    const totals = (this.totals = new ExactTotals(scale));
    new Counter<T>({
      ...config,
      collect() {
        this.reset();
        for (const { labels, value } of totals.values()) this.inc(labels as LabelValues<T>, value);
      },
    });
  }

  get scale(): number {
    return this.totals.scale;
  }

  inc(labels: LabelValues<T>, amount: number): void {
    this.totals.add(labels, amount);
  }
}

/**
 * The workers' snapshots with each exact-sum counter (`scales`: its name and scale) added up here
 * in whole units and carried by the first snapshot alone; prom-client's own sum would add the
 * workers' floats (0.588 + 0.294 = 0.8819999999999999).
 */
function withExactSums(parts: MetricsSnapshot[], scales: ReadonlyMap<string, number>): MetricsSnapshot[] {
  const totals = new Map([...scales].map(([name, scale]) => [name, new ExactTotals(scale)]));
  for (const part of parts) {
    for (const metric of part) {
      const sum = totals.get(metric.name);
      if (sum) for (const { labels, value } of metric.values) sum.add(labels, value);
    }
  }
  return parts.map((part, index) =>
    part.map((metric) => {
      const sum = totals.get(metric.name);
      return sum ? { ...metric, values: index === 0 ? sum.values() : [] } : metric;
    }),
  );
}

/** Money in whole millionths (what `toMicros` counts in). */
const MONEY_SCALE = 1_000_000;
/** Credits in whole ten-thousandths (what `costOf` rounds them to). */
const CREDITS_SCALE = 10_000;

/** Label values known at start, for the series `GatewayMetrics.seed` exports at 0. */
export interface KnownSeries {
  /** Each enabled provider: its account ids, the models it serves and the currency it prices in. */
  providers: readonly { id: string; accounts: readonly string[]; models: readonly string[]; currency: string | undefined }[];
  /** The error codes a failed task can end with. */
  errorCodes: readonly string[];
  /** The reasons a create leaves a provider for another (`failovers_total`). */
  failoverReasons: readonly string[];
  budgetedTenants: readonly string[];
}

/**
 * With several worker processes (`WORKERS`) a scrape reaches one of them and must report them
 * all: counters and histograms are added up; gauges the store or the shared standing set
 * (budgets, slots, the queue, circuits) are the same in every worker, refreshed for the scrape,
 * so one worker's value (`first`; `max` for circuits, the worst any worker sees) is reported.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly scrapeHooks: (() => Promise<void>)[] = [];
  private gatherWorkers: (() => Promise<unknown[]>) | undefined;

  readonly httpRequests = new Counter({
    name: `${PREFIX}http_requests_total`,
    help: 'HTTP requests served by the gateway.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Time to answer an HTTP request, by the status it was answered with.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: CALL_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: `${PREFIX}upstream_requests_total`,
    help: 'Calls to upstream providers by account and outcome (ok; an answered error as rate_limited, unauthorized, insufficient_credits, server_error, content_policy or its canonical error code; or a transport failure: refused, reset, timeout …).',
    labelNames: ['provider', 'account', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: `${PREFIX}upstream_request_duration_seconds`,
    help: 'Latency of calls to upstream providers, by account and outcome (as upstream_requests_total counts them).',
    labelNames: ['provider', 'account', 'operation', 'outcome'] as const,
    buckets: CALL_BUCKETS,
    registers: [this.registry],
  });
  readonly taskOutcomes = new Counter({
    name: `${PREFIX}tasks_finished_total`,
    help: 'Tasks that reached a terminal status.',
    labelNames: ['provider', 'model', 'status', 'error_code'] as const,
    registers: [this.registry],
  });
  readonly taskDuration = new Histogram({
    name: `${PREFIX}task_duration_seconds`,
    help: 'Time from creation to a terminal status.',
    labelNames: ['provider', 'model', 'status'] as const,
    buckets: TASK_BUCKETS,
    registers: [this.registry],
  });
  readonly creditsSpent = new ExactSumCounter(
    {
      name: `${PREFIX}credits_spent_total`,
      help: 'Credits charged for finished tasks, failed ones included (reported by the provider where it reports them, else estimated), by the provider account that took them.',
      labelNames: ['provider', 'account', 'model'] as const,
      registers: [this.registry],
    },
    CREDITS_SCALE,
  );
  readonly currencySpent = new ExactSumCounter(
    {
      name: `${PREFIX}currency_spent_total`,
      help: 'Currency value of the credits spent.',
      labelNames: ['provider', 'account', 'model', 'currency'] as const,
      registers: [this.registry],
    },
    MONEY_SCALE,
  );
  readonly creditsAtRisk = new ExactSumCounter(
    {
      name: `${PREFIX}credits_at_risk_total`,
      help: 'Credits a provider may also have charged for a finished task another provider took (its create left unanswered, failed over with failover_on_timeout): its estimate, not in credits_spent_total.',
      labelNames: ['provider', 'account', 'model'] as const,
      registers: [this.registry],
    },
    CREDITS_SCALE,
  );
  readonly currencyAtRisk = new ExactSumCounter(
    {
      name: `${PREFIX}currency_at_risk_total`,
      help: 'Currency value of the credits at risk.',
      labelNames: ['provider', 'account', 'model', 'currency'] as const,
      registers: [this.registry],
    },
    MONEY_SCALE,
  );
  /** The exact-sum counters by name, with their scales: added up across workers exactly too. */
  private readonly exactScales: ReadonlyMap<string, number> = new Map(
    [this.creditsSpent, this.currencySpent, this.creditsAtRisk, this.currencyAtRisk].map((counter) => [counter.name, counter.scale]),
  );
  readonly videoSeconds = new Counter({
    name: `${PREFIX}video_seconds_total`,
    help: 'Seconds of video delivered by succeeded tasks (the provider\'s durations, else the duration asked for).',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  readonly costDrift = new Histogram({
    name: `${PREFIX}cost_drift_ratio`,
    help: 'Quote against actual: credits the provider reported charging divided by the estimate from the price list, per succeeded task (failures and their refunds left out).',
    labelNames: ['provider', 'model'] as const,
    buckets: DRIFT_BUCKETS,
    registers: [this.registry],
  });
  readonly budgetAmount = new Gauge({
    name: `${PREFIX}budget_amount`,
    help: 'Budget of each budgeted tenant for the current period, in its currency.',
    labelNames: ['tenant', 'currency', 'period'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly budgetSpent = new Gauge({
    name: `${PREFIX}budget_spent`,
    help: 'Settled spend of each budgeted tenant in the current period (all replicas), in the budget currency.',
    labelNames: ['tenant', 'currency'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly budgetReserved = new Gauge({
    name: `${PREFIX}budget_reserved`,
    help: 'Money reserved for the unfinished tasks of each budgeted tenant in the current period, in the budget currency.',
    labelNames: ['tenant', 'currency'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly budgetRefusals = new Counter({
    name: `${PREFIX}budget_refusals_total`,
    help: 'Creates refused (402) because their reservation would pass the tenant\'s budget.',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly failovers = new Counter({
    name: `${PREFIX}failovers_total`,
    help: 'Create attempts that left a provider for a reason that lets the task go to another (whether or not another was left to take it), by that reason.',
    labelNames: ['provider', 'reason'] as const,
    registers: [this.registry],
  });
  readonly circuitState = new Gauge({
    name: `${PREFIX}circuit_state`,
    help: 'Circuit breaker state per provider (open only when every account is): 0 closed, 1 open, 2 half-open, 3 isolated.',
    labelNames: ['provider'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly accountCircuitState = new Gauge({
    name: `${PREFIX}account_circuit_state`,
    help: 'Circuit breaker state per upstream account: 0 closed, 1 open, 2 half-open, 3 isolated.',
    labelNames: ['provider', 'account'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly tasksInFlight = new Gauge({
    name: `${PREFIX}tasks_in_flight`,
    help: 'Tasks being submitted to or tracked at a provider.',
    labelNames: ['provider'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly accountTasksInFlight = new Gauge({
    name: `${PREFIX}account_tasks_in_flight`,
    help: 'Tasks being submitted to or tracked at a provider, per upstream account (each capped by its max_in_flight).',
    labelNames: ['provider', 'account'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly accountMaxInFlight = new Gauge({
    name: `${PREFIX}account_max_in_flight`,
    help: 'The in-flight cap of each upstream account.',
    labelNames: ['provider', 'account'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly tasksQueued = new Gauge({
    name: `${PREFIX}tasks_queued`,
    help: 'Tasks waiting for a provider slot or rate allowance.',
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly queueOldestAge = new Gauge({
    name: `${PREFIX}queue_oldest_age_seconds`,
    help: 'Age of the oldest task waiting for a provider (0 when none waits).',
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly clockOffset = new Gauge({
    name: `${PREFIX}clock_offset_seconds`,
    help: "This replica's clock minus the PostgreSQL server's, read at start and every minute (0 on SQLite); past ±1 s the replica is not ready and takes no leased work.",
    aggregator: 'first',
    registers: [this.registry],
  });
  readonly polls = new Counter({
    name: `${PREFIX}polls_total`,
    help: 'Status polls of upstream tasks by result.',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly unknownStatuses = new Counter({
    name: `${PREFIX}unknown_upstream_status_total`,
    help: 'Upstream status words the adapter did not recognise (the task stays non-terminal); the word is in the warn log.',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly inboundWebhooks = new Counter({
    name: `${PREFIX}inbound_webhooks_total`,
    help: 'Webhooks and callbacks received from providers, by result.',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly untrackedUpstreamTasks = new Counter({
    name: `${PREFIX}untracked_upstream_tasks_total`,
    help: 'Upstream tasks a provider made that no gateway task tracks (they may bill): found_by="webhook", each signed webhook (or legacy callback confirmed by a status fetch) naming one made for a create counted as not accepted, or for a create left in doubt after its task ended or another provider took it (one task may send several); found_by="late_answer", each create answer that came after its task was settled without it. The error log names each.',
    labelNames: ['provider', 'found_by'] as const,
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: `${PREFIX}webhook_deliveries_total`,
    help: 'Attempts to deliver task events to client webhook URLs, by result (delivered, retrying, failed, gone: answered 410 Gone; not_sent: a task event not sent since its receiver answered 410 Gone).',
    labelNames: ['event_type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly outputCopies = new Counter({
    name: `${PREFIX}output_copies_total`,
    help:
      "Copies of results into the gateway's storage by outcome (stored, retrying, not_stored, expired; later copies of outputs the gateway's storage could not take: recovered, recopy_failed, not_recovered).",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly outputBytesStored = new Counter({
    name: `${PREFIX}output_stored_bytes_total`,
    help: "Bytes of results copied into the gateway's storage.",
    registers: [this.registry],
  });
  readonly contentServed = new Counter({
    name: `${PREFIX}output_content_requests_total`,
    help: 'Requests for stored outputs by how they were answered (file, partial, redirect, not_modified, gone …).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
      // prom-client names these gauges `_total`, which Prometheus reserves for counters
      // (`promtool check metrics` refuses them); the process metrics are complete without them.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(`${PREFIX}${name}`);
      }
    }
  }

  /**
   * Exports at 0, from the start, the counters' series whose label values the configuration
   * already names, so that Prometheus sees each rise from 0: a series that first appears carrying
   * its first amount (a task's charge, a failover, a refusal) starts there, and rate() and
   * increase() never count that amount. Histograms are left to appear with their first
   * observation (a quantile or mean misses one observation, not an amount of money).
   */
  seed(known: KnownSeries): void {
    for (const { id: provider, accounts, models, currency } of known.providers) {
      for (const model of models) {
        this.taskOutcomes.inc({ provider, model, status: 'succeeded', error_code: '' }, 0);
        for (const code of known.errorCodes) this.taskOutcomes.inc({ provider, model, status: 'failed', error_code: code }, 0);
        this.videoSeconds.inc({ provider, model }, 0);
        for (const account of accounts) {
          this.creditsSpent.inc({ provider, account, model }, 0);
          this.creditsAtRisk.inc({ provider, account, model }, 0);
          if (currency) {
            this.currencySpent.inc({ provider, account, model, currency }, 0);
            this.currencyAtRisk.inc({ provider, account, model, currency }, 0);
          }
        }
      }
      for (const reason of known.failoverReasons) this.failovers.inc({ provider, reason }, 0);
      // What the untracked-task alert counts.
      for (const foundBy of ['webhook', 'late_answer']) this.untrackedUpstreamTasks.inc({ provider, found_by: foundBy }, 0);
    }
    // A task no provider took finishes under provider "none": every one refused it or none was
    // left (`no_provider_available`), or it waited for a provider slot until its deadline (`timeout`).
    for (const model of new Set(known.providers.flatMap((provider) => provider.models))) {
      for (const code of ['no_provider_available', 'timeout']) this.taskOutcomes.inc({ provider: 'none', model, status: 'failed', error_code: code }, 0);
    }
    for (const tenant of known.budgetedTenants) this.budgetRefusals.inc({ tenant }, 0);
  }

  setCircuitState(provider: string, state: CircuitStateName): void {
    this.circuitState.set({ provider }, CIRCUIT_STATE_VALUE[state]);
  }

  /** `account` is an id from the configuration (a closed set), never a key. */
  setAccountCircuitState(provider: string, account: string, state: CircuitStateName): void {
    this.accountCircuitState.set({ provider, account }, CIRCUIT_STATE_VALUE[state]);
  }

  /** Refreshes gauges that are read from the store just before a scrape. */
  onScrape(refresh: () => Promise<void>): void {
    this.scrapeHooks.push(refresh);
  }

  /** Answers scrapes with every worker's metrics (`gather` collects their snapshots, this one's included). */
  reportAcrossWorkers(gather: () => Promise<unknown[]>): void {
    this.gatherWorkers = gather;
  }

  /** Reads the gauges that come from the store, for a scrape. */
  private async refresh(): Promise<void> {
    for (const hook of this.scrapeHooks) await hook();
  }

  /** This process's metrics, store-read gauges refreshed. */
  async snapshot(): Promise<MetricsSnapshot> {
    await this.refresh();
    return this.registry.getMetricsAsJSON();
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    if (this.gatherWorkers) {
      const parts = (await this.gatherWorkers()).filter(Array.isArray) as MetricsSnapshot[];
      if (parts.length > 0) {
        const merged = AggregatorRegistry.aggregate(withExactSums(parts, this.exactScales));
        return { contentType: merged.contentType, body: await merged.metrics() };
      }
    }
    await this.refresh();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
