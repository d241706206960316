/**
 * The printed report and `bench/results/latest.json`. Every comparison is a ratio against a
 * baseline measured in the same run, because absolute numbers on shared 2-core machines move
 * from run to run while ratios mostly do not.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { BenchSettings } from './bench-settings.js';
import type { StackMemory } from './bench-stack.js';
import type { CreateLatencyResult } from './create-latency.js';
import type { ReadThroughputResult } from './read-throughput.js';
import type { MachineNoise } from './machine-noise.js';
import type { MemoryPhaseResult } from './memory-phase.js';
import type { PollScheduleResult } from './poll-schedule.js';
import { ratio } from './stats.js';
import type { UpstreamCallsResult } from './upstream-calls.js';

export interface MemoryCheckpoint {
  label: string;
  memory: StackMemory;
}

export interface BenchReport {
  startedAt: string;
  elapsedMs: number;
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    platform: string;
    /** 1-minute load average before the run started (other work on the machine) and at its end. */
    loadAverageAtStart: number;
    loadAverageAtEnd: number;
  };
  settings: BenchSettings;
  createLatency: CreateLatencyResult;
  readThroughput: ReadThroughputResult;
  upstreamCalls: UpstreamCallsResult;
  pollSchedule: PollScheduleResult;
  memory: MemoryCheckpoint[];
  /** Only when the gateway ran as a process of its own. */
  memoryPhase?: MemoryPhaseResult;
}

/** The 1-minute load average (0 where the platform has none). */
export function currentLoadAverage(): number {
  return loadavg()[0] ?? 0;
}

