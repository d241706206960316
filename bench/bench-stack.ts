/**
 * The system under test: the built-in simulators and a gateway on loopback, started exactly as
 * `npm start` starts them in sandbox mode (one process, real clock, real timers, SQLite file),
 * plus the few questions only this process can answer (what each simulator received, memory).
 */
import { rmSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { GatewayConfig } from '../src/config/config.js';
import { systemClock } from '../src/core/clock.js';
import { Gateway } from '../src/gateway.js';
import { PROVIDERS } from '../src/providers/registry.js';
import { startSandbox } from '../src/sandbox/sandbox.js';
import { SIM_FILES_PATH } from '../src/sandbox/simulator-kit.js';
import { BENCH_TENANT_KEY } from './bench-config.js';
import { processCpuMs } from './machine-noise.js';

/** How to reach one simulator directly, bypassing the gateway (the baseline). */
export interface SimulatorAddress {
  baseUrl: string;
  apiKey: string;
}

/** Where everything listens. */
export interface StackAddresses {
  gatewayUrl: string;
  /** Bearer key of the benchmark tenant. */
  gatewayKey: string;
  simulators: Record<string, SimulatorAddress>;
  /** Process id of the process serving them (differs from the load generator's in child mode). */
  pid: number;
}

/** Upstream requests one simulator received, by kind. */
export interface UpstreamTraffic {
  /** Task status reads (what polling costs). */
  status: number;
  /** Task creates. */
  submit: number;
  /** Anything else (result files, lists). */
  other: number;
}

/** A create as the gateway sent it upstream, so the baseline can send the very same thing. */
export interface UpstreamCreateSample {
  path: string;
  body: unknown;
}

/** Memory of the serving process, in bytes. */
export interface StackMemory {
  rss: number;
  heapUsed: number;
}

/**
 * How long the serving process's event loop was held up, in milliseconds. Every request the
 * gateway and the simulators serve waits behind whatever blocks it (synchronous SQLite,
 * JSON, garbage collection), so its tail explains latency tails.
 */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** Garbage-collection pauses in the same span: the longest and their sum. */
  gcMaxPause: number;
  gcTotal: number;
}

/** The stack as the load generator sees it, whether in this process or a child. */
export interface BenchStack {
  readonly addresses: StackAddresses;
  upstreamTraffic(): Promise<Record<string, UpstreamTraffic>>;
  lastUpstreamCreate(providerId: string): Promise<UpstreamCreateSample | undefined>;
  memory(): Promise<StackMemory>;
  /** Event-loop delay since the previous call (or the start). */
  eventLoopDelay(): Promise<EventLoopDelay>;
  /** CPU time the serving process has used, in milliseconds. */
  cpuMs(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Which simulator requests are creates and status reads. Every adapter creates a task with a
 * POST and reads it with a GET (its `submit` and `getStatus`); the simulator's result files are
 * downloads, neither of the two.
 */
function upstreamCallKind(method: string, path: string): keyof UpstreamTraffic {
  if (path.startsWith(`${SIM_FILES_PATH}/`)) return 'other';
  if (method === 'POST') return 'submit';
  if (method === 'GET') return 'status';
  return 'other';
}

/** Starts simulators and gateway with workers running; the returned stack owns them. */
export async function startBenchStack(config: GatewayConfig, databaseDirectory: string): Promise<BenchStack> {
  const sandbox = await startSandbox(config, PROVIDERS, systemClock);
  let gateway: Gateway;
  try {
    gateway = await Gateway.create({ config, providers: PROVIDERS, endpoints: sandbox.endpoints, trustedResultOrigins: sandbox.resultOrigins });
  } catch (error) {
    await sandbox.close();
    throw error;
  }
  const gatewayUrl = await gateway.listen(0, '127.0.0.1');
  // Webhooks and callbacks from the simulators must reach this listener.
  gateway.setPublicUrl(gatewayUrl);
  gateway.startWorkers();

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const gc = { max: 0, total: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.max = Math.max(gc.max, entry.duration);
      gc.total += entry.duration;
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });

  // Counted as requests arrive: the simulators keep only their recent requests.
  const traffic: Record<string, UpstreamTraffic> = {};
  for (const [id, simulator] of sandbox.simulators) {
    const counts: UpstreamTraffic = { status: 0, submit: 0, other: 0 };
    traffic[id] = counts;
    simulator.onRequest((request) => {
      counts[upstreamCallKind(request.method, request.path)] += 1;
    });
  }

  const simulators: Record<string, SimulatorAddress> = {};
  for (const [id, endpoint] of sandbox.endpoints) simulators[id] = { baseUrl: endpoint.baseUrl, apiKey: endpoint.apiKey };

  return {
    addresses: { gatewayUrl, gatewayKey: BENCH_TENANT_KEY, simulators, pid: process.pid },
    async upstreamTraffic() {
      return Object.fromEntries(Object.entries(traffic).map(([id, counts]) => [id, { ...counts }]));
    },
    async lastUpstreamCreate(providerId) {
      const tasks = sandbox.simulators.get(providerId)?.tasks ?? [];
      const last = tasks[tasks.length - 1];
      return last ? { path: last.path, body: last.body } : undefined;
    },
    async memory() {
      const usage = process.memoryUsage();
      return { rss: usage.rss, heapUsed: usage.heapUsed };
    },
    async cpuMs() {
      return processCpuMs();
    },
    async eventLoopDelay() {
      const result = {
        p50: delay.percentile(50) / 1e6,
        p99: delay.percentile(99) / 1e6,
        max: delay.max / 1e6,
        gcMaxPause: gc.max,
        gcTotal: gc.total,
      };
      delay.reset();
      gc.max = 0;
      gc.total = 0;
      return result;
    },
    async close() {
      delay.disable();
      gcObserver.disconnect();
      await gateway.close();
      await sandbox.close();
      rmSync(databaseDirectory, { recursive: true, force: true });
    },
  };
}
