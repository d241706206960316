/**
 * A task whose account is not configured where it is polled cannot be asked about there. That
 * need not last: the operator restores the account after a restart that lacked it (as the start's
 * warning advises), or, during a rolling deploy that adds an account, a replica still on the old
 * configuration picks up the poll of a task a new replica created on the new account. The task is
 * looked at again soon, so that once a process with its account holds it, it is polled and ends
 * as the upstream says — not left until its deadline (the user waiting up to the whole deadline
 * for a video the upstream finished long before). A task whose account stays away still ends at
 * its deadline.
 */
import type { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { EAST_WEST_KEYS, MultiKeyKling3api } from '../support/multi-key-upstream.js';
import { capturedLogs } from '../support/captured-logs.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const request = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };

/** A sandbox and a SQLite file of their own; `start` starts a gateway on both, with the endpoint overrides given. */
async function restartable(clock: ManualClock) {
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const { endpoints, simulators } = sandbox;
  const database = tempDatabaseUrl();
  const start = (overrides?: Record<string, Partial<ProviderEndpoint>>, logTo?: Writable) =>
    startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } }, ...(overrides ? { endpointOverrides: overrides } : {}), ...(logTo ? { logTo } : {}) });
  // The provider's key moved into `accounts` as `main`: its account `default` is gone.
  const renamed = { kling3api: { accounts: [{ id: 'main', apiKey: endpoints.get('kling3api')!.apiKey }] } };
  return { start, renamed };
}

it('polls a task again soon once its account is back after a restart that lacked it, and finishes it', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const { start, renamed } = await restartable(clock);
  const first = await start();
  const task = (await first.create(request)).body;
  expect(task.status).toBe('processing');
  await first.close();

  const without = await start(renamed);
  for (let step = 0; step < 5; step++) await without.advance(2_000);
  expect((await without.get(task.id)).body.status).toBe('processing');
  await without.close();

  // The operator restores the account, as the start's warning says, a few minutes later.
  await clock.advance(3 * 60_000);
  const restored = await start();
  open.push(restored);
  for (let step = 0; step < 10; step++) await restored.advance(2_000);
  const done = (await restored.get(task.id)).body;
  expect(done.status).toBe('succeeded');
  expect(done.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['default']);
});

it('still ends a task whose account stays away at its deadline, as timeout saying its account is not configured, warning of it once', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const { start, renamed } = await restartable(clock);
  const first = await start();
  const task = (await first.create(request)).body;
  await first.close();

  const logs = capturedLogs();
  const without = await start(renamed, logs.sink);
  open.push(without);
  for (let step = 0; step < 35; step++) await without.advance(60_000);
  const ended = (await without.get(task.id)).body;
  expect(ended.status).toBe('failed');
  expect(ended.error.code).toBe('timeout');
  // The error says why nothing ended it sooner: no account here could ask about it, not a slow provider.
  expect(ended.error.message).toBe(
    "the task did not finish within the 30-minute deadline (last upstream status: IN_PROGRESS); nothing could ask about it: kling3api account default is not in this gateway's configuration",
  );
  // Looked at every minute meanwhile; the log says so once, not at every look.
  const stranded = logs
    .text()
    .split('\n')
    .filter((line) => line.includes('the account holding this task is no longer configured'));
  expect(stranded.map((line) => JSON.parse(line).task_id)).toEqual([task.id]);
});

const postgres = await postgresAvailable();

describe.skipIf(!postgres)('a rolling deploy adding an account, two gateways on one PostgreSQL', { timeout: 60_000 }, () => {
  let schema: string;
  const stores: Store[] = [];
  afterEach(async () => {
    for (const gateway of open.splice(0)) await gateway.close();
    for (const store of stores.splice(0)) await store.close();
    await dropSchema(schema);
  });

  it("finishes a task created on the new account soon though a replica still on the old configuration took one of its polls", async () => {
    schema = newSchemaName();
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const upstream = await MultiKeyKling3api.start(clock, [EAST_WEST_KEYS.east, EAST_WEST_KEYS.west]);
    cleanups.push(() => upstream.close());
    const accounts = [
      { id: 'east', api_key: EAST_WEST_KEYS.east, max_in_flight: 1 },
      { id: 'west', api_key: EAST_WEST_KEYS.west, max_in_flight: 1 },
    ];
    const replica = async (owner: string, configured: typeof accounts) => {
      const store = await openPostgresStore(schema);
      stores.push(store);
      const gateway = await startTestGateway({ clock, store, owner, config: { providers: { kling3api: { base_url: upstream.url, accounts: configured } } } });
      open.push(gateway);
      return gateway;
    };
    // The new replica has `west`; the old one does not yet.
    const fresh = await replica('replica-new', accounts);
    const old = await replica('replica-old', accounts.slice(0, 1));
    await fresh.create(request);
    const onWest = (await fresh.create({ ...request, prompt: 'a second lighthouse' })).body;
    expect(onWest.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['west']);

    // The old replica's worker picks up the task's first poll, and can ask nothing.
    const nextPollAt = async () => (await old.gateway.engine.tasks.get(onWest.id))!.nextPollAt;
    const firstPollAt = await nextPollAt();
    for (let step = 0; step < 60 && (await nextPollAt()) === firstPollAt; step++) {
      await clock.advance(2_000);
      await old.gateway.runOnce();
    }
    expect(await nextPollAt()).not.toBe(firstPollAt);
    expect((await old.get(onWest.id)).body.status).toBe('processing');

    // From here the new replica polls it: within a minute, not at its deadline.
    for (let step = 0; step < 30; step++) {
      await clock.advance(2_000);
      await fresh.gateway.runOnce();
    }
    expect((await fresh.get(onWest.id)).body.status).toBe('succeeded');
    expect(upstream.polls.filter((poll) => poll.polledWith !== poll.createdWith)).toEqual([]);
  });
});
