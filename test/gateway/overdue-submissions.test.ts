/**
 * Submissions past their deadline whose holder is gone are not the deadline pass's to fail:
 * recovery settles them (a create in doubt is never just dropped). The deadline pass must still
 * finish when a hundred or more of them are waiting for recovery, or the worker loop that runs
 * both (deadlines, then dispatch and recovery) never gets past it.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'left mid-submission', duration: 5, routing: { providers: ['kling3api'] } };

it('finishes its deadline pass with a hundred abandoned submissions past their deadline, which recovery then settles', async () => {
  gw = await startTestGateway({ config: { tasks: { deadline_ms: 60_000 } } });
  const store = gw.gateway.store;
  const first = await gw.create(request);
  const template = (await store.getTask(first.body.id))!;
  const now = gw.clock.now();
  // A replica died holding these, each between two attempts (nothing in flight upstream).
  for (let i = 0; i < 120; i++) {
    await store.createTask({
      ...template,
      id: `vid_left_${String(i).padStart(4, '0')}`,
      callback_token: `tok_left_${i}`,
      phase: 'submitting',
      status: 'queued',
      provider: null,
      provider_task_id: null,
      lease_owner: 'dead-replica',
      lease_until: now + 1_000,
      deadline_at: now + 30_000,
    });
  }
  // Each read of overdue tasks is counted: a pass that reads the same page for ever is a hang.
  let reads = 0;
  const listOverdue = store.listOverdue.bind(store);
  store.listOverdue = async (at, limit, lastLookGraceMs) => {
    if (++reads > 50) throw new Error('the deadline pass keeps reading the same overdue tasks');
    return listOverdue(at, limit, lastLookGraceMs);
  };

  await gw.advance(31_000);

  expect(reads).toBeLessThanOrEqual(50);
  const failed = (await gw.request('GET', '/v1/videos?status=failed&limit=100')).body.data;
  expect(failed).toHaveLength(100);
  expect(failed.every((task: { error: { code: string } }) => task.error.code === 'timeout')).toBe(true);
});
