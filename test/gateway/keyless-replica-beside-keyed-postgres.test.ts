/**
 * A rolling deploy that gives a provider its key back: one replica still runs without it (its
 * tasks in flight wait, nothing can ask about them there) while another, started with the key,
 * can. The replica without the key must not take the other's turns: its look at a task it cannot
 * ask about is no poll, and it must not push the task's poll off until after its deadline, so
 * the replica with the key makes the poll (and the last look at the deadline) and the video the
 * upstream made is delivered instead of failing as timeout.
 */
import { describe, expect, it } from 'vitest';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const request = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };
/** What a live start gives a provider left without a key. */
const KEYLESS: Record<string, Partial<ProviderEndpoint>> = {
  kling3api: { baseUrl: 'http://disabled.invalid', apiKey: '', simulated: false, disabledReason: 'no api_key configured' },
};

describe.skipIf(!available)('a replica without a provider key beside one with it', () => {
  const replicas = usePostgresReplicas({ tasks: { deadline_ms: 60_000 } });
  const { replica } = replicas;

  it('leaves the task to the replica with the key, which finishes it before its deadline', async () => {
    const first = await replica('with-key-first');
    const task = (await first.create(request)).body;
    expect(task.status).toBe('processing');
    await first.close();

    const keyless = await replica('without-key', {}, {}, KEYLESS);
    for (let step = 0; step < 40; step++) await keyless.advance(1_000);
    expect((await keyless.get(task.id)).body.status).toBe('processing');

    // The replica with the key starts 40 s in, 20 s before the deadline; both look for work at
    // each step, the one without the key first.
    const keyed = await replica('with-key', {});
    for (let step = 0; step < 30; step++) {
      await replicas.clock.advance(1_000);
      await keyless.gateway.runOnce();
      await keyed.gateway.runOnce();
    }
    expect((await keyed.get(task.id)).body).toMatchObject({ status: 'succeeded', error: null });
  }, 60_000);
});
