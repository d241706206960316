/**
 * The edges of the store's times, on both engines: a lease that ends at `lease_until` still holds
 * at that very millisecond (every query that looks for work no live lease holds agrees), so two
 * workers never hold one task, or one delivery, at once; and a retention or window boundary
 * falls on the same side in SQLite and PostgreSQL.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { clearTaskStore, storeBackends, storeForTests } from '../support/postgres.js';
import { deliveryRow, MINUTE, T0, taskRow, trackedRow } from '../support/task-rows.js';


const BACKENDS = await storeBackends();

describe.each(BACKENDS)('store time edges on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let tasks: TaskStore;

    storeForTests(backend, (opened) => {
      store = opened;
      tasks = new TaskStore(store);
    });

    beforeEach(() => clearTaskStore(store, tasks));

    it('a poll or copy leased until now is not leased to a second worker at that millisecond, and is one millisecond later', async () => {
      await tasks.createTask(trackedRow('t_poll', T0 - 1, { lease_owner: 'replica-b', lease_until: T0 }));
      await tasks.createTask(taskRow('t_copy', { phase: 'storing', provider: 'freepik', next_poll_at: T0 - 1, lease_owner: 'replica-b', lease_until: T0 }));
      expect(await tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 10)).toEqual([]);
      expect(await tasks.claimDueForStorage(T0, 'replica-a', MINUTE, 10)).toEqual([]);
      expect((await tasks.claimDueForTracking(T0 + 1, 'replica-a', MINUTE, 10)).map((row) => row.id)).toEqual(['t_poll']);
      expect((await tasks.claimDueForStorage(T0 + 1, 'replica-a', MINUTE, 10)).map((row) => row.id)).toEqual(['t_copy']);
    });

    it('a delivery leased until now is neither leased again nor settled under its sender at that millisecond', async () => {
      await tasks.createTask(taskRow('t_1'));
      await tasks.insertDelivery(deliveryRow('d_1', 't_1', { lease_owner: 'replica-b', lease_until: T0 }));
      expect(await tasks.claimDueDeliveries(T0, 'replica-a', 15_000, 10)).toEqual([]);
      expect(await tasks.settlePendingDeliveries('t_1', 'https://hooks.example.com/kling', T0, { status: 'failed' })).toEqual([]);
      expect((await tasks.listDeliveries('t_1'))[0]).toMatchObject({ status: 'pending', lease_owner: 'replica-b' });
      expect((await tasks.claimDueDeliveries(T0 + 1, 'replica-a', 15_000, 10)).map((row) => row.id)).toEqual(['d_1']);
    });

    it('a change asked to wait for no live lease is not written while a lease ends at that millisecond', async () => {
      await tasks.createTask(trackedRow('t_1', T0, { lease_owner: 'replica-b', lease_until: T0 }));
      expect(await tasks.updateTask('t_1', { status: 'canceled' }, { leaseFreeAt: T0 })).toBeUndefined();
      expect((await tasks.getTask('t_1'))?.status).toBe('processing');
      expect(await tasks.updateTask('t_1', { status: 'canceled' }, { leaseFreeAt: T0 + 1 })).toMatchObject({ status: 'canceled' });
    });

    it('a submission whose lease ends now is not yet abandoned, nor an overdue task under such a lease', async () => {
      await tasks.createTask(taskRow('t_submit', { phase: 'submitting', provider: 'freepik', lease_owner: 'replica-b', lease_until: T0 }));
      await tasks.createTask(taskRow('t_queued', { deadline_at: T0 - 1, lease_owner: 'replica-b', lease_until: T0 }));
      expect(await tasks.listAbandonedSubmissions(T0, 10)).toEqual([]);
      expect(await tasks.listOverdue(T0, 10, 0)).toEqual([]);
      expect((await tasks.listAbandonedSubmissions(T0 + 1, 10)).map((row) => row.id)).toEqual(['t_submit']);
      expect((await tasks.listOverdue(T0 + 1, 10, 0)).map((row) => row.id)).toEqual(['t_queued']);
    });

    it('an idempotency key ending now is purged, as a create at that millisecond treats it as gone', async () => {
      await tasks.createTask(taskRow('t_1'), { key: 'k', requestHash: 'h', expiresAt: T0 + MINUTE });
      await tasks.purgeExpired(T0 + MINUTE - 1, 0);
      expect(await tasks.getIdempotencyKey('acme', 'k')).toBeDefined();
      await tasks.purgeExpired(T0 + MINUTE, 0);
      expect(await tasks.getIdempotencyKey('acme', 'k')).toBeUndefined();
    });

    it('a queued task goes at its dispatch time, not at its deadline, and at its cancel_after is canceled, not sent', async () => {
      await tasks.createTask(taskRow('t_due', { created_at: T0 - 3, dispatch_after: T0, candidates: ',freepik,' }));
      await tasks.createTask(taskRow('t_deadline', { created_at: T0 - 2, deadline_at: T0, candidates: ',freepik,' }));
      await tasks.createTask(taskRow('t_cancel', { created_at: T0 - 1, cancel_at: T0, candidates: ',freepik,' }));
      const ids = (rows: { id: string }[]) => rows.map((row) => row.id);
      expect(ids(await tasks.listDispatchable(T0, 10))).toEqual(['t_due']);
      expect(ids(await tasks.listDispatchableQueue(T0))).toEqual(['t_due']);
      expect(ids(await tasks.listCancelDue(T0, 10))).toEqual(['t_cancel']);
      expect(ids(await tasks.listCancelDue(T0 - 1, 10))).toEqual([]);
    });

    it('a task created in the same millisecond behind a queued one for the same provider waits behind it', async () => {
      await tasks.createTask(taskRow('t_a', { created_at: T0, candidates: ',freepik,' }));
      expect(await tasks.hasOlderWaitingTask(T0, 't_b', ['freepik'])).toBe(true);
      expect(await tasks.hasOlderWaitingTask(T0, 't_0', ['freepik'])).toBe(false);
    });

    it('a stored copy is due for deletion at the millisecond its retention ends, and a page goes on strictly past the last task of the one before', async () => {
      for (const id of ['t_a', 't_b', 't_c']) {
        await tasks.createTask(taskRow(id, { phase: 'done', status: 'succeeded', provider: 'freepik', storage_expires_at: T0 }));
      }
      const ids = (rows: { id: string }[]) => rows.map((row) => row.id);
      expect(ids(await tasks.listStorageExpired(T0 - 1, 10))).toEqual([]);
      expect(ids(await tasks.listStorageExpired(T0, 2))).toEqual(['t_a', 't_b']);
      expect(ids(await tasks.listStorageExpired(T0, 2, { storageExpiresAt: T0, id: 't_b' }))).toEqual(['t_c']);
    });

    it('a tracked task whose last poll is due at its very deadline is not overdue before that poll is made', async () => {
      await tasks.createTask(trackedRow('t_last_look', T0 - 1, { deadline_at: T0 - 1 }));
      await tasks.createTask(trackedRow('t_looked', T0 + MINUTE, { deadline_at: T0 - 1 }));
      expect((await tasks.listOverdue(T0, 10, 0)).map((row) => row.id)).toEqual(['t_looked']);
    });

    it('nor is one whose last poll waits for its account within the grace past its deadline, to its last millisecond', async () => {
      const grace = 30_000;
      await tasks.createTask(trackedRow('t_waits', T0 - 1 + grace, { deadline_at: T0 - 1 }));
      await tasks.createTask(trackedRow('t_past_grace', T0 + grace, { deadline_at: T0 - 1 }));
      expect((await tasks.listOverdue(T0, 10, grace)).map((row) => row.id)).toEqual(['t_past_grace']);
    });
  });
});
