/**
 * Recent behaviour of one provider, for `GET /v1/providers` and the `fastest` strategy:
 * outcome and latency of recent upstream calls, and time-to-complete of recent tasks.
 * `ProviderStats` keeps them in this process (one replica on SQLite); `SharedProviderStats`
 * reads every replica's from the shared store, so replicas route the same request alike.
 */

interface CallSample {
  at: number;
  ok: boolean;
  latencyMs: number;
}

export interface ProviderStatsSnapshot {
  /** Share of successful upstream calls in the window, or null without calls. */
  successRate: number | null;
  calls: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  /** Median time from creation to success of recent tasks (failures left out: what operators read as time to complete). */
  medianCompletionMs: number | null;
  /** Recent successes (the samples of `medianCompletionMs`). */
  completions: number;
}

/** Completions older than this no longer count towards the median. */
export const COMPLETION_WINDOW_MS = 6 * 3600_000;
/** Calls older than this no longer count towards success rate and latency. */
export const CALL_WINDOW_MS = 10 * 60_000;
const MAX_CALLS = 500;
/** How many of the newest finished tasks (successes and failures that count) count towards the medians. */
export const MAX_COMPLETIONS = 50;

/**
 * Failures that are the caller's, not the provider's: they say nothing of how soon the provider
 * delivers, so they do not count against it under `fastest`.
 */
export const CALLER_FAULT_CODES: ReadonlySet<string> = new Set(['content_policy', 'invalid_request']);

/**
 * Whether a finished task counts against its provider's time to deliver (`fastest`): a failure of a
 * task the provider accepted, unless the failure is the caller's (`CALLER_FAULT_CODES`).
 * (A canceled task is not `failed`; a task never accepted was failed over or never sent.)
 */
export function failureCounts(task: { status: string; providerTaskId: string | null; error: { code: string } | null }): boolean {
  return task.status === 'failed' && task.providerTaskId !== null && !CALLER_FAULT_CODES.has(task.error?.code ?? '');
}

/** The figures of one provider, wherever they are kept. */
export interface ProviderFigures {
  recordCall(at: number, ok: boolean, latencyMs: number): void;
  /** A task that finished `durationMs` after creation, at `at`. */
  recordCompletion(durationMs: number, at: number): void;
  /** A task the provider accepted and failed, at `at` (`failureCounts`): a completion that never came. */
  recordFailure(at: number): void;
  /** The figures as of the last refresh (synchronous: the router reads them on every create). */
  snapshot(now: number): ProviderStatsSnapshot;
  /**
   * What `fastest` orders by: the median time to deliver of the recent finished tasks, a counted
   * failure being a delivery that never came (+Infinity). Infinity once more than half of them
   * failed; null without any. Read on every create, so without going through the call samples.
   */
  medianDeliveryMs(now: number): number | null;
  /** Brings the figures up to date with other replicas' (nothing to do for in-process figures). */
  refresh(now: number): Promise<void>;
}

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? null;
}

export class ProviderStats implements ProviderFigures {
  private calls: CallSample[] = [];
  private completions: { at: number; durationMs: number }[] = [];

  constructor(
    private readonly windowMs = CALL_WINDOW_MS,
    private readonly maxCalls = MAX_CALLS,
    private readonly maxCompletions = MAX_COMPLETIONS,
  ) {}

  async refresh(): Promise<void> {
    // Everything is here already.
  }

  recordCall(at: number, ok: boolean, latencyMs: number): void {
    this.calls.push({ at, ok, latencyMs });
    if (this.calls.length > this.maxCalls) this.calls.shift();
  }

  /** A task that finished `durationMs` after creation, at `at` (Infinity: one that failed, `recordFailure`). */
  recordCompletion(durationMs: number, at: number): void {
    this.completions.push({ at, durationMs });
    if (this.completions.length > this.maxCompletions) this.completions.shift();
  }

  recordFailure(at: number): void {
    this.recordCompletion(Number.POSITIVE_INFINITY, at);
  }

  /** A copy, to add calls to without changing this one. */
  clone(): ProviderStats {
    const copy = new ProviderStats(this.windowMs, this.maxCalls, this.maxCompletions);
    copy.calls = [...this.calls];
    copy.completions = [...this.completions];
    return copy;
  }

