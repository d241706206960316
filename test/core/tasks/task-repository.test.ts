/**
 * The store boundary of the engine: task, attempt and delivery records go in and come back as
 * they were written (typed objects, not JSON strings), a change writes only what it names, and
 * the rows underneath keep the shape the store has always had.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TaskRepository } from '../../../src/core/tasks/task-repository.js';
import { openStore, type Store } from '../../../src/store/database.js';
import { TaskStore } from '../../../src/store/task-store.js';
import { taskRecord } from '../../support/task-records.js';

const T0 = Date.UTC(2026, 0, 1);

describe('TaskRepository', () => {
  let store: Store;
  let rows: TaskStore;
  let tasks: TaskRepository;

  beforeAll(async () => {
    store = await openStore('sqlite::memory:');
    rows = new TaskStore(store);
    tasks = new TaskRepository(rows);
  });

  afterAll(async () => {
    await store.close();
  });

  beforeEach(async () => {
    for (const table of ['deliveries', 'attempts', 'tasks'] as const) await store.db.deleteFrom(table).execute();
  });

  it('reads a task back exactly as it was created', async () => {
    const record = taskRecord('t_1');
    expect(await tasks.create(record)).toEqual({ created: true, task: record });
    expect(await tasks.get('t_1')).toEqual(record);
  });

  it('stores the plan’s providers in the fair-queue column and the JSON columns as before', async () => {
    await tasks.create(taskRecord('t_1'));
    const row = await rows.getTask('t_1');
    expect(row).toMatchObject({
      candidates: ',freepik,kling3api,',
      plan_json: JSON.stringify(taskRecord('t_1').plan),
      warnings_json: '["audio is off"]',
      metadata_json: '{"order":"42"}',
      tracking_json: null,
      error_json: null,
      outputs_json: '[]',
      expects_webhook: 0,
    });
  });

  it('writes only what a change names, under its condition, and bumps the version', async () => {
    await tasks.create(taskRecord('t_1'));
    const tracked = await tasks.update(
      't_1',
      {
        phase: 'tracking',
        status: 'processing',
        provider: 'freepik',
        providerTaskId: 'up-1',
        tracking: { family: 'kling-v3' },
        expectsWebhook: true,
        leaseOwner: null,
        leaseUntil: null,
      },
      { phases: ['dispatch'] },
    );
    expect(tracked).toEqual({
      ...taskRecord('t_1'),
      phase: 'tracking',
      status: 'processing',
      provider: 'freepik',
      providerTaskId: 'up-1',
      tracking: { family: 'kling-v3' },
      expectsWebhook: true,
      version: 1,
      statusVersion: 1,
    });
    expect(await tasks.update('t_1', { status: 'failed' }, { phases: ['dispatch'] })).toBeUndefined();
    expect((await tasks.get('t_1'))?.version).toBe(1);
    const failed = await tasks.update(
      't_1',
      { status: 'failed', phase: 'done', error: { code: 'timeout', message: 'too slow', provider_code: null }, completedAt: T0 + 5 },
      { phases: ['tracking'] },
    );
    expect(failed).toMatchObject({ error: { code: 'timeout', message: 'too slow', provider_code: null }, completedAt: T0 + 5 });
  });

  it('queues a delivery built from the changed task in the same write', async () => {
    await tasks.create(taskRecord('t_1'));
    await tasks.update('t_1', { status: 'processing' }, {}, { delivery: (changed) => ({
      id: 'msg_1',
      taskId: changed.id,
      tenant: changed.tenant,
      url: changed.webhookUrl ?? '',
      eventType: 'video.processing',
      payload: JSON.stringify({ status: changed.status }),
      createdAt: T0 + 1,
    }) });
    const [delivery] = await tasks.claimDueDeliveries(T0 + 1, 'replica-a', 1_000, 10);
    expect(delivery).toEqual({
      id: 'msg_1',
      taskId: 't_1',
      tenant: 'acme',
      url: 'https://hooks.example.com/kling',
      eventType: 'video.processing',
      payload: '{"status":"processing"}',
      attempts: 0,
    });
    await tasks.recordDelivery('msg_1', 'replica-a', { delivered: false, attempts: 1, lastStatus: 500, error: 'answered 500', giveUp: false, retryAt: T0 + 5_000 });
    expect((await rows.listDeliveries('t_1'))[0]).toMatchObject({
      status: 'pending',
      attempts: 1,
      last_status: 500,
      last_error: 'answered 500',
      next_attempt_at: T0 + 5_000,
      lease_owner: null,
      lease_until: null,
    });
  });

  it("a try whose lease ran out and passed to another replica does not overwrite that replica's record", async () => {
    await tasks.create(taskRecord('t_1'));
    await tasks.update('t_1', { status: 'processing' }, {}, { delivery: (changed) => ({
      id: 'msg_1',
      taskId: changed.id,
      tenant: changed.tenant,
      url: 'https://hooks.example.com/kling',
      eventType: 'video.processing',
      payload: '{}',
      createdAt: T0 + 1,
    }) });
    expect(await tasks.claimDueDeliveries(T0 + 1, 'replica-a', 1_000, 10)).toHaveLength(1);
    // replica-a stalls past its lease; replica-b takes the delivery over and gets it delivered.
    expect(await tasks.claimDueDeliveries(T0 + 2_000, 'replica-b', 1_000, 10)).toHaveLength(1);
    expect(await tasks.recordDelivery('msg_1', 'replica-b', { delivered: true, attempts: 1, lastStatus: 200, at: T0 + 2_100 })).toBe(true);
    // replica-a's late failure would have put it back to pending, to be sent a third time.
    expect(await tasks.recordDelivery('msg_1', 'replica-a', { delivered: false, attempts: 1, lastStatus: null, error: 'timeout', giveUp: false, retryAt: T0 + 9_000 })).toBe(false);
    expect((await rows.listDeliveries('t_1'))[0]).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200, last_error: null });
    expect(await tasks.claimDueDeliveries(T0 + 10_000, 'replica-a', 1_000, 10)).toEqual([]);
  });

  it('numbers attempts and reads what an accepted one learned as objects', async () => {
    await tasks.create(taskRecord('t_1'));
    expect(await tasks.addAttempt('t_1', { provider: 'freepik', account: 'main', outcome: 'sending', at: T0, timeoutMs: 30_000 })).toBe(1);
    await tasks.updateAttempt('t_1', 1, { outcome: 'accepted', latencyMs: 120, providerTaskId: 'up-1', tracking: { family: 'v3' } });
    expect(await tasks.attempts('t_1')).toEqual([
      {
        seq: 1,
        provider: 'freepik',
        account: 'main',
        outcome: 'accepted',
        errorCode: null,
        providerCode: null,
        httpStatus: null,
        latencyMs: 120,
        message: null,
        at: T0,
        providerTaskId: 'up-1',
        tracking: { family: 'v3' },
        recoveredBy: null,
        timeoutMs: 30_000,
        namedTaskId: null,
      },
    ]);
    expect((await tasks.attemptsOf(['t_1', 't_none'])).get('t_1')?.map((a) => a.seq)).toEqual([1]);
  });

  it('keeps the task a create answer named beside a server error on its attempt, apart from the accepted one, until cleared', async () => {
    await tasks.create(taskRecord('t_1'));
    await tasks.addAttempt('t_1', { provider: 'kling3api', account: 'main', outcome: 'sending', at: T0 });
    expect(await tasks.updateSendingAttempt('t_1', 1, { outcome: 'ambiguous', providerCode: 'INTERNAL_ERROR', namedTaskId: 'n75named' })).toBe(true);
    expect(await tasks.attempts('t_1')).toEqual([expect.objectContaining({ outcome: 'ambiguous', providerTaskId: null, namedTaskId: 'n75named' })]);
    await tasks.updateAttempt('t_1', 1, { namedTaskId: null });
    expect((await tasks.attempts('t_1'))[0]?.namedTaskId).toBeNull();
  });

  it('counts the load per provider and the queue', async () => {
    await tasks.create(taskRecord('t_queued'));
    await tasks.create(taskRecord('t_tracked', { phase: 'tracking', status: 'processing', provider: 'freepik', account: 'main' }));
    await tasks.create(
      taskRecord('t_sending', { phase: 'submitting', provider: 'freepik', account: 'spare', leaseOwner: 'a', leaseUntil: T0 + 1 }),
    );
    const load = await tasks.load();
    expect([load.inFlight('freepik'), load.inFlight('kling3api'), load.queued]).toEqual([2, 0, 1]);
    expect([load.inFlight('freepik', 'main'), load.inFlight('freepik', 'spare'), load.inFlight('freepik', 'default')]).toEqual([1, 1, 0]);
    expect(Object.fromEntries(await tasks.inFlightByAccount('freepik'))).toEqual({ main: 1, spare: 1 });
  });

  it('ends every lease left over from a previous run', async () => {
    await tasks.create(taskRecord('t_1', { phase: 'tracking', status: 'processing', leaseOwner: 'gone', leaseUntil: T0 + 60_000 }));
    await tasks.expireLeftoverLeases();
    expect((await tasks.get('t_1'))?.leaseUntil).toBe(0);
    expect(tasks.sharedByReplicas).toBe(false);
  });
});
