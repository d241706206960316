/**
 * Recent behaviour of a provider, as `GET /v1/providers` shows it and the `fastest` strategy
 * reads it: success rate and latency of recent upstream calls, median time to complete.
 */
import { describe, expect, it } from 'vitest';
import { failureCounts, ProviderStats, SharedProviderStats, type SharedStatsSource } from '../../../src/core/upstream/provider-stats.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MINUTE = 60_000;

describe('ProviderStats', () => {
  it('knows nothing before any call or completion', () => {
    expect(new ProviderStats().snapshot(NOW)).toEqual({
      successRate: null,
      calls: 0,
      latencyP50Ms: null,
      latencyP95Ms: null,
      medianCompletionMs: null,
      completions: 0,
    });
  });

  it('gives the share of successful calls', () => {
    const stats = new ProviderStats();
    stats.recordCall(NOW, true, 100);
    stats.recordCall(NOW, true, 100);
    stats.recordCall(NOW, true, 100);
    stats.recordCall(NOW, false, 100);
    expect(stats.snapshot(NOW)).toMatchObject({ successRate: 0.75, calls: 4 });
  });

  it('counts only calls within the window (10 minutes by default)', () => {
    const stats = new ProviderStats();
    stats.recordCall(NOW - 11 * MINUTE, false, 9_000);
    stats.recordCall(NOW - 10 * MINUTE, true, 200);
    stats.recordCall(NOW - MINUTE, true, 100);
    const snapshot = stats.snapshot(NOW);
    expect(snapshot.calls).toBe(2);
    expect(snapshot.successRate).toBe(1);
    expect(snapshot.latencyP95Ms).toBe(200);
    // Later, those calls age out too.
    expect(stats.snapshot(NOW + 10 * MINUTE).calls).toBe(0);
    expect(stats.snapshot(NOW + 10 * MINUTE).successRate).toBeNull();
  });

  it('takes a custom window', () => {
    const stats = new ProviderStats(MINUTE);
    stats.recordCall(NOW - 2 * MINUTE, false, 100);
    stats.recordCall(NOW - 30_000, true, 100);
    expect(stats.snapshot(NOW)).toMatchObject({ calls: 1, successRate: 1 });
  });

  it('gives p50 and p95 latency by nearest rank, whatever order the calls came in', () => {
    const stats = new ProviderStats();
    const latencies = Array.from({ length: 20 }, (_, i) => (i + 1) * 10); // 10 … 200
    for (const latency of [...latencies].reverse()) stats.recordCall(NOW, true, latency);
    expect(stats.snapshot(NOW)).toMatchObject({ latencyP50Ms: 100, latencyP95Ms: 190 });
  });

  it('p50 and p95 of a single call are that call', () => {
    const stats = new ProviderStats();
    stats.recordCall(NOW, false, 1_234);
    expect(stats.snapshot(NOW)).toMatchObject({ latencyP50Ms: 1_234, latencyP95Ms: 1_234, successRate: 0 });
  });

  it('keeps only the most recent calls', () => {
    const stats = new ProviderStats(10 * MINUTE, 3);
    stats.recordCall(NOW, false, 1);
    stats.recordCall(NOW, true, 1);
    stats.recordCall(NOW, true, 1);
    stats.recordCall(NOW, true, 1);
    expect(stats.snapshot(NOW)).toMatchObject({ calls: 3, successRate: 1 });
  });

  it('gives the median time to complete', () => {
    const stats = new ProviderStats();
    for (const duration of [180_000, 60_000, 120_000]) stats.recordCompletion(duration, NOW);
    expect(stats.snapshot(NOW)).toMatchObject({ medianCompletionMs: 120_000, completions: 3 });
    // With an even number, the lower of the two middle values.
    stats.recordCompletion(240_000, NOW);
    expect(stats.snapshot(NOW)).toMatchObject({ medianCompletionMs: 120_000, completions: 4 });
    // What the router reads on every create, without the call samples: the same figure.
    expect(stats.medianDeliveryMs(NOW)).toBe(120_000);
    expect(stats.medianDeliveryMs(NOW + 7 * 60 * MINUTE)).toBeNull();
  });

  it('counts a failure as a delivery that never came for fastest, and leaves it out of the median time to complete', () => {
    const stats = new ProviderStats();
    stats.recordCompletion(60_000, NOW);
    stats.recordFailure(NOW);
    // Half failed: the lower middle value is still a delivery.
    expect(stats.medianDeliveryMs(NOW)).toBe(60_000);
    stats.recordFailure(NOW);
    // Most failed: this provider delivers nothing most of the time.
    expect(stats.medianDeliveryMs(NOW)).toBe(Number.POSITIVE_INFINITY);
    expect(stats.snapshot(NOW)).toMatchObject({ medianCompletionMs: 60_000, completions: 1 });
    // Failures age out after six hours like successes.
    expect(stats.medianDeliveryMs(NOW + 7 * 60 * MINUTE)).toBeNull();
  });

  it('keeps only the most recent completions, so the median follows a change in speed', () => {
    const stats = new ProviderStats(10 * MINUTE, 500, 3);
    for (const duration of [10_000, 10_000, 10_000]) stats.recordCompletion(duration, NOW);
    expect(stats.snapshot(NOW).medianCompletionMs).toBe(10_000);
    for (const duration of [90_000, 90_000]) stats.recordCompletion(duration, NOW);
    expect(stats.snapshot(NOW)).toMatchObject({ medianCompletionMs: 90_000, completions: 3 });
  });

  it('ages completions out after six hours, so a provider that stopped finishing loses its old median', () => {
    const stats = new ProviderStats();
    stats.recordCompletion(75_000, NOW);
    expect(stats.snapshot(NOW + 5 * 60 * MINUTE).medianCompletionMs).toBe(75_000);
    expect(stats.snapshot(NOW + 7 * 60 * MINUTE)).toMatchObject({ medianCompletionMs: null, completions: 0 });
  });
});

