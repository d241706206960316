/**
 * The queue is fair between tenants across replicas on PostgreSQL (README, Concurrency cap): the
 * tenants' turns at a provider are kept in the database, so a replica's pass knows which tenant
 * another replica served last, and one tenant's burst queued on one replica does not hold up
 * another tenant's task created on another.
 */
import { describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY } from '../support/harness.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const base = { model: 'kling-v3', duration: 5 };
const to = (...providers: string[]) => ({ routing: { providers } });

describe.skipIf(!available)('the queue between tenants on PostgreSQL', () => {
  const replicas = usePostgresReplicas();
  const { replica } = replicas;
  const promptsAt = (provider: string) => replicas.simulators.get(provider)!.tasks.map((task) => (task.body as { prompt: string }).prompt);

  it('gives the slot another replica’s tenant last held to the tenant that waited, then takes turns', async () => {
    const config = { providers: { kling3api: { max_in_flight: 1 } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    expect((await a.create({ ...base, ...to('kling3api'), prompt: 'a holder' })).body.status).toBe('processing');
    const burst = Array.from({ length: 4 }, (_, i) => `a ${i + 1}`);
    for (const prompt of burst) {
      await replicas.clock.advance(1);
      expect((await a.create({ ...base, ...to('kling3api'), prompt })).body.status).toBe('queued');
    }
    for (const prompt of ['b 1', 'b 2']) {
      await replicas.clock.advance(1);
      expect((await b.request('POST', '/v1/videos', { ...base, ...to('kling3api'), prompt }, {}, OTHER_TENANT_KEY)).body.status).toBe('queued');
    }
    // Either replica may serve the queue as slots free.
    for (let step = 0; step < 200 && promptsAt('kling3api').length < 7; step++) {
      await replicas.clock.advance(500);
      await (step % 2 === 0 ? a : b).gateway.runOnce();
    }
    expect(promptsAt('kling3api')).toEqual(['a holder', 'b 1', 'a 1', 'b 2', 'a 2', 'a 3', 'a 4']);
  });
});
