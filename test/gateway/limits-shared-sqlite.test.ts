/**
 * `WORKERS` on one SQLite file: each worker is a gateway of its own on the file, opened as shared
 * by processes, so the in-flight cap and the rate windows are counted in the file, not in each
 * worker. Two gateways in this process on one such file stand in for two workers (without the
 * primary's relay of news, which only makes them learn of a freed slot sooner). Judged from what
 * the upstream received.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { openStore, type Store } from '../../src/store/database.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { mostInAnyWindow } from '../support/request-windows.js';

const gateways: TestGateway[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const gateway of gateways.splice(0).reverse()) await gateway.close();
  for (const store of stores.splice(0)) await store.close();
});

it('holds the cap and the rate window of an account across two workers on one SQLite file', async () => {
  const url = tempDatabaseUrl();
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const config = {
    database: { url },
    providers: { kling3api: { max_in_flight: 2, rate_limits: [{ limit: 3, window_ms: 10_000 }] } },
    sandbox: { processing_ms: 20_000 },
  };
  const worker = async (owner: string, first?: TestGateway) => {
    const store = await openStore(url, { sharedByProcesses: true });
    stores.push(store);
    const gateway = await startTestGateway({
      config,
      clock,
      store,
      owner,
      ...(first ? { endpoints: first.endpoints, simulators: first.simulators } : {}),
    });
    gateways.push(gateway);
    return gateway;
  };
  const one = await worker('worker-1');
  const two = await worker('worker-2', one);
  const request = { model: 'kling-v3', prompt: 'two workers', duration: 5, routing: { providers: ['kling3api'] } };
  const created = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? one : two).create({ ...request, prompt: `two workers ${i}` })));
  expect(created.map((answer) => answer.body.status).filter((status) => status === 'processing')).toHaveLength(2);

  let mostInFlight = 0;
  for (let second = 0; second < 150; second++) {
    await clock.advance(1_000);
    await Promise.all([one.gateway.runOnce(), two.gateway.runOnce()]);
    const providers = (await one.request('GET', '/v1/providers')).body.data as { id: string; in_flight: number }[];
    mostInFlight = Math.max(mostInFlight, providers.find((provider) => provider.id === 'kling3api')!.in_flight);
  }
  for (const answer of created) expect((await one.get(answer.body.id)).body.status).toBe('succeeded');
  const upstream = one.simulator('kling3api');
  expect(upstream.tasks).toHaveLength(8);
  expect(mostInFlight).toBe(2);
  expect(mostInAnyWindow(upstream.requests.map((r) => r.at), 10_000)).toBeLessThanOrEqual(3);
});
