/**
 * Recent behaviour of one provider, for `GET /v1/providers` and the `fastest` strategy:
 * outcome and latency of recent upstream calls, and time-to-complete of recent tasks.
 * Kept in memory per replica and seeded from the store at start.
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
  /** Median time from creation to success of recent tasks. */
  medianCompletionMs: number | null;
  completions: number;
}

/** Completions older than this no longer count towards the median. */
const COMPLETION_WINDOW_MS = 6 * 3600_000;

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? null;
}

export class ProviderStats {
  private calls: CallSample[] = [];
  private completions: { at: number; durationMs: number }[] = [];

  constructor(
    private readonly windowMs = 10 * 60_000,
    private readonly maxCalls = 500,
    private readonly maxCompletions = 50,
  ) {}

  recordCall(at: number, ok: boolean, latencyMs: number): void {
    this.calls.push({ at, ok, latencyMs });
    if (this.calls.length > this.maxCalls) this.calls.shift();
  }

  /** A task that finished `durationMs` after creation, at `at`. */
  recordCompletion(durationMs: number, at: number): void {
    this.completions.push({ at, durationMs });
    if (this.completions.length > this.maxCompletions) this.completions.shift();
  }

  snapshot(now: number): ProviderStatsSnapshot {
    const recent = this.calls.filter((call) => call.at >= now - this.windowMs);
    const latencies = recent.map((call) => call.latencyMs).sort((a, b) => a - b);
    // Old completions say little about a provider that has since slowed down or stopped.
    const completions = this.completions
      .filter((completion) => completion.at >= now - COMPLETION_WINDOW_MS)
      .map((completion) => completion.durationMs)
      .sort((a, b) => a - b);
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
