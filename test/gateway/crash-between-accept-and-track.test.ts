/**
 * A crash around the write that follows an accepted create (dispatcher.ts: the attempt is marked
 * `accepted` and the task moved to `tracking` with the upstream id, in one transaction) must not
 * make the next start send the same task upstream again: a crash just after the write resumes
 * tracking that upstream task; a crash just before it leaves the attempt `sending`, which is never
 * sent again.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { TENANT_KEY, startTestGateway, tempDatabaseUrl, testConfig, type TestGateway, type TestGatewayOptions } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a lighthouse at dusk', duration: 5, routing: { providers: ['kling3api'] } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

type Stage = 'after the write' | 'before the write';

/** The simulators on a manual clock, closed after the test. */
async function sandboxOnAClock() {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  return { clock, sandbox };
}

/** A gateway on the sandbox's clock and simulators, closed after the test. */
async function gatewayOn({ clock, sandbox }: Awaited<ReturnType<typeof sandboxOnAClock>>, config?: TestGatewayOptions['config']): Promise<TestGateway> {
  const gw = await startTestGateway({ clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, ...(config ? { config } : {}) });
  cleanups.push(() => gw.close());
  return gw;
}

/** The dispatcher's task lifecycle, whose `startTracking` (the write after an accepted create) a test replaces. */
function lifecycleOf(gw: TestGateway): { startTracking: (...args: unknown[]) => Promise<unknown> } {
  return (gw.gateway.dispatcher as unknown as { lifecycle: { startTracking: (...args: unknown[]) => Promise<unknown> } }).lifecycle;
}

async function crashAroundTheAcceptedWrite(stage: Stage) {
  const started = await sandboxOnAClock();
  const { sandbox } = started;
  const database = tempDatabaseUrl();

  const first = await gatewayOn(started, { database: { url: database } });
  // The process "dies" just after (or just before) the write of the accepted create: nothing it
  // does afterwards reaches the database.
  const lifecycle = lifecycleOf(first);
  const startTracking = lifecycle.startTracking.bind(lifecycle);
  // Resolved once the write has landed (or, before the write, once the process got that far):
  // the crash is the test's, not a guess at how long the answer and the write take.
  let crashed!: () => void;
  const crashPoint = new Promise<void>((resolve) => (crashed = resolve));
  lifecycle.startTracking = async (...args: unknown[]) => {
    if (stage === 'after the write') await startTracking(...args);
    crashed();
    return new Promise<never>(() => undefined);
  };

  const client = new AbortController();
  const pending = fetch(`${first.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(request),
    signal: client.signal,
  }).catch(() => undefined);
  const kling3api = sandbox.simulators.get('kling3api')!;
  // The write has landed (or not), then the client gives up.
  await crashPoint;
  expect(kling3api.tasks).toHaveLength(1);
  client.abort();
  await pending;

  // A new process on the same database (the crashed one never writes again).
  const second = await gatewayOn(started, { database: { url: database } });
  // The first pass of its workers (it runs as soon as the gateway listens) settles what was left.
  await second.gateway.runOnce();
  const [before] = (await second.request('GET', '/v1/videos')).body.data;
  await second.advance(1_000);
  await second.advance(1_000);
  const after = (await second.request('GET', `/v1/videos/${before.id}`)).body;
  return { kling3api, before, after };
}

// Regression (review): a crash after the accepted attempt was written but before the task moved to tracking made recoverAbandoned requeue the task and submit it upstream a second time (paid twice). Both are now one write.
it('resumes tracking the upstream task after a crash just after the accepted create was written', async () => {
  const { kling3api, before, after } = await crashAroundTheAcceptedWrite('after the write');
  expect(before.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['accepted']);
  expect(before.status).toBe('processing');
  expect(after.provider_task_id).toBe(kling3api.tasks[0]!.id);
  // The upstream already holds (and bills) the first task: it must not be sent again.
  expect(kling3api.tasks).toHaveLength(1);
});

it('never sends the task again after a crash just before the accepted create was written', async () => {
  const { kling3api, before, after } = await crashAroundTheAcceptedWrite('before the write');
  // Neither the upstream id nor the move to tracking reached the database: the create is in
  // doubt, and kling3api documents no way to look it up, so the next process says so.
  expect(before.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['interrupted']);
  expect(after.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['interrupted']);
  expect(kling3api.tasks).toHaveLength(1);
});

it('still writes the upstream id on the attempt when the task was taken over while its create was on the way', async () => {
  const started = await sandboxOnAClock();
  const { sandbox } = started;
  const gw = await gatewayOn(started);
  // While the create is on its way, another replica takes the task over (its lease ran out).
  const lifecycle = lifecycleOf(gw);
  const startTracking = lifecycle.startTracking.bind(lifecycle);
  lifecycle.startTracking = async (...args: unknown[]) => {
    const [task] = args as [{ id: string }];
    await gw.gateway.store.updateTask(task.id, { lease_owner: 'another-replica' });
    return startTracking(...args);
  };

  const created = await gw.request('POST', '/v1/videos', request);
  const kling3api = sandbox.simulators.get('kling3api')!;
  expect(kling3api.tasks).toHaveLength(1);
  // Not moved to tracking here (it is not this replica's any more) ...
  expect(created.body.status).toBe('queued');
  // ... but whoever holds it learns what the upstream holds, instead of looking for it.
  const attempts = await gw.gateway.engine.tasks.attempts(created.body.id);
  expect(attempts.map((attempt) => [attempt.outcome, attempt.providerTaskId])).toEqual([['accepted', kling3api.tasks[0]!.id]]);
});

// Regression (chaos, a database restart under the replicas): the writes after an accepted create were tried four times within milliseconds, so a database away for a few seconds left the attempt `sending`; kling3api's task then failed "the gateway stopped while submitting" although the gateway had its id, and the paid video was abandoned.
it('keeps the accepted create through a database outage of a few seconds', async () => {
  const started = await sandboxOnAClock();
  const { clock, sandbox } = started;
  const gw = await gatewayOn(started);
  // The database goes away as the accepted create is written, and comes back 3 s later.
  let backAt: number | undefined;
  const unreachable = () => {
    backAt ??= clock.now() + 3_000;
    if (clock.now() < backAt) throw new Error('Connection terminated unexpectedly');
  };
  const lifecycle = lifecycleOf(gw);
  const startTracking = lifecycle.startTracking.bind(lifecycle);
  lifecycle.startTracking = async (...args: unknown[]) => {
    unreachable();
    return startTracking(...args);
  };
  const { tasks } = gw.gateway.engine;
  const updateAttempt = tasks.updateAttempt.bind(tasks);
  tasks.updateAttempt = async (...args: Parameters<typeof tasks.updateAttempt>) => {
    unreachable();
    return updateAttempt(...args);
  };

  const pending = gw.request('POST', '/v1/videos', request);
  for (let i = 0; i < 1_000 && backAt === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(backAt).toBeDefined();
  for (let i = 0; i < 16; i++) await gw.advance(250);
  const created = (await pending).body;
  const kling3api = sandbox.simulators.get('kling3api')!;
  expect(created.status).toBe('processing');
  expect(created.provider_task_id).toBe(kling3api.tasks[0]!.id);

  await gw.advanceUntil(async () => (await gw.request('GET', `/v1/videos/${created.id}`)).body.status !== 'processing', 5_000);
  const finished = (await gw.request('GET', `/v1/videos/${created.id}`)).body;
  expect(finished.status).toBe('succeeded');
  expect(kling3api.tasks).toHaveLength(1);
});
