/**
 * `fastest` orders by the median time to complete over the last six hours (SPEC §3). A lone
 * process on a SQLite file keeps its provider figures in memory, but the tasks that finished are
 * in its database: a restart must not forget which provider is fastest (nor show `/v1/providers`
 * without a median), or the quote and the create would go back to the configured priority.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const body = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const medians = async (gw: TestGateway) =>
  Object.fromEntries(
    (await gw.request('GET', '/v1/providers')).body.data.map((p: { id: string; median_completion_ms: number | null }) => [p.id, p.median_completion_ms]),
  );

it('keeps ordering by the recent times to complete after a restart on a SQLite file, and forgets them six hours on', async () => {
  // Freepik's simulator takes two minutes a task, the others' five seconds.
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const slow = await startSandbox(testConfig({ sandbox: { processing_ms: 120_000 } }), PROVIDERS, clock);
  const quick = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => slow.close(), () => quick.close());
  const endpoints = new Map([...quick.endpoints, ['freepik', slow.endpoints.get('freepik')!]]);
  const simulators = new Map([...quick.simulators, ['freepik', slow.simulators.get('freepik')!]]);
  const database = tempDatabaseUrl();
  const start = async () => {
    const gw = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    cleanups.push(() => gw.close());
    return gw;
  };

  const first = await start();
  for (const provider of ['freepik', 'kling3api']) {
    const created = await first.create({ ...body, routing: { providers: [provider] } });
    expect((await first.finish(created.body.id, 5_000)).status).toBe('succeeded');
  }
  const before = await medians(first);
  const quoted = (await first.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } })).body.order;
  expect(quoted).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  await first.close();

  const restarted = await start();
  expect(await medians(restarted)).toEqual(before);
  const quote = await restarted.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } });
  expect(quote.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  const created = await restarted.create({ ...body, routing: { strategy: 'fastest' } });
  expect(created.body.provider).toBe('kling3api');
  await restarted.close();

  // Completions older than six hours no longer count, after a restart as before it.
  await clock.advance(6 * 3600_000 + 60_000);
  const later = await start();
  const after = await medians(later);
  expect(after.freepik).toBeNull();
});
