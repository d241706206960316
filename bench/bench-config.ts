/**
 * The gateway configuration the benchmark runs: the embedded SQLite file (what users run by
 * default, so its cost is part of what is measured), no logging, and limits wide enough that
 * they never decide a number. Polling is scaled to the short simulated tasks so that its
 * proportions match `config.yaml` against real Kling jobs.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type GatewayConfig } from '../src/config/config.js';
import { PROVIDER_IDS, PROVIDERS } from '../src/providers/registry.js';
import type { BenchSettings } from './bench-settings.js';

/** The one tenant the benchmark creates tasks as. */
export const BENCH_TENANT_KEY = 'bench-secret-key';

/**
 * Provider settings that keep the gateway's own limits out of the measurement: a concurrency
 * cap far above what a run puts in flight, and no request-rate windows (Freepik's real 50/s
 * window would otherwise queue the 50 req/s phase).
 */
function unlimitedProvider(priority: number): Record<string, unknown> {
  return {
    priority,
    timeout_ms: 10_000,
    max_in_flight: 100_000,
    rate_limits: [],
    circuit_breaker: { consecutive_failures: 50, half_open_after_ms: 5_000 },
  };
}

/** A fresh temporary directory holding the benchmark's SQLite file. */
export function benchDatabaseDirectory(): string {
  return mkdtempSync(join(tmpdir(), 'kling-gw-bench-'));
}

/**
 * The validated configuration. `public_url` is a placeholder: the gateway listens on a random
 * port and is pointed at its real URL with `setPublicUrl` once it knows it.
 *
 * Polling, scaled: `config.yaml` polls real jobs of 30-120 s no more often than every 2 s,
 * backs off to 30 s, keeps a 60 s safety poll under webhooks and ticks every 500 ms. The
 * simulated jobs here last `queuedMs + processingMs` (1 s by default), about 1/30 of the
 * shortest real job, so the same proportions give the values below (rounded up to the
 * configuration's minimums: 100 ms between polls, 1 s safety poll). The worker tick is not
 * scaled: it costs store queries per wall-clock second whatever the job length, so 1/30 of
 * 500 ms would multiply that background work by ten; 100 ms is fine enough for 100 ms polls.
 */
export function benchConfig(settings: BenchSettings, databaseDirectory: string): GatewayConfig {
  return parseConfig(benchConfigDocument(settings, databaseDirectory), {}, PROVIDER_IDS, 'benchmark config');
}

/** Where a gateway started as a process of its own listens and finds its simulators. */
export interface ProcessPlacement {
  port: number;
  /** Control URL of the simulator host process (`sandbox.simulators_url`). */
  simulatorsUrl: string;
  /** Use `config.yaml`'s polling for real jobs instead of polling scaled to the short simulated ones. */
  realPolling?: boolean;
}

/** The configuration document (what `config.yaml` would hold); see `benchConfig`. */
export function benchConfigDocument(settings: BenchSettings, databaseDirectory: string, placement?: ProcessPlacement): Record<string, unknown> {
  const runTimeMs = settings.queuedMs + settings.processingMs;
  const scale = placement?.realPolling ? 1 : runTimeMs / 30_000;
  const url = placement ? `http://127.0.0.1:${placement.port}` : 'http://127.0.0.1:1';
  return {
    server: { port: placement?.port ?? 0, host: '127.0.0.1', public_url: url },
    database: { url: `sqlite:${join(databaseDirectory, 'gateway.db')}` },
    auth: { api_keys: `bench:${BENCH_TENANT_KEY}` },
    routing: { strategy: 'priority', allow_fallbacks: true },
    // The tenant's own limits never decide a number either.
    limits: { creates_per_minute: 10_000_000, open_streams: 100_000, open_waits: 100_000 },
    tracking: {
      poll_min_interval_ms: Math.max(100, Math.round(2_000 * scale)),
      poll_max_interval_ms: Math.max(100, Math.round(30_000 * scale)),
      poll_backoff: 1.5,
      poll_jitter: 0.2,
      webhook_safety_poll_ms: Math.max(1_000, Math.round(60_000 * scale)),
      lease_ms: 30_000,
      tick_ms: placement?.realPolling ? 500 : 100,
    },
    sandbox: {
      queued_ms: settings.queuedMs,
      processing_ms: settings.processingMs,
      ...(placement ? { simulators_url: placement.simulatorsUrl } : {}),
    },
    // Results are copied as `npm start` copies them, beside the benchmark's database.
    storage: { mode: 'copy', filesystem: { path: join(databaseDirectory, 'outputs') } },
    log: { level: 'silent' },
    providers: Object.fromEntries(PROVIDERS.map((provider, index) => [provider.id, unlimitedProvider(index + 1)])),
  };
}
