/**
 * The composition root: builds the engine (store, provider runtimes, dispatcher, tracker,
 * outbound webhooks) and the HTTP app from a validated configuration, and runs the workers.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { ProviderConfig, type GatewayConfig } from './config/config.js';
import { systemClock, type Clock, type TimerHandle } from './core/clock.js';
import { Dispatcher } from './core/tasks/dispatcher.js';
import type { Engine } from './core/tasks/engine.js';
import { InboundWebhooks } from './core/tasks/inbound-webhooks.js';
import { OutboundWebhooks } from './core/tasks/outbound-webhooks.js';
import { ProviderCatalog } from './core/tasks/provider-catalog.js';
import { TaskEvents } from './core/tasks/task-events.js';
import { TaskRepository } from './core/tasks/task-repository.js';
import { TaskService } from './core/tasks/task-service.js';
import { Tracker } from './core/tasks/tracker.js';
import { authHeaderNames, type VideoProvider } from './core/upstream/provider.js';
import { ProviderRuntime } from './core/upstream/provider-runtime.js';
import { createApp } from './http/app.js';
import { createLogger, type Logger } from './observability/logger.js';
import { GatewayMetrics } from './observability/metrics.js';
import type { ProviderEndpoint } from './sandbox/sandbox.js';
import { openStore, type Store } from './store/database.js';
import { TaskStore } from './store/task-store.js';

export interface GatewayOptions {
  config: GatewayConfig;
  providers: readonly VideoProvider[];
  /** How to reach each provider (live or simulator); providers without one are not run. */
  endpoints: ReadonlyMap<string, ProviderEndpoint>;
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
  /** Replica id for leases (random by default). */
  owner?: string;
  /** An already open store (otherwise `config.database.url` is opened). */
  store?: Store;
  /** Collect Node's process metrics too. */
  defaultMetrics?: boolean;
}

/** Milliseconds between purges of expired idempotency keys and webhook ids. */
const PURGE_EVERY_MS = 10 * 60_000;

export class Gateway {
  readonly app: Express;
  readonly engine: Engine;
  readonly service: TaskService;
  readonly catalog: ProviderCatalog;
  readonly dispatcher: Dispatcher;
  readonly tracker: Tracker;
  readonly webhooks: OutboundWebhooks;
  private readonly loopTimers = new Map<string, TimerHandle>();
  private readonly loopRuns = new Set<Promise<unknown>>();
  private stopping = false;
  private lastPurge = 0;
  private server: Server | undefined;

  private constructor(
    readonly config: GatewayConfig,
    engine: Engine,
    /** The task store under the engine's repository, in rows (for tools and tests). */
    readonly store: TaskStore,
    private readonly ownsStore: boolean,
  ) {
    this.engine = engine;
    this.dispatcher = new Dispatcher(engine);
    this.tracker = new Tracker(engine);
    this.webhooks = new OutboundWebhooks(engine);
    this.service = new TaskService(engine, this.dispatcher);
    this.catalog = new ProviderCatalog(engine);
    this.app = createApp({
      config,
      service: this.service,
      catalog: this.catalog,
      inbound: new InboundWebhooks(engine, this.tracker),
      metrics: engine.metrics,
      logger: engine.logger,
      providers: [...engine.runtimes.values()].map((runtime) => runtime.provider),
    });
  }