export function describeMachine(loadAverageAtStart: number): BenchReport['machine'] {
  const all = cpus();
  return {
    cpus: all.length,
    cpuModel: all[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverageAtStart,
    loadAverageAtEnd: currentLoadAverage(),
  };
}

/**
 * Other work on the machine when the run started. The run itself keeps about one core busy, so
 * more than half the cores already busy means the two processes fought others for CPU.
 */
function busyMachineWarning(machine: BenchReport['machine']): string | undefined {
  if (machine.loadAverageAtStart <= machine.cpus / 2) return undefined;
  return (
    `WARNING: the machine was already busy when the run started (load average ${machine.loadAverageAtStart.toFixed(1)} ` +
    `on ${machine.cpus} cores). Absolute numbers are unreliable and even the ratios suffer; run again when it is idle.`
  );
}

type Cell = string | number;

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function renderTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = [header, ...rows].map((row) => row.map(String));
  const widths = header.map((_, column) => Math.max(...text.map((row) => (row[column] ?? '').length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(text[0] ?? []), rule, ...text.slice(1).map(line)].join('\n');
}

function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value < 10 ? `${value.toFixed(2)} ms` : value < 100 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

function signedMs(value: number): string {
  return Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${ms(value)}` : 'n/a';
}

function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

function perSecond(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value)}/s` : 'n/a';
}

/** Cores used by other processes during a phase; marked when enough to distort it. */
function noiseCell(noise: MachineNoise): string {
  if (!Number.isFinite(noise.otherCores)) return 'n/a';
  const steal = noise.stealPercent >= 1 ? ` +${noise.stealPercent.toFixed(0)}% steal` : '';
  return `${noise.otherCores.toFixed(2)}${steal}${isNoisy(noise) ? ' !' : ''}`;
}

/** Other work took a quarter of a core or more, or the hypervisor took 5 % of the time. */
function isNoisy(noise: MachineNoise): boolean {
  return noise.otherCores >= 0.25 || noise.stealPercent >= 5;
}

/** `100 (98 applied, 2 unmatched)`; just the total when there is one kind. */
function webhookCell(total: number, byOutcome: Record<string, number>): string {
  const kinds = Object.entries(byOutcome);
  if (kinds.length <= 1) return String(total);
  return `${total} (${kinds.map(([outcome, count]) => `${count} ${outcome}`).join(', ')})`;
}

function megabytes(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(0)} MB` : 'n/a';
}

function failuresOf(...groups: Record<string, number>[]): string {
  const total = groups.flatMap((group) => Object.values(group)).reduce((sum, count) => sum + count, 0);
  if (total === 0) return '0';
  const byStatus = new Map<string, number>();
  for (const group of groups) for (const [status, count] of Object.entries(group)) byStatus.set(status, (byStatus.get(status) ?? 0) + count);
  return [...byStatus].map(([status, count]) => `${count}×${status}`).join(' ');
}

export function renderReport(report: BenchReport): string {
  const { machine, settings, createLatency, readThroughput, upstreamCalls } = report;
  const out: string[] = [];
  out.push(
    `Kling Gateway benchmark: ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}, ` +
      `${
        settings.mode === 'processes'
          ? 'compiled gateway, simulators and baseline server each in a process of their own'
          : settings.mode === 'child'
            ? 'gateway + simulators in a child process'
            : 'everything in one process'
      }, ` +
      `SQLite file, simulated jobs ${settings.queuedMs} + ${settings.processingMs} ms${settings.quick ? ', QUICK MODE (numbers not for quoting)' : ''}`,
    `Load average (1 min): ${machine.loadAverageAtStart.toFixed(2)} at start, ${machine.loadAverageAtEnd.toFixed(2)} at end`,
  );
  const warning = busyMachineWarning(machine);
  if (warning) out.push(warning);
  out.push('', ...renderGoals(report));
  const phases = [...createLatency.rows.map((row) => row.machineNoise), readThroughput.machineNoise, upstreamCalls.machineNoise];
  if (phases.some(isNoisy)) {
    out.push('WARNING: other work on the machine took CPU during phases marked "!"; rerun on a quiet machine before quoting them.');
  }

  out.push(
    '',
    `1. Create latency: POST /v1/videos through the gateway vs ${createLatency.baselineRoute} on the simulator`,
    `   (open loop, ${settings.seconds} s per rate, both interleaved at the rate shown; ratio = gateway / direct)`,
  );
  out.push(
    renderTable(
      ['rate', 'direct p50', 'direct p99', 'gateway p50', 'gateway p99', 'p50 ratio', 'p99 ratio', 'added p50', 'added p99', 'sent', 'errors', 'client lag p99', 'server loop p99/max', 'GC max/sum', 'other cores'],
      createLatency.rows.map((row) => [
        `${row.rate}/s`,
        ms(row.direct.latencyMs.p50),
        ms(row.direct.latencyMs.p99),
        ms(row.gateway.latencyMs.p50),
        ms(row.gateway.latencyMs.p99),
        times(ratio(row.gateway.latencyMs.p50, row.direct.latencyMs.p50)),
        times(ratio(row.gateway.latencyMs.p99, row.direct.latencyMs.p99)),
        signedMs(row.gateway.latencyMs.p50 - row.direct.latencyMs.p50),
        signedMs(row.gateway.latencyMs.p99 - row.direct.latencyMs.p99),
        `${row.direct.sent}+${row.gateway.sent}`,
        failuresOf(row.direct.failures, row.gateway.failures),
        ms(Math.max(row.direct.scheduleLagP99Ms, row.gateway.scheduleLagP99Ms)),
        `${ms(row.serverEventLoopDelayMs.p99)} / ${ms(row.serverEventLoopDelayMs.max)}`,
        `${ms(row.serverEventLoopDelayMs.gcMaxPause)} / ${ms(row.serverEventLoopDelayMs.gcTotal)}`,
        noiseCell(row.machineNoise),
      ]),
    ),
  );

  if (createLatency.rows.some((row) => row.bare)) {
    out.push(
      '   The same rates with the bare create server (bench/bare-create-server.mjs) in the gateway\'s place, interleaved',
      '   with the simulator directly again: the floor a create costs on the same stack (CPU includes its webhooks;',
      '   it copies no result and keeps no usage, limits, idempotency or metrics).',
      renderTable(
        ['rate', 'direct p50', 'direct p99', 'bare p50', 'bare p99', 'added p50', 'added p99', 'errors', 'bare CPU per create', 'gateway / bare CPU'],
        createLatency.rows.flatMap(({ rate, bare, gatewayCpuMsPerCreate }) =>
          bare
            ? [
                [
                  `${rate}/s`,
                  ms(bare.direct.latencyMs.p50),
                  ms(bare.direct.latencyMs.p99),
                  ms(bare.bare.latencyMs.p50),
                  ms(bare.bare.latencyMs.p99),
                  signedMs(bare.bare.latencyMs.p50 - bare.direct.latencyMs.p50),
                  signedMs(bare.bare.latencyMs.p99 - bare.direct.latencyMs.p99),
                  failuresOf(bare.direct.failures, bare.bare.failures),
                  ms(bare.cpuMsPerCreate),
                  times(ratio(gatewayCpuMsPerCreate, bare.cpuMsPerCreate)),
                ],
              ]
            : [],
        ),
      ),
    );
  }
  out.push(
    '   client lag = how late the load generator itself sent (its own process starved of CPU);',
    '   server loop = event-loop delay of the serving process (everything it serves waits behind it;',
    '     a gateway process of its own reports it on /metrics, at 10 ms resolution);',
    '   GC = garbage-collection pauses of the serving process during the rate: longest / sum',
    '     (a gateway process of its own reports the sum only);',
    '   other cores = CPU used by processes other than the benchmark ("!" = enough to distort the row)',
  );

  const read = readThroughput;
  out.push(
    '',
    `2. Read throughput: GET /v1/videos/{id} vs ${read.baselineRoute}`,
    `   (${read.concurrency} clients, ${settings.readSeconds} s per target alternating in 1 s slices, ${read.tasks} finished tasks;` +
      ` server loop p99/max ${ms(read.serverEventLoopDelayMs.p99)} / ${ms(read.serverEventLoopDelayMs.max)};` +
      ` other cores ${noiseCell(read.machineNoise)})`,
  );
  out.push(
    renderTable(
      ['target', 'throughput', 'p50', 'p99', 'errors'],
      [
        ['baseline', perSecond(read.direct.requestsPerSecond), ms(read.direct.latencyMs.p50), ms(read.direct.latencyMs.p99), failuresOf(read.direct.failures)],
        ['gateway GET /v1/videos/{id}', perSecond(read.gateway.requestsPerSecond), ms(read.gateway.latencyMs.p50), ms(read.gateway.latencyMs.p99), failuresOf(read.gateway.failures)],
        [
          'ratio gateway / baseline',
          times(ratio(read.gateway.requestsPerSecond, read.direct.requestsPerSecond)),
          times(ratio(read.gateway.latencyMs.p50, read.direct.latencyMs.p50)),
          times(ratio(read.gateway.latencyMs.p99, read.direct.latencyMs.p99)),
          '',
        ],
      ],
    ),
  );

  out.push(
    '',
    `3. Upstream status calls per completed task (ideal 1.00; every simulated job takes ${upstreamCalls.jobMs} ms)`,
    '   too early = polls that found the job still running; done = the task\'s completed_at - created_at;',
    '   seen = from sending the create until GET ?wait= answered with the finished task',
    `   (other cores ${noiseCell(upstreamCalls.machineNoise)})`,
  );
  out.push(
    renderTable(
      ['provider', 'tracked by', 'tasks', 'succeeded', 'status calls', 'per task', 'vs ideal', 'too early', 'webhooks in', 'done p50', 'done p99', 'seen p50', 'seen p99'],
      upstreamCalls.providers.map((row) => [
        row.provider,
        row.tracking,
        row.tasks,
        row.succeeded,
        row.statusCalls,
        Number.isFinite(row.statusCallsPerTask) ? row.statusCallsPerTask.toFixed(2) : 'n/a',
        times(ratio(row.statusCallsPerTask, 1)),
        row.pollsTooEarly,
        webhookCell(row.inboundWebhooks, row.inboundWebhooksByOutcome),
        ms(row.gatewayTimeToTerminalMs.p50),
        ms(row.gatewayTimeToTerminalMs.p99),
        ms(row.clientTimeToTerminalMs.p50),
        ms(row.clientTimeToTerminalMs.p99),
      ]),
    ),
  );

  if (report.memory.length > 0) {
    out.push('', '4. Memory of the serving process (informational)');
    out.push(
      renderTable(
        ['checkpoint', 'RSS', 'heap used'],
        report.memory.map((checkpoint) => [checkpoint.label, megabytes(checkpoint.memory.rss), megabytes(checkpoint.memory.heapUsed)]),
      ),
    );
  }
  out.push('', `Elapsed: ${(report.elapsedMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}

function microseconds(valueMs: number): string {
  return Number.isFinite(valueMs) ? `${Math.round(valueMs * 1000)} µs` : 'n/a';
}

/** The issue's table: each goal, what this run measured, and its baseline from the same run. */
function renderGoals(report: BenchReport): string[] {
  const { createLatency, readThroughput: read, pollSchedule, memoryPhase } = report;
  const rows: Cell[][] = [];
  for (const row of createLatency.rows) {
    rows.push([
      `create latency added at ${row.rate}/s (p50 / p99)`,
      'p50 ≤ 1 ms, p99 ≤ 3 ms at 300/s',
      `${signedMs(row.gateway.latencyMs.p50 - row.direct.latencyMs.p50)} / ${signedMs(row.gateway.latencyMs.p99 - row.direct.latencyMs.p99)}` +
        (Object.keys(row.gateway.failures).length > 0 ? ` (${failuresOf(row.gateway.failures)} failed)` : ''),
      `direct ${ms(row.direct.latencyMs.p50)} / ${ms(row.direct.latencyMs.p99)}`,
      `${times(ratio(row.gateway.latencyMs.p50, row.direct.latencyMs.p50))} / ${times(ratio(row.gateway.latencyMs.p99, row.direct.latencyMs.p99))}`,
    ]);
  }
  for (const { rate, bare } of createLatency.rows) {
    if (!bare) continue;
    rows.push([
      `  the bare create server at ${rate}/s`,
      '',
      `${signedMs(bare.bare.latencyMs.p50 - bare.direct.latencyMs.p50)} / ${signedMs(bare.bare.latencyMs.p99 - bare.direct.latencyMs.p99)}` +
        (Object.keys(bare.bare.failures).length > 0 ? ` (${failuresOf(bare.bare.failures)} failed)` : ''),
      `direct ${ms(bare.direct.latencyMs.p50)} / ${ms(bare.direct.latencyMs.p99)}`,
      `${times(ratio(bare.bare.latencyMs.p50, bare.direct.latencyMs.p50))} / ${times(ratio(bare.bare.latencyMs.p99, bare.direct.latencyMs.p99))}`,
    ]);
  }
  for (const row of createLatency.rows) {
    const bare = row.bare?.cpuMsPerCreate;
    rows.push([
      `gateway CPU per create at ${row.rate}/s`,
      '≤ 1.5 ms',
      ms(row.gatewayCpuMsPerCreate),
      bare === undefined ? '' : `bare create server ${ms(bare)}`,
      bare === undefined ? '' : times(ratio(row.gatewayCpuMsPerCreate, bare)),
    ]);
  }
  rows.push([
    `GET /v1/videos/{id}, ${read.concurrency} connections`,
    '≥ 70 % of the bare server',
    perSecond(read.gateway.requestsPerSecond),
    `bare ${perSecond(read.direct.requestsPerSecond)}`,
    `${(ratio(read.gateway.requestsPerSecond, read.direct.requestsPerSecond) * 100).toFixed(0)} %`,
  ]);
  rows.push([
    'CPU per GET',
    '',
    microseconds(read.gateway.cpuMsPerRequest),
    `bare ${microseconds(read.direct.cpuMsPerRequest)}`,
    times(ratio(read.gateway.cpuMsPerRequest, read.direct.cpuMsPerRequest)),
  ]);
  for (const point of memoryPhase?.points ?? []) {
    rows.push([
      `RSS, ${point.label}`,
      '≤ 200 MB',
      megabytes(point.rssBytes),
      `heap used ${megabytes(point.heapUsedBytes)}`,
      `${((point.rssBytes / (200 * 1024 * 1024)) * 100).toFixed(0)} % of goal`,
    ]);
  }
  rows.push([
    `Freepik status calls per ${pollSchedule.jobMs / 1000} s job, no webhook`,
    '≤ 5',
    `${pollSchedule.meanPolls.toFixed(2)} (max ${pollSchedule.maxPolls})`,
    `seen ${(pollSchedule.meanLatenessMs / 1000).toFixed(1)} s after it ended`,
    '',
  ]);
  return [
    'Goals (issue 12), each against a baseline measured in this run:',
    renderTable(['what', 'goal', 'measured', 'baseline', 'ratio'], rows),
    `   polls: config.yaml's schedule with Freepik's ${pollSchedule.minimumRunTimeMs / 1000} s floor over ${pollSchedule.draws} jitter draws` +
      (memoryPhase ? `; RSS with a ${memoryPhase.heapLimitMb} MB heap bound, CPU per create of a task left in flight ${ms(memoryPhase.cpuMsPerInFlightCreate)}` : ''),
  ];
}

/** Writes the report as JSON; returns the path written. */
export function writeReportJson(report: BenchReport): string {
  const directory = new URL('./results/', import.meta.url);
  mkdirSync(directory, { recursive: true });
  const file = new URL('latest.json', directory);
  writeFileSync(file, `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  return file.pathname;
}
