import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore, type TaskPatch } from '../../src/store/task-store.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a train crossing a viaduct', duration: 5 };
/** Held to kling3api, which documents no way to find a task whose create answer was lost. */
const toKling3api = { ...request, routing: { providers: ['kling3api'] } };

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function sandbox(clock: ManualClock) {
  const started = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => started.close());
  return started;
}

/**
 * Writes what a replica that died between two create attempts leaves in the store: the task held
 * in `submitting` for kling3api under that replica's live lease, with `extra` on the row.
 */
async function leftBetweenAttempts(database: string, taskId: string, clock: ManualClock, extra: TaskPatch): Promise<void> {
  const store = await openStore(database);
  await new TaskStore(store).updateTask(taskId, {
    phase: 'submitting',
    status: 'queued',
    provider: 'kling3api',
    lease_owner: 'dead-replica',
    lease_until: clock.now() + 60_000,
    ...extra,
  });
  await store.close();
}

describe('restart and crash recovery (SPEC §5)', () => {
  it('resumes tracking after a restart and finishes the task exactly once upstream', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    // kling3api: polling only, so the second gateway must find the task itself.
    const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    const created = await first.create({ ...request, routing: { providers: ['kling3api'] } });
    expect(created.body.status).toBe('processing');
    await first.close();

    await clock.advance(10_000);
    const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    open.push(second);
    const done = await second.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('resumes a queued task after a restart', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { kling3api: { max_in_flight: 1 } } };
    const first = await startTestGateway({ clock, endpoints, simulators, config });
    const pinned = { ...request, routing: { providers: ['kling3api'] } };
    const a = await first.create(pinned);
    const b = await first.create(pinned);
    expect(a.body.status).toBe('processing');
    expect(b.body.status).toBe('queued');
    await first.close();

    const second = await startTestGateway({ clock, endpoints, simulators, config });
    open.push(second);
    expect((await second.finish(b.body.id)).status).toBe('succeeded');
    expect(simulators.get('kling3api')!.tasks).toHaveLength(2);
  });

  it('fails a queued task whose every provider was turned off at the restart, naming each and why, and follows the one in flight to its end', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { kling3api: { max_in_flight: 1 } } };
    const first = await startTestGateway({ clock, endpoints, simulators, config });
    const a = await first.create(toKling3api);
    const b = await first.create(toKling3api);
    expect([a.body.status, b.body.status]).toEqual(['processing', 'queued']);
    await first.close();

    const second = await startTestGateway({ clock, endpoints, simulators, config: { ...config, providers: { kling3api: { max_in_flight: 1, enabled: false } } } });
    open.push(second);
    await second.gateway.runOnce();
    expect((await second.get(b.body.id)).body).toMatchObject({
      status: 'failed',
      error: { code: 'no_provider_available', message: 'no eligible provider is enabled: kling3api (disabled in configuration)' },
    });
    expect((await second.finish(a.body.id)).status).toBe('succeeded');
    expect(simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('says at start how many queued tasks only providers switched off now could take, and what to do; a restart that keeps them says nothing', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { kling3api: { max_in_flight: 1 } } };
    const first = await startTestGateway({ clock, endpoints, simulators, config });
    await first.create(toKling3api);
    const queued = await Promise.all([first.create(toKling3api), first.create({ ...toKling3api, prompt: 'a second train' })]);
    expect(queued.map((answer) => answer.body.status)).toEqual(['queued', 'queued']);
    await first.close();
    const warnings = (text: string) =>
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
        .filter((line) => line.level === 'warn' && /queued/.test(line.msg));

    const kept = capturedLogs();
    await (await startTestGateway({ clock, endpoints, simulators, config, logTo: kept.sink })).close();
    expect(warnings(kept.text())).toEqual([]);

    const logs = capturedLogs();
    const off = await startTestGateway({ clock, endpoints, simulators, config: { ...config, providers: { kling3api: { enabled: false } } }, logTo: logs.sink });
    open.push(off);
    expect(warnings(logs.text())).toEqual([
      expect.objectContaining({
        providers: ['kling3api'],
        tasks: 2,
        msg:
          '2 queued tasks may go only to kling3api, switched off now (kling3api: disabled in configuration): they fail with no_provider_available at the first dispatch after this start, ' +
          'before anything is sent; to keep such tasks when switching a provider off, leave kling3api on until the queue holds none that only it can take (GET /v1/providers shows each one\'s queue)',
      }),
    ]);
  });

  it('fails a queued task whose provider was left without a key at the restart, naming that reason', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { kling3api: { max_in_flight: 1 } } };
    const first = await startTestGateway({ clock, endpoints, simulators, config });
    await first.create(toKling3api);
    const queued = await first.create(toKling3api);
    expect(queued.body.status).toBe('queued');
    await first.close();

    const keyless = new Map([...endpoints].map(([id, endpoint]) => [id, id === 'kling3api' ? { ...endpoint, disabledReason: 'KLING3API_API_KEY is not set' } : endpoint]));
    const second = await startTestGateway({ clock, endpoints: keyless, simulators, config });
    open.push(second);
    await second.gateway.runOnce();
    expect((await second.get(queued.body.id)).body).toMatchObject({
      status: 'failed',
      error: { code: 'no_provider_available', message: 'no eligible provider is enabled: kling3api (KLING3API_API_KEY is not set)' },
    });
  });

  it('does not warn at start of queued tasks that a provider still on may take, though another of theirs is switched off', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const config = { database: { url: database }, providers: { kling3api: { max_in_flight: 1 }, freepik: { max_in_flight: 1 } } };
    const first = await startTestGateway({ clock, endpoints, simulators, config });
    await first.create(toKling3api);
    await first.create({ ...request, routing: { providers: ['freepik'] } });
    const either = await first.create({ ...request, prompt: 'a train either may take', routing: { providers: ['kling3api', 'freepik'] } });
    expect(either.body.status).toBe('queued');
    await first.close();
    const logs = capturedLogs();
    const off = await startTestGateway({
      clock,
      endpoints,
      simulators,
      config: { ...config, providers: { ...config.providers, kling3api: { enabled: false } } },
      logTo: logs.sink,
    });
    open.push(off);
    const warned = logs
      .text()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.level === 'warn' && /queued task/.test(line.msg));
    expect(warned).toEqual([]);
  });

  it('never re-sends a create that was in flight when the gateway died; where nothing can find it, it reports it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    // What a replica leaves behind when it dies mid-create: the task held in `submitting`
    // and its attempt written as `sending` before the request left.
    const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    const created = await first.create(toKling3api);
    await first.close();
    const store = await openStore(database);
    const tasks = new TaskStore(store);
    await tasks.updateTask(created.body.id, {
      phase: 'submitting',
      status: 'queued',
      provider_task_id: null,
      lease_owner: 'dead-replica',
      lease_until: clock.now() + 60_000,
    });
    // Its one attempt was written as `sending` before the request left; no answer was recorded.
    await tasks.updateAttempt(created.body.id, 1, {
      outcome: 'sending',
      latency_ms: null,
      provider_task_id: null,
      tracking_json: null,
    });
    await store.close();
    const upstreamBefore = [...simulators.values()].map((simulator) => simulator.tasks.length);

    const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    open.push(second);
    await second.gateway.runOnce();
    const task = (await second.get(created.body.id)).body;
    expect(task.status).toBe('failed');
    expect(task.error.code).toBe('provider_error');
    expect(task.error.message).toMatch(/stopped while submitting to kling3api/);
    expect(task.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'interrupted' })]);
    expect([...simulators.values()].map((simulator) => simulator.tasks.length)).toEqual(upstreamBefore);
  });

  it('puts a task that was between attempts back in the queue, and finishes it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    const created = await first.create(request);
    await first.close();
    // Held in `submitting` with nothing in flight (crash between two attempts).
    await leftBetweenAttempts(database, created.body.id, clock, { provider_task_id: null });

    const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    open.push(second);
    const done = await second.finish(created.body.id);
    expect(done.status).toBe('succeeded');
  });

  it('cancels, rather than sends again, a task left between attempts with a cancel asked for while its create was on its way', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const { endpoints, simulators } = await sandbox(clock);
    const database = tempDatabaseUrl();
    const posts = (provider: string) => simulators.get(provider)!.requests.filter((r) => r.method === 'POST').length;
    const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    // Freepik turns the create down for good, kling3api asks for a pause: the task has two failed attempts.
    simulators.get('freepik')!.injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402 });
    simulators.get('kling3api')!.injectFault({ on: 'submit', kind: 'rate_limited', status: 429, headers: { 'retry-after': '5' } });
    const created = await first.create({ ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.attempts).toMatchObject([{ provider: 'freepik', outcome: 'failed' }, { provider: 'kling3api', outcome: 'failed' }]);
    await first.close();
    // What a replica leaves behind when it dies after a create was turned down, before the next
    // one: the task held in `submitting`, with the cancel its caller asked for meanwhile.
    await leftBetweenAttempts(database, created.body.id, clock, { cancel_requested_at: clock.now() });

    const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database } } });
    open.push(second);
    await second.advance(10_000);
    await second.advance(10_000);
    // Before: recovery put it back in the queue, and kling3api (its pause over) took it and billed it.
    expect((await second.get(created.body.id)).body).toMatchObject({
      status: 'canceled',
      provider: null,
      cost: { credits: 0, estimated: false },
      error: { code: 'canceled' },
    });
    expect([posts('freepik'), posts('kling3api')]).toEqual([1, 1]);
  });
});

