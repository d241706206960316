/**
 * Phase 3: upstream status calls per completed task, per provider. A batch of tasks is created
 * on each provider while nothing else is in flight, followed to the end with `?wait=`, and the
 * status reads each simulator received in between are divided by the tasks that succeeded.
 * One read per task is the ideal of a polling provider (one poll, right after the job could
 * have finished); webhook providers could in principle need none.
 */
import { GatewayClient, sumMetric, TERMINAL, type MetricSample } from './bench-client.js';
import { benchCreateRequest, TRACKING_STYLE } from './bench-requests.js';
import type { UpstreamTraffic } from './bench-stack.js';
import { mapConcurrently } from './load.js';
import type { MachineNoise } from './machine-noise.js';
import type { PhaseContext } from './phase.js';
import { summarizeLatencies, type LatencySummary } from './stats.js';

export interface ProviderCalls {
  provider: string;
  tracking: string;
  tasks: number;
  succeeded: number;
  /** Status reads the simulator received for this batch. */
  statusCalls: number;
  statusCallsPerTask: number;
  /** Of those, polls the gateway counted as finding the task still queued or processing. */
  pollsTooEarly: number;
  /** Webhooks or callbacks the gateway received from this provider for the batch. */
  inboundWebhooks: number;
  /** The same by what the gateway did with them (`applied`, `confirming`, `unmatched`, ...). */
  inboundWebhooksByOutcome: Record<string, number>;
  /** The gateway's own `completed_at - created_at` (the simulated job takes `jobMs`). */
  gatewayTimeToTerminalMs: LatencySummary;
  /** From sending the create to the client's `?wait=` answering with the terminal task. */
  clientTimeToTerminalMs: LatencySummary;
}

export interface UpstreamCallsResult {
  jobMs: number;
  providers: ProviderCalls[];
  machineNoise: MachineNoise;
}

/** Inbound webhooks of one provider during the batch, by the `outcome` label. */
function outcomesOf(before: readonly MetricSample[], after: readonly MetricSample[], provider: string): Record<string, number> {
  const name = 'kling_gateway_inbound_webhooks_total';
  const outcomes = new Set(after.filter((sample) => sample.name === name && sample.labels.provider === provider).map((sample) => sample.labels.outcome ?? ''));
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const count = sumMetric(after, name, { provider, outcome }) - sumMetric(before, name, { provider, outcome });
    if (count > 0) counts[outcome] = count;
  }
  return counts;
}

export async function measureUpstreamCalls({ stack, settings, log, watchNoise }: PhaseContext): Promise<UpstreamCallsResult> {
  const gateway = new GatewayClient(stack.addresses);
  const providerIds = Object.keys(stack.addresses.simulators);
  await gateway.waitUntilIdle();
  const trafficBefore = await stack.upstreamTraffic();
  const metricsBefore = await gateway.metrics();
  const stopWatch = await watchNoise();

  log(`following ${settings.trackedTasksPerProvider} tasks on each of ${providerIds.join(', ')}`);
  // Interleave providers so every one sees the same load at the same time.
  const plan = Array.from({ length: settings.trackedTasksPerProvider }, () => providerIds).flat();
  const outcomes = await mapConcurrently(plan, 8, async (providerId) => {
    const started = process.hrtime.bigint();
    const task = await gateway.create(benchCreateRequest(providerId));
    let current = task;
    while (!TERMINAL.has(current.status)) current = await gateway.waitFor(task.id, 30);
    return {
      providerId,
      status: current.status,
      clientMs: Number(process.hrtime.bigint() - started) / 1e6,
      gatewayMs: current.completed_at ? Date.parse(current.completed_at) - Date.parse(current.created_at) : Number.NaN,
    };
  });
  await gateway.waitUntilIdle();
  const machineNoise = await stopWatch();
  const trafficAfter = await stack.upstreamTraffic();
  const metricsAfter = await gateway.metrics();

  const delta = (before: readonly MetricSample[], after: readonly MetricSample[], name: string, where: Record<string, string>) =>
    sumMetric(after, name, where) - sumMetric(before, name, where);
  const statusOf = (traffic: Record<string, UpstreamTraffic>, id: string) => traffic[id]?.status ?? 0;

  const providers = providerIds.map((provider): ProviderCalls => {
    const mine = outcomes.filter((outcome) => outcome.providerId === provider);
    const succeeded = mine.filter((outcome) => outcome.status === 'succeeded').length;
    const statusCalls = statusOf(trafficAfter, provider) - statusOf(trafficBefore, provider);
    const tooEarly =
      delta(metricsBefore, metricsAfter, 'kling_gateway_polls_total', { provider, outcome: 'queued' }) +
      delta(metricsBefore, metricsAfter, 'kling_gateway_polls_total', { provider, outcome: 'processing' });
    return {
      provider,
      tracking: TRACKING_STYLE[provider] ?? 'unknown',
      tasks: mine.length,
      succeeded,
      statusCalls,
      statusCallsPerTask: succeeded > 0 ? statusCalls / succeeded : Number.NaN,
      pollsTooEarly: tooEarly,
      inboundWebhooks: delta(metricsBefore, metricsAfter, 'kling_gateway_inbound_webhooks_total', { provider }),
      inboundWebhooksByOutcome: outcomesOf(metricsBefore, metricsAfter, provider),
      gatewayTimeToTerminalMs: summarizeLatencies(mine.map((outcome) => outcome.gatewayMs).filter(Number.isFinite)),
      clientTimeToTerminalMs: summarizeLatencies(mine.map((outcome) => outcome.clientMs)),
    };
  });
  return { jobMs: settings.queuedMs + settings.processingMs, providers, machineNoise };
}
