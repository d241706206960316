/**
 * A replica that stops gracefully while its kling3api create is answered with a server error
 * beside a task id keeps that id on the attempt: another replica sharing the database asks the
 * provider's status about it once the task's lease runs out, and adopts the task when shown.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { kling3apiNamedServerError, kling3apiShownDone, upstreamHoldingCreate } from '../support/upstream-holding-create.js';

const available = await postgresAvailable();

const NAMED = 'n75named0002';
const VIDEO = 'https://cdn.example.com/named-replica.mp4';

describe.skipIf(!available)('a create answered with a server error naming a task while its replica stops', () => {
  const replicas = usePostgresReplicas();

  it('is adopted by another replica once the provider\'s status shows the task, never sent again', async () => {
    const upstream = await upstreamHoldingCreate({
      create: kling3apiNamedServerError(NAMED),
      status: kling3apiShownDone(NAMED, VIDEO),
    });
    try {
      const overrides = { kling3api: { baseUrl: upstream.base } };
      const a = await replicas.replica('replica-a', {}, {}, overrides);
      const b = await replicas.replica('replica-b', {}, {}, overrides);
      const answer = a.create({ model: 'kling-v3', prompt: 'answered with a server error as A stops', duration: 5, routing: { providers: ['kling3api'] } });
      await upstream.createReached;
      const stopped = a.gateway.close();
      upstream.answerCreate();
      const created = await answer;
      await stopped;
      expect(created.status).toBe(202);
      // A asked nothing in its drain.
      expect(upstream.statusCalls).toEqual([]);

      const done = await b.finish(created.body.id);
      expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
      expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
      expect(upstream.statusCalls[0]).toContain(`task_id=${NAMED}`);
      expect(upstream.creates).toHaveLength(1);
    } finally {
      await upstream.close();
    }
  }, 30_000);
});
