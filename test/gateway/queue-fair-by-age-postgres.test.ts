/**
 * The queue is fair by age on PostgreSQL too (README, Known limitations): a replica's dispatch
 * pass claims slots in age order, though its claims run on several pool connections at once (the
 * provider's row lock went to whichever claim's transaction reached it first). Across replicas
 * the order is not strict; within one replica's passes it is.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const base = { model: 'kling-v3', duration: 5 };
const to = (...providers: string[]) => ({ routing: { providers } });

describe.skipIf(!available)('the queue on PostgreSQL', () => {
  const replicas = usePostgresReplicas();
  const { replica } = replicas;
  const promptsAt = (provider: string) => replicas.simulators.get(provider)!.tasks.map((task) => (task.body as { prompt: string }).prompt);

  it('sends a replica’s queued tasks strictly oldest first as its slot frees, one at a time', async () => {
    const a = await replica('replica-a', { providers: { kling3api: { max_in_flight: 1 } } });
    expect((await a.create({ ...base, ...to('kling3api'), prompt: 'holder' })).body.status).toBe('processing');
    const names = Array.from({ length: 8 }, (_, i) => `queued ${i}`);
    for (const prompt of names) {
      await replicas.clock.advance(1);
      expect((await a.create({ ...base, ...to('kling3api'), prompt })).body.status).toBe('queued');
    }
    for (let step = 0; step < 120 && promptsAt('kling3api').length < 9; step++) {
      await replicas.clock.advance(500);
      await a.gateway.runOnce();
    }
    expect(promptsAt('kling3api')).toEqual(['holder', ...names]);
  });

  it('gives a freed slot to the oldest task waiting for its provider, though a younger one reaches it in fewer steps', async () => {
    const a = await replica('replica-a', { providers: { kling3api: { max_in_flight: 1 }, freepik: { max_in_flight: 1 } } });
    expect((await a.create({ ...base, ...to('kling3api'), prompt: 'k holder' })).body.status).toBe('processing');
    await replicas.clock.advance(3_000);
    expect((await a.create({ ...base, ...to('freepik'), prompt: 'f holder' })).body.status).toBe('queued');
    for (const body of [
      { ...base, ...to('freepik', 'kling3api'), prompt: 'old 1' },
      { ...base, ...to('kling3api'), prompt: 'young 1' },
      { ...base, ...to('freepik', 'kling3api'), prompt: 'old 2' },
      { ...base, ...to('kling3api'), prompt: 'young 2' },
    ]) {
      await replicas.clock.advance(1);
      expect((await a.create(body)).body.status).toBe('queued');
    }
    for (let step = 0; step < 10 && promptsAt('kling3api').length < 2; step++) {
      await replicas.clock.advance(500);
      await a.gateway.runOnce();
    }
    expect(promptsAt('kling3api')).toEqual(['k holder', 'old 1']);
  });

  it('gives a slot freed after a pass found it full to the task that waited, not to a create on another replica queued behind it', async () => {
    const config = { providers: { kling3api: { max_in_flight: 1 } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    const holder = (await a.create({ ...base, ...to('kling3api'), prompt: 'holder' })).body;
    await replicas.clock.advance(1);
    expect((await a.create({ ...base, ...to('kling3api'), prompt: 'waited' })).body.status).toBe('queued');
    // replica-a's passes find kling3api full until it polls the holder done.
    while ((await a.gateway.store.getTask(holder.id))?.phase === 'tracking') {
      await replicas.clock.advance(200);
      await a.gateway.runOnce();
    }

    expect((await b.create({ ...base, ...to('kling3api'), prompt: 'behind' })).body.status).toBe('queued');
    await Promise.all([a.gateway.dispatcher.idle(), b.gateway.dispatcher.idle()]);
    await a.gateway.runOnce();
    expect(promptsAt('kling3api')).toEqual(['holder', 'waited']);
  });
});
