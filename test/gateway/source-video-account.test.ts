/**
 * A video a legacy task made exists only in the upstream account that made it: video-extend and
 * lip-sync naming it by `video_id` must go through that account, never another account of the
 * provider (which does not know the video) nor another provider. Two legacy accounts, each its
 * own simulator with its own key, so which upstream saw a create is which account sent it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { klingLegacyProvider } from '../../src/providers/kling-legacy/index.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint, type Sandbox } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';
import { countPoolStatements } from '../support/pool-statements.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const LEGACY = 'kling-legacy';
const onLegacy = { routing: { providers: [LEGACY] } };
const video = (prompt: string) => ({ model: 'kling-v1-6', prompt, ...onLegacy });
const extend = (videoId: string) => ({ model: 'kling-v1-6', operation: 'video-extend', video_id: videoId, prompt: 'keep going' });
const lipSync = (videoId: string) => ({ model: 'kling-v1-6', video_id: videoId, lip_sync: { text: 'hello there', voice_id: 'genshin_vindi2' } });

let sandboxes: Sandbox[] = [];
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await Promise.all(sandboxes.map((sandbox) => sandbox.close()));
  sandboxes = [];
});

interface TwoAccounts {
  clock: ManualClock;
  /** Every provider's endpoint; kling-legacy's with the two accounts. */
  endpoints: Map<string, ProviderEndpoint>;
  simulators: Map<string, ProviderSimulator>;
  /** The upstream of each account. */
  upstream: { east: ProviderSimulator; west: ProviderSimulator };
  /** The legacy endpoint with only these accounts. */
  withAccounts(ids: readonly ('east' | 'west')[]): Map<string, ProviderEndpoint>;
}

/** Two legacy upstream accounts, `east` (configured first) and `west`, each on a simulator of its own. */
async function twoLegacyAccounts(): Promise<TwoAccounts> {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const main = await startSandbox(testConfig(), PROVIDERS, clock);
  const second = await startSandbox(testConfig({}, [klingLegacyProvider]), [klingLegacyProvider], clock);
  sandboxes = [main, second];
  const east = main.endpoints.get(LEGACY)!;
  const west = second.endpoints.get(LEGACY)!;
  const accounts = {
    east: { id: 'east', apiKey: east.apiKey, baseUrl: east.baseUrl },
    west: { id: 'west', apiKey: west.apiKey, baseUrl: west.baseUrl },
  };
  const withAccounts = (ids: readonly ('east' | 'west')[]) => new Map(main.endpoints).set(LEGACY, { ...east, accounts: ids.map((id) => accounts[id]) });
  return {
    clock,
    endpoints: withAccounts(['east', 'west']),
    simulators: main.simulators,
    upstream: { east: main.simulators.get(LEGACY)!, west: second.simulators.get(LEGACY)! },
    withAccounts,
  };
}

async function start(
  setup: TwoAccounts,
  config: Record<string, unknown> = {},
  endpoints = setup.endpoints,
  replica: { store?: Store; owner?: string } = {},
): Promise<TestGateway> {
  return startTestGateway({
    clock: setup.clock,
    endpoints,
    simulators: setup.simulators,
    ...replica,
    config: { tasks: { deadline_ms: 3_600_000 }, providers: { [LEGACY]: { max_in_flight: 2 } }, ...config },
  });
}

/** Creates of an operation an upstream saw. */
const createsOf = (simulator: ProviderSimulator, action: string) => simulator.tasks.filter((task) => task.path.endsWith(`/${action}`));

/** A finished video made through `gateway` on account east; its provider id. */
async function videoOnEast(gateway: TestGateway, setup: TwoAccounts): Promise<string> {
  const made = (await gateway.create(video('a lighthouse at dusk'))).body;
  expect(made.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['east']);
  const done = await gateway.finish(made.id);
  expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  expect(createsOf(setup.upstream.east, 'text2video').map((task) => task.id)).toContain(done.provider_task_id);
  return done.outputs[0].upstream_id as string;
}

const accounts = (task: { attempts: { account: string; outcome: string; http_status: number | null }[] }) =>
  task.attempts.map((attempt) => [attempt.account, attempt.outcome, attempt.http_status]);

