/**
 * What one benchmark run does, from environment variables. Defaults fit a 2-core machine in
 * about two and a half minutes; `BENCH_QUICK=1` shrinks everything to about twenty seconds for
 * iterating on the benchmark itself (its numbers are too few to quote).
 */

/**
 * Where the gateway and simulators run relative to the load generator: `processes` (default)
 * runs the compiled gateway and the simulators each in a process of their own, as deployed;
 * `child` runs the TypeScript sources of both in one child process; `in-process` in this one.
 */
export type BenchMode = 'processes' | 'child' | 'in-process';

export interface BenchSettings {
  quick: boolean;
  mode: BenchMode;
  /** Write a V8 CPU profile of the serving process to `bench/results/` (child mode only). */
  profile: boolean;
  /** Open-loop create rates, requests per second; each is run against the simulator and the gateway. */
  rates: number[];
  /** Seconds of load per rate and per target. */
  seconds: number;
  /** Untimed creates per target before measuring (JIT, connection pools, SQLite statement cache). */
  warmupRequests: number;
  /** Concurrent clients for the `GET /v1/videos/{id}` throughput phase. */
  readConcurrency: number;
  /** Seconds of read load per target. */
  readSeconds: number;
  /** Finished tasks the read phase spreads its GETs over. */
  readTasks: number;
  /** Tasks per provider in the upstream-calls-per-task phase. */
  trackedTasksPerProvider: number;
  /** Memory phase: finished tasks stored before it creates `inFlightTasks` that stay in flight. */
  finishedTasks: number;
  inFlightTasks: number;
  /** Memory phase: tasks stored for the last measurement (seeded into the database directly). */
  storedTasks: number;
  /** Simulated task timing (what the sandbox's `queued_ms` / `processing_ms` become). */
  queuedMs: number;
  processingMs: number;
}

function numberList(raw: string | undefined, fallback: number[], name: string): number[] {
  if (raw === undefined || raw.trim() === '') return fallback;
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.some((value) => !Number.isFinite(value) || value <= 0)) {
    throw new Error(`${name} must be a comma-separated list of positive numbers, got "${raw}"`);
  }
  return values;
}

function positive(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

function positiveInteger(raw: string | undefined, fallback: number, name: string): number {
  const value = positive(raw, fallback, name);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return value;
}

/** Reads `BENCH_*` variables; an explicit variable always wins over the quick-mode default. */
export function readBenchSettings(env: NodeJS.ProcessEnv): BenchSettings {
  const quick = env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';
  const mode = env.BENCH_MODE ?? 'processes';
  if (mode !== 'processes' && mode !== 'child' && mode !== 'in-process') {
    throw new Error(`BENCH_MODE must be processes, child or in-process, got "${mode}"`);
  }
  return {
    quick,
    mode,
    profile: env.BENCH_PROFILE === '1' || env.BENCH_PROFILE === 'true',
    rates: numberList(env.BENCH_RATES, quick ? [25, 80] : [80, 150, 300], 'BENCH_RATES'),
    seconds: positive(env.BENCH_SECONDS, quick ? 3 : 10, 'BENCH_SECONDS'),
    warmupRequests: positiveInteger(env.BENCH_WARMUP, quick ? 30 : 100, 'BENCH_WARMUP'),
    readConcurrency: positiveInteger(env.BENCH_READ_CONCURRENCY, 50, 'BENCH_READ_CONCURRENCY'),
    readSeconds: positive(env.BENCH_READ_SECONDS, quick ? 3 : 10, 'BENCH_READ_SECONDS'),
    readTasks: positiveInteger(env.BENCH_READ_TASKS, quick ? 20 : 100, 'BENCH_READ_TASKS'),
    trackedTasksPerProvider: positiveInteger(env.BENCH_TRACKED_TASKS, quick ? 10 : 50, 'BENCH_TRACKED_TASKS'),
    finishedTasks: positiveInteger(env.BENCH_FINISHED_TASKS, quick ? 1_000 : 10_000, 'BENCH_FINISHED_TASKS'),
    inFlightTasks: positiveInteger(env.BENCH_IN_FLIGHT_TASKS, quick ? 500 : 5_000, 'BENCH_IN_FLIGHT_TASKS'),
    storedTasks: positiveInteger(env.BENCH_STORED_TASKS, quick ? 10_000 : 100_000, 'BENCH_STORED_TASKS'),
    queuedMs: positiveInteger(env.BENCH_QUEUED_MS, 200, 'BENCH_QUEUED_MS'),
    processingMs: positiveInteger(env.BENCH_PROCESSING_MS, 800, 'BENCH_PROCESSING_MS'),
  };
}
