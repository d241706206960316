/**
 * A kling3api create answered with a server error beside a task id: the named id is the only
 * way to find a task the provider may be making and billing. A store error when that answer is
 * written down (a dropped PostgreSQL connection, SQLITE_BUSY) must not lose it: the write is
 * tried again, as an accepted create's is, and the task is adopted once the status shows it.
 */
import { expect, it } from 'vitest';
import { namedCreateCase } from '../support/upstream-holding-create.js';

const NAMED = 'n75named0002';
const named = namedCreateCase(NAMED, 'https://cdn.example.com/named-store-error.mp4', 'a server error naming a task, then a store error');
const { request, open } = named;

it('a store error while writing a server-error answer that named a task does not lose the task: it is adopted, never sent again', async () => {
  const upstream = await named.upstream();
  upstream.answerCreate();
  const deploys = await named.deploys();
  const gw = await deploys.deploy({}, { endpointOverrides: { kling3api: { baseUrl: upstream.base } } });
  open.push(gw);
  const store = gw.gateway.store;
  const updateSendingAttempt = store.updateSendingAttempt.bind(store);
  let failOnce = true;
  store.updateSendingAttempt = async (...args: Parameters<typeof store.updateSendingAttempt>) => {
    if (failOnce && args[2].named_task_id === NAMED) {
      failOnce = false;
      throw Object.assign(new Error('connection terminated unexpectedly'), { code: '57P01' });
    }
    return updateSendingAttempt(...args);
  };
  const pending = gw.create(request);
  // The write is tried again after a pause (on the gateway's clock) once it failed.
  for (let i = 0; i < 1_000 && failOnce; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(failOnce).toBe(false);
  await gw.advance(100);
  // The caller is answered with its task, held while its named task is asked about.
  const created = await pending;
  expect(created.status).toBe(202);
  const done = await gw.finish(created.body.id, 5_000);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
  expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.statusCalls[0]).toContain(`task_id=${NAMED}`);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);
