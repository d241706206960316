/**
 * Phase 1: what the gateway adds to a create. At each rate, the same create goes open-loop
 * straight to the Freepik simulator (baseline) and through the gateway, interleaved request by
 * request so that both see the same machine at the same moments. Through the gateway it is
 * validated, routed, written with its attempt to SQLite, submitted with the very same upstream
 * body to the same simulator, and its answer recorded: the difference is the gateway's cost.
 *
 * The serving process therefore takes twice the row's rate of creates (half of them direct);
 * the gateway alone sees the row's rate plus the webhooks of its own tasks.
 */
import { GatewayClient, SimulatorClient } from './bench-client.js';
import { BASELINE_PROVIDER, benchCreateRequest } from './bench-requests.js';
import type { EventLoopDelay } from './bench-stack.js';
import { mapConcurrently, runOpenLoop, type OpenLoopResult } from './load.js';
import type { MachineNoise } from './machine-noise.js';
import type { PhaseContext } from './phase.js';
import { summarizeLatencies, type LatencySummary } from './stats.js';

/** One target at one rate. */
export interface OpenLoopSummary {
  latencyMs: LatencySummary;
  sent: number;
  failures: Record<string, number>;
  /** Successful requests per second actually achieved. */
  achievedRate: number;
  /** p99 of how late requests left against the schedule (generator health). */
  scheduleLagP99Ms: number;
}

export interface CreateLatencyRow {
  rate: number;
  direct: OpenLoopSummary;
  gateway: OpenLoopSummary;
  /**
   * CPU the gateway's process spent per create it accepted during this rate (its webhooks
   * and polls of those tasks included); NaN when the gateway shares its process.
   */
  gatewayCpuMsPerCreate: number;
  /** Event-loop delay of the serving process during this rate. */
  serverEventLoopDelayMs: EventLoopDelay;
  machineNoise: MachineNoise;
}

export interface CreateLatencyResult {
  /** The upstream route the baseline calls. */
  baselineRoute: string;
  rows: CreateLatencyRow[];
}

function summarize(result: OpenLoopResult | undefined): OpenLoopSummary {
  if (!result) throw new Error('missing load result');
  return {
    latencyMs: summarizeLatencies(result.latenciesMs),
    sent: result.sent,
    failures: result.failures,
    achievedRate: result.throughput,
    scheduleLagP99Ms: result.scheduleLagMs.p99,
  };
}

export async function measureCreateLatency({ stack, settings, log, watchNoise }: PhaseContext): Promise<CreateLatencyResult> {
  const gateway = new GatewayClient(stack.addresses);
  const simulator = new SimulatorClient(stack.addresses, BASELINE_PROVIDER);
  const gatewayBody = JSON.stringify(benchCreateRequest(BASELINE_PROVIDER));

  // Warm both paths (JIT, sockets, SQLite statements) before anything is timed.
  log(`warming up (${settings.warmupRequests} creates per target)`);
  await mapConcurrently(Array.from({ length: settings.warmupRequests }), 4, () => gateway.createStatus(gatewayBody));
  // The baseline sends exactly what the gateway sent upstream, minus the gateway's own
  // webhook_url (a direct caller would not get one, and its webhooks would load the gateway).
  const sample = await stack.lastUpstreamCreate(BASELINE_PROVIDER);
  if (!sample) throw new Error(`the ${BASELINE_PROVIDER} simulator received no create during warm-up`);
  const upstreamBody: Record<string, unknown> = { ...(sample.body as Record<string, unknown>) };
  delete upstreamBody.webhook_url;
  const directBody = JSON.stringify(upstreamBody);
  const sendDirect = () => simulator.postStatus(sample.path, directBody);
  const sendGateway = () => gateway.createStatus(gatewayBody);
  await mapConcurrently(Array.from({ length: settings.warmupRequests }), 4, sendDirect);
  await gateway.waitUntilIdle();

  const rows: CreateLatencyRow[] = [];
  // Only a gateway alone in its process has a CPU time of its own.
  const separate = stack.addresses.pid !== process.pid && settings.mode === 'processes';
  for (const rate of settings.rates) {
    log(`creates at ${rate}/s for ${settings.seconds} s, interleaved: simulator directly and through the gateway`);
    await stack.eventLoopDelay();
    const stopWatch = await watchNoise();
    const cpuBefore = await stack.cpuMs();
    const [direct, viaGateway] = await runOpenLoop(rate, settings.seconds, [sendDirect, sendGateway]);
    const cpuDuring = (await stack.cpuMs()) - cpuBefore;
    const machineNoise = await stopWatch();
    const serverEventLoopDelayMs = await stack.eventLoopDelay();
    // Per create the gateway answered: a request that never connected cost it nothing.
    const gatewayCpuMsPerCreate = separate ? cpuDuring / Math.max(1, viaGateway?.latenciesMs.length ?? 0) : Number.NaN;
    rows.push({ rate, direct: summarize(direct), gateway: summarize(viaGateway), gatewayCpuMsPerCreate, serverEventLoopDelayMs, machineNoise });
    // Let the tasks just created finish, so their tracking does not load the next rate.
    await gateway.waitUntilIdle();
  }
  return { baselineRoute: `POST ${sample.path}`, rows };
}
