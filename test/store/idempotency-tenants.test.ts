/**
 * Idempotency keys are per tenant (SPEC §4) on both engines: when two tenants use the same key,
 * a repeat by either one names its own task and its own request, never the other tenant's.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { storeBackends, storeForTests } from '../support/postgres.js';
import { MINUTE, T0, taskRow } from '../support/task-rows.js';


const BACKENDS = await storeBackends();

describe.each(BACKENDS)('idempotency keys of two tenants on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let tasks: TaskStore;

    storeForTests(backend, (opened) => {
      store = opened;
      tasks = new TaskStore(store);
    });

    it("a repeat of a key another tenant also used names the repeating tenant's own task", async () => {
      const key = (requestHash: string) => ({ key: 'same-key', requestHash, expiresAt: T0 + 24 * 60 * MINUTE });
      expect((await tasks.createTask(taskRow('t_acme', { tenant: 'acme' }), key('sha256:acme'))).created).toBe(true);
      expect((await tasks.createTask(taskRow('t_other', { tenant: 'other' }), key('sha256:other'))).created).toBe(true);
      for (const [tenant, id, hash] of [
        ['other', 't_other', 'sha256:other'],
        ['acme', 't_acme', 'sha256:acme'],
      ] as const) {
        const again = await tasks.createTask(taskRow(`t_again_${tenant}`, { tenant, created_at: T0 + MINUTE }), key(hash));
        expect(again).toEqual({ created: false, existing: { taskId: id, requestHash: hash } });
      }
    });
  });
});
