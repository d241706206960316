/**
 * Budgets are per tenant and period on both engines: one tenant's reservation, spend or release
 * moves its own counter only, never another tenant's of the same period; its alerts are marked,
 * and its budget read, on its own row.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { UsageStore } from '../../src/store/usage-store.js';
import { storeBackends, storeForTests } from '../support/postgres.js';

const T0 = Date.UTC(2026, 10, 22, 12);

const BACKENDS = await storeBackends();

describe.each(BACKENDS)('budgets of two tenants on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let usage: UsageStore;

    storeForTests(backend, (opened) => {
      store = opened;
      usage = new UsageStore(store);
    });

    it("moves only the asking tenant's counter of the period", async () => {
      const reserve = (tenant: string, amount: number) =>
        usage.transaction((db) => usage.reserve(db, { tenant, period: '2026-11', amount, limit: 1_000_000, now: T0 }));
      expect(await reserve('acme', 300_000)).toMatchObject({ tenant: 'acme', reserved_micros: 300_000 });
      expect(await reserve('other', 200_000)).toMatchObject({ tenant: 'other', reserved_micros: 200_000 });
      expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ reserved_micros: 300_000, spent_micros: 0 });

      const settled = await usage.transaction((db) =>
        usage.changeBudget(db, { tenant: 'other', period: '2026-11', reservedDelta: -200_000, spentDelta: 150_000, now: T0 }),
      );
      expect(settled).toMatchObject({ tenant: 'other', reserved_micros: 0, spent_micros: 150_000 });
      expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ reserved_micros: 300_000, spent_micros: 0 });
      expect(await usage.getBudget('other', '2026-11')).toMatchObject({ reserved_micros: 0, spent_micros: 150_000 });
    });

    it("marks a budget alert and reads a budget on the tenant's own row", async () => {
      const mark = (tenant: string) => usage.transaction((db) => usage.markBudgetAlert(db, { tenant, period: '2026-12', column: 'warned_at', at: T0 }));
      await usage.transaction((db) => usage.reserve(db, { tenant: 'first', period: '2026-12', amount: 700_000, limit: 1_000_000, now: T0 }));
      await usage.transaction((db) => usage.reserve(db, { tenant: 'second', period: '2026-12', amount: 100_000, limit: 1_000_000, now: T0 }));
      expect(await mark('first')).toBe(true);
      expect(await usage.getBudget('second', '2026-12')).toMatchObject({ tenant: 'second', reserved_micros: 100_000, warned_at: null });
      // The second tenant's own warning is still to be given, once.
      expect(await mark('second')).toBe(true);
      expect(await mark('second')).toBe(false);
      expect(await usage.getBudget('first', '2026-12')).toMatchObject({ tenant: 'first', reserved_micros: 700_000, warned_at: T0 });
    });
  });
});
