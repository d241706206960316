/**
 * Gateway replicas sharing one PostgreSQL schema, for a `describe` block: each test gets a fresh
 * schema, a manual clock and one sandbox of simulators shared by its replicas; everything is
 * closed and the schema dropped after it.
 */
import { afterEach, beforeEach } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { DestinationStream } from 'pino';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { startTestGateway, testConfig, type TestGateway } from './harness.js';
import { dropSchema, newSchemaName, openPostgresStore, type PostgresStoreOptions } from './postgres.js';

export interface PostgresReplicas {
  /** The current test's schema. */
  readonly schema: string;
  /** The clock every replica of the current test runs on. */
  readonly clock: ManualClock;
  /** The current test's simulators, by provider id. */
  readonly simulators: Map<string, ProviderSimulator>;
  /** How the current test's replicas reach each provider (its simulator, its key), by provider id. */
  readonly endpoints: ReadonlyMap<string, ProviderEndpoint>;
  /**
   * Starts a replica named `name` on the shared schema; `config` adds to the block's own, `store`
   * sets its pool (and how it reaches the server), `endpointOverrides` how it reaches a provider
   * (an upstream of the test's own), `logTo` where its logs go (silent when absent).
   */
  replica(
    name: string,
    config?: Record<string, unknown>,
    store?: PostgresStoreOptions,
    endpointOverrides?: Record<string, Partial<ProviderEndpoint>>,
    logTo?: DestinationStream,
  ): Promise<TestGateway>;
  /**
   * Lets gateway time run (in small steps) while `work` is pending: a create that waits on the
   * gateway's clock (a provider in doubt after a failure lets one call through at a time) must
   * not wait for a clock nobody moves.
   */
  withClockRunning<T>(work: Promise<T>): Promise<T>;
}

/** Registers the hooks; call inside a `describe`. `config` applies to every replica. */
export function usePostgresReplicas(config: Record<string, unknown> = {}): PostgresReplicas {
  let schema: string;
  let clock: ManualClock;
  let endpoints: Map<string, ProviderEndpoint>;
  let simulators: Map<string, ProviderSimulator>;
  let closeSandbox: () => Promise<void>;
  const stores: Store[] = [];
  const gateways: TestGateway[] = [];

  beforeEach(async () => {
    schema = newSchemaName();
    clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    endpoints = sandbox.endpoints;
    simulators = sandbox.simulators;
    closeSandbox = sandbox.close;
  });

  /** See `withClockRunning` below. */
  const withClockRunning = async <T>(work: Promise<T>): Promise<T> => {
    let settled = false;
    void work.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      await clock.advance(50);
    }
    return work;
  };

  afterEach(async () => {
    // A dispatch pass a replica started on its own (news from the other) may be waiting on the
    // gateway's clock; closing waits for it, so the clock keeps moving meanwhile.
    await withClockRunning(
      (async () => {
        for (const gateway of gateways.splice(0)) await gateway.close();
      })(),
    );
    for (const store of stores.splice(0)) await store.close();
    await closeSandbox();
    await dropSchema(schema);
  });

  return {
    get schema() {
      return schema;
    },
    get clock() {
      return clock;
    },
    get simulators() {
      return simulators;
    },
    get endpoints() {
      return endpoints;
    },
    withClockRunning,
    async replica(name, extra = {}, storeOptions = {}, endpointOverrides = {}, logTo = undefined) {
      const store = await openPostgresStore(schema, storeOptions);
      stores.push(store);
      const gateway = await startTestGateway({ clock, endpoints, simulators, store, owner: name, config: { ...config, ...extra }, endpointOverrides, ...(logTo ? { logTo } : {}) });
      gateways.push(gateway);
      return gateway;
    },
  };
}
