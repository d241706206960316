/**
 * `npm start`: reads config.yaml, starts simulators for providers without keys, and serves the
 * gateway until SIGINT/SIGTERM, then drains and stops.
 */
import { resolve } from 'node:path';
import { ConfigError, configuredSecrets, loadConfigFile } from './config/config.js';
import { systemClock } from './core/clock.js';
import { authHeaderNames } from './core/upstream/provider.js';
import { Gateway } from './gateway.js';
import { createLogger } from './observability/logger.js';
import { SecretScrubber } from './observability/secret-scrubber.js';
import { PROVIDER_IDS, PROVIDERS } from './providers/registry.js';
import { startSandbox } from './sandbox/sandbox.js';

async function main(): Promise<void> {
  const configPath = resolve(process.env.CONFIG_FILE ?? 'config.yaml');
  let config;
  try {
    config = loadConfigFile(configPath, process.env, PROVIDER_IDS);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`kling-gateway: ${error.message}`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger(config.log.level, { secretHeaders: authHeaderNames(PROVIDERS), secrets: new SecretScrubber(configuredSecrets(config)) });
  const sandbox = await startSandbox(config, PROVIDERS, systemClock);
  const gateway = await Gateway.create({
    config,
    providers: PROVIDERS,
    endpoints: sandbox.endpoints,
    logger,
    defaultMetrics: true,
    trustedResultOrigins: sandbox.resultOrigins,
  });
  const url = await gateway.listen();
  gateway.startWorkers();
  logger.info(
    {
      url,
      public_url: config.server.public_url,
      store: gateway.store.store.description,
      storage: gateway.engine.storage ? `${gateway.engine.storage.description} (${config.storage.mode})` : 'passthrough',
      providers: [...sandbox.endpoints].map(([id, endpoint]) => ({ id, mode: endpoint.simulated ? 'simulator' : 'live' })),
    },
    `kling-gateway listening on ${url} (docs at ${url}/docs)`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await gateway.close();
    await sandbox.close();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error) => {
  console.error('kling-gateway failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
