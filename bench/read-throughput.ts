/**
 * Phase 2: how many `GET /v1/videos/{id}` the gateway serves. Reads only touch the store (SPEC
 * §4), so this is the cost of the HTTP stack, auth, one task and its attempts from SQLite, and
 * the Task JSON. Baseline: the simulator's own status read of the same tasks at the same
 * concurrency (an in-memory lookup behind the same express stack), alternating with the
 * gateway in one-second slices.
 */
import { GatewayClient, SimulatorClient } from './bench-client.js';
import { BASELINE_PROVIDER, benchCreateRequest } from './bench-requests.js';
import type { EventLoopDelay } from './bench-stack.js';
import { mapConcurrently, runClosedLoop, type LoadResult } from './load.js';
import type { MachineNoise } from './machine-noise.js';
import type { PhaseContext } from './phase.js';
import { summarizeLatencies, type LatencySummary } from './stats.js';

export interface ClosedLoopSummary {
  requestsPerSecond: number;
  /** CPU its server process spent per answered request (NaN when not measurable apart). */
  cpuMsPerRequest: number;
  latencyMs: LatencySummary;
  failures: Record<string, number>;
}

export interface ReadThroughputResult {
  concurrency: number;
  tasks: number;
  baselineRoute: string;
  direct: ClosedLoopSummary;
  gateway: ClosedLoopSummary;
  serverEventLoopDelayMs: EventLoopDelay;
  machineNoise: MachineNoise;
}

function summarize(result: LoadResult | undefined, cpuMs = Number.NaN): ClosedLoopSummary {
  if (!result) throw new Error('missing load result');
  return {
    requestsPerSecond: result.throughput,
    cpuMsPerRequest: cpuMs / Math.max(1, result.latenciesMs.length),
    latencyMs: summarizeLatencies(result.latenciesMs),
    failures: result.failures,
  };
}

/**
 * The read baseline when the gateway runs as a process of its own: a bare express + zod +
 * better-sqlite3 server answering the same Task JSON by primary key (`bare-server.mjs`).
 */
export interface BareBaseline {
  start(template: unknown, rows: number): Promise<{ url: string; ids: string[]; cpuMs(): number; close(): Promise<void> }>;
}

export async function measureReadThroughput({ stack, settings, log, watchNoise }: PhaseContext, bare?: BareBaseline): Promise<ReadThroughputResult> {
  const gateway = new GatewayClient(stack.addresses);
  const simulator = new SimulatorClient(stack.addresses, BASELINE_PROVIDER);

  log(`creating ${settings.readTasks} tasks to read`);
  const created = await mapConcurrently(Array.from({ length: settings.readTasks }), 8, () =>
    gateway.create(benchCreateRequest(BASELINE_PROVIDER)),
  );
  // Finished tasks: the usual thing to read, with outputs, cost and attempts filled in.
  const tasks = await mapConcurrently(created, 32, (task) => gateway.waitFor(task.id, 30));
  await gateway.waitUntilIdle();

  const sample = await stack.lastUpstreamCreate(BASELINE_PROVIDER);
  if (!sample) throw new Error(`the ${BASELINE_PROVIDER} simulator received no create`);
  // Freepik creates on `<family>-<quality>` and answers status on `<family>/{task-id}`.
  const family = sample.path.replace(/-(pro|std)$/, '');
  const ids = tasks.map((task) => task.id);
  const upstreamPaths = tasks.map((task) => `${family}/${task.provider_task_id ?? ''}`);
  let nextDirect = 0;
  let nextGateway = 0;

  if (bare) {
    // The same Task JSON the gateway answers, one row per task read, in a server of its own.
    const template = tasks[0];
    const server = await bare.start(template, ids.length);
    const headers = { authorization: `Bearer ${stack.addresses.gatewayKey}` };
    const bareGet = async () => {
      const response = await fetch(`${server.url}/v1/videos/${server.ids[nextDirect++ % server.ids.length] ?? ''}`, { headers });
      await response.text();
      return response.status;
    };
    try {
      // Warm both (JIT, connections) before timing.
      await runClosedLoop(settings.readConcurrency, 1, [bareGet, () => gateway.getStatus(ids[nextGateway++ % ids.length] ?? '')]);
      log(`GET throughput, ${settings.readConcurrency} clients, ${settings.readSeconds} s per target in 1 s slices (bare server vs gateway)`);
      const stopWatch = await watchNoise();
      const gatewayCpuBefore = await stack.cpuMs();
      const bareCpuBefore = server.cpuMs();
      const [direct, viaGateway] = await runClosedLoop(settings.readConcurrency, settings.readSeconds, [
        bareGet,
        () => gateway.getStatus(ids[nextGateway++ % ids.length] ?? ''),
      ]);
      const bareCpu = server.cpuMs() - bareCpuBefore;
      const gatewayCpu = (await stack.cpuMs()) - gatewayCpuBefore;
      const machineNoise = await stopWatch();
      return {
        concurrency: settings.readConcurrency,
        tasks: ids.length,
        baselineRoute: 'GET /v1/videos/{id} on a bare express + zod + better-sqlite3 server',
        direct: summarize(direct, bareCpu),
        gateway: summarize(viaGateway, gatewayCpu),
        serverEventLoopDelayMs: await stack.eventLoopDelay(),
        machineNoise,
      };
    } finally {
      await server.close();
    }
  }

  log(`GET throughput, ${settings.readConcurrency} clients, ${settings.readSeconds} s per target in 1 s slices`);
  await stack.eventLoopDelay();
  const stopWatch = await watchNoise();
  const [direct, viaGateway] = await runClosedLoop(settings.readConcurrency, settings.readSeconds, [
    () => simulator.getStatus(upstreamPaths[nextDirect++ % upstreamPaths.length] ?? ''),
    () => gateway.getStatus(ids[nextGateway++ % ids.length] ?? ''),
  ]);
  const machineNoise = await stopWatch();
  const serverEventLoopDelayMs = await stack.eventLoopDelay();

  return {
    concurrency: settings.readConcurrency,
    tasks: ids.length,
    baselineRoute: `GET ${family}/{task-id}`,
    direct: summarize(direct),
    gateway: summarize(viaGateway),
    serverEventLoopDelayMs,
    machineNoise,
  };
}
