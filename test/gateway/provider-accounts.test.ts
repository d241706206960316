/**
 * Several accounts per provider (issue 14): each account has its own in-flight cap, and every
 * call about a task goes through the account that accepted it. Against a kling3api upstream that
 * takes two keys and counts, per key, the tasks running there at once.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { addressOf } from '../../src/core/upstream/provider-account.js';
import type { Store } from '../../src/store/database.js';
import { MultiKeyKling3api } from '../support/multi-key-upstream.js';
import { TENANT_KEY, startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const KEYS = { east: 'key-east-0001', west: 'key-west-0002' } as const;
const TASKS = 30;
const CAP = 3;

function accountsConfig(upstream: MultiKeyKling3api): Record<string, unknown> {
  return {
    providers: {
      kling3api: {
        base_url: upstream.url,
        max_in_flight: 50,
        accounts: [
          { id: 'east', api_key: KEYS.east, max_in_flight: CAP },
          { id: 'west', api_key: KEYS.west, max_in_flight: CAP },
        ],
      },
    },
  };
}

const request = (n: number) => ({ model: 'kling-v3', prompt: `kite number ${n}`, duration: 5, routing: { providers: ['kling3api'] } });

const terminal = (status: string) => ['succeeded', 'failed', 'canceled'].includes(status);

/** Runs the gateways' workers on the shared clock until every task ended; checks the caps as it goes. */
async function runToEnd(gateways: TestGateway[], clock: ManualClock, upstream: MultiKeyKling3api, ids: string[]): Promise<any[]> {
  for (let step = 0; step < 400; step++) {
    for (const key of Object.values(KEYS)) expect(upstream.runningWith(key)).toBeLessThanOrEqual(CAP);
    const listed = (await gateways[0]!.request('GET', '/v1/videos?limit=100')).body.data as { id: string; status: string }[];
    const tasks = ids.map((id) => listed.find((task) => task.id === id)!);
    if (tasks.every((task) => terminal(task.status))) return tasks;
    await clock.advance(5_000);
    // Replicas run their workers at the same time, racing for the same slots.
    await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
  }
  throw new Error('tasks did not finish');
}

function expectPerAccountBehaviour(upstream: MultiKeyKling3api, tasks: any[]): void {
  expect(tasks.map((task) => task.status)).toEqual(Array(TASKS).fill('succeeded'));
  // Never more than its cap on one key, and both keys carried their share.
  for (const key of Object.values(KEYS)) {
    expect(upstream.peakRunning.get(key)).toBeLessThanOrEqual(CAP);
    expect(upstream.created.get(key)?.length ?? 0).toBeGreaterThan(0);
  }
  expect((upstream.created.get(KEYS.east)?.length ?? 0) + (upstream.created.get(KEYS.west)?.length ?? 0)).toBe(TASKS);
  expect(upstream.refused).toBe(0);
  // Every status poll of a task came with the key that created it.
  expect(upstream.polls.length).toBeGreaterThanOrEqual(TASKS);
  expect(upstream.polls.filter((poll) => poll.polledWith !== poll.createdWith)).toEqual([]);
  // Each task names the account that accepted it, and that account's key created it upstream.
  for (const task of tasks) {
    const accepted = task.attempts.find((attempt: { outcome: string }) => attempt.outcome === 'accepted');
    expect(['east', 'west']).toContain(accepted.account);
    expect(upstream.created.get(KEYS[accepted.account as keyof typeof KEYS])).toContain(task.provider_task_id);
  }
}

