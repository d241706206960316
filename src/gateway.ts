/**
 * The composition root: builds the engine (store, provider runtimes, dispatcher, tracker,
 * outbound webhooks) and the HTTP app from a validated configuration, and runs the workers.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Express } from 'express';
import { ConfigError, configuredSecrets, drainTimeoutMs, ProviderConfig, type GatewayConfig } from './config/config.js';
import { BoundedWaits, systemClock, type Clock, type TimerHandle } from './core/clock.js';
import { ClockWatch } from './core/tasks/clock-watch.js';
import { ContentLinks } from './core/tasks/content-links.js';
import { Dispatcher } from './core/tasks/dispatcher.js';
import type { Engine } from './core/tasks/engine.js';
import { InboundWebhooks } from './core/tasks/inbound-webhooks.js';
import { OutboundWebhooks } from './core/tasks/outbound-webhooks.js';
import { OutputContent } from './core/tasks/output-content.js';
import { ProviderCatalog } from './core/tasks/provider-catalog.js';
import { budgetSettingsProblems } from './core/tasks/spend-ledger.js';
import { REASONS_TO_FAIL_OVER } from './core/tasks/failover.js';
import { ERROR_CODES } from './core/model/canonical.js';
import { cheapestCurrencyProblems } from './core/model/routing.js';
import { UsageReport } from './core/tasks/usage-report.js';
import { TaskEvents } from './core/tasks/task-events.js';
import { TaskRepository } from './core/tasks/task-repository.js';
import { ResultCustody } from './core/tasks/result-custody.js';
import { TaskService } from './core/tasks/task-service.js';
import { Tracker } from './core/tasks/tracker.js';
import { LOCAL_ONLY_FEED, replicaFeedOver, type ReplicaFeed, type TextChannel } from './core/replica-feed.js';
import { authHeaderNames, type VideoProvider } from './core/upstream/provider.js';
import { ProviderRuntime } from './core/upstream/provider-runtime.js';
import { InProcessProviderState, type ProviderStateStore } from './core/upstream/provider-state.js';
import {
  CALL_WINDOW_MS,
  COMPLETION_WINDOW_MS,
  MAX_COMPLETIONS,
  ProviderStats,
  SharedProviderStats,
  type ProviderFigures,
} from './core/upstream/provider-stats.js';
import { createHttp, tenantLimits } from './http/app.js';
import type { RequestListener } from './http/hot-read.js';
import { answerClientError, answerConnect, limitHeaderLines, refusedAtTheDoor, refuseExpectation, requireHostHeader, type RequestRecording } from './http/middleware.js';
import { continueWithinLimit, type CreateLimiter } from './http/tenant-limits.js';
import { ListenerStop, StopGate } from './http/stop-gate.js';
import { createLogger, type Logger, type LoggerOptions } from './observability/logger.js';
import { FailureStreak } from './observability/failure-streak.js';
import { GatewayMetrics } from './observability/metrics.js';
import { SecretScrubber } from './observability/secret-scrubber.js';
import type { ProviderEndpoint } from './sandbox/sandbox.js';
import type { ObjectStorage } from './storage/object-storage.js';
import { openObjectStorage, type StorageBackendSettings } from './storage/open-storage.js';
import { clockSkewProblem, MAX_CLOCK_SKEW_MS, measureClockSkew, refuseSkewedClock } from './store/clock-skew.js';
import { openStore, storeTrouble, type Store } from './store/database.js';
import type { PostgresNotificationChannel } from './store/notification-channel.js';
import { SharedStateStore } from './store/shared-state-store.js';
import { TaskStore } from './store/task-store.js';
import { warnOfStrandedTasks, warnOfUnsendableQueuedTasks, warnOfUnsignableDeliveries } from './start-warnings.js';
import { openWindowLimiter, type WindowLimiter } from './store/window-limiter.js';
import { listenFailure } from './http/listen-failure.js';

export interface GatewayOptions {
  config: GatewayConfig;
  providers: readonly VideoProvider[];
  /** How to reach each provider (live or simulator); providers without one are not run. */
  endpoints: ReadonlyMap<string, ProviderEndpoint>;
  clock?: Clock;
  /**
   * Read `clock` against the PostgreSQL server's: at start (refused when off), then every minute
   * and whenever it steps against `clock.steady` while the workers run (`ClockWatch`). By default
   * only the system clock is: a test's manual clock keeps a time of its own, unless the test runs
   * it at the real time to drive a drift.
   */
  checkClock?: boolean;
  logger?: Logger;
  random?: () => number;
  /** Replica id for leases (random by default). */
  owner?: string;
  /** An already open store (otherwise `config.database.url` is opened). */
  store?: Store;
  /** Collect Node's process metrics too. */
  defaultMetrics?: boolean;
  /**
   * Origins whose result URLs may be copied though they are private: the sandbox's simulators
   * (`Sandbox.resultOrigins`). Nothing else is exempt from the address checks.
   */
  trustedResultOrigins?: readonly string[];
  /** Storage for result copies (otherwise `config.storage` is opened; in passthrough mode, for the copies stored before). */
  objectStorage?: ObjectStorage;
  /** Set when this gateway is one of several worker processes of one primary (`WORKERS`). */
  workers?: WorkerLink;
  /**
   * Whether the start says what it finds wrong: providers disabled for want of a key, tasks in
   * flight nothing can ask about, a result storage that does not answer (default: yes). With `WORKERS` the primary asks one worker per
   * start, so the operator reads each once, not once per worker and again per replacement.
   */
  startWarnings?: boolean;
}

