/**
 * A kling3api create answered with a server error beside a task id, while the store refuses to
 * write that answer for longer than the submission's lease (a full disk, a long outage). The named
 * id is the only way to find the task the provider may be making and billing: it is kept in memory
 * and written as soon as the store takes it, as an accepted create's answer is, and recovery in
 * this process leaves the task alone meanwhile. Before, the id was given up on at the lease's
 * end (said only in an error log), and recovery then failed the task `interrupted` unasked.
 */
import { afterEach, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { GatewayDeploys, type TestGateway } from '../support/harness.js';
import { upstreamHoldingCreate, type UpstreamHoldingCreate } from '../support/upstream-holding-create.js';

const NAMED = 'n75named0003';
const VIDEO = 'https://cdn.example.com/named-store-outage.mp4';
const request = { model: 'kling-v3', prompt: 'a server error naming a task, then a long store outage', duration: 5, routing: { providers: ['kling3api'] } };
const namedServerError = { code: 'INTERNAL_ERROR', message: 'Server error, please try again later', data: { task_id: NAMED } };
const shown = { code: 200, message: 'success', data: { task_id: NAMED, status: 'SUCCESS', response: [VIDEO], consumed_credits: 400 } };

const open: TestGateway[] = [];
let upstream: UpstreamHoldingCreate | undefined;
let deploys: GatewayDeploys | undefined;
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  await upstream?.close();
  upstream = undefined;
  await deploys?.close();
  deploys = undefined;
});

it('keeps a named task id the store refused past the submission lease, writes it once the store takes it, and adopts the task, never sent again', async () => {
  upstream = await upstreamHoldingCreate({ create: namedServerError, status: shown });
  upstream.answerCreate();
  deploys = await GatewayDeploys.start();
  const logs = capturedLogs();
  const gw = await deploys.deploy({}, { endpointOverrides: { kling3api: { baseUrl: upstream.base } }, logTo: logs.sink });
  open.push(gw);
  const store = gw.gateway.store;
  const updateSendingAttempt = store.updateSendingAttempt.bind(store);
  let refusing = true;
  let refused = 0;
  store.updateSendingAttempt = async (...args: Parameters<typeof store.updateSendingAttempt>) => {
    if (refusing && args[2].named_task_id === NAMED) {
      refused += 1;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    return updateSendingAttempt(...args);
  };
  const pending = gw.create(request);
  for (let i = 0; i < 1_000 && refused === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(refused).toBeGreaterThan(0);
  // Past the submission's lease (the provider's 2 s time limit + 10 s).
  for (let step = 0; step < 15; step++) {
    await gw.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const created = await pending;
  expect(created.status).toBe(202);
  expect(created.body.status).toBe('queued');
  // The operator is told which upstream task is waiting to be written.
  expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"named_task_id":"${NAMED}"`));

  // Worker passes while the store still refuses do not settle the task as lost.
  for (let step = 0; step < 20; step++) await gw.advance(1_000);
  expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'queued', error: null });

  refusing = false;
  const done = await gw.finish(created.body.id);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
  expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.statusCalls[0]).toContain(`task_id=${NAMED}`);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);