  static async create(options: GatewayOptions): Promise<Gateway> {
    const { config } = options;
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? createLogger(config.log.level, { secretHeaders: authHeaderNames(options.providers) });
    const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? false });
    const store = options.store ?? (await openStore(config.database.url));
    const taskStore = new TaskStore(store);
    const runtimes = new Map<string, ProviderRuntime>();
    for (const provider of options.providers) {
      const settings = config.providers[provider.id];
      // A disabled provider still has a runtime, so /v1/providers, /v1/models and quotes can say
      // it is disabled (and why); it is never called.
      const endpoint =
        options.endpoints.get(provider.id) ??
        (settings?.enabled === false ? { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false } : undefined);
      if (!endpoint) continue;
      if (endpoint.disabledReason) logger.warn({ provider: provider.id }, `${provider.id} disabled: ${endpoint.disabledReason}`);
      runtimes.set(
        provider.id,
        new ProviderRuntime({
          provider,
          config: settings ?? ProviderConfig.parse({}),
          baseUrl: endpoint.baseUrl,
          apiKey: endpoint.apiKey,
          ...(endpoint.webhookSecret ? { webhookSecret: endpoint.webhookSecret } : {}),
          simulated: endpoint.simulated,
          ...(endpoint.disabledReason ? { disabledReason: endpoint.disabledReason } : {}),
          ...(endpoint.runTimeMs !== undefined ? { simulatedRunTimeMs: endpoint.runTimeMs } : {}),
          clock,
          metrics,
          logger,
        }),
      );
    }
    const engine: Engine = {
      tasks: new TaskRepository(taskStore),
      runtimes,
      config,
      clock,
      metrics,
      logger,
      events: new TaskEvents(),
      owner: options.owner ?? `gw-${randomBytes(6).toString('hex')}`,
      random: options.random ?? Math.random,
      publicUrl: config.server.public_url,
    };
    await engine.tasks.registerProviders([...runtimes.keys()]);
    const gateway = new Gateway(config, engine, taskStore, options.store === undefined);
    metrics.onScrape(() => gateway.catalog.updateLoadGauges());
    await gateway.dispatcher.recovery.atStart();
    return gateway;
  }

  /** One pass of every worker: recovery, dispatch, polling, deadlines, outbound webhooks. */
  async runOnce(): Promise<void> {
    await this.tracker.expireOverdue();
    await this.dispatcher.tick();
    await this.tracker.tick();
    await this.webhooks.tick();
    const now = this.engine.clock.now();
    if (now - this.lastPurge >= PURGE_EVERY_MS) {
      this.lastPurge = now;
      await this.service.purgeExpired();
    }
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
        await this.dispatcher.tick();
      }],
      ['tracking', () => this.tracker.tick()],
      ['webhooks', () => this.webhooks.tick()],
      ['purge', async () => {
        if (now() - this.lastPurge < PURGE_EVERY_MS) return;
        this.lastPurge = now();
        await this.service.purgeExpired();
      }],
    ];
    for (const [name, pass] of loops) {
      const tick = () => {
        if (this.stopping) return;
        const run = pass()
          .catch((error) => this.engine.logger.error({ err: error, worker: name }, 'worker pass failed'))
          .finally(() => {
            this.loopRuns.delete(run);
            if (!this.stopping) this.loopTimers.set(name, this.engine.clock.setTimeout(tick, this.engine.config.tracking.tick_ms));
          });
        this.loopRuns.add(run);
      };
      this.loopTimers.set(name, this.engine.clock.setTimeout(tick, 0));
    }
  }

  /** Starts serving HTTP; returns the base URL. */
  async listen(port = this.config.server.port, host = this.config.server.host): Promise<string> {
    const server = this.app.listen(port, host);
    server.keepAliveTimeout = this.config.server.keep_alive_timeout_ms;
    server.headersTimeout = this.config.server.keep_alive_timeout_ms + 1_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const address = server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${shownHost}:${address.port}`;
  }

  /** Points upstream callbacks at this URL (tests and tools that listen on a random port). */
  setPublicUrl(url: string): void {
    this.engine.publicUrl = url;
  }

  /**
   * Stops taking requests and work, lets creates that are talking to an upstream finish and
   * record what the upstream answered (bounded by the longest upstream timeout), ends long-held
   * waits and event streams, then closes the store.
   */
  async close(): Promise<void> {
    this.stopping = true;
    for (const timer of this.loopTimers.values()) timer.cancel();
    const server = this.server;
    const closed = server
      ? new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        })
      : Promise.resolve();
    const longestTimeout = Math.max(0, ...[...this.engine.runtimes.values()].map((runtime) => runtime.config.timeout_ms));
    await this.dispatcher.drain(longestTimeout + 5_000);
    server?.closeAllConnections();
    await closed;
    await Promise.allSettled([...this.loopRuns]);
    // Passes started outside the loops (by a webhook, a create) must not outlive the store.
    await Promise.all([this.dispatcher.idle(), this.tracker.idle(), this.webhooks.idle()]);
    if (this.ownsStore) await this.store.store.close();
  }
}
