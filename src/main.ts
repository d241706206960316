/**
 * `npm start`: reads config.yaml, starts simulators for providers without keys, and serves the
 * gateway until SIGINT/SIGTERM, then drains and stops. With `WORKERS` above 1 this process is the
 * primary of that many worker processes (`workers/primary.ts`), each a gateway on the same port
 * and store.
 */
import cluster from 'node:cluster';
import { resolve } from 'node:path';
import {
  CONFIG_REFUSED_EXIT,
  ConfigError,
  ConfigRefusal,
  configurationWarnings,
  configuredSecrets,
  drainTimeoutMs,
  parseConfigText,
  reachablePublicUrl,
  readConfigText,
  type GatewayConfig,
} from './config/config.js';
import { systemClock } from './core/clock.js';
import { authHeaderNames } from './core/upstream/provider.js';
import { Gateway } from './gateway.js';
import { reportCrashes } from './observability/crash-report.js';
import { createLogger, type Logger } from './observability/logger.js';
import { SecretScrubber } from './observability/secret-scrubber.js';
import { PROVIDER_IDS, PROVIDERS, SIGNED_WEBHOOK_PROVIDER_IDS } from './providers/registry.js';
import { startSandbox } from './sandbox/sandbox.js';
import { holdSqliteFile, joinSqliteFile, orphansWaitWords, SqliteFileInUseError, SqliteWorkersStillRunningError } from './store/sqlite-owner.js';
import { Primary } from './workers/primary.js';
import { ProcessStop } from './workers/process-stop.js';
import { WorkerLink } from './workers/worker-link.js';
import { workerCount } from './workers/worker-count.js';

const configPath = resolve(process.env.CONFIG_FILE ?? 'config.yaml');
/** The same stop signal again within this of the first is its echo (`npm start` passes a terminal's Ctrl-C on), not a second ask. */
const ECHOED_SIGNAL_MS = 1_000;

/**
 * Stops the start over a configuration it refuses: the problems under the file's own name, and
 * exit 78 (`CONFIG_REFUSED_EXIT`), also for what is refused only once the providers' prices are
 * known (`Gateway.create`), so a supervisor tells it from a crash.
 */
function refuseConfig(error: ConfigError): never {
  const source = error.source === 'WORKERS' ? error.source : configPath;
  console.error(`kling-gateway: ${new ConfigError(source, error.problems).message}`);
  process.exit(CONFIG_REFUSED_EXIT);
}

