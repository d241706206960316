/**
 * Usage lines and budget counters on both engines: reservations that never commit more than
 * the limit even when many connections race, alerts marked once, sums and medians grouped in
 * the database, and the migration that writes usage lines for tasks that existed before it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import type { Database } from '../../src/store/schema.js';
import { TaskStore, type NewTaskRow } from '../../src/store/task-store.js';
import { MAX_CAUGHT_UP, UsageStore, type NewUsageRow } from '../../src/store/usage-store.js';
import { POSTGRES_URL, dropSchema, newSchemaName, postgresAvailable } from '../support/postgres.js';
import { postgresSchemaMigratedTo, sqliteFileMigratedTo } from '../support/migrated-store.js';
import { taskRow as queuedTaskRow, usageRow as usageRowAt } from '../support/task-rows.js';

const pgAvailable = await postgresAvailable();
const T0 = Date.UTC(2026, 10, 22, 12);
const HOUR = 3600_000;

/** A queued task row created at this file's `T0`, with its cost estimated. */
function taskRow(id: string, overrides: Partial<NewTaskRow> = {}): NewTaskRow {
  return queuedTaskRow(id, {
    created_at: T0,
    updated_at: T0,
    deadline_at: T0 + HOUR,
    dispatch_after: T0,
    cost_json: JSON.stringify({ credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' }),
    ...overrides,
  });
}

/** A usage line of a task made at this file's `T0`. */
function usageRow(taskId: string, overrides: Partial<NewUsageRow> = {}): NewUsageRow {
  return usageRowAt(taskId, T0, overrides);
}

interface Backend {
  name: string;
  skip: boolean;
  open(): Promise<{ store: Store; again: () => Promise<Store>; cleanup: () => Promise<void> }>;
  /** A database migrated only up to `migration`, and a way to open it as the gateway does. */
  migratedTo(migration: string): Promise<{ db: Kysely<Database>; open: () => Promise<Store>; cleanup: () => Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const file = join(mkdtempSync(join(tmpdir(), 'kg-usage-')), 'gateway.db');
      return { store: await openStore(`sqlite:${file}`), again: () => openStore(`sqlite:${file}`), cleanup: async () => undefined };
    },
    async migratedTo(migration) {
      const { db, open } = await sqliteFileMigratedTo(migration);
      return { db, open, cleanup: async () => undefined };
    },
  },
  {
    name: 'postgres',
    skip: !pgAvailable,
    async open() {
      const schema = newSchemaName();
      return {
        store: await openStore(POSTGRES_URL, { schema }),
        again: () => openStore(POSTGRES_URL, { schema }),
        cleanup: () => dropSchema(schema),
      };
    },
    migratedTo: postgresSchemaMigratedTo,
  },
];

describe.each(BACKENDS)('UsageStore on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let opened: Awaited<ReturnType<Backend['open']>>;
    let usage: UsageStore;
    let tasks: TaskStore;

    beforeEach(async () => {
      await opened?.store.close();
      await opened?.cleanup();
      opened = await backend.open();
      usage = new UsageStore(opened.store);
      tasks = new TaskStore(opened.store);
    });

    afterAll(async () => {
      await opened?.store.close();
      await opened?.cleanup();
    });

    const reserve = (store: UsageStore, amount: number, limit = 1_000_000) =>
      store.transaction((db) => store.reserve(db, { tenant: 'acme', period: '2026-11', amount, limit, now: T0 }));

    it('writes an unsettled line without a budget reservation in one conditional write, and leaves the others alone', async () => {
      for (const id of ['open', 'budgeted', 'settled']) await tasks.createTask(taskRow(id));
      await usage.transaction(async (db) => {
        await usage.insertUsage(db, usageRow('open', { status: 'queued', settled: 0 }));
        await usage.insertUsage(db, usageRow('budgeted', { status: 'queued', settled: 0, budget_period: '2026-11', reserved_micros: 500_000 }));
        await usage.insertUsage(db, usageRow('settled', { status: 'succeeded', settled: 1 }));
      });
      const results = await usage.transaction(async (db) =>
        Promise.all(['open', 'budgeted', 'settled', 'missing'].map((id) => usage.updateUnbudgetedUsage(db, id, { status: 'processing' }))),
      );
      expect(results).toEqual([true, false, false, false]);
      expect((await usage.getUsage('open'))?.status).toBe('processing');
      expect((await usage.getUsage('budgeted'))?.status).toBe('queued');
      expect((await usage.getUsage('settled'))?.status).toBe('succeeded');
    });

    it('reserves while spent + reserved stays within the limit, and refuses (writing nothing) past it', async () => {
      expect(await reserve(usage, 600_000)).toMatchObject({ spent_micros: 0, reserved_micros: 600_000 });
      expect(await reserve(usage, 400_001)).toBeUndefined();
      expect(await reserve(usage, 400_000)).toMatchObject({ reserved_micros: 1_000_000 });
      expect(await reserve(usage, 1)).toBeUndefined();
      expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ spent_micros: 0, reserved_micros: 1_000_000 });
    });

    it('counts spent money against the limit too', async () => {
      await usage.transaction((db) => usage.reserve(db, { tenant: 'acme', period: '2026-11', amount: 500_000, limit: 1_000_000, now: T0 }));
      await usage.transaction((db) =>
        usage.changeBudget(db, { tenant: 'acme', period: '2026-11', reservedDelta: -500_000, spentDelta: 700_000, now: T0 }),
      );
      expect(await reserve(usage, 300_001)).toBeUndefined();
      expect(await reserve(usage, 300_000)).toMatchObject({ spent_micros: 700_000, reserved_micros: 300_000 });
    });

    it('keeps separate counters per tenant and period', async () => {
      await reserve(usage, 1_000_000);
      expect(
        await usage.transaction((db) => usage.reserve(db, { tenant: 'acme', period: '2026-12', amount: 1_000_000, limit: 1_000_000, now: T0 })),
      ).toMatchObject({ reserved_micros: 1_000_000 });
      expect(
        await usage.transaction((db) => usage.reserve(db, { tenant: 'other', period: '2026-11', amount: 1_000_000, limit: 1_000_000, now: T0 })),
      ).toMatchObject({ reserved_micros: 1_000_000 });
    });

    it('never commits more than the limit when many reservations race', async () => {
      // On PostgreSQL, separate stores (their own pools): what replicas are. SQLite is for one
      // process (its driver blocks while another connection writes), so there the race is
      // between concurrent transactions of one store.
      const others = backend.name === 'postgres' ? await Promise.all([opened.again(), opened.again()]) : [];
      try {
        const stores = [usage, ...others.map((store) => new UsageStore(store))];
        const attempts = Array.from({ length: 60 }, (_, i) => reserve(stores[i % stores.length]!, 70_000));
        const granted = (await Promise.all(attempts)).filter((row) => row !== undefined);
        // 14 × 70 000 = 980 000 fits in 1 000 000; a 15th would not.
        expect(granted).toHaveLength(14);
        expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ reserved_micros: 980_000 });
      } finally {
        await Promise.all(others.map((store) => store.close()));
      }
    });

    it("starts a period's new row from the tenant's lines of the period no row counts, once when reservations race, and charges the running ones to it", async () => {
      const lines: [string, Partial<NewUsageRow>][] = [
        ['done', {}],
        ['running', { status: 'processing', completed_at: null, duration_ms: null, settled: 0 }],
        ['last-month', { created_at: Date.UTC(2026, 9, 31, 23) }],
        ['other-tenant', { tenant: 'other' }],
        ['in-euros', { currency: 'EUR' }],
        ['under-a-day-budget', { status: 'processing', completed_at: null, settled: 0, budget_period: '2026-11-22', reserved_micros: 700_000 }],
      ];
      for (const [id] of lines) await tasks.createTask(taskRow(id));
      await usage.transaction(async (db) => {
        for (const [id, overrides] of lines) await usage.insertUsage(db, usageRow(id, overrides));
        const risk = { task_id: 'done', provider: 'kling3api', account: 'default', tenant: 'acme', created_at: T0, day: '2026-11-22' };
        await usage.insertAtRisk(db, [{ ...risk, model: 'kling-v3', quality: 'pro', operation: 'text-to-video', credits: 100, amount_micros: 100_000, currency: 'USD' }]);
      });
      const opening = { start: Date.UTC(2026, 10, 1), end: Date.UTC(2026, 11, 1), currency: 'USD' };
      // Before any create: what the first one will find, read without writing.
      expect(await usage.openingFigures('acme', '2026-11', opening)).toEqual({ spent: 560_000 + 100_000 + 700_000, reserved: 560_000 });
      expect(await usage.getBudget('acme', '2026-11')).toBeUndefined();

      const others = backend.name === 'postgres' ? await Promise.all([opened.again(), opened.again()]) : [];
      try {
        const stores = [usage, ...others.map((store) => new UsageStore(store))];
        const attempts = Array.from({ length: 20 }, (_, i) => {
          const store = stores[i % stores.length]!;
          return store.transaction((db) => store.reserve(db, { tenant: 'acme', period: '2026-11', amount: 100_000, limit: 3_000_000, now: T0, opening }));
        });
        const granted = (await Promise.all(attempts)).filter((row) => row !== undefined);
        // 1 360 000 spent and 560 000 running already: 10 × 100 000 more fit in 3 000 000, an 11th would not.
        expect(granted).toHaveLength(10);
        expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ spent_micros: 1_360_000, reserved_micros: 1_560_000 });
        expect(await usage.getUsage('running')).toMatchObject({ budget_period: '2026-11', reserved_micros: 560_000, settled: 0 });
        expect(await usage.getUsage('under-a-day-budget')).toMatchObject({ budget_period: '2026-11-22', reserved_micros: 700_000 });
      } finally {
        await Promise.all(others.map((store) => store.close()));
      }
    });

    it('marks each alert once per period, whoever asks first', async () => {
      const mark = () =>
        usage.transaction((db) => usage.markBudgetAlert(db, { tenant: 'acme', period: '2026-11', column: 'warned_at', at: T0 }));
      const results = await Promise.all([mark(), mark(), mark()]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await mark()).toBe(false);
      expect(await usage.getBudget('acme', '2026-11')).toMatchObject({ warned_at: T0, exhausted_at: null });
    });

    it('adds up usage lines per group, currency, status and reported, in the time window and tenant', async () => {
      const lines: [string, Partial<NewUsageRow>][] = [
        ['a', {}],
        ['b', { duration_ms: 120_000 }],
        ['c', { provider: 'kling3api', credits: 400, amount_micros: 400_000, reported: 1, estimated_credits: 400, reported_credits: 400, duration_ms: 30_000 }],
        ['d', { provider: 'kling3api', status: 'failed', credits: 380, amount_micros: 380_000, reported: 1, estimated_credits: 400, reported_credits: 380, video_seconds: 0 }],
        ['e', { status: 'processing', completed_at: null, duration_ms: null, video_seconds: 0, settled: 0 }],
        ['f', { tenant: 'other' }],
        ['g', { created_at: T0 + 24 * HOUR, day: '2026-11-23' }],
      ];
      for (const [id, overrides] of lines) {
        await tasks.createTask(taskRow(id, { tenant: overrides.tenant ?? 'acme', created_at: overrides.created_at ?? T0 }));
        await usage.transaction((db) => usage.insertUsage(db, usageRow(id, overrides)));
      }
      const day = { tenant: 'acme', from: T0 - HOUR, to: T0 + HOUR };
      const sums = await usage.sums(day, ['provider']);
      const find = (provider: string, status: string) => sums.find((sum) => sum.keys.provider === provider && sum.status === status);
      expect(find('freepik', 'succeeded')).toMatchObject({
        currency: 'USD',
        reported: 0,
        tasks: 2,
        finished: 2,
        video_seconds: 10,
        credits: 112,
        amount_micros: 1_120_000,
        seconds_amount_micros: 1_120_000,
        compared: 0,
      });
      expect(find('freepik', 'processing')).toMatchObject({ tasks: 1, finished: 0 });
      expect(find('kling3api', 'failed')).toMatchObject({
        reported: 1,
        credits: 380,
        amount_micros: 380_000,
        // Counted no seconds: none of its money prices a second.
        seconds_amount_micros: 0,
        // A failure's charge is no measure of the price list: quote against actual leaves it out.
        compared: 0,
        compared_estimated_credits: 0,
        compared_reported_credits: 0,
      });
      expect(find('kling3api', 'succeeded')).toMatchObject({ compared: 1, compared_estimated_credits: 400, compared_reported_credits: 400 });
      expect(sums.reduce((total, sum) => total + sum.tasks, 0)).toBe(5);
      const everyone = await usage.sums({ from: T0 - HOUR, to: T0 + 48 * HOUR }, ['tenant', 'day']);
      expect(everyone.filter((sum) => sum.keys.tenant === 'other')).toHaveLength(1);
      expect(everyone.filter((sum) => sum.keys.day === '2026-11-23')).toHaveLength(1);
    });

    it('finds the median duration per group in the database (odd and even counts)', async () => {
      const durations: [string, string, number][] = [
        ['a', 'freepik', 30_000],
        ['b', 'freepik', 90_000],
        ['c', 'freepik', 60_000],
        ['d', 'kling3api', 10_000],
        ['e', 'kling3api', 40_000],
      ];
      for (const [id, provider, duration] of durations) {
        await tasks.createTask(taskRow(id));
        await usage.transaction((db) => usage.insertUsage(db, usageRow(id, { provider, duration_ms: duration })));
      }
      await tasks.createTask(taskRow('failed'));
      await usage.transaction((db) => usage.insertUsage(db, usageRow('failed', { status: 'failed', duration_ms: 1 })));
      const medians = await usage.medianDurations({ from: T0 - HOUR, to: T0 + HOUR }, ['provider'], 'succeeded');
      const of = (provider: string) => medians.find((median) => median.keys.provider === provider)?.median_duration_ms;
      expect(of('freepik')).toBe(60_000);
      expect(of('kling3api')).toBe(25_000);
      expect(await usage.medianDurations({ from: T0 - HOUR, to: T0 + HOUR }, [], 'succeeded')).toEqual([
        { keys: {}, currency: 'USD', median_duration_ms: 40_000 },
      ]);
    });
  });

  describe.skipIf(backend.skip)(`${backend.name}: upgrading a database that has tasks`, () => {
    it('writes a usage line for every existing task, from its columns and cost', async () => {
      const older = await backend.migratedTo('0004_cancel_and_custody');
      try {
        await older.db
          .insertInto('tasks')
          .values([
            taskRow('done', {
              status: 'succeeded',
              phase: 'done',
              provider: 'kling3api',
              // Accepted by the provider, which said what it charged: a reported cost.
              provider_task_id: 'up-done',
              completed_at: T0 + 90_000,
              cost_json: JSON.stringify({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' }),
            }),
            taskRow('running', { status: 'processing', phase: 'tracking', provider: 'freepik' }),
          ])
          .execute();
        await older.db.destroy();
        const store = await older.open();
        try {
          const usage = new UsageStore(store);
          expect(await usage.getUsage('done')).toMatchObject({
            tenant: 'acme',
            day: '2026-11-22',
            provider: 'kling3api',
            status: 'succeeded',
            duration_ms: 90_000,
            credits: 400,
            amount_micros: 400_000,
            currency: 'USD',
            reported: 1,
            settled: 1,
          });
          expect(await usage.getUsage('running')).toMatchObject({ status: 'processing', reported: 0, settled: 0, amount_micros: 560_000 });
          // Budget alerts are deliveries without a task.
          await store.db
            .insertInto('deliveries')
            .values({
              id: 'msg_budget',
              task_id: null,
              tenant: 'acme',
              url: 'https://example.com/events',
              event_type: 'budget.warning',
              payload_json: '{}',
              status: 'pending',
              attempts: 0,
              next_attempt_at: T0,
              created_at: T0,
            })
            .execute();
        } finally {
          await store.close();
        }
      } finally {
        await older.cleanup();
      }
    });

    it('leaves the database as it was when a start stops half-way through its migrations, so the next start migrates it', async () => {
      const older = await backend.migratedTo('0004_cancel_and_custody');
      try {
        // A row 0005's pass cannot read stops it after its first statements made their tables:
        // what a start killed at that point, or failing there for any reason, leaves behind.
        await older.db
          .insertInto('tasks')
          .values([taskRow('done', { status: 'succeeded', phase: 'done', provider: 'kling3api', completed_at: T0 + 60_000 }), taskRow('unreadable', { cost_json: '{"credits":' })])
          .execute();
        // This database's own tables: on PostgreSQL the catalogue lists every schema's, and test
        // files running beside this one make those same tables in theirs.
        const own = backend.name === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(older.db)).rows[0]!.schema : undefined;
        const tables = async () =>
          (await older.db.introspection.getTables())
            .filter((table) => own === undefined || table.schema === own)
            .map((table) => table.name)
            .filter((name) => ['task_usage', 'budgets', 'output_ids'].includes(name));
        await expect(older.open()).rejects.toThrow(/database migration 0005_usage_and_budgets failed/);
        expect(await tables()).toEqual([]);

        await older.db.updateTable('tasks').set({ cost_json: JSON.stringify({ credits: null, estimated: true, currency_amount: null, currency: null }) }).where('id', '=', 'unreadable').execute();
        await older.db.destroy();
        const store = await older.open();
        try {
          const usage = new UsageStore(store);
          expect(await usage.getUsage('done')).toMatchObject({ status: 'succeeded', amount_micros: 560_000, video_seconds: 0 });
          expect(await usage.getUsage('unreadable')).toMatchObject({ status: 'queued', amount_micros: null });
        } finally {
          await store.close();
        }
      } finally {
        await older.cleanup();
      }
    });

    it('counts the seconds of video of the succeeded tasks it writes lines for, as their end would have, odd rows included', async () => {
      const older = await backend.migratedTo('0004_cancel_and_custody');
      try {
        const succeeded = (id: string, outputs: string, overrides: Partial<NewTaskRow> = {}) =>
          taskRow(id, { status: 'succeeded', phase: 'done', provider: 'kling3api', completed_at: T0 + 60_000, outputs_json: outputs, ...overrides });
        const stored = (duration: number | null, type = 'video') => ({ type, duration, upstreamUrl: 'https://cdn.example.com/v.mp4', storage: 'passthrough' });
        const tenSeconds = JSON.stringify({ model: 'kling-v3', prompt: 'a fox', duration: 10 });
        await older.db
          .insertInto('tasks')
          .values([
            succeeded('lengths', JSON.stringify([stored(5.1), stored(4.9)])),
            succeeded('asked', JSON.stringify([stored(null)]), { request_json: tenSeconds }),
            succeeded('shots', JSON.stringify([stored(null)]), {
              request_json: JSON.stringify({ model: 'kling-v3', multi_shot: [{ prompt: 'a', duration: 3 }, { prompt: 'b', duration: 4 }] }),
            }),
            // Finished before result custody: `{type, url, duration}`.
            succeeded('before-custody', JSON.stringify([{ type: 'video', url: 'https://cdn.example.com/v.mp4', duration: 5 }])),
            succeeded('image', JSON.stringify([stored(null, 'image')]), { request_json: tenSeconds }),
            succeeded('no-outputs', '[]', { request_json: tenSeconds }),
            succeeded('unreadable', '[{"type":', { request_json: tenSeconds }),
            succeeded('no-provider', JSON.stringify([stored(5)]), { provider: null }),
            taskRow('failed', { status: 'failed', phase: 'done', provider: 'kling3api', completed_at: T0 + 60_000, outputs_json: JSON.stringify([stored(5)]) }),
            taskRow('running', { status: 'processing', phase: 'tracking', provider: 'kling3api' }),
          ])
          .execute();
        await older.db.destroy();
        const store = await older.open();
        try {
          const usage = new UsageStore(store);
          const seconds = Object.fromEntries(
            await Promise.all(
              ['lengths', 'asked', 'shots', 'before-custody', 'image', 'no-outputs', 'unreadable', 'no-provider', 'failed', 'running'].map(
                async (id) => [id, (await usage.getUsage(id))?.video_seconds],
              ),
            ),
          );
          expect(seconds).toEqual({
            lengths: 10,
            asked: 10,
            shots: 7,
            'before-custody': 5,
            image: 0,
            'no-outputs': 0,
            unreadable: 0,
            'no-provider': 5,
            failed: 0,
            running: 0,
          });
        } finally {
          await store.close();
        }
      } finally {
        await older.cleanup();
      }
    });

    it.skipIf(backend.name !== 'sqlite')('starts when 0016 was stopped after adding the column (as a release that ran SQLite migrations statement by statement left it) and names the accounts', async () => {
      const older = await backend.migratedTo('0015_output_ids');
      try {
        await older.db
          .insertInto('tasks')
          .values(taskRow('east', { status: 'succeeded', phase: 'done', provider: 'kling3api', account: 'east', completed_at: T0 + 60_000 }))
          .execute();
        await older.db.insertInto('task_usage').values(usageRow('east', { provider: 'kling3api' })).execute();
        // What a gateway killed between the migration's two statements leaves: the column, unfilled and unrecorded.
        await older.db.schema.alterTable('task_usage').addColumn('account', 'text').execute();
        await older.db.destroy();
        const store = await older.open();
        try {
          expect(await new UsageStore(store).getUsage('east')).toMatchObject({ provider: 'kling3api', account: 'east' });
        } finally {
          await store.close();
        }
      } finally {
        await older.cleanup();
      }
    });

    it("names on every existing usage line the account that holds its task, so usage can be split by account", async () => {
      const older = await backend.migratedTo('0015_output_ids');
      try {
        await older.db
          .insertInto('tasks')
          .values([
            taskRow('east', { status: 'succeeded', phase: 'done', provider: 'kling3api', account: 'east', completed_at: T0 + 60_000 }),
            taskRow('waiting', {}),
          ])
          .execute();
        await older.db.insertInto('task_usage').values([usageRow('east', { provider: 'kling3api' }), usageRow('waiting', { provider: null, status: 'queued' })]).execute();
        await older.db.destroy();
        const store = await older.open();
        try {
          const usage = new UsageStore(store);
          expect(await usage.getUsage('east')).toMatchObject({ provider: 'kling3api', account: 'east' });
          expect(await usage.getUsage('waiting')).toMatchObject({ provider: null, account: null });
          const sums = await usage.sums({ from: T0, to: T0 + HOUR }, ['provider', 'account']);
          expect(sums.map((sum) => sum.keys).sort((a, b) => String(a.account).localeCompare(String(b.account)))).toEqual([
            { provider: 'kling3api', account: 'east' },
            { provider: null, account: null },
          ]);
        } finally {
          await store.close();
        }
      } finally {
        await older.cleanup();
      }
    });
  });
});

it('remembers a bounded number of budget periods as caught up, however many days a daily budget runs', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-usage-')), 'gateway.db');
  const store = await openStore(`sqlite:${file}`);
  try {
    const usage = new UsageStore(store);
    const DAY = 24 * HOUR;
    const days = MAX_CAUGHT_UP + 5;
    const keyOf = (day: number) => new Date(T0 + day * DAY).toISOString().slice(0, 10);
    // Each day of a long-running process: its budget shown (`/v1/usage`), nothing left to count.
    for (let day = 0; day < days; day++) {
      const start = Date.UTC(2026, 10, 22) + day * DAY;
      expect(await usage.pendingFigures('acme', keyOf(day), { start, end: start + DAY, currency: 'USD' })).toEqual({ spent: 0, reserved: 0 });
    }
    const remembered = (usage as unknown as { caughtUp: Set<string> }).caughtUp;
    expect(remembered.size).toBe(MAX_CAUGHT_UP);
    // The latest days are the ones kept.
    expect(remembered.has(JSON.stringify(['acme', keyOf(days - 1), 'USD']))).toBe(true);
    expect(remembered.has(JSON.stringify(['acme', keyOf(0), 'USD']))).toBe(false);
  } finally {
    await store.close();
  }
}, 60_000);
