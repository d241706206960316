/**
 * A replica died mid-create (its attempt still `sending`, its lease run out) during a rolling
 * deploy that gives a provider its key back: one replica still runs without the key, another has
 * it. Only a replica with the key can look the create up (the legacy API finds it by the
 * external_task_id it carried). The one without the key must leave the create in doubt to the one
 * with it — not take it over at every turn and hold it until the deadline — so the upstream task
 * is adopted and delivered, and never created (and paid for) twice.
 */
import { describe, expect, it } from 'vitest';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { TaskStore } from '../../src/store/task-store.js';
import { openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const LEGACY = 'kling-legacy';
const legacyVideo = { model: 'kling-v1', prompt: 'an old film look', duration: 5, routing: { providers: [LEGACY] } };
/** What a live start gives the legacy provider left without a key. */
const KEYLESS: Record<string, Partial<ProviderEndpoint>> = {
  [LEGACY]: {
    baseUrl: 'http://disabled.invalid',
    apiKey: '',
    accessKey: undefined,
    secretKey: undefined,
    simulated: false,
    disabledReason: 'no access_key and secret_key configured',
  },
};

describe.skipIf(!available)('a create in doubt beside a replica without its provider key', () => {
  const replicas = usePostgresReplicas({ tasks: { deadline_ms: 180_000 } });
  const { replica } = replicas;

  /** A task whose replica died while its create was in flight: the upstream made it, the store says `sending`. */
  async function diedMidCreate(body: Record<string, unknown> = legacyVideo) {
    const first = await replica('died');
    const created = (await first.create(body)).body;
    expect(created.provider).toBe((body.routing as { providers: string[] }).providers[0]);
    await first.close();
    const store = await openPostgresStore(replicas.schema, { maxConnections: 1 });
    try {
      const tasks = new TaskStore(store);
      const now = replicas.clock.now();
      await tasks.updateTask(created.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'died', lease_until: now - 1 });
      await tasks.updateAttempt(created.id, 1, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
    } finally {
      await store.close();
    }
    return created;
  }

  /**
   * The replica without the key runs alone for 30 s (the task stays queued, untouched); then one
   * with the key starts, and both look for work at each step, the one without the key first.
   * The task as the replica with the key reads it a minute on.
   */
  async function keyedJoinsLater(keyless: Awaited<ReturnType<typeof replica>>, id: string) {
    for (let step = 0; step < 30; step++) await keyless.advance(1_000);
    expect((await keyless.get(id)).body).toMatchObject({ status: 'queued', provider_task_id: null });
    const keyed = await replica('with-key');
    for (let step = 0; step < 60; step++) {
      await replicas.clock.advance(1_000);
      await keyless.gateway.runOnce();
      await keyed.gateway.runOnce();
    }
    return (await keyed.get(id)).body;
  }

  it('is looked up and adopted by the replica with the key, one upstream create in all', async () => {
    const created = await diedMidCreate();
    const simulator = replicas.simulators.get(LEGACY)!;
    expect(simulator.tasks).toHaveLength(1);

    const keyless = await replica('without-key', {}, {}, KEYLESS);
    const done = await keyedJoinsLater(keyless, created.id);
    expect(done, JSON.stringify(done.error)).toMatchObject({ status: 'succeeded', error: null, provider_task_id: simulator.tasks[0]!.id });
    expect(done.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'external_id' })]);
    expect(simulator.tasks).toHaveLength(1);
  }, 60_000);

  it('is adopted by the replica with the key when the create answered naming its task (kling3api)', async () => {
    const upstream = replicas.simulators.get('kling3api')!;
    const created = await diedMidCreate({ model: 'kling-v3', prompt: 'a kite over dunes', duration: 5, routing: { providers: ['kling3api'] } });
    // Its answer was a server error beside the task it made (kept on the attempt): kling3api finds a create no other way.
    const made = upstream.tasks[0]!.id;
    const store = await openPostgresStore(replicas.schema, { maxConnections: 1 });
    await new TaskStore(store).updateAttempt(created.id, 1, { outcome: 'ambiguous', error_code: 'provider_error', provider_code: 'INTERNAL_ERROR', http_status: 500, named_task_id: made });
    await store.close();

    const keyless = await replica('without-key', {}, {}, { kling3api: { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false, disabledReason: 'no api_key configured' } });
    const done = await keyedJoinsLater(keyless, created.id);
    expect(done, JSON.stringify(done.error)).toMatchObject({ status: 'succeeded', error: null, provider_task_id: made });
    expect(done.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'answer' })]);
    expect(upstream.tasks).toHaveLength(1);
  }, 60_000);

  it('still ends at its deadline when no replica has the key, saying so', async () => {
    const created = await diedMidCreate();
    const keyless = await replica('without-key', {}, {}, KEYLESS);
    for (let step = 0; step < 10; step++) await keyless.advance(30_000);
    const ended = (await keyless.get(created.id)).body;
    expect(ended.status).toBe('failed');
    expect(ended.error.message).toContain("kling-legacy has no key in this gateway's configuration, so nothing could ask about it");
    expect(replicas.simulators.get(LEGACY)!.tasks).toHaveLength(1);
  }, 60_000);
});
