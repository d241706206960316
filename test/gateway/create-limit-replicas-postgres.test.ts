/**
 * The per-tenant create limit holds across replicas sharing PostgreSQL: creates counted on one
 * replica count on the other (rate-limiter-flexible's PostgreSQL limiter on the store's pool).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

describe.skipIf(!available)('create limit across replicas on PostgreSQL', () => {
  let schema: string;
  let endpoints: Map<string, ProviderEndpoint>;
  let simulators: Map<string, ProviderSimulator>;
  let closeSandbox: () => Promise<void>;
  const stores: Store[] = [];
  const gateways: TestGateway[] = [];
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));

  beforeEach(async () => {
    schema = newSchemaName();
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    endpoints = sandbox.endpoints;
    simulators = sandbox.simulators;
    closeSandbox = sandbox.close;
  });

  afterEach(async () => {
    for (const gateway of gateways.splice(0)) await gateway.close();
    for (const store of stores.splice(0)) await store.close();
    await closeSandbox();
    await dropSchema(schema);
  });

  async function replica(name: string): Promise<TestGateway> {
    const store = await openPostgresStore(schema);
    stores.push(store);
    const gateway = await startTestGateway({ clock, endpoints, simulators, store, owner: name, config: { limits: { creates_per_minute: 4 } } });
    gateways.push(gateway);
    return gateway;
  }

  it('counts creates on every replica against one limit', async () => {
    const [a, b] = [await replica('replica-a'), await replica('replica-b')];
    const request = { model: 'kling-v3', prompt: 'shared limit', duration: 5 };
    const statuses = [];
    for (const gateway of [a, b, a, b, a, b]) statuses.push((await gateway.create(request)).status);
    expect(statuses).toEqual([202, 202, 202, 202, 429, 429]);
  });
});