async function main(): Promise<void> {
  // A worker serves with the configuration its primary's start read, not with the file as it is
  // when the worker starts: a replacement after a crash would read an edit meant for the next
  // restart (half-written, or other keys than the other workers serve with).
  const link = cluster.isWorker ? await WorkerLink.connect() : undefined;
  let configText;
  let config;
  let workers;
  try {
    configText = link?.start.configText ?? readConfigText(configPath);
    config = parseConfigText(configText, configPath, process.env, PROVIDER_IDS);
    workers = workerCount(process.env.WORKERS, config.database.url);
  } catch (error) {
    if (error instanceof ConfigError) refuseConfig(error);
    throw error;
  }
  const processLogger = createLogger(config.log.level, { secretHeaders: authHeaderNames(PROVIDERS), secrets: new SecretScrubber(configuredSecrets(config)) });
  // Every line of a worker, its crash report included, says which worker wrote it (the number
  // the primary forked it with).
  const logger = cluster.isWorker ? processLogger.child({ worker: Number(process.env.KLING_GATEWAY_WORKER) }) : processLogger;
  // From here on, what nothing caught is logged scrubbed, not printed by node as it was.
  reportCrashes(process, logger, (code) => process.exit(code));
  if (link) return serveAsWorker(config, logger, link);
  try {
    // Workers of a primary killed outright that have not noticed yet still run on the file.
    // Each stops as a gateway does: the start waits as long as their drain may take.
    const drainMs = drainTimeoutMs(config, PROVIDER_IDS);
    await holdSqliteFile(config.database.url, {
      drainMs,
      onWaiting: (pids, waitMs) =>
        logger.warn(
          { database: config.database.url, pids, wait_ms: waitMs },
          `worker processes of a gateway whose primary ended${pids.length ? ` (pids ${pids.join(', ')})` : ''} still run on this SQLite database; starting once they have ended (waiting up to ${orphansWaitWords(drainMs)})`,
        ),
    });
  } catch (error) {
    if (!(error instanceof SqliteFileInUseError) && !(error instanceof SqliteWorkersStillRunningError)) throw error;
    console.error(`kling-gateway: ${error.message}`);
    process.exit(1);
  }
  // What check-config would warn about: a misspelt upstream key leaves the sandbox running.
  for (const warning of configurationWarnings(config, configPath, process.env, SIGNED_WEBHOOK_PROVIDER_IDS)) logger.warn(warning.fields, warning.message);

  const sandbox = await startSandbox(config, PROVIDERS, systemClock);
  const described = {
    public_url: config.server.public_url,
    storage: config.storage.mode === 'passthrough' ? 'passthrough' : `${config.storage.backend} (${config.storage.mode})`,
    // A keyless provider in a live deployment is disabled (`/v1/providers` gives the reason), not
    // live; so is one turned off (`enabled: false`), whose endpoint is kept only to follow the
    // tasks it already holds.
    providers: [...sandbox.endpoints].map(([id, endpoint]) => ({
      id,
      mode: endpoint.disabledReason || config.providers[id]?.enabled === false ? 'disabled' : endpoint.simulated ? 'simulator' : 'live',
    })),
  };
  let stopWork: () => Promise<void> = () => Promise.resolve();
  // One stop, whoever asks: a signal, or the primary giving up (whose failing status wins).
  const processStop = new ProcessStop(
    async () => {
      await stopWork();
      await sandbox.close();
      logger.flush();
    },
    (code) => process.exit(code),
    (error) => logger.error({ err: error }, 'the stop failed'),
  );
  if (workers > 1) {
    const primary = await Primary.start({
      workers,
      port: config.server.port,
      host: config.server.host,
      databaseUrl: config.database.url,
      configText,
      endpoints: sandbox.endpoints,
      resultOrigins: sandbox.resultOrigins,
      publicUrl: config.server.public_url,
      logger,
      onReady: (url, publicUrl) => logger.info({ url, workers, ...described, public_url: publicUrl }, `kling-gateway listening on ${url} with ${workers} workers (console at ${url}/console, docs at ${url}/docs)`),
      // A worker said why on its standard error; the primary is stopping the others.
      onGaveUp: (exitCode) => void processStop.request(exitCode),
    });
    stopWork = () => primary.stop();
  } else {
    const gateway = await Gateway.create({
      config,
      providers: PROVIDERS,
      endpoints: sandbox.endpoints,
      logger,
      defaultMetrics: true,
      trustedResultOrigins: sandbox.resultOrigins,
    });
    const url = await gateway.listen();
    const publicUrl = reachablePublicUrl(config.server.public_url, url);
    gateway.setPublicUrl(publicUrl);
    gateway.startWorkers();
    logger.info(
      { url, store: gateway.store.store.description, ...described, public_url: publicUrl },
      `kling-gateway listening on ${url} (console at ${url}/console, docs at ${url}/docs)`,
    );
    stopWork = () => gateway.close();
  }

  // A second signal during the drain (Ctrl-C pressed again, a supervisor repeating itself) is
  // answered with how long the drain may still take. **Decision**: it does not cut the drain
  // short: a create on its way to a provider would go unrecorded (a video made and billed that no
  // task follows until recovery finds it, if it can); SIGKILL ends the process at once for an
  // operator who accepts that. The same signal again at once is no second ask: `npm start` passes
  // the terminal's one Ctrl-C on, so the gateway gets that SIGINT twice.
  const drainMs = drainTimeoutMs(config, PROVIDER_IDS);
  let stoppingSince = 0;
  let stoppingOn = '';
  const stop = (signal: string) => {
    if (!processStop.begun) {
      stoppingSince = Date.now();
      stoppingOn = signal;
      logger.info({ signal }, 'stopping');
    } else if (signal !== stoppingOn || Date.now() - stoppingSince >= ECHOED_SIGNAL_MS) {
      const leftS = Math.max(1, Math.ceil((stoppingSince + drainMs - Date.now()) / 1000));
      logger.info(
        { signal, drain_left_s: leftS },
        `already stopping: the drain ends within ${leftS} s (server.drain_timeout_ms), then the process exits; a repeated signal does not cut it short (a create on its way to a provider would go unrecorded); SIGKILL ends the process at once`,
      );
    }
    void processStop.request();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/**
 * One of the primary's workers: a gateway serving the connections the primary accepts on the
 * shared port, told by the primary what to serve with.
 */
async function serveAsWorker(config: GatewayConfig, logger: Logger, link: WorkerLink): Promise<void> {
  // Held until this process ends: a start after the primary ended waits for it.
  joinSqliteFile(config.database.url);
  const { owner, endpoints, resultOrigins, publicUrl, startWarnings } = link.start;
  const gateway = await Gateway.create({
    config,
    providers: PROVIDERS,
    endpoints: new Map(endpoints),
    logger,
    owner,
    defaultMetrics: true,
    trustedResultOrigins: resultOrigins,
    workers: link,
    startWarnings,
  });
  gateway.setPublicUrl(publicUrl);
  const serve = gateway.serveHandedConnections(() => link.noMoreConnections());
  gateway.startWorkers();
  link.ready(serve);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'worker stopping');
    await gateway.close();
    link.close();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // The primary is gone (killed): nothing hands this worker connections any more. It stops as
  // every gateway does, answering what it holds and recording the creates on their way first.
  // node:cluster would end it at once (process.exit when the channel is lost, unless the
  // disconnect was asked for), cutting them: the disconnect is marked as expected first.
  const self = cluster.worker;
  self?.once('disconnect', () => {
    self.exitedAfterDisconnect = true;
  });
  process.on('disconnect', () => void stop('primary gone'));
  // A message sent to a primary that is gone (rate-limiter-flexible asks the shared create
  // counter with no callback) is raised as an 'error' event on the process, which node:cluster
  // passes on to its worker object: unheard there, it would end this worker in the middle of its
  // drain. Its ask goes unanswered and times out into a 503.
  self?.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'ERR_IPC_CHANNEL_CLOSED') return logger.debug({ err: error }, 'a message to the primary, which is gone, was dropped');
    throw error;
  });
}

main().catch((error) => {
  if (error instanceof ConfigError) refuseConfig(error);
  if (error instanceof ConfigRefusal) refuseConfig(new ConfigError(configPath, [error.message]));
  console.error('kling-gateway failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
