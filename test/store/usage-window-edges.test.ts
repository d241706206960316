/**
 * The edges of a usage window on both engines: `from` inclusive, `to` exclusive, so a task made
 * at midnight is counted in the month (or day) it opens and not in the one before; and the
 * tenant filter holds for the sums, the charges at risk and the medians alike; a task whose
 * charge is at risk at two providers is one task at risk, not two.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { UsageStore, type NewUsageRow } from '../../src/store/usage-store.js';
import { storeBackends, storeForTests } from '../support/postgres.js';
import { taskRow, usageRow as usageRowAt } from '../support/task-rows.js';

const DEC_1 = Date.UTC(2026, 11, 1);
const NOV_1 = Date.UTC(2026, 10, 1);

const BACKENDS = await storeBackends();

function usageRow(taskId: string, tenant: string, createdAt: number): NewUsageRow {
  return usageRowAt(taskId, createdAt, { tenant });
}

describe.each(BACKENDS)('usage window edges on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let usage: UsageStore;

    storeForTests(backend, (opened) => {
      store = opened;
      usage = new UsageStore(store);
    });

    beforeAll(async () => {
      const tasks = new TaskStore(store);
      const lines: [string, string, number][] = [
        ['t_nov_first', 'acme', NOV_1],
        ['t_nov_last', 'acme', DEC_1 - 1],
        ['t_dec_first', 'acme', DEC_1],
        ['t_other', 'other', NOV_1 + 1],
      ];
      for (const [id, tenant, at] of lines) {
        await tasks.createTask(taskRow(id, { tenant, created_at: at, updated_at: at, dispatch_after: at, deadline_at: at + 60_000 }));
        await usage.transaction(async (db) => {
          await usage.insertUsage(db, usageRow(id, tenant, at));
          await usage.insertAtRisk(db, [{ task_id: id, tenant, created_at: at, day: new Date(at).toISOString().slice(0, 10), model: 'kling-v3', quality: 'pro', operation: 'text-to-video', provider: 'kling3api', account: 'default', credits: 10, amount_micros: 100_000, currency: 'USD' }]);
        });
      }
    });

    const total = (rows: { tasks: number }[]) => rows.reduce((sum, row) => sum + row.tasks, 0);

    it('counts a task made at `from` and not one made at `to`', async () => {
      expect(total(await usage.sums({ tenant: 'acme', from: NOV_1, to: DEC_1 }, []))).toBe(2);
      expect(total(await usage.sums({ tenant: 'acme', from: DEC_1, to: DEC_1 + 86_400_000 }, []))).toBe(1);
      expect(total(await usage.atRiskSums({ tenant: 'acme', from: NOV_1, to: DEC_1 }, []))).toBe(2);
      expect(total(await usage.atRiskSums({ tenant: 'acme', from: DEC_1, to: DEC_1 + 86_400_000 }, []))).toBe(1);
    });

    it("never counts another tenant's tasks for a tenant, and counts every tenant's when none is named", async () => {
      expect(total(await usage.sums({ tenant: 'other', from: NOV_1, to: DEC_1 }, []))).toBe(1);
      expect(total(await usage.atRiskSums({ tenant: 'other', from: NOV_1, to: DEC_1 }, []))).toBe(1);
      expect(total(await usage.sums({ from: NOV_1, to: DEC_1 }, []))).toBe(3);
      expect(await usage.medianDurations({ tenant: 'nobody', from: NOV_1, to: DEC_1 }, [], 'succeeded')).toEqual([]);
    });

    it('counts a task at risk at two providers once among the tasks at risk, and both charges', async () => {
      const at = NOV_1 + 5;
      await new TaskStore(store).createTask(taskRow('t_twice', { tenant: 'twice', created_at: at, updated_at: at, dispatch_after: at, deadline_at: at + 60_000 }));
      const line = { task_id: 't_twice', tenant: 'twice', created_at: at, day: '2026-11-01', model: 'kling-v3', quality: 'pro', operation: 'text-to-video', account: 'default', credits: 10, amount_micros: 100_000, currency: 'USD' };
      await usage.transaction((db) => usage.insertAtRisk(db, [{ ...line, provider: 'kling3api' }, { ...line, provider: 'kling-legacy' }]));
      expect(await usage.atRiskSums({ tenant: 'twice', from: NOV_1, to: DEC_1 }, [])).toEqual([
        { keys: {}, currency: 'USD', tasks: 1, credits: 20, amount_micros: 200_000 },
      ]);
    });
  });
});
