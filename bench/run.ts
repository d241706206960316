/**
 * `npm run bench`: one run against the built-in simulators on loopback that measures
 *   1. the latency the gateway adds to a create (p50, p99) against calling the simulator
 *      directly, at several open-loop request rates, and the gateway's CPU per create;
 *      and the same against a bare create server on the same stack (the floor a create costs);
 *   2. the throughput of `GET /v1/videos/{id}` against a bare express + zod + better-sqlite3
 *      server answering the same JSON, and CPU per request of each;
 *   3. upstream status calls per completed task, per provider, and Freepik's polls per 60 s job;
 *   4. the gateway's RSS with many tasks finished, in flight and stored;
 * and prints them as ratios against baselines measured in the same run, with how busy the
 * machine was meanwhile. By default the compiled gateway, the simulators and the baseline
 * server each run in a process of their own (`process-stack.ts`). How to read the output: the
 * README's `## Benchmarks` section. Settings (`BENCH_*` environment variables): `bench-settings.ts`.
 */
import { join } from 'node:path';
import { measureCreateLatency } from './create-latency.js';
import { launchBenchStack } from './launch-stack.js';
import { measureMemory, type MemoryPhaseResult } from './memory-phase.js';
import { freepikPollsPerJob } from './poll-schedule.js';
import { BareServerProcess, bareCreateBaseline, cpuMsOf, launchProcessStack, type ProcessStack } from './process-stack.js';
import { measureReadThroughput, type BareBaseline } from './read-throughput.js';
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
  const processes: ProcessStack | undefined = settings.mode === 'processes' ? await launchProcessStack(settings) : undefined;
  const stack: BenchStack = processes ?? (await launchBenchStack(settings));
  const memory: MemoryCheckpoint[] = [];
  const checkpoint = async (label: string) => memory.push({ label, memory: await stack.memory() });
  try {
    await checkpoint('started');
    const context = phaseContext(stack, settings, log);
    const createLatency = await measureCreateLatency(context, processes && bareCreateBaseline(processes));
    await checkpoint('after create phases');
    const bare: BareBaseline | undefined = processes && {
      start: async (template, rows) => {
        const server = await BareServerProcess.start(processes.directory, template, rows);
        return { url: server.url, ids: server.ids, cpuMs: () => cpuMsOf(server.pid), close: () => server.close() };
      },
    };
    const readThroughput = await measureReadThroughput(context, bare);
    const upstreamCalls = await measureUpstreamCalls(context);
    await checkpoint('end');
    const pollSchedule = freepikPollsPerJob();
    let memoryPhase: MemoryPhaseResult | undefined;
    if (processes) {
      // The main gateway stops (its database closes cleanly) and lends its tasks to phase 4.
      await processes.gateway.close();
      memoryPhase = await measureMemory(settings, join(processes.directory, 'gateway.db'), log);
    }
    const report = {
      startedAt,
      elapsedMs: elapsed(),
      machine: describeMachine(loadAverageAtStart),
      settings,
      createLatency,
      readThroughput,
      upstreamCalls,
      pollSchedule,
      memory,
      ...(memoryPhase ? { memoryPhase } : {}),
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