/** A worker's line to its primary (`workers/worker-link.ts`). */
export interface WorkerLink {
  /** News between the workers, relayed by the primary. */
  readonly channel: TextChannel;
  /** Every worker's metrics for a scrape (this one's included). */
  collectMetrics(): Promise<unknown[]>;
  /** What this worker sends when another one's scrape collects. */
  serveMetrics(snapshot: () => Promise<unknown>): void;
}

export function storageBackendSettings(config: GatewayConfig['storage']): StorageBackendSettings {
  if (config.backend === 'filesystem') return { backend: 'filesystem', path: config.filesystem.path };
  const s3 = config.s3;
  return {
    backend: 's3',
    bucket: s3.bucket ?? '',
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.force_path_style,
    accessKeyId: s3.access_key_id,
    secretAccessKey: s3.secret_access_key,
    sessionToken: s3.session_token,
    partSizeBytes: s3.part_size_mb * 1024 * 1024,
    queueSize: 2,
    // A bucket that answers nothing is silent as a result's source may be, and has as long.
    answerTimeoutMs: config.idle_timeout_ms,
  };
}

/** Every secret the gateway knows: the configured ones, and the keys each endpoint reaches its provider with. */
export function gatewaySecrets(config: GatewayConfig, endpoints: ReadonlyMap<string, ProviderEndpoint>): SecretScrubber {
  const endpointSecrets = [...endpoints.values()].flatMap((endpoint) => [
    endpoint.apiKey,
    endpoint.accessKey,
    endpoint.secretKey,
    endpoint.webhookSecret,
    ...(endpoint.webhookSecrets ?? []),
    ...(endpoint.accounts ?? []).flatMap((account) => [account.apiKey, account.accessKey, account.secretKey, ...(account.webhookSecrets ?? [])]),
  ]);
  return new SecretScrubber([...configuredSecrets(config), ...endpointSecrets]);
}

/** What the one account of `endpoint` may sign its webhooks with: a live provider's configured secrets, or its simulator's. */
function webhookSecretsOf(endpoint: ProviderEndpoint): { webhookSecrets?: readonly string[] } {
  const secrets = endpoint.webhookSecrets ?? (endpoint.webhookSecret ? [endpoint.webhookSecret] : []);
  return secrets.length > 0 ? { webhookSecrets: secrets } : {};
}

/**
 * The gateway's logger at `level`: the providers' auth headers redacted wherever headers are
 * logged, and `secrets` scrubbed from every line. The test gateway logs through one too, so a
 * test reading the logs sees what production writes.
 */
export function gatewayLogger(level: string, providers: readonly VideoProvider[], secrets: SecretScrubber, destination?: LoggerOptions['destination']): Logger {
  return createLogger(level, { secretHeaders: authHeaderNames(providers), secrets, ...(destination ? { destination } : {}) });
}

/**
 * The key that signs a tenant's content links: derived from its first gateway key (and the
 * optional `storage.url_signing_secret`), so every replica signs alike with nothing more to
 * configure, and rotating a tenant's key retires its links.
 */
function contentSigningKeys(config: GatewayConfig): (tenant: string) => Buffer | undefined {
  const keys = new Map<string, Buffer>();
  for (const { tenant, key } of config.auth.api_keys) {
    if (keys.has(tenant)) continue;
    keys.set(tenant, createHmac('sha256', `kling-gateway content links\n${config.storage.url_signing_secret ?? ''}`).update(key).digest());
  }
  return (tenant) => keys.get(tenant);
}

/**
 * Creates per minute per tenant, counted in the store's limiter (PostgreSQL: across replicas).
 * One counter family per limit value, opened on first use.
 */
