/**
 * With shared PostgreSQL: a replica whose connection drops as it writes a kling3api create's
 * server-error answer naming a task tries the write again, and the task is adopted once the
 * provider's status shows it; another replica neither takes it over meanwhile nor sends it again.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { kling3apiNamedServerError, kling3apiShownDone, upstreamHoldingCreate } from '../support/upstream-holding-create.js';

const available = await postgresAvailable();

const NAMED = 'n75named0003';
const VIDEO = 'https://cdn.example.com/named-store-error-replica.mp4';

describe.skipIf(!available)('a server-error answer naming a task whose write meets a dropped connection', () => {
  const replicas = usePostgresReplicas();

  it('is written when tried again, and the task adopted, never sent again', async () => {
    const upstream = await upstreamHoldingCreate({
      create: kling3apiNamedServerError(NAMED),
      status: kling3apiShownDone(NAMED, VIDEO),
    });
    upstream.answerCreate();
    try {
      const overrides = { kling3api: { baseUrl: upstream.base } };
      const a = await replicas.replica('replica-a', {}, {}, overrides);
      const b = await replicas.replica('replica-b', {}, {}, overrides);
      const store = a.gateway.store;
      const updateSendingAttempt = store.updateSendingAttempt.bind(store);
      let failOnce = true;
      store.updateSendingAttempt = async (...args: Parameters<typeof store.updateSendingAttempt>) => {
        if (failOnce && args[2].named_task_id === NAMED) {
          failOnce = false;
          throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
        }
        return updateSendingAttempt(...args);
      };
      const created = await replicas.withClockRunning(
        a.create({ model: 'kling-v3', prompt: 'a dropped connection as the answer is written', duration: 5, routing: { providers: ['kling3api'] } }),
      );
      expect(failOnce).toBe(false);
      expect(created.status).toBe(202);
      const done = await b.finish(created.body.id);
      expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
      expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
      expect(upstream.creates).toHaveLength(1);
    } finally {
      await upstream.close();
    }
  }, 30_000);
});