describe('SharedProviderStats', () => {
  it('keeps the calls a refresh could not write: they still count here, and reach the store with the next refresh', async () => {
    const written: { key: string; ok: boolean }[] = [];
    let storeDown = true;
    const source: SharedStatsSource = {
      recordCalls: async (samples) => {
        if (storeDown) throw new Error('database unavailable');
        written.push(...samples.map(({ key, ok }) => ({ key, ok })));
      },
      recentCalls: async () => [...written].reverse().map((call) => ({ at: NOW, ok: call.ok, latencyMs: 100 })),
      recentCompletionTimes: async () => [],
    };
    const stats = new SharedProviderStats('freepik:default', 'freepik', source);
    stats.recordCall(NOW, false, 100);
    await expect(stats.refresh(NOW)).rejects.toThrow('database unavailable');
    expect(stats.snapshot(NOW)).toMatchObject({ calls: 1, successRate: 0 });
    storeDown = false;
    await stats.refresh(NOW);
    expect(written).toEqual([{ key: 'freepik:default', ok: false }]);
    expect(stats.snapshot(NOW)).toMatchObject({ calls: 1, successRate: 0 });
  });
});

describe('failureCounts', () => {
  it('counts against the provider only a failure of a task it accepted that is not the caller’s', () => {
    const failed = (code: string, providerTaskId: string | null = 'up-1') => ({ status: 'failed', providerTaskId, error: { code } });
    expect(failureCounts(failed('provider_error'))).toBe(true);
    expect(failureCounts(failed('timeout'))).toBe(true);
    // The caller's: a prompt refused, a request the provider found invalid.
    expect(failureCounts(failed('content_policy'))).toBe(false);
    expect(failureCounts(failed('invalid_request'))).toBe(false);
    // Never accepted: no video of it was ever started there.
    expect(failureCounts(failed('provider_error', null))).toBe(false);
    expect(failureCounts({ status: 'canceled', providerTaskId: 'up-1', error: { code: 'canceled' } })).toBe(false);
  });
});