function tenantCreateLimiter(store: Store, config: GatewayConfig, acrossWorkers: boolean): CreateLimiter {
  const limitsFor = tenantLimits(config);
  const limiters = new Map<number, Promise<WindowLimiter>>();
  return {
    async take(tenant) {
      const points = limitsFor(tenant).creates_per_minute;
      let limiter = limiters.get(points);
      if (!limiter) {
        limiter = openWindowLimiter(store, { name: `creates-per-minute-${points}`, points, windowMs: 60_000, acrossWorkers });
        limiters.set(points, limiter);
        limiter.catch(() => limiters.delete(points));
      }
      return (await limiter).take(tenant);
    },
    async giveBack(tenant, countedUntil) {
      await (await limiters.get(limitsFor(tenant).creates_per_minute))?.giveBack(tenant, countedUntil);
    },
  };
}

/** Phases of a task that hold no provider slot: another replica's move into one may let a queued task go. */
const SLOT_FREE_PHASES: ReadonlySet<string> = new Set(['done', 'dispatch', 'storing']);

/** Milliseconds between purges of expired idempotency keys and webhook ids. */
const PURGE_EVERY_MS = 10 * 60_000;
/** How often shared provider figures (success rate, latency, completions) are written and read back. */
const FIGURES_REFRESH_MS = 2_000;
/** Milliseconds between retention passes over stored outputs. */
const RETENTION_EVERY_MS = 60_000;
/**
 * Longest the end of a stop, after the drain and the listener's close, waits for what runs on
 * the store (worker passes, the dispatcher's writes, the store's own close): a database that
 * stopped answering would hold the process for ever.
 */
const CLOSE_WAIT_MS = 5_000;
/** Longest the start waits for the S3 bucket to answer its check. */
const STORAGE_CHECK_TIMEOUT_MS = 5_000;

/**
 * What a worker's failed pass logs: a full database, or one whose disk refuses its reads or
 * writes, is said as such, for it is no passing error but one an operator must act on (the passes
 * go on failing until space is freed, or the disk repaired).
 */
function workerFailure(error: unknown): string {
  switch (storeTrouble(error)) {
    case 'full':
      return 'worker pass failed: the database is full; its workers go on once space is freed on its disk';
    case 'io':
      return `worker pass failed: the database's disk refused a read or write (${String((error as { code?: unknown }).code)}); its workers go on once the disk or its file system is repaired`;
    case 'read-only':
      return `worker pass failed: the database takes no writes (${String((error as { code?: unknown }).code)}: a standby, or a server set read-only); its workers go on once its connections reach a primary`;
    default:
      return 'worker pass failed';
  }
}

export class Gateway {
  /** The express app (the hot read and the hot provider webhooks are in front of it, in `listener`). */
  readonly app: Express;
  /** What the HTTP server runs. */
  private readonly listener: RequestListener;
  /** Whether a request announces a body over its route's limit (`100 Continue` only when not). */
  private readonly oversizeBody: (req: IncomingMessage) => number | undefined;
  /** Logs and counts what the server answers before any route. */
  private readonly recording: RequestRecording;
  readonly engine: Engine;
  readonly service: TaskService;
  readonly catalog: ProviderCatalog;
  readonly usage: UsageReport;
  readonly dispatcher: Dispatcher;
  readonly tracker: Tracker;
  readonly webhooks: OutboundWebhooks;
  readonly custody: ResultCustody;
  readonly inbound: InboundWebhooks;
  private readonly loopTimers = new Map<string, TimerHandle>();
  private readonly loopRuns = new Set<Promise<unknown>>();
  private stopping = false;
  private lastPurge = 0;
  private lastFiguresRefresh = Number.NEGATIVE_INFINITY;
  private lastRetention = 0;
  private listenerStop: ListenerStop | undefined;
  /** Refuses new requests once stopping, and counts the ones still running. */
  private readonly gate = new StopGate();
  private readonly unsubscribes: (() => void)[] = [];