describe('a video_id this tenant made on one of two legacy accounts', { timeout: 60_000 }, () => {
  it.each([
    ['video-extend', extend],
    ['lip-sync', lipSync],
  ])('%s goes through the account that made the video, even when it is the more loaded one', async (operation, body) => {
    const setup = await twoLegacyAccounts();
    gw = await start(setup);
    const videoId = await videoOnEast(gw, setup);
    // East now has a task in flight, west none: a create left to choose would go to west.
    const busy = (await gw.create(video('a busy harbour'))).body;
    expect(accounts(busy)).toEqual([['east', 'accepted', 200]]);
    const westBefore = setup.upstream.west.tasks.length;

    const created = await gw.create(body(videoId));
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body.status).toBe('queued');
    expect(accounts(created.body)).toEqual([['east', 'accepted', 200]]);
    expect(createsOf(setup.upstream.east, operation).map((task) => task.id)).toEqual([created.body.provider_task_id]);
    expect(setup.upstream.west.tasks).toHaveLength(westBefore);
    const done = await gw.finish(created.body.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  });

  it("waits queued for a slot of that account while the other is free, and keeps to it after a restart", async () => {
    const setup = await twoLegacyAccounts();
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { [LEGACY]: { max_in_flight: 1 } } };
    gw = await start(setup, config);
    const videoId = await videoOnEast(gw, setup);
    const busy = (await gw.create(video('a busy harbour'))).body;
    expect(accounts(busy)).toEqual([['east', 'accepted', 200]]);

    const queued = (await gw.create(extend(videoId))).body;
    expect(queued.status).toBe('queued');
    expect(queued.attempts).toEqual([]);
    // A quote says the same: west is free, but the one account that holds the video is not.
    const quote = (await gw.request('POST', '/v1/videos/quote', extend(videoId))).body;
    expect(quote.providers.find((provider: { provider: string }) => provider.provider === LEGACY).warnings).toContainEqual(
      expect.stringContaining('no free slot on account east, which made video_id (1 of 1 tasks in flight)'),
    );
    await gw.gateway.runOnce();
    expect((await gw.get(queued.id)).body.status).toBe('queued');

    await gw.close();
    gw = await start(setup, config);
    await gw.gateway.runOnce();
    expect((await gw.get(queued.id)).body).toMatchObject({ status: 'queued', attempts: [] });
    expect(setup.upstream.west.tasks).toHaveLength(0);

    // East's task ends: its slot goes to the extension.
    expect((await gw.finish(busy.id)).status).toBe('succeeded');
    const done = await gw.finish(queued.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(accounts(done)).toEqual([['east', 'accepted', 200]]);
    expect(createsOf(setup.upstream.east, 'video-extend').map((task) => task.id)).toEqual([done.provider_task_id]);
    expect(setup.upstream.west.tasks).toHaveLength(0);
  });

  it('fails, saying why, when that account is gone from the configuration while the task waits for it', async () => {
    const setup = await twoLegacyAccounts();
    const config = { database: { url: tempDatabaseUrl() }, providers: { [LEGACY]: { max_in_flight: 1 } } };
    gw = await start(setup, config);
    const videoId = await videoOnEast(gw, setup);
    await gw.create(video('a busy harbour'));
    const queued = (await gw.create(extend(videoId))).body;
    expect(queued.status).toBe('queued');
    await gw.close();

    gw = await start(setup, config, setup.withAccounts(['west']));
    await gw.gateway.runOnce();
    const failed = (await gw.get(queued.id)).body;
    expect(failed.status).toBe('failed');
    expect(failed.error.message).toContain('account east of kling-legacy, which made the video video_id names and alone holds it, is no longer configured');
    expect(setup.upstream.west.tasks).toHaveLength(0);
  });

  it("is not moved to the other account on that account's own trouble (429, key refused), and says so", async () => {
    const setup = await twoLegacyAccounts();
    gw = await start(setup);
    const videoId = await videoOnEast(gw, setup);

    setup.upstream.east.injectFault({ on: 'submit', kind: 'rate_limited' });
    const waiting = (await gw.create(extend(videoId))).body;
    expect(waiting.status).toBe('queued');
    expect(accounts(waiting)).toEqual([['east', 'failed', 429]]);
    expect(waiting.attempts[0].message).toContain('not sent through another account: account east made the video video_id names');
    await gw.advanceUntil(async () => (await gw!.get(waiting.id)).body.status !== 'queued');
    const sent = (await gw.get(waiting.id)).body;
    expect(accounts(sent)).toEqual([
      ['east', 'failed', 429],
      ['east', 'accepted', 200],
    ]);

    setup.upstream.east.injectFault({ on: 'submit', kind: 'unauthorized' });
    const refused = (await gw.create(extend(videoId))).body;
    expect(refused.status).toBe('failed');
    expect(accounts(refused)).toEqual([['east', 'failed', 401]]);
    expect(refused.error.message).toContain('not sent through another account: account east made the video video_id names');
    expect(setup.upstream.west.tasks).toHaveLength(0);
  });

  it('is a 422 on video_id when that account is no longer configured, or its provider is disabled; nothing is written or sent', async () => {
    const setup = await twoLegacyAccounts();
    const database = { database: { url: tempDatabaseUrl() } };
    gw = await start(setup, database);
    const videoId = await videoOnEast(gw, setup);
    await gw.close();

    for (const [endpoints, config, said] of [
      [setup.withAccounts(['west']), database, "names a video made on kling-legacy's account east"],
      [setup.endpoints, { ...database, providers: { [LEGACY]: { enabled: false } } }, 'kling-legacy is disabled'],
    ] as const) {
      gw = await start(setup, config, endpoints);
      const listed = (await gw.request('GET', '/v1/videos')).body.data.length;
      const before = setup.upstream.east.tasks.length + setup.upstream.west.tasks.length;
      for (const body of [extend(videoId), lipSync(videoId)]) {
        for (const path of ['/v1/videos', '/v1/videos/quote']) {
          const refused = await gw.request('POST', path, body);
          expect(refused.status, JSON.stringify(refused.body)).toBe(422);
          expect(refused.body.errors).toEqual([{ path: 'video_id', message: expect.stringContaining(said) }]);
        }
      }
      expect(setup.upstream.east.tasks.length + setup.upstream.west.tasks.length).toBe(before);
      expect((await gw.request('GET', '/v1/videos')).body.data).toHaveLength(listed);
      await gw.close();
    }
    gw = undefined;
  });

  it("makes every other provider ineligible, saying why, in quote and in a create's 422", async () => {
    const setup = await twoLegacyAccounts();
    gw = await start(setup);
    const videoId = await videoOnEast(gw, setup);
    const reason = 'video_id names a video kling-legacy made (account east); only that account holds it';

    const quote = await gw.request('POST', '/v1/videos/quote', extend(videoId));
    expect(quote.status, JSON.stringify(quote.body)).toBe(200);
    expect(quote.body.order).toEqual([LEGACY]);
    for (const provider of quote.body.providers) {
      if (provider.provider === LEGACY) expect(provider).toMatchObject({ eligible: true, reasons: [] });
      else expect(provider).toMatchObject({ eligible: false, reasons: expect.arrayContaining([reason]) });
    }

    const elsewhere = await gw.create({ ...extend(videoId), routing: { providers: ['kling3api', 'freepik'] } });
    expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(422);
    expect(elsewhere.body.detail).toContain(reason);
    expect(elsewhere.body.errors).toContainEqual(expect.objectContaining({ path: 'video_id', message: expect.stringContaining(reason) }));
  });

  it('an id no task here made goes to whichever account is chosen, as before', async () => {
    const setup = await twoLegacyAccounts();
    gw = await start(setup);
    const busy = (await gw.create(video('a busy harbour'))).body;
    expect(accounts(busy)).toEqual([['east', 'accepted', 200]]);
    const created = (await gw.create(extend('made-elsewhere-123'))).body;
    expect(accounts(created)).toEqual([['west', 'accepted', 200]]);
  });
});