  /**
   * Recent times to deliver, shortest first, failures (Infinity) last: old ones say little about a
   * provider that has since slowed down or stopped.
   */
  private recentDeliveries(now: number): number[] {
    return this.completions
      .filter((completion) => completion.at >= now - COMPLETION_WINDOW_MS)
      .map((completion) => completion.durationMs)
      .sort((a, b) => a - b);
  }

  medianDeliveryMs(now: number): number | null {
    return quantile(this.recentDeliveries(now), 0.5);
  }

  snapshot(now: number): ProviderStatsSnapshot {
    const recent = this.calls.filter((call) => call.at >= now - this.windowMs);
    const latencies = recent.map((call) => call.latencyMs).sort((a, b) => a - b);
    const completions = this.recentDeliveries(now).filter((durationMs) => Number.isFinite(durationMs));
    return {
      successRate: recent.length === 0 ? null : recent.filter((call) => call.ok).length / recent.length,
      calls: recent.length,
      latencyP50Ms: quantile(latencies, 0.5),
      latencyP95Ms: quantile(latencies, 0.95),
      medianCompletionMs: quantile(completions, 0.5),
      completions: completions.length,
    };
  }
}

/** Where the shared figures are kept (`store/shared-state-store.ts` fits this). */
export interface SharedStatsSource {
  recordCalls(samples: readonly { key: string; at: number; ok: boolean; latencyMs: number }[]): Promise<void>;
  /** Newest first. */
  recentCalls(key: string, since: number, limit: number): Promise<{ at: number; ok: boolean; latencyMs: number }[]>;
  /** Newest first; a failure that counts (`failureCounts`) is +Infinity. */
  recentCompletionTimes(provider: string, since: number, limit: number): Promise<number[]>;
}

/**
 * Figures every replica shares: this replica's call samples are written to the store in batches
 * at each refresh, and the snapshot is rebuilt from every replica's samples and the tasks table.
 * Calls not yet written count at once here, so this replica never lags behind its own calls.
 */
export class SharedProviderStats implements ProviderFigures {
  private pending: CallSample[] = [];
  private shared = new ProviderStats();
  private refreshing: Promise<void> | undefined;

  constructor(
    /** The account key call samples are kept under. */
    private readonly key: string,
    /** The provider whose tasks' completion times count. */
    private readonly provider: string,
    private readonly source: SharedStatsSource,
  ) {}

  recordCall(at: number, ok: boolean, latencyMs: number): void {
    this.pending.push({ at, ok, latencyMs });
    if (this.pending.length > MAX_CALLS) this.pending.shift();
  }

  recordCompletion(): void {
    // Read back from the tasks table, where every replica's completions already are.
  }

  recordFailure(): void {
    // Read back from the tasks table too.
  }

  medianDeliveryMs(now: number): number | null {
    // Completions are read back from the tasks table: calls not yet written do not change them.
    return this.shared.medianDeliveryMs(now);
  }

  snapshot(now: number): ProviderStatsSnapshot {
    if (this.pending.length === 0) return this.shared.snapshot(now);
    const merged = this.shared.clone();
    for (const call of this.pending) merged.recordCall(call.at, call.ok, call.latencyMs);
    return merged.snapshot(now);
  }

  /** Writes this replica's samples and reads everyone's. Concurrent calls share one refresh. */
  refresh(now: number): Promise<void> {
    this.refreshing ??= this.refreshOnce(now).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshOnce(now: number): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      await this.source.recordCalls(batch.map((call) => ({ key: this.key, ...call })));
    } catch (error) {
      // Keep them for the next refresh rather than lose them.
      this.pending = [...batch, ...this.pending].slice(-MAX_CALLS);
      throw error;
    }
    const [calls, completions] = await Promise.all([
      this.source.recentCalls(this.key, now - CALL_WINDOW_MS, MAX_CALLS),
      this.source.recentCompletionTimes(this.provider, now - COMPLETION_WINDOW_MS, MAX_COMPLETIONS),
    ]);
    const figures = new ProviderStats();
    for (const call of [...calls].reverse()) figures.recordCall(call.at, call.ok, call.latencyMs);
    // Completion times (and failures, Infinity) only count their number and medians here, so their own time is `now`.
    for (const durationMs of completions) figures.recordCompletion(durationMs, now);
    this.shared = figures;
  }
}