  private constructor(
    readonly config: GatewayConfig,
    engine: Engine,
    /** The task store under the engine's repository, in rows (for tools and tests). */
    readonly store: TaskStore,
    private readonly ownsStore: boolean,
    /** The LISTEN/NOTIFY channel to the other replicas (PostgreSQL only). */
    readonly notifications: PostgresNotificationChannel | undefined,
    private readonly sharedState: SharedStateStore | undefined,
    private readonly ownsObjectStorage: boolean,
    createLimiter: CreateLimiter,
  ) {
    this.engine = engine;
    this.dispatcher = new Dispatcher(engine);
    this.tracker = new Tracker(engine);
    this.webhooks = new OutboundWebhooks(engine);
    this.custody = new ResultCustody(engine);
    engine.onOutputsDue = () => {
      if (this.stopping) return;
      this.custody.start().catch((error) => engine.logger.error({ err: error }, 'storing pass failed'));
    };
    // A slot freed here lets a queued task go now, as one another replica frees does (`startWorkers`);
    // wake-ups while a pass runs fold into one more pass.
    engine.onSlotFreed = () => {
      if (this.stopping) return;
      this.dispatcher.slotFreed().catch((error) => engine.logger.error({ err: error }, 'dispatch pass failed'));
    };
    this.service = new TaskService(engine, this.dispatcher);
    this.inbound = new InboundWebhooks(engine, this.tracker, this.dispatcher.recovery);
    this.catalog = new ProviderCatalog(engine);
    this.usage = new UsageReport(engine);
    const http = createHttp({
      config,
      service: this.service,
      content: new OutputContent(engine),
      catalog: this.catalog,
      usage: this.usage,
      inbound: this.inbound,
      metrics: engine.metrics,
      logger: engine.logger,
      providers: [...engine.runtimes.values()].map((runtime) => runtime.provider),
      providerIds: engine.providerIds,
      clock: engine.clock,
      createLimiter,
      gate: this.gate,
      storeTrouble,
    });
    this.app = http.app;
    this.listener = http.listener;
    this.oversizeBody = http.oversizeBody;
    this.recording = http.recording;
  }

