/**
 * A rolling deploy over replicas on one PostgreSQL where one replica still runs without a
 * provider's key (or with the provider switched off): the tasks another replica accepted for that
 * provider and queued behind its cap are that replica's to send. The one without the key must
 * leave them in line — not fail them with no_provider_available, nor keep putting them off — and
 * they end at their deadline only if no replica ever sends them.
 */
import { describe, expect, it, vi } from 'vitest';
import { DISPATCH_CONCURRENCY } from '../../src/core/tasks/dispatcher.js';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { capturedLogs } from '../support/captured-logs.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const request = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };
/** What a live start gives a provider left without a key. */
const KEYLESS: Record<string, Partial<ProviderEndpoint>> = {
  kling3api: { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false, disabledReason: 'no api_key configured' },
};

describe.skipIf(!available)('tasks queued for a provider that one replica has no key for', () => {
  const replicas = usePostgresReplicas({ providers: { kling3api: { max_in_flight: 1 } }, tasks: { deadline_ms: 120_000 } });
  const { replica } = replicas;

  it('are left in line by that replica and sent by the one with the key as its slot frees', async () => {
    const keyed = await replica('with-key');
    const keyless = await replica('without-key', {}, {}, KEYLESS);
    const tasks = [];
    for (let i = 0; i < 3; i++) tasks.push((await keyed.create({ ...request, prompt: `lighthouse ${i}` })).body);
    expect(tasks.map((task) => task.status)).toEqual(['processing', 'queued', 'queued']);

    for (let step = 0; step < 3; step++) await keyless.advance(500);
    for (const task of tasks.slice(1)) expect((await keyless.get(task.id)).body).toMatchObject({ status: 'queued', error: null });

    // Both look for work at each step, the one without the key first.
    for (let step = 0; step < 30; step++) {
      await replicas.clock.advance(1_000);
      await keyless.gateway.runOnce();
      await keyed.gateway.runOnce();
    }
    for (const task of tasks) expect((await keyed.get(task.id)).body).toMatchObject({ status: 'succeeded', error: null });
  }, 60_000);

  it('are passed over by that replica without a read each, as tasks behind a full provider are', async () => {
    const keyed = await replica('with-key');
    const keyless = await replica('without-key', {}, {}, KEYLESS);
    const tasks = [];
    for (let i = 0; i < 1 + 3 * DISPATCH_CONCURRENCY; i++) tasks.push((await keyed.create({ ...request, prompt: `harbour ${i}` })).body);
    expect(tasks.filter((task) => task.status === 'queued')).toHaveLength(3 * DISPATCH_CONCURRENCY);

    // The first batch's looks tell the provider is off here: the tasks after it wait in line untouched.
    const { tasks: repository } = keyless.gateway.engine;
    const read = vi.spyOn(repository, 'get');
    await replicas.clock.advance(1_000);
    await keyless.gateway.runOnce();
    const queuedIds = new Set(tasks.slice(1).map((task) => task.id));
    expect(read.mock.calls.filter(([id]) => queuedIds.has(id as string)).length).toBeLessThanOrEqual(DISPATCH_CONCURRENCY);
    read.mockRestore();
    for (const task of tasks.slice(1)) expect((await keyless.get(task.id)).body).toMatchObject({ status: 'queued', error: null });
  }, 60_000);

  it('end as timeout at their deadline when no replica has the key', async () => {
    const keyed = await replica('with-key');
    const first = (await keyed.create(request)).body;
    const queued = (await keyed.create({ ...request, prompt: 'behind it' })).body;
    expect([first.status, queued.status]).toEqual(['processing', 'queued']);
    await keyed.close();

    const logs = capturedLogs();
    const keyless = await replica('without-key', {}, {}, KEYLESS, logs.sink);
    // The start says what becomes of them: not that they fail at the first dispatch.
    const said = logs
      .text()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string })
      .filter((line) => /queued task/.test(line.msg));
    expect(said.map((line) => line.msg)).toEqual([
      '1 queued task may go only to kling3api, switched off on this replica (kling3api: no api_key configured): it waits for a replica that has kling3api on, ' +
        "and fails as timeout at its deadline if none does; to end such tasks at once, cancel them (GET /v1/providers shows each provider's queue)",
    ]);
    for (let step = 0; step < 60; step++) await keyless.advance(1_000);
    expect((await keyless.get(queued.id)).body.status).toBe('queued');
    for (let step = 0; step < 70; step++) await keyless.advance(1_000);
    expect((await keyless.get(queued.id)).body).toMatchObject({
      status: 'failed',
      error: { code: 'timeout', message: 'no provider took the task within the 2-minute deadline' },
    });
  }, 60_000);
});
