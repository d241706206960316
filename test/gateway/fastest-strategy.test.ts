/**
 * `fastest` routes to the provider that delivers videos soonest (SPEC §3: "lowest recent median
 * time to complete"). A provider that accepts tasks and then fails them delivers nothing: each
 * such failure counts as a completion that never came, so once most of its recent tasks failed it
 * goes after the providers that deliver (and after one without history), in this process and after
 * a restart on the same SQLite file, which also keeps the times to complete (read back from the
 * tasks table at start). A failure that is the caller's (a prompt the content policy
 * refused) says nothing about the provider and does not count. `median_completion_ms` in
 * `/v1/providers` stays the median time to success.
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
const fastestOrder = async (gw: TestGateway) => (await gw.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } })).body.order;

/** Freepik's simulator takes two minutes a task, the others' five seconds; one gateway on a SQLite file. */
async function setup() {
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
  const run = async (gw: TestGateway, provider: string, status: string) => {
    const created = await gw.create({ ...body, routing: { providers: [provider] } });
    expect(created.body.provider).toBe(provider);
    const task = await gw.finish(created.body.id, 5_000);
    expect(task.status).toBe(status);
    return task;
  };
  return { start, run, simulators, clock };
}

it('keeps ordering by the recent times to complete after a restart on a SQLite file, and forgets them six hours on', async () => {
  // A lone process keeps its figures in memory, but the tasks that finished are in its database:
  // a restart must not forget which provider is fastest, nor show `/v1/providers` without a median.
  const { start, run, clock } = await setup();
  const first = await start();
  await run(first, 'freepik', 'succeeded');
  await run(first, 'kling3api', 'succeeded');
  const before = await medians(first);
  expect(await fastestOrder(first)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  await first.close();

  const restarted = await start();
  expect(await medians(restarted)).toEqual(before);
  expect(await fastestOrder(restarted)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  const created = await restarted.create({ ...body, routing: { strategy: 'fastest' } });
  expect(created.body.provider).toBe('kling3api');
  await restarted.close();

  // Completions older than six hours no longer count, after a restart as before it.
  await clock.advance(6 * 3600_000 + 60_000);
  const later = await start();
  expect((await medians(later)).freepik).toBeNull();
});

it('puts a provider whose recent tasks mostly failed after those that deliver, in this process and after a restart', async () => {
  const { start, run, simulators } = await setup();
  const gw = await start();
  await run(gw, 'freepik', 'succeeded');
  await run(gw, 'kling3api', 'succeeded');
  expect(await fastestOrder(gw)).toEqual(['kling3api', 'freepik', 'kling-legacy']);

  // kling3api now accepts every task and fails it: two of its three recent tasks failed.
  simulators.get('kling3api')!.setOutcome('fail', 2);
  await run(gw, 'kling3api', 'failed');
  await run(gw, 'kling3api', 'failed');
  const before = await medians(gw);
  // What operators read stays the time to success.
  expect(before.kling3api).toBeGreaterThan(0);
  expect(before.kling3api).toBeLessThan(before.freepik);
  // The one that delivers leads; one without history may deliver, the failing one comes last.
  expect(await fastestOrder(gw)).toEqual(['freepik', 'kling-legacy', 'kling3api']);
  // The quote says why each comes where it does.
  const quote = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } });
  expect(Object.fromEntries(quote.body.providers.map((p: { provider: string; warnings: string[] }) => [p.provider, p.warnings]))).toEqual({
    freepik: [],
    'kling-legacy': ['fastest: no task finished there in the last six hours; tried after the providers with a recent median time to complete'],
    kling3api: ['fastest: most of its recent tasks failed; tried after the providers that deliver and those with no recent history'],
  });
  expect((await gw.create({ ...body, routing: { strategy: 'fastest' } })).body.provider).toBe('freepik');
  await gw.close();

  const restarted = await start();
  expect(await medians(restarted)).toEqual(before);
  expect(await fastestOrder(restarted)).toEqual(['freepik', 'kling-legacy', 'kling3api']);
  expect((await restarted.create({ ...body, routing: { strategy: 'fastest' } })).body.provider).toBe('freepik');
});

it('does not count failures that are the caller’s (content policy) against the provider', async () => {
  const { start, run, simulators } = await setup();
  const gw = await start();
  await run(gw, 'freepik', 'succeeded');
  await run(gw, 'kling3api', 'succeeded');
  simulators.get('kling3api')!.setOutcome('content_policy', 2);
  expect((await run(gw, 'kling3api', 'failed')).error.code).toBe('content_policy');
  expect((await run(gw, 'kling3api', 'failed')).error.code).toBe('content_policy');
  expect(await fastestOrder(gw)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  await gw.close();
  const restarted = await start();
  expect(await fastestOrder(restarted)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
});

it('does not count a create the provider refused (never accepted) against it, in this process and after a restart', async () => {
  const { start, run, simulators } = await setup();
  const gw = await start();
  await run(gw, 'freepik', 'succeeded');
  await run(gw, 'kling3api', 'succeeded');
  // kling3api turns the next two creates down: those tasks fail, but no video of it was ever started.
  simulators.get('kling3api')!.injectFault({ kind: 'insufficient_credits', times: 2 });
  for (let i = 0; i < 2; i++) {
    const failed = await run(gw, 'kling3api', 'failed');
    expect(failed.provider_task_id ?? null).toBeNull();
  }
  expect(await fastestOrder(gw)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  await gw.close();
  const restarted = await start();
  expect(await fastestOrder(restarted)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
});