  static async create(options: GatewayOptions): Promise<Gateway> {
    const { config } = options;
    const clock = options.clock ?? systemClock;
    const secrets = gatewaySecrets(config, options.endpoints);
    const logger = options.logger ?? gatewayLogger(config.log.level, options.providers, secrets);
    const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? false });
    const { workers, startWarnings = true } = options;
    if (workers) {
      workers.serveMetrics(() => metrics.snapshot());
      metrics.reportAcrossWorkers(() => workers.collectMetrics());
    }
    const store =
      options.store ??
      (await openStore(config.database.url, {
        sharedByProcesses: workers !== undefined,
        onBackgroundError: (error, what) =>
          what === 'sqlite checkpoint rounds'
            ? logger.warn({ err: error }, 'sqlite checkpoints fail (a full disk?); tried again every round, the log grows meanwhile')
            : logger.warn({ err: error }, `${what} stopped; SQLite checkpoints inside commits again`),
        onBackgroundResumed: () => logger.info('sqlite checkpoints succeed again'),
        onConnectionError: (error) => logger.warn({ err: error }, 'the database ended a connection; the next query opens another'),
      }));
    // An upgrade says what it did to the database (and why its start took longer).
    if (store.migrated?.length) logger.info({ database: store.description, migrations: store.migrated }, 'database migrated to the current schema');
    // Replicas compare times written by each other's clocks; the tests' manual clocks are their own.
    const checkClock = (options.checkClock ?? clock === systemClock) && store.dialect === 'postgres';
    const clockWatch = checkClock
      ? new ClockWatch({
          clock,
          metrics,
          logger,
          measure: () => measureClockSkew(store, () => clock.now()),
          problemOf: clockSkewProblem,
          limitMs: MAX_CLOCK_SKEW_MS,
        })
      : new ClockWatch();
    if (checkClock) {
      const skew = await refuseSkewedClock(store, () => clock.now()).catch(async (error: unknown) => {
        if (!options.store) await store.close();
        throw error;
      });
      if (skew !== undefined) clockWatch.note(skew);
    }
    // Opened in passthrough mode too: it copies nothing, but what was copied before (a restart into
    // passthrough) is still the tenants' until its retention, served and then deleted.
    const copying = config.storage.mode === 'copy';
    const objectStorage = options.objectStorage ?? (await openObjectStorage(storageBackendSettings(config.storage), { writes: copying }));
    const taskStore = new TaskStore(store);
    const owner = options.owner ?? `gw-${randomBytes(6).toString('hex')}`;
    const tasks = new TaskRepository(taskStore);

    // Replicas on PostgreSQL, and the workers of one primary, share the providers' standing and
    // figures in the store and hear each other's news (LISTEN/NOTIFY; the primary's relay for
    // workers on a SQLite file); a SQLite file with one process keeps them in memory.
    const onFeedError = (error: unknown, what = 'could not tell the other replicas') => logger.warn({ err: error }, what);
    const notifications = store.openNotificationChannel?.(onFeedError);
    if (notifications) {
      await notifications.start().catch((error) => onFeedError(error, 'not listening to other replicas yet; retrying'));
    }
    const channel = notifications ?? workers?.channel;
    const feed: ReplicaFeed = channel ? replicaFeedOver(channel, owner, onFeedError) : LOCAL_ONLY_FEED;
    const sharedState = store.shared ? new SharedStateStore(store) : undefined;
    const providerState: ProviderStateStore = sharedState ?? new InProcessProviderState(clock);
    const figuresOf = (id: string): ProviderFigures => (sharedState ? new SharedProviderStats(id, id, sharedState) : new ProviderStats());
    const accountFiguresOf = (id: string, account: string): ProviderFigures =>
      sharedState ? new SharedProviderStats(`${id}:${account}`, id, sharedState) : new ProviderStats();

    const runtimes = new Map<string, ProviderRuntime>();
    for (const provider of options.providers) {
      const settings = config.providers[provider.id];
      // A disabled provider still has a runtime, so /v1/providers, /v1/models and quotes can say
      // it is disabled (and why); it is never called.
      const endpoint =
        options.endpoints.get(provider.id) ??
        (settings?.enabled === false ? { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false } : undefined);
      if (!endpoint) continue;
      if (endpoint.disabledReason && startWarnings) logger.warn({ provider: provider.id }, `${provider.id} disabled: ${endpoint.disabledReason}`);
      const runtime = new ProviderRuntime({
        provider,
        config: settings ?? ProviderConfig.parse({}),
        baseUrl: endpoint.baseUrl,
        accounts: endpoint.accounts,
        apiKey: endpoint.apiKey,
        accessKey: endpoint.accessKey,
        secretKey: endpoint.secretKey,
        apiShape: endpoint.apiShape,
        ...webhookSecretsOf(endpoint),
        simulated: endpoint.simulated,
        ...(endpoint.disabledReason ? { disabledReason: endpoint.disabledReason } : {}),
        ...(endpoint.runTimeMs !== undefined ? { simulatedRunTimeMs: endpoint.runTimeMs } : {}),
        clock,
        metrics,
        logger,
        state: providerState,
        stats: figuresOf(provider.id),
        accountStats: (account) => accountFiguresOf(provider.id, account),
        owner,
        feed,
      });
      await runtime.start();
      runtimes.set(provider.id, runtime);
    }
    if (!sharedState) {
      // A lone process keeps its figures in memory, but the tasks of the last six hours are in its
      // database: a restart does not forget each provider's time to complete (`fastest`, `/v1/providers`).
      const history = new SharedStateStore(store);
      const now = clock.now();
      for (const runtime of runtimes.values()) {
        const completions = await history.recentCompletions(runtime.id, now - COMPLETION_WINDOW_MS, MAX_COMPLETIONS);
        for (const completion of completions.reverse()) runtime.stats.recordCompletion(completion.durationMs, completion.at);
      }
    }
    const runtimeConfigProblems = [
      ...budgetSettingsProblems(config.tenants, runtimes.values(), config.webhooks.allow_private_targets),
      ...cheapestCurrencyProblems(
        config.routing.strategy,
        [...runtimes.values()].map((runtime) => ({ id: runtime.id, enabled: runtime.enabled, currency: runtime.pricing?.currency })),
      ),
    ];
    if (runtimeConfigProblems.length > 0) {
      if (options.store === undefined) await store.close();
      throw new ConfigError('config.yaml', runtimeConfigProblems);
    }
    // Counters at 0 from the start for what the configuration names, so Prometheus counts each first rise.
    metrics.seed({
      providers: [...runtimes.values()]
        .filter((runtime) => runtime.enabled)
        .map((runtime) => ({
          id: runtime.id,
          accounts: runtime.accounts.map((account) => account.id),
          models: [...new Set(runtime.provider.offerings.map((offering) => offering.model))],
          currency: runtime.pricing?.currency,
        })),
      errorCodes: ERROR_CODES.filter((code) => code !== 'canceled'),
      failoverReasons: [...REASONS_TO_FAIL_OVER, 'proved_absent'],
      budgetedTenants: Object.entries(config.tenants)
        .filter(([, tenant]) => tenant.budget !== undefined)
        .map(([name]) => name),
    });
    const engine: Engine = {
      tasks,
      runtimes,
      providerIds: options.providers.map((provider) => provider.id),
      config,
      clock,
      metrics,
      logger,
      clockWatch,
      replicas: store.dialect === 'postgres',
      events: new TaskEvents(feed, (id) => tasks.get(id), (error) => onFeedError(error, 'could not read a task another replica changed')),
      owner,
      random: options.random ?? Math.random,
      publicUrl: config.server.public_url,
      storage: objectStorage,
      links: new ContentLinks({
        baseUrl: () => engine.publicUrl,
        signingKeyFor: contentSigningKeys(config),
        ttlMs: config.storage.url_ttl_seconds * 1000,
        now: () => clock.now(),
      }),
      trustedResultOrigins: new Set((options.trustedResultOrigins ?? []).map((origin) => new URL(origin).origin)),
      secrets,
    };
    logger.info({ storage: objectStorage.description, mode: config.storage.mode }, 'result storage ready');
    // A bucket that does not answer is told now: every copy would fail on it (and be given up on).
    // Not waited for: a store that does not answer must not hold the start (webhooks and restarts wait on it).
    // With `WORKERS`, by the one worker that says the start's warnings, not by each.
    if (copying && startWarnings) {
      void objectStorage.problem?.(STORAGE_CHECK_TIMEOUT_MS).then((problem) => {
        if (problem) logger.warn({ storage: objectStorage.description, problem }, 'result storage does not answer: copies will fail until it does');
      });
    }
    await engine.tasks.registerProviders([...runtimes.keys()]);
    if (startWarnings) {
      await warnOfStrandedTasks(taskStore, runtimes, options.endpoints, logger);
      await warnOfUnsignableDeliveries(taskStore, config, logger);
      await warnOfUnsendableQueuedTasks(taskStore, runtimes, logger, store.dialect === 'postgres');
    }
    const gateway = new Gateway(
      config,
      engine,
      taskStore,
      options.store === undefined,
      notifications,
      sharedState,
      options.objectStorage === undefined,
      tenantCreateLimiter(store, config, workers !== undefined),
    );
    gateway.followOtherReplicas(feed);
    metrics.onScrape(() => gateway.catalog.updateLoadGauges());
    metrics.onScrape(() => gateway.catalog.updateCircuitGauges());
    metrics.onScrape(() => gateway.usage.updateBudgetGauges());
    await gateway.dispatcher.recovery.atStart();
    return gateway;
  }

  /** Re-reads a provider's standing when another replica changed it, and everything after a lost connection. */
  private followOtherReplicas(feed: ReplicaFeed): void {
    const refresh = (runtime: ProviderRuntime) =>
      runtime.refreshStanding().catch((error) => this.engine.logger.warn({ err: error, provider: runtime.id }, 'could not re-read a provider standing'));
    this.unsubscribes.push(
      feed.subscribe((message) => {
        if (message.kind !== 'account') return;
        for (const runtime of this.engine.runtimes.values()) {
          const account = runtime.accounts.find((candidate) => candidate.stateKey === message.key);
          if (account) {
            account
              .refreshStanding()
              .catch((error) => this.engine.logger.warn({ err: error, provider: runtime.id, account: account.id }, 'could not re-read an account standing'));
          }
        }
      }),
      feed.onResync(() => {
        for (const runtime of this.engine.runtimes.values()) void refresh(runtime);
      }),
    );
  }

  /** Writes this replica's provider figures and reads every replica's (shared store only; at most every 2 s). */
  async refreshFigures(force = false): Promise<void> {
    const now = this.engine.clock.now();
    if (!force && now - this.lastFiguresRefresh < FIGURES_REFRESH_MS) return;
    this.lastFiguresRefresh = now;
    await Promise.all(
      [...this.engine.runtimes.values()].map((runtime) =>
        runtime.refreshFigures(now).catch((error) => this.engine.logger.warn({ err: error, provider: runtime.id }, 'could not share provider figures')),
      ),
    );
  }

  /**
   * Reads this replica's clock against the database server's now (the workers do every minute):
   * while it is off, the replica is not ready and takes no leased work (`ClockWatch`).
   */
  checkClock(): Promise<void> {
    return this.engine.clockWatch.check();
  }

  /** Whether worker passes are held: this replica's clock is off the other replicas' (`ClockWatch`). */
  private get clockHeld(): boolean {
    return this.engine.clockWatch.holdReason !== undefined;
  }

  /** One pass of every worker: recovery, dispatch, polling, deadlines, storing, retention, outbound webhooks. */
  async runOnce(): Promise<void> {
    if (this.clockHeld) return;
    await this.tracker.expireOverdue();
    await this.service.cancelOverdue();
    await this.dispatcher.tick();
    await this.tracker.tick();
    await this.custody.tick();
    await this.custody.purge();
    await this.webhooks.tick();
    await this.refreshFigures();
    const now = this.engine.clock.now();
    if (now - this.lastPurge >= PURGE_EVERY_MS) {
      this.lastPurge = now;
      await this.purge();
    }
  }

  /** Forgets expired idempotency keys and webhook ids, and shared call samples nobody reads any more. */
  private async purge(): Promise<void> {
    await this.service.purgeExpired();
    await this.sharedState?.purgeBefore(this.engine.clock.now() - CALL_WINDOW_MS - 60_000);
  }

  /**
   * Runs the workers every `tracking.tick_ms` on the gateway's clock, each in its own loop, so a
   * slow webhook receiver never delays dispatching or polling.
   */
  startWorkers(): void {
    const now = () => this.engine.clock.now();
    const loops: [string, () => Promise<unknown>][] = [
      ['dispatch', async () => {
        await this.tracker.expireOverdue();
        await this.service.cancelOverdue();
        await this.dispatcher.tick();
      }],
      ['tracking', () => this.tracker.tick()],
      // Starts copies and goes on: a slow file host holds only its own copy's slot.
      ['storing', async () => {
        await this.custody.start();
        if (now() - this.lastRetention < RETENTION_EVERY_MS) return;
        this.lastRetention = now();
        await this.custody.purge();
      }],
      // Starts deliveries and goes on: a receiver that answers slowly holds only its own.
      ['webhooks', () => this.webhooks.start()],
      ['purge', async () => {
        if (now() - this.lastPurge < PURGE_EVERY_MS) return;
        this.lastPurge = now();
        await this.purge();
      }],
      ['figures', () => this.refreshFigures()],
    ];
    // A slot another replica freed (a task it finished or put back) may let a queued task go now,
    // rather than at the next dispatch tick. A task whose outputs are being copied (`storing`)
    // holds no slot either: with copies on, that is where a finished task goes first.
    this.unsubscribes.push(
      this.engine.events.onRemoteChange((change) => {
        if (this.stopping || !SLOT_FREE_PHASES.has(change.phase)) return;
        this.dispatcher.tick().catch((error) => this.engine.logger.error({ err: error }, 'dispatch pass failed'));
      }),
    );
    this.engine.clockWatch.start();
    for (const [name, pass] of loops) {
      // A pass failing alike tick after tick (a full database) is logged once in full, then once a minute.
      const failures = new FailureStreak(this.engine.logger, { worker: name }, 'worker passes', now);
      const tick = () => {
        if (this.stopping) return;
        // Every pass compares times with the ones other replicas wrote: none while this clock is off theirs.
        const run = (this.clockHeld ? Promise.resolve() : pass().then(() => failures.succeeded()))
          .catch((error) => failures.failed(error, workerFailure(error)))
          .finally(() => {
            this.loopRuns.delete(run);
            if (!this.stopping) this.loopTimers.set(name, this.engine.clock.setTimeout(tick, this.engine.config.tracking.tick_ms));
          });
        this.loopRuns.add(run);
      };
      this.loopTimers.set(name, this.engine.clock.setTimeout(tick, 0));
    }
  }

  /**
   * Waits (at most `boundMs`, real time) until no counted request and no dispatch runs; a
   * request running at the stop may start a dispatch, so both are asked again until both are
   * quiet. Connections that go idle meanwhile are closed, so no client sends on them again.
   */
  private async drain(boundMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let bounded = false;
    const quiet = (async () => {
      while (!bounded && (this.gate.inFlightWork > 0 || this.dispatcher.busy)) {
        await this.gate.idle();
        await this.dispatcher.settled();
      }
    })();
    try {
      await Promise.race([
        quiet,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            bounded = true;
            resolve();
          }, boundMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (bounded) {
      this.engine.logger.warn(
        { requests: this.gate.inFlightWork, dispatches: this.dispatcher.busy },
        `stopping after ${boundMs} ms with work still running; recovery settles it after a restart`,
      );
    }
  }

  /** Starts serving HTTP; returns the base URL. */
  async listen(port = this.config.server.port, host = this.config.server.host): Promise<string> {
    const server = this.httpServer().listen(port, host);
    this.listenerStop = new ListenerStop(server, undefined, () => this.gate.newsAnswered());
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (error) => reject(listenFailure(error, host)));
    });
    const address = server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${shownHost}:${address.port}`;
  }

  /**
   * Serves HTTP on connections another process accepts and hands over: a worker of `WORKERS`,
   * whose primary holds the port. `noMoreConnections` resolves once the primary, stopping, has
   * closed its listener and handed over everything it accepted. Returns what takes each connection.
   */
  serveHandedConnections(noMoreConnections: () => Promise<void>): (socket: Socket) => void {
    const server = this.httpServer();
    this.listenerStop = new ListenerStop(server, noMoreConnections, () => this.gate.newsAnswered());
    // http.Server times its connections (headersTimeout, requestTimeout) and keeps the list
    // `closeAllConnections` ends from when it listens; this one serves where the primary listens.
    server.emit('listening');
    return (socket) => server.emit('connection', socket);
  }

  private httpServer(): Server {
    const listener = limitHeaderLines(requireHostHeader(this.listener, this.recording), this.recording);
    const server = createServer({ requireHostHeader: false }, listener)
      .on('checkContinue', continueWithinLimit(this.oversizeBody, refusedAtTheDoor))
      .on('clientError', answerClientError(this.recording))
      .on('checkExpectation', refuseExpectation(this.recording))
      .on('connect', answerConnect(listener, this.recording));
    // Every header line is read, and more than `MAX_HEADER_LINES` refused (`limitHeaderLines`).
    server.maxHeadersCount = 0;
    server.keepAliveTimeout = this.config.server.keep_alive_timeout_ms;
    server.headersTimeout = this.config.server.keep_alive_timeout_ms + 1_000;
    return server;
  }

  /** Points upstream callbacks at this URL (tests and tools that listen on a random port). */
  setPublicUrl(url: string): void {
    this.engine.publicUrl = url;
  }

  /**
   * Stops taking requests and work: `/readyz` and every new request answer 503 at once, with
   * `Connection: close` — but provider webhooks and callbacks, news of tasks upstream, are still
   * taken until the listener closes (answered with `Connection: close`). Then it waits until no create, cancel or dispatch is running any more —
   * also ones that arrived just before the stop — so every create an upstream answered is
   * recorded, bounded by `server.drain_timeout_ms` (default: the longest upstream timeout plus
   * 5 s). Then the listener closes (`ListenerStop`: a request already sent is answered, not
   * reset), which ends long-held waits and event streams, and the store closes.
   */
  async close(): Promise<void> {
    this.stopping = true;
    this.gate.close();
    this.engine.clockWatch.stop();
    for (const timer of this.loopTimers.values()) timer.cancel();
    // A dispatch pass running now sends no queued task it has not started.
    this.dispatcher.stop();
    // Copies in flight stop now; their tasks are copied again after a restart or by another replica.
    this.custody.stop();
    // Webhook deliveries on their way finish (waited for below); no more are started.
    this.webhooks.stop();
    await this.drain(drainTimeoutMs(this.config, this.engine.runtimes.keys()));
    // Event streams end cleanly and waits answer with the task as it is, before the listener closes.
    this.service.endWatches();
    await this.listenerStop?.close();
    // The rest waits on the store, which may have stopped answering (a host gone silent in a
    // failover): bounded, so the process still ends. What it leaves is durable: leases run out and
    // recovery (the next start, another replica) takes the tasks up.
    const waits = new BoundedWaits(Date.now() + CLOSE_WAIT_MS);
    await waits.wait('worker passes', Promise.allSettled([...this.loopRuns]));
    // Webhooks that came before their create was recorded, applied once it was; news about a
    // create another replica is sending is not waited for (its safety poll learns it).
    this.inbound.stopFollowing();
    await waits.wait('provider news being applied', this.inbound.idle());
    // Passes started outside the loops (by a webhook, a create) must not outlive the store.
    await Promise.all([
      waits.wait('dispatch passes', this.dispatcher.idle()),
      waits.wait('status polls', this.tracker.idle()),
      waits.wait('webhook deliveries', this.webhooks.idle()),
      waits.wait('result copies', this.custody.idle()),
    ]);
    // Accepted creates the store would not take through the drain are given up on (each logged with its upstream id).
    await waits.wait('accepted creates being recorded', this.dispatcher.close());
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    if (this.notifications) await waits.wait('the notification channel', this.notifications.close());
    if (this.ownsObjectStorage && this.engine.storage) await waits.wait('the result storage', this.engine.storage.close());
    if (this.ownsStore) await waits.wait('the database connections', this.store.store.close());
    // Their writes wait on a database that does not answer: only this log line keeps the upstream id.
    for (const create of this.dispatcher.unrecordedCreates()) {
      this.engine.logger.error(
        create,
        create.answer === 'accepted'
          ? 'stopping before the database recorded a create the provider accepted: its upstream task is tracked by nobody until recovery finds it after a restart (by lookup or webhook where the provider allows; otherwise the task fails as interrupted)'
          : 'stopping before the database recorded a create answer that named a task beside a server error: the task the provider named may bill, and is tracked by nobody until recovery finds it after a restart (by lookup or webhook where the provider allows; otherwise the task fails as interrupted)',
      );
    }
    if (waits.abandoned.length > 0) {
      this.engine.logger.warn(
        { abandoned: waits.abandoned, wait_ms: CLOSE_WAIT_MS },
        `stopping with ${waits.abandoned.join(', ')} left running after ${CLOSE_WAIT_MS} ms (the database may not be answering); accepted tasks stay in the database, and recovery takes them up at the next start or on another replica`,
      );
    }
  }
}
