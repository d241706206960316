/**
 * Phase 1: what the gateway adds to a create. At each rate, the same create goes open-loop
 * straight to the Freepik simulator (baseline) and through the gateway, interleaved request by
 * request so that both see the same machine at the same moments. Through the gateway it is
 * validated, routed, written with its attempt to SQLite, submitted with the very same upstream
 * body to the same simulator, and its answer recorded: the difference is the gateway's cost.
 *
 * The serving process therefore takes twice the row's rate of creates (half of them direct);
 * the gateway alone sees the row's rate plus the webhooks of its own tasks.
 *
 * With a bare create server (`bare-create-server.mjs`, processes mode), each rate then runs once
 * more with it in the gateway's place: the least the same stack (express, zod, better-sqlite3,
 * axios) does for a create that writes its task before the request leaves and its acceptance
 * after, and takes its webhooks. Its added latency and CPU per create are the floor the
 * gateway's are compared with.
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

/** The bare create server at one rate, interleaved with its own direct baseline. */
export interface BareCreateRow {
  direct: OpenLoopSummary;
  bare: OpenLoopSummary;
  /** CPU the bare server spent per create it answered (its webhooks included). */
  cpuMsPerCreate: number;
}

export interface CreateLatencyRow {
  rate: number;
  direct: OpenLoopSummary;
  gateway: OpenLoopSummary;
  /** The same rate against the bare create server, when there is one. */
  bare?: BareCreateRow;
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

/** The upstream create the gateway made, for the bare server to make the same one. */
export interface BareUpstreamCreate {
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** Starts the bare create server (`bare-create-server.mjs`) in a process of its own. */
export interface BareCreateBaseline {
  start(upstream: BareUpstreamCreate, webhookSecret: string): Promise<{ url: string; cpuMs(): number; close(): Promise<void> }>;
  /** The webhook secret of the simulator the creates go to. */
  webhookSecret: string;
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

export async function measureCreateLatency({ stack, settings, log, watchNoise }: PhaseContext, bare?: BareCreateBaseline): Promise<CreateLatencyResult> {
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

  const simulatorAddress = stack.addresses.simulators[BASELINE_PROVIDER]!;
  const bareServer = await bare?.start(
    { url: `${simulatorAddress.baseUrl}${sample.path}`, headers: simulator.authHeaders, body: upstreamBody },
    bare.webhookSecret,
  );
  // A phase that fails (a gateway that never goes idle, say) must not leave the bare server running.
  try {
    const bareClient = bareServer && new GatewayClient({ ...stack.addresses, gatewayUrl: bareServer.url });
    const sendBare = bareClient && (() => bareClient.createStatus(gatewayBody));
    if (sendBare) await mapConcurrently(Array.from({ length: settings.warmupRequests }), 4, sendBare);
    // The bare server's tasks end on the simulator's clock; none is left running when timing starts.
    const bareTasksDone = () => new Promise((resolve) => setTimeout(resolve, settings.queuedMs + settings.processingMs + 500));
    if (sendBare) await bareTasksDone();

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
      // Let the tasks just created finish, so their tracking does not load what comes next.
      await gateway.waitUntilIdle();
      let bareRow: BareCreateRow | undefined;
      if (bareServer && sendBare) {
        log(`creates at ${rate}/s for ${settings.seconds} s, interleaved: simulator directly and through the bare create server`);
        const bareCpuBefore = bareServer.cpuMs();
        const [bareDirect, viaBare] = await runOpenLoop(rate, settings.seconds, [sendDirect, sendBare]);
        const bareCpu = bareServer.cpuMs() - bareCpuBefore;
        bareRow = { direct: summarize(bareDirect), bare: summarize(viaBare), cpuMsPerCreate: bareCpu / Math.max(1, viaBare?.latenciesMs.length ?? 0) };
        await bareTasksDone();
      }
      rows.push({
        rate,
        direct: summarize(direct),
        gateway: summarize(viaGateway),
        ...(bareRow ? { bare: bareRow } : {}),
        gatewayCpuMsPerCreate,
        serverEventLoopDelayMs,
        machineNoise,
      });
    }
    return { baselineRoute: `POST ${sample.path}`, rows };
  } finally {
    await bareServer?.close();
  }
}