const postgres = await postgresAvailable();

describe.skipIf(!postgres)('a video_id made on one of two legacy accounts, two gateways on one PostgreSQL', { timeout: 60_000 }, () => {
  const schema = newSchemaName();
  const stores: Store[] = [];
  const replicas: TestGateway[] = [];
  afterEach(async () => {
    for (const replica of replicas.splice(0)) await replica.close();
    for (const store of stores.splice(0)) await store.close();
    await dropSchema(schema);
  });

  it('a quote naming the video asks the store once who made it', async () => {
    const setup = await twoLegacyAccounts();
    const store = await openPostgresStore(schema);
    stores.push(store);
    const a = await start(setup, {}, setup.endpoints, { store, owner: 'replica-a' });
    replicas.push(a);
    const videoId = await videoOnEast(a, setup);
    const pool = countPoolStatements(store.pool!);
    pool.reset();
    const quoted = await a.request('POST', '/v1/videos/quote', extend(videoId));
    expect(quoted.status, JSON.stringify(quoted.body)).toBe(200);
    const lookups = pool.events.filter((event) => event.kind === 'statement' && event.sql.includes('"output_ids"'));
    expect(lookups).toHaveLength(1);
  });

  it('an extension created on one replica and queued for that account is sent through it by the other', async () => {
    const setup = await twoLegacyAccounts();
    for (const owner of ['replica-a', 'replica-b']) {
      const store = await openPostgresStore(schema);
      stores.push(store);
      replicas.push(await start(setup, { providers: { [LEGACY]: { max_in_flight: 1 } } }, setup.endpoints, { store, owner }));
    }
    const [a, b] = replicas as [TestGateway, TestGateway];
    const videoId = await videoOnEast(a, setup);
    const busy = (await a.create(video('a busy harbour'))).body;
    expect(accounts(busy)).toEqual([['east', 'accepted', 200]]);
    const queued = (await a.create(extend(videoId))).body;
    expect(queued.status).toBe('queued');

    // Only the other replica works from here: it reads the binding from the stored plan.
    await b.gateway.runOnce();
    expect((await b.get(queued.id)).body.status).toBe('queued');
    expect((await b.finish(busy.id)).status).toBe('succeeded');
    const done = await b.finish(queued.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(accounts(done)).toEqual([['east', 'accepted', 200]]);
    expect(createsOf(setup.upstream.east, 'video-extend').map((task) => task.id)).toEqual([done.provider_task_id]);
    expect(setup.upstream.west.tasks).toHaveLength(0);
  });
});
