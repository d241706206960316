/**
 * A kling3api create answered with a server error beside a task id, while the store refuses to
 * write that answer for longer than the submission's lease (a full disk, a long outage). The named
 * id is the only way to find the task the provider may be making and billing: it is kept in memory
 * and written as soon as the store takes it, as an accepted create's answer is, and recovery in
 * this process leaves the task alone meanwhile. Before, the id was given up on at the lease's
 * end (said only in an error log), and recovery then failed the task `interrupted` unasked.
 */
import type { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { namedCreateCase, type UpstreamHoldingCreate } from '../support/upstream-holding-create.js';

const NAMED = 'n75named0003';
const named = namedCreateCase(NAMED, 'https://cdn.example.com/named-store-outage.mp4', 'a server error naming a task, then a long store outage');
const { request, open } = named;
/** The upstream of the test running (`twoProcessesOnOneFile` sends kling3api's creates to it). */
let upstream: UpstreamHoldingCreate | undefined;

/** The store of `gateway` refuses every write of the answer naming `NAMED` while `refusing` (`refused`: how many it refused). */
function refuseNamedWrites(gateway: TestGateway) {
  const refusal = { refusing: true, refused: 0 };
  const store = gateway.gateway.store;
  const updateSendingAttempt = store.updateSendingAttempt.bind(store);
  store.updateSendingAttempt = async (...args: Parameters<typeof store.updateSendingAttempt>) => {
    if (refusal.refusing && args[2].named_task_id === NAMED) {
      refusal.refused += 1;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    return updateSendingAttempt(...args);
  };
  return refusal;
}

/** Creates the task, its answer's write refused until past the submission's lease (the provider's 2 s time limit + 10 s): the create's answer. */
async function createdPastTheLease(gateway: TestGateway, refusal: { refused: number }) {
  const pending = gateway.create(request);
  for (let i = 0; i < 1_000 && refusal.refused === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(refusal.refused).toBeGreaterThan(0);
  for (let step = 0; step < 15; step++) {
    await gateway.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return pending;
}

/**
 * Two processes on one SQLite file (as `WORKERS` opens it), sharing simulators and clock, both
 * sending kling3api's creates to `upstream`; `logTo` takes the sender's log.
 */
async function twoProcessesOnOneFile(logTo?: Writable) {
  const url = tempDatabaseUrl();
  const store = await openStore(url, { sharedByProcesses: true });
  const endpointOverrides = { kling3api: { baseUrl: upstream!.base } };
  const sender = await startTestGateway({ config: { database: { url } }, store, owner: 'sender', endpointOverrides, ...(logTo ? { logTo } : {}) });
  const other = await startTestGateway({
    config: { database: { url } },
    store,
    endpoints: sender.endpoints,
    simulators: sender.simulators,
    clock: sender.clock,
    owner: 'other',
    endpointOverrides,
  });
  const close = async () => {
    await other.gateway.close();
    await sender.close();
    await store.close();
  };
  return { sender, other, close };
}

/** One step: a pass of the other process, then a second of the shared clock for the sender. */
async function stepBoth(sender: TestGateway, other: TestGateway) {
  await other.gateway.runOnce();
  await sender.clock.advance(1_000);
  await new Promise((resolve) => setTimeout(resolve, 10));
}

it('keeps a named task id the store refused past the submission lease, writes it once the store takes it, and adopts the task, never sent again', async () => {
  upstream = await named.upstream();
  upstream.answerCreate();
  const deploys = await named.deploys();
  const logs = capturedLogs();
  const gw = await deploys.deploy({}, { endpointOverrides: { kling3api: { baseUrl: upstream.base } }, logTo: logs.sink });
  open.push(gw);
  const refusal = refuseNamedWrites(gw);
  const created = await createdPastTheLease(gw, refusal);
  expect(created.status).toBe(202);
  expect(created.body.status).toBe('queued');
  // The operator is told which upstream task is waiting to be written.
  expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"named_task_id":"${NAMED}"`));

  // Worker passes while the store still refuses do not settle the task as lost.
  for (let step = 0; step < 20; step++) await gw.advance(1_000);
  expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'queued', error: null });

  refusal.refusing = false;
  const done = await gw.finish(created.body.id);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
  expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.statusCalls[0]).toContain(`task_id=${NAMED}`);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);

it("is adopted when another process sharing the database marked the create lost meanwhile and the store takes writes again within its 10 s, not failed interrupted", async () => {
  upstream = await named.upstream();
  upstream.answerCreate();
  const { sender, other, close } = await twoProcessesOnOneFile();
  try {
    const refusal = refuseNamedWrites(sender);
    const created = await createdPastTheLease(sender, refusal);
    expect(created.body.status).toBe('queued');
    // The other process sees the lease run out and marks the create lost (`interrupted`), giving
    // its sender 10 s to write the answer it holds; the store takes writes again within them.
    for (let step = 0; step < 60; step++) {
      if ((await other.get(created.body.id)).body.attempts[0].outcome === 'interrupted') break;
      await stepBoth(sender, other);
    }
    expect((await other.get(created.body.id)).body).toMatchObject({ status: 'queued', attempts: [expect.objectContaining({ outcome: 'interrupted' })] });
    refusal.refusing = false;
    // The other process's passes run first at each step, before the sender's next try of its write.
    for (let step = 0; step < 60; step++) {
      const task = (await other.get(created.body.id)).body;
      if (['succeeded', 'failed'].includes(task.status)) break;
      await stepBoth(sender, other);
    }
    const done = (await other.get(created.body.id)).body;
    expect(done).toMatchObject({ status: 'succeeded', provider_task_id: NAMED, error: null });
    expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer' })]);
    expect(upstream.creates).toHaveLength(1);
  } finally {
    await close();
  }
}, 30_000);

it('reports a named task id written only after another process sharing the database failed its task: an error naming it, untracked_upstream_tasks_total{found_by="late_answer"}', async () => {
  // The store refuses the write for longer than the 10 s the other process gives the sender: the
  // task is failed `interrupted` without the named id, which the sender's write then lands beside.
  // The provider may be making and billing that task: said as an accepted create's late answer is.
  upstream = await named.upstream();
  upstream.answerCreate();
  const logs = capturedLogs();
  const { sender, other, close } = await twoProcessesOnOneFile(logs.sink);
  try {
    const refusal = refuseNamedWrites(sender);
    const created = await createdPastTheLease(sender, refusal);
    for (let step = 0; step < 60; step++) {
      if ((await other.get(created.body.id)).body.status === 'failed') break;
      await stepBoth(sender, other);
    }
    expect((await other.get(created.body.id)).body).toMatchObject({ status: 'failed', provider_task_id: null });
    const untracked = () => logs.text().split('\n').filter((line) => line.includes(NAMED) && line.includes('tracked by nobody'));
    expect(untracked()).toEqual([]);

    refusal.refusing = false;
    for (let step = 0; step < 30 && untracked().length === 0; step++) {
      await sender.clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const [line] = untracked().map((each) => JSON.parse(each));
    expect(line).toMatchObject({ level: 'error', task_id: created.body.id, provider: 'kling3api', named_task_id: NAMED });
    expect(line.msg).toMatch(/named a task in its answer/);
    expect(line.msg).not.toMatch(/accepted/);
    // Not also said to be recorded as if it were tracked now.
    expect(logs.text()).not.toContain('recorded a create answer that named a task the provider may hold while the database refused writes');
    const metrics = await (await fetch(`${sender.url}/metrics`)).text();
    expect(metrics).toMatch(/kling_gateway_untracked_upstream_tasks_total\{provider="kling3api",found_by="late_answer"\} 1/);
    // Its task stays failed, the named id on its attempt for an operator; nothing was sent again.
    const after = (await other.get(created.body.id)).body;
    expect(after).toMatchObject({ status: 'failed', provider_task_id: null });
    expect(upstream.creates).toHaveLength(1);
  } finally {
    await close();
  }
}, 30_000);

it('a stop while the database does not answer the write of a named task id says a task was named, not that the provider accepted the create', async () => {
  upstream = await named.upstream();
  upstream.answerCreate();
  const deploys = await named.deploys();
  const logs = capturedLogs();
  const gw = await deploys.deploy({ server: { drain_timeout_ms: 200 } }, { endpointOverrides: { kling3api: { baseUrl: upstream.base } }, logTo: logs.sink });
  const refusal = refuseNamedWrites(gw);
  const created = await createdPastTheLease(gw, refusal);
  expect(created.status).toBe(202);
  // The database stops answering: the background write of the named id waits on it for ever.
  const store = gw.gateway.store;
  let hung = false;
  store.updateSendingAttempt = async () => {
    hung = true;
    return new Promise<never>(() => undefined);
  };
  for (let step = 0; step < 20 && !hung; step++) {
    await gw.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(hung).toBe(true);
  await gw.gateway.close();
  const line = logs
    .text()
    .split('\n')
    .filter((each) => each.includes('"msg":"stopping before the database recorded'))
    .map((each) => JSON.parse(each))
    .find((each) => each.task_id === created.body.id);
  expect(line).toMatchObject({ level: 'error', provider: 'kling3api', named_task_id: NAMED, answer: 'named_task' });
  expect(line.msg).toMatch(/named a task/);
  expect(line.msg).not.toMatch(/accepted/);
  await Promise.all([...gw.simulators.values()].map((simulator) => simulator.close()));
}, 30_000);