/** The URL of a loopback port nothing listens on (taken, then closed). */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A server answering every request with `status` (a proxy in front of an upstream that is down), counting them. */
async function answeringServer(status: number): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = createServer((request, response) => {
    requests += 1;
    request.resume();
    response.writeHead(status, { 'content-type': 'text/plain' }).end('upstream unavailable');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('several accounts of one provider', { timeout: 120_000 }, () => {
  let upstream: MultiKeyKling3api | undefined;
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.close();
    await upstream?.close();
    gw = undefined;
    upstream = undefined;
  });

  it('spreads 30 tasks over two accounts of cap 3, never more than 3 on a key, polling each with its own key', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    gw = await startTestGateway({ clock, config: accountsConfig(upstream) });
    const created = [];
    for (let n = 0; n < TASKS; n++) created.push((await gw.create(request(n))).body);
    // Two accounts of three: six go out at once, the rest wait in line.
    expect(created.filter((task) => task.status === 'processing')).toHaveLength(2 * CAP);
    expect(created.filter((task) => task.status === 'queued')).toHaveLength(TASKS - 2 * CAP);

    const providers = (await gw.request('GET', '/v1/providers')).body.data;
    const kling3api = providers.find((provider: { id: string }) => provider.id === 'kling3api');
    expect(kling3api).toMatchObject({ in_flight: 2 * CAP, max_in_flight: 2 * CAP });
    expect(kling3api.accounts).toEqual([
      expect.objectContaining({ id: 'east', circuit: 'closed', in_flight: CAP, max_in_flight: CAP, calls: CAP }),
      expect.objectContaining({ id: 'west', circuit: 'closed', in_flight: CAP, max_in_flight: CAP, calls: CAP }),
    ]);
    for (const account of kling3api.accounts) {
      expect(Object.keys(account).sort()).toEqual(
        ['calls', 'circuit', 'cooling_down_until', 'id', 'in_flight', 'latency_p50_ms', 'latency_p95_ms', 'max_in_flight', 'success_rate'].sort(),
      );
    }

    const tasks = await runToEnd([gw], clock, upstream, created.map((task) => task.id));
    expectPerAccountBehaviour(upstream, tasks);

    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_upstream_requests_total\{provider="kling3api",account="east",operation="submit",outcome="ok"\} \d+/);
    expect(metrics).toContain('kling_gateway_account_max_in_flight{provider="kling3api",account="west"} 3');
    expect(metrics).toContain('kling_gateway_account_circuit_state{provider="kling3api",account="east"} 0');
    expect(metrics).not.toContain(KEYS.east);
  });

  it('sends new tasks to the other account while one is cooling down after a 429', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    gw = await startTestGateway({ clock, config: accountsConfig(upstream) });
    upstream.simulator.injectFault({ on: 'submit', kind: 'rate_limited' });
    const first = (await gw.create(request(1))).body;
    // The first account was told to wait; the task went through the second one at once.
    expect(first.status).toBe('processing');
    expect(first.attempts.map((attempt: { account: string; outcome: string; http_status: number | null }) => [attempt.account, attempt.outcome, attempt.http_status])).toEqual([
      ['east', 'failed', 429],
      ['west', 'accepted', 200],
    ]);
    const second = (await gw.create(request(2))).body;
    expect(second.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['west']);
    const kling3api = (await gw.request('GET', '/v1/providers')).body.data.find((provider: { id: string }) => provider.id === 'kling3api');
    expect(kling3api.cooling_down_until).toBeNull();
    expect(kling3api.accounts[0].cooling_down_until).not.toBeNull();
  });

  it('moves a task on to the next account when its key is refused, and fails it only when every account refused', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    // The upstream knows only the west key: east's is revoked.
    upstream = await MultiKeyKling3api.start(clock, [KEYS.west]);
    gw = await startTestGateway({ clock, config: accountsConfig(upstream) });
    const task = (await gw.create(request(1))).body;
    expect(task.status).toBe('processing');
    expect(task.attempts.map((attempt: { account: string; http_status: number | null }) => [attempt.account, attempt.http_status])).toEqual([
      ['east', 401],
      ['west', 200],
    ]);
    expect(upstream.created.get(KEYS.west)).toEqual([task.provider_task_id]);
    await upstream.close();

    upstream = await MultiKeyKling3api.start(clock, []);
    await gw.close();
    gw = await startTestGateway({ clock, config: accountsConfig(upstream) });
    const refused = (await gw.create(request(2))).body;
    expect(refused.status).toBe('failed');
    expect(refused.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['east', 'west']);
  });

  it("moves a task on to an account of the provider at another address when the first one's address is down, not to another provider", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    // East's region: first a port nothing listens on, then a proxy answering 503 to every request.
    const unreachable = await closedPortUrl();
    const down = await answeringServer(503);
    try {
      for (const [address, said] of [
        [unreachable, null],
        [down.url, 503],
      ] as const) {
        const config = accountsConfig(upstream);
        const kling3api = (config.providers as Record<string, { accounts: Record<string, unknown>[] }>).kling3api!;
        kling3api.accounts[0]!.base_url = address;
        kling3api.accounts[1]!.base_url = upstream.url;
        gw = await startTestGateway({ clock, config });
        const task = (await gw.create(request(1))).body;
        expect(task.status).toBe('processing');
        expect(task.attempts.map((attempt: { account: string; http_status: number | null; outcome: string }) => [attempt.account, attempt.outcome, attempt.http_status])).toEqual([
          ['east', 'failed', said],
          ['west', 'accepted', 200],
        ]);
        expect(upstream.created.get(KEYS.west)).toContain(task.provider_task_id);
        await gw.close();
        gw = undefined;
      }
      expect(down.requests()).toBe(1);
    } finally {
      await down.close();
    }
  });

  it('does not send the create again through another account at the same address (however it is written) when that address answers 5xx', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    const down = await answeringServer(503);
    try {
      // Both accounts at the provider's address; then each at its own, written with and without a trailing slash.
      for (const [provider, east, west] of [
        [down.url, undefined, undefined],
        [upstream.url, `${down.url}/`, down.url],
      ] as const) {
        const config = accountsConfig(upstream);
        const kling3api = (config.providers as Record<string, { base_url: string; accounts: Record<string, unknown>[] }>).kling3api!;
        kling3api.base_url = provider;
        if (east && west) [kling3api.accounts[0]!.base_url, kling3api.accounts[1]!.base_url] = [east, west];
        gw = await startTestGateway({ clock, config });
        const task = (await gw.create(request(1))).body;
        // kling3api was the only provider asked: the one refusal ends the task.
        expect(task.status).toBe('failed');
        expect(task.attempts.map((attempt: { account: string; http_status: number | null }) => [attempt.account, attempt.http_status])).toEqual([['east', 503]]);
        await gw.close();
        gw = undefined;
      }
      expect(down.requests()).toBe(2);
    } finally {
      await down.close();
    }
  });

  it('reads the ways one address can be written as one, and keeps different hosts, ports and paths apart', () => {
    const same = ['https://api-singapore.klingai.com', 'https://api-singapore.klingai.com/', 'HTTPS://API-Singapore.KlingAI.com:443//', 'https://user:pw@api-singapore.klingai.com'];
    expect(new Set(same.map(addressOf)).size).toBe(1);
    const apart = ['https://api-singapore.klingai.com', 'https://api-beijing.klingai.com', 'https://api-singapore.klingai.com:8443', 'https://api-singapore.klingai.com/kling', 'http://api-singapore.klingai.com'];
    expect(new Set(apart.map(addressOf)).size).toBe(apart.length);
  });

  it('resumes a task accepted just before a crash with the account that accepted it, which keeps its slot', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    const database = tempDatabaseUrl();
    const config = { ...accountsConfig(upstream), database: { url: database } };
    const crashed = await startTestGateway({ clock, config });
    for (let n = 0; n < CAP; n++) await crashed.create(request(100 + n));
    const before = new Set([...upstream.created.values()].flat());
    // The process "dies" right after the accepted create is written (the attempt's upstream id
    // and the task's move to tracking, one transaction): nothing it does afterwards lands.
    const lifecycle = (crashed.gateway.dispatcher as unknown as { lifecycle: { startTracking: (...args: unknown[]) => Promise<unknown> } }).lifecycle;
    const startTracking = lifecycle.startTracking.bind(lifecycle);
    // Resolved once the write has landed: the crash is the test's, not a guess at how long the
    // answer and the write take.
    let landed!: () => void;
    const written = new Promise<void>((resolve) => (landed = resolve));
    lifecycle.startTracking = async (...args: unknown[]) => {
      await startTracking(...args);
      landed();
      return new Promise<never>(() => undefined);
    };
    const client = new AbortController();
    const pending = fetch(`${crashed.url}/v1/videos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(request(1)),
      signal: client.signal,
    }).catch(() => undefined);
    const createdSince = () => [...upstream!.created.entries()].flatMap(([key, ids]) => ids.filter((id) => !before.has(id)).map((id) => ({ key, id })));
    await written;
    client.abort();
    await pending;
    const [crashedTask] = createdSince();
    const account = Object.entries(KEYS).find(([, key]) => key === crashedTask!.key)![0];

    gw = await startTestGateway({ clock, config });
    const accounts = (await gw.request('GET', '/v1/providers')).body.data.find((p: { id: string }) => p.id === 'kling3api').accounts;
    // Every task the upstream holds keeps a slot of the account that created it.
    expect(accounts.map((entry: { id: string; in_flight: number }) => [entry.id, entry.in_flight])).toEqual(
      Object.entries(KEYS).map(([id, key]) => [id, upstream!.created.get(key)?.length ?? 0]),
    );
    const resumed = (await gw.request('GET', '/v1/videos?limit=10')).body.data.find(
      (task: { provider_task_id: string }) => task.provider_task_id === crashedTask!.id,
    );
    expect(resumed.status).toBe('processing');
    const [done] = await runToEnd([gw], clock, upstream, [resumed.id]);
    expect(done.attempts.map((attempt: { account: string; outcome: string }) => [attempt.account, attempt.outcome])).toEqual([[account, 'accepted']]);
    expect(upstream.polls.filter((poll) => poll.taskId === crashedTask!.id).length).toBeGreaterThan(0);
    expect(upstream.polls.filter((poll) => poll.polledWith !== poll.createdWith)).toEqual([]);
    // Never sent again.
    expect([...upstream.created.values()].flat()).toHaveLength(CAP + 1);
    await crashed.gateway.close().catch(() => undefined);
  });
});

const postgres = await postgresAvailable();

describe.skipIf(!postgres)('several accounts of one provider, two gateways on one PostgreSQL', { timeout: 120_000 }, () => {
  let schema: string;
  let upstream: MultiKeyKling3api | undefined;
  const stores: Store[] = [];
  const gateways: TestGateway[] = [];
  afterEach(async () => {
    for (const gateway of gateways.splice(0)) await gateway.close();
    for (const store of stores.splice(0)) await store.close();
    await upstream?.close();
    await dropSchema(schema);
  });

  it('holds each account to its cap across both gateways', async () => {
    schema = newSchemaName();
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    upstream = await MultiKeyKling3api.start(clock, Object.values(KEYS));
    for (const owner of ['replica-a', 'replica-b']) {
      const store = await openPostgresStore(schema);
      stores.push(store);
      gateways.push(await startTestGateway({ clock, store, owner, config: accountsConfig(upstream) }));
    }
    const [a, b] = gateways as [TestGateway, TestGateway];
    // Creates land on both replicas, racing for the same slots.
    const created = await Promise.all(Array.from({ length: TASKS }, (_, n) => (n % 2 === 0 ? a : b).create(request(n))));
    expect(created.map((answer) => answer.status)).toEqual(Array(TASKS).fill(202));
    // Racing creates queue behind each other; however they fell, no account holds more than its cap.
    expect(created.filter((answer) => answer.body.status === 'processing').length).toBeLessThanOrEqual(2 * CAP);

    const tasks = await runToEnd(gateways, clock, upstream, created.map((answer) => answer.body.id));
    expectPerAccountBehaviour(upstream, tasks);
  });
});
