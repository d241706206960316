/**
 * `/v1/models` and `/v1/providers` (SPEC §1): what can be asked, who serves it, and how each
 * provider is doing. Both read the same capability declarations the router reads.
 */
import { MODELS, OPERATIONS, type Model, type Operation, type Quality } from '../model/canonical.js';
import type { FieldRule } from '../model/offerings.js';
import type { Engine } from './engine.js';

interface ModelEntry {
  model: Model;
  operations: {
    operation: Operation;
    providers: {
      provider: string;
      enabled: boolean;
      qualities: Quality[];
      upstream: string;
      fields: Record<string, FieldRule>;
      required_one_of: string[][];
    }[];
  }[];
}

export class ProviderCatalog {
  constructor(private readonly engine: Engine) {}

  /** Canonical models and operations, with every provider offering each (from capabilities). */
  models(): { data: ModelEntry[] } {
    const data: ModelEntry[] = [];
    for (const model of MODELS) {
      const operations: ModelEntry['operations'] = [];
      for (const operation of OPERATIONS) {
        const providers: ModelEntry['operations'][number]['providers'] = [];
        for (const runtime of this.engine.runtimes.values()) {
          for (const offering of runtime.provider.offerings) {
            if (offering.model !== model || offering.operation !== operation) continue;
            providers.push({
              provider: runtime.id,
              enabled: runtime.enabled,
              qualities: [...offering.qualities],
              upstream: offering.upstream,
              fields: offering.fields as Record<string, FieldRule>,
              required_one_of: (offering.requiredOneOf ?? []).map((group) => [...group]),
            });
          }
        }
        if (providers.length > 0) operations.push({ operation, providers });
      }
      if (operations.length > 0) data.push({ model, operations });
    }
    return { data };
  }

  /** Each provider's state, load, recent figures and prices. */
  async providers() {
    const load = await this.engine.tasks.load();
    const now = this.engine.clock.now();
    // Every replica answers alike: figures and circuits as the shared store has them now.
    await Promise.all(
      [...this.engine.runtimes.values()].map(async (runtime) => {
        try {
          await Promise.all([runtime.refreshFigures(now), runtime.refreshStanding()]);
        } catch (error) {
          this.engine.logger.warn({ err: error, provider: runtime.id }, 'showing the last known provider figures');
        }
      }),
    );
    return {
      data: [...this.engine.runtimes.values()].map((runtime) => {
        const stats = runtime.stats.snapshot(now);
        const cooling = runtime.coolingDownUntil;
        return {
          id: runtime.id,
          name: runtime.provider.name,
          enabled: runtime.enabled,
          mode: !runtime.enabled ? ('disabled' as const) : runtime.simulated ? ('simulator' as const) : ('live' as const),
          disabled_reason: runtime.disabledReason ?? null,
          can_cancel: typeof runtime.provider.cancel === 'function',
          circuit: runtime.circuit,
          in_flight: load.inFlight(runtime.id),
          max_in_flight: runtime.maxInFlight,
          queued: load.queued,
          cooling_down_until: cooling ? new Date(cooling).toISOString() : null,
          success_rate: stats.successRate,
          calls: stats.calls,
          latency_p50_ms: stats.latencyP50Ms,
          latency_p95_ms: stats.latencyP95Ms,
          median_completion_ms: stats.medianCompletionMs,
          accounts: runtime.accounts.map((account) => {
            const figures = account.stats.snapshot(now);
            const accountCooling = account.coolingDownUntil;
            return {
              id: account.id,
              circuit: account.circuit,
              in_flight: load.inFlight(runtime.id, account.id),
              max_in_flight: account.maxInFlight,
              cooling_down_until: accountCooling ? new Date(accountCooling).toISOString() : null,
              success_rate: figures.successRate,
              calls: figures.calls,
              latency_p50_ms: figures.latencyP50Ms,
              latency_p95_ms: figures.latencyP95Ms,
            };
          }),
          priority: runtime.config.priority,
          weight: runtime.config.weight,
          pricing: runtime.pricing
            ? {
                currency: runtime.pricing.currency,
                credit_value: runtime.pricing.credit_value,
                rules: runtime.pricing.rules as unknown as Record<string, unknown>[],
              }
            : null,
        };
      }),
    };
  }

  /**
   * Re-reads every provider's standing for a scrape: a circuit goes from open to half-open by
   * time alone (a probe may go), and without traffic nothing else would show it: the gauges
   * kept saying open. Another replica's change is read here too.
   */
  async updateCircuitGauges(): Promise<void> {
    await Promise.all(
      [...this.engine.runtimes.values()].map((runtime) =>
        runtime.refreshStanding().catch((error) => this.engine.logger.warn({ err: error, provider: runtime.id }, 'scraped the last known circuit state')),
      ),
    );
  }

  /** Sets the in-flight, queued and queue-age gauges (on each metrics scrape). */
  async updateLoadGauges(): Promise<void> {
    const { metrics, runtimes, clock } = this.engine;
    const load = await this.engine.tasks.load();
    for (const runtime of runtimes.values()) {
      metrics.tasksInFlight.set({ provider: runtime.id }, load.inFlight(runtime.id));
      for (const account of runtime.accounts) {
        const labels = { provider: runtime.id, account: account.id };
        metrics.accountTasksInFlight.set(labels, load.inFlight(runtime.id, account.id));
        metrics.accountMaxInFlight.set(labels, account.maxInFlight);
      }
    }
    metrics.tasksQueued.set(load.queued);
    metrics.queueOldestAge.set(load.oldestQueuedAt === null ? 0 : Math.max(0, clock.now() - load.oldestQueuedAt) / 1000);
  }
}