describe('deadlines', () => {
  it('fails a task that does not finish in time with timeout', async () => {
    const gw = await startTestGateway({ config: { tasks: { deadline_ms: 60_000 }, sandbox: { processing_ms: 600_000 } } });
    open.push(gw);
    const created = await gw.create({ ...request, routing: { providers: ['kling3api'] } });
    await gw.advance(30_000);
    expect((await gw.get(created.body.id)).body.status).toBe('processing');
    await gw.advance(31_000);
    const task = (await gw.get(created.body.id)).body;
    expect(task.status).toBe('failed');
    expect(task.error.code).toBe('timeout');
    expect(task.error.message).toMatch(/1-minute deadline/);
  });

  it('looks at a tracked task once more at its deadline: a video finished in time is not failed', async () => {
    const gw = await startTestGateway({
      config: { tasks: { deadline_ms: 60_000 }, tracking: { poll_max_interval_ms: 30_000 }, sandbox: { processing_ms: 57_500 } },
    });
    open.push(gw);
    const created = await gw.create({ ...request, routing: { providers: ['kling3api'] } });
    // Polled at 45 s and 57 s (still running); the upstream finishes at 58.5 s, and the next poll
    // by the back-off would come after the deadline.
    for (let second = 0; second < 66; second++) await gw.advance(1_000);
    const task = (await gw.get(created.body.id)).body;
    expect(task.status).toBe('succeeded');
    expect(gw.simulator('kling3api').tasks).toHaveLength(1);
  });

  it('looks at a tracked task once more at its deadline even when its account is cooling down then: a video finished in time is not failed', async () => {
    const gw = await startTestGateway({
      config: { tasks: { deadline_ms: 60_000 }, tracking: { poll_max_interval_ms: 30_000 }, sandbox: { processing_ms: 57_500 } },
    });
    open.push(gw);
    const created = await gw.create({ ...request, routing: { providers: ['kling3api'] } });
    for (let second = 0; second < 50; second++) await gw.advance(1_000);
    // The poll at 57 s is answered 429 (Retry-After 5 s): at the deadline (60 s) the account is
    // still cooling down, so the last look waits for it (62 s), within a minute past the deadline.
    gw.simulator('kling3api').injectFault({ on: 'status', status: 429, headers: { 'retry-after': '5' } });
    for (let second = 50; second < 70; second++) await gw.advance(1_000);
    const task = (await gw.get(created.body.id)).body;
    expect(task.status).toBe('succeeded');
    expect(gw.simulator('kling3api').tasks).toHaveLength(1);
  });

  it('fails a task that waited in the queue past its deadline', async () => {
    const gw = await startTestGateway({
      config: { tasks: { deadline_ms: 60_000 }, providers: { kling3api: { max_in_flight: 1 } }, sandbox: { processing_ms: 600_000 } },
    });
    open.push(gw);
    const pinned = { ...request, routing: { providers: ['kling3api'] } };
    await gw.create(pinned);
    const waiting = await gw.create(pinned);
    expect(waiting.body.status).toBe('queued');
    await gw.advance(61_000);
    const task = (await gw.get(waiting.body.id)).body;
    expect(task.status).toBe('failed');
    expect(task.error).toMatchObject({ code: 'timeout' });
    expect(task.error.message).toMatch(/no provider took the task/);
  });
});
