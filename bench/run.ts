/**
 * `npm run bench`: one run against the built-in simulators on loopback that measures
 *   1. the latency the gateway adds to a create (p50, p99) against calling the simulator
 *      directly, at several open-loop request rates;
 *   2. the throughput of `GET /v1/videos/{id}` against the simulator's own status read;
 *   3. upstream status calls per completed task, per provider;
 * and prints them as ratios against baselines measured in the same run, with how busy the
 * machine was meanwhile. How to read the output: the README's `## Benchmarks` section.
 * Settings (`BENCH_*` environment variables): `bench-settings.ts`.
 */
import { measureCreateLatency } from './create-latency.js';
import { launchBenchStack } from './launch-stack.js';
import { measureReadThroughput } from './read-throughput.js';
import { readBenchSettings } from './bench-settings.js';
import type { BenchStack } from './bench-stack.js';
import { currentLoadAverage, describeMachine, renderReport, writeReportJson, type MemoryCheckpoint } from './report.js';
import { measureUpstreamCalls } from './upstream-calls.js';
import { phaseContext } from './phase.js';

async function main(): Promise<void> {
  const settings = readBenchSettings(process.env);
  const started = process.hrtime.bigint();
  const startedAt = new Date().toISOString();
  const loadAverageAtStart = currentLoadAverage();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  // Progress goes to stderr so that stdout is only the report.
  const log = (line: string) => process.stderr.write(`[bench ${(elapsed() / 1000).toFixed(1).padStart(5)} s] ${line}\n`);

  log(`starting simulators and gateway (${settings.mode})`);
  const stack: BenchStack = await launchBenchStack(settings);
  const memory: MemoryCheckpoint[] = [];
  const checkpoint = async (label: string) => memory.push({ label, memory: await stack.memory() });
  try {
    await checkpoint('started');
    const context = phaseContext(stack, settings, log);
    const createLatency = await measureCreateLatency(context);
    await checkpoint('after create phases');
    const readThroughput = await measureReadThroughput(context);
    const upstreamCalls = await measureUpstreamCalls(context);
    await checkpoint('end');
    const report = {
      startedAt,
      elapsedMs: elapsed(),
      machine: describeMachine(loadAverageAtStart),
      settings,
      createLatency,
      readThroughput,
      upstreamCalls,
      memory,
    };
    process.stdout.write(`${renderReport(report)}\n`);
    log(`results written to ${writeReportJson(report)}`);
  } finally {
    await stack.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
