/**
 * The whole gateway with its simulators on the real clock, for tests whose client runs in another
 * process or a browser (the CLI, the web console) and therefore cannot move a ManualClock. Tasks
 * are made short (about a second) so nothing waits long.
 */
import { systemClock } from '../../src/core/clock.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { testConfig } from './harness.js';

export interface LiveGateway {
  url: string;
  gateway: Gateway;
  simulators: Map<string, ProviderSimulator>;
  simulator(id: string): ProviderSimulator;
  close(): Promise<void>;
}

/** Simulated run time of a task: queued + processing. */
export const LIVE_TASK_MS = { queued: 150, processing: 600 };

export async function startLiveGateway(overrides: Record<string, unknown> = {}): Promise<LiveGateway> {
  const config = testConfig({
    sandbox: { queued_ms: LIVE_TASK_MS.queued, processing_ms: LIVE_TASK_MS.processing },
    tracking: {
      poll_min_interval_ms: 200,
      poll_max_interval_ms: 1_000,
      poll_backoff: 1.5,
      poll_jitter: 0,
      webhook_safety_poll_ms: 1_000,
      lease_ms: 30_000,
      tick_ms: 50,
    },
    ...overrides,
  });
  const sandbox = await startSandbox(config, PROVIDERS, systemClock);
  const gateway = await Gateway.create({
    config,
    providers: PROVIDERS,
    endpoints: sandbox.endpoints,
    clock: systemClock,
    logger: createLogger('silent'),
    trustedResultOrigins: sandbox.resultOrigins,
  });
  const url = await gateway.listen(0, '127.0.0.1');
  gateway.setPublicUrl(url);
  gateway.startWorkers();
  return {
    url,
    gateway,
    simulators: sandbox.simulators,
    simulator(id: string) {
      const simulator = sandbox.simulators.get(id);
      if (!simulator) throw new Error(`no simulator ${id}`);
      return simulator;
    },
    async close() {
      await gateway.close();
      await sandbox.close();
    },
  };
}
