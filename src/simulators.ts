/**
 * `npm run simulators`: the three providers' simulators in a process of their own, for replicas
 * that share them (`SIMULATORS_URL` on each replica). Reads the simulated timing from
 * config.yaml; `SIMULATORS_PORT` is the control API's port (the simulators take the next three),
 * `SIMULATORS_HOST` where to listen, `SIMULATORS_PUBLIC_HOST` the name others reach them by.
 * Prints one JSON line `{"url": …}` when ready.
 */
import { resolve } from 'node:path';
import { ConfigError, loadConfigFile } from './config/config.js';
import { systemClock } from './core/clock.js';
import { PROVIDER_IDS, PROVIDERS } from './providers/registry.js';
import { simulatorsPort, startSimulatorHost } from './sandbox/simulator-host.js';

async function main(): Promise<void> {
  let config;
  let port;
  try {
    config = loadConfigFile(resolve(process.env.CONFIG_FILE ?? 'config.yaml'), process.env, PROVIDER_IDS);
    port = simulatorsPort(process.env.SIMULATORS_PORT, PROVIDERS.length);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`kling-gateway simulators: ${error.message}`);
      process.exit(78);
    }
    throw error;
  }
  const host = await startSimulatorHost({
    providers: PROVIDERS,
    clock: systemClock,
    timing: { queuedMs: config.sandbox.queued_ms, processingMs: config.sandbox.processing_ms },
    host: process.env.SIMULATORS_HOST ?? '127.0.0.1',
    port,
    ...(process.env.SIMULATORS_PUBLIC_HOST ? { publicHost: process.env.SIMULATORS_PUBLIC_HOST } : {}),
  });
  console.log(JSON.stringify({ url: host.url, simulators: Object.fromEntries(Object.entries(host.endpoints).map(([id, e]) => [id, e.base_url])) }));
  const stop = async () => {
    await host.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((error) => {
  console.error('kling-gateway simulators failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
