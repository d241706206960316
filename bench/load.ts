/**
 * Load generators. Open loop for creates: requests leave on a fixed schedule whether or not
 * earlier ones have answered, as independent apps would send them, so a slow answer cannot hide
 * by slowing the load down. Closed loop for reads: a fixed number of clients each send the next
 * request as soon as the last one answered, which measures throughput.
 *
 * Both compare several targets (the gateway and its baseline) under the same conditions, since
 * these machines are shared and noisy: the open loop interleaves the targets request by
 * request, the closed loop alternates them in short slices.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { summarizeLatencies, type LatencySummary } from './stats.js';

/**
 * Sends one request and reads its whole answer; resolves with the HTTP status (0 when the
 * request failed without one). Timing wraps the call, so the body must be consumed inside.
 */
export type SendRequest = () => Promise<number>;

export interface LoadResult {
  /** Per successful (2xx) request, from just before sending to the last byte of the answer. */
  latenciesMs: number[];
  sent: number;
  /** Answers that were not 2xx, by status; requests that got no answer, by error code. */
  failures: Record<string, number>;
  /** Time the target was under load. */
  elapsedMs: number;
  /** Successful requests per second while under load. */
  throughput: number;
}

export interface OpenLoopResult extends LoadResult {
  targetRate: number;
  /**
   * How late requests left against their schedule. When this stays small the generator kept
   * up and the latencies are the server's, not the client's.
   */
  scheduleLagMs: LatencySummary;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Times one request; adds its latency (if 2xx) or its failure to `result`. */
async function timed(send: SendRequest, result: LoadResult): Promise<void> {
  const started = process.hrtime.bigint();
  let outcome: number | string;
  try {
    outcome = await send();
  } catch (error) {
    outcome = transportErrorCode(error);
  }
  const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
  result.sent += 1;
  if (typeof outcome === 'number' && outcome >= 200 && outcome < 300) result.latenciesMs.push(latencyMs);
  else result.failures[String(outcome)] = (result.failures[String(outcome)] ?? 0) + 1;
}

/** `fetch` fails with a TypeError whose `cause` carries the socket error code. */
function transportErrorCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.name : 'error';
}

function emptyResult(): LoadResult {
  return { latenciesMs: [], sent: 0, failures: {}, elapsedMs: 0, throughput: 0 };
}

/**
 * Sends `ratePerTarget` requests a second to each target for `seconds`, the targets taking
 * turns on one schedule (so each sees the same moments of the run), then waits for every answer.
 */
export async function runOpenLoop(ratePerTarget: number, seconds: number, targets: readonly SendRequest[]): Promise<OpenLoopResult[]> {
  const results = targets.map(emptyResult);
  const lags = targets.map((): number[] => []);
  const total = Math.max(1, Math.round(ratePerTarget * seconds)) * targets.length;
  const intervalMs = 1000 / (ratePerTarget * targets.length);
  const inFlight: Promise<void>[] = [];
  const start = nowMs();
  for (let index = 0; index < total; index++) {
    const due = start + index * intervalMs;
    const wait = due - nowMs();
    // setTimeout is only good to about a millisecond; shorter waits are not worth a timer.
    if (wait >= 1) await sleep(wait);
    const target = index % targets.length;
    lags[target]?.push(Math.max(0, nowMs() - due));
    inFlight.push(timed(targets[target]!, results[target]!));
  }
  await Promise.all(inFlight);
  const elapsedMs = nowMs() - start;
  return results.map((result, target) => ({
    ...result,
    elapsedMs,
    throughput: (result.latenciesMs.length / elapsedMs) * 1000,
    targetRate: ratePerTarget,
    scheduleLagMs: summarizeLatencies(lags[target] ?? []),
  }));
}

/** `concurrency` clients send back-to-back requests to `send` until `until` (ms, `nowMs`). */
async function closedLoopSlice(concurrency: number, until: number, send: SendRequest, result: LoadResult): Promise<void> {
  const client = async () => {
    while (nowMs() < until) await timed(send, result);
  };
  await Promise.all(Array.from({ length: concurrency }, client));
}

/**
 * `concurrency` clients send back-to-back requests for `secondsPerTarget` to each target,
 * alternating between targets every `sliceSeconds` so slow and fast moments of a noisy machine
 * fall on all of them.
 */
export async function runClosedLoop(
  concurrency: number,
  secondsPerTarget: number,
  targets: readonly SendRequest[],
  sliceSeconds = 1,
): Promise<LoadResult[]> {
  const results = targets.map(emptyResult);
  const slices = Math.max(1, Math.round(secondsPerTarget / sliceSeconds));
  const sliceMs = (secondsPerTarget * 1000) / slices;
  for (let slice = 0; slice < slices; slice++) {
    for (const [target, send] of targets.entries()) {
      const result = results[target]!;
      const started = nowMs();
      await closedLoopSlice(concurrency, started + sliceMs, send, result);
      // Counts the tail of the last requests too: they ran on this target's time.
      result.elapsedMs += nowMs() - started;
    }
  }
  for (const result of results) result.throughput = (result.latenciesMs.length / result.elapsedMs) * 1000;
  return results;
}

/** Runs `work` over `items` with at most `concurrency` at a time; results in input order. */
export async function mapConcurrently<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
