/**
 * The task store (SPEC §5) on both engines it runs on: SQLite in memory (the embedded default)
 * and PostgreSQL (replicas sharing one database). The same suite runs on each, so the two never
 * drift apart. The PostgreSQL run uses a schema of its own and drops it afterwards; it is
 * skipped only when no PostgreSQL answers and this is not CI (in CI it must run).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../../src/store/database-url.js';
import { openStore, type Store } from '../../src/store/database.js';
import type { Database } from '../../src/store/schema.js';
import { TaskStore, type DeliveryRow, type NewTaskClaim } from '../../src/store/task-store.js';
import { sqliteFileMigratedTo } from '../support/migrated-store.js';
import { clearTaskStore, storeForTests } from '../support/postgres.js';
import { deliveryRow, MINUTE, T0, taskRow, trackedRow } from '../support/task-rows.js';

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const pgAvailable = await postgresReachable();
const requirePostgres = process.env.CI === 'true';

interface Backend {
  name: 'sqlite' | 'postgres';
  skip: boolean;
  /** Opens a fresh, empty store for the suite. */
  open(): Promise<Store>;
  /** A location that survives closing the store, for the migration test; and its cleanup. */
  persistent(): { open: () => Promise<Store>; cleanup: () => Promise<void> };
  cleanup(): Promise<void>;
}

const schemas: string[] = [];

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

function newSchema(): string {
  const schema = `kg_test_${randomBytes(6).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    open: () => openStore('sqlite::memory:'),
    persistent() {
      const file = join(mkdtempSync(join(tmpdir(), 'kg-store-')), 'gateway.db');
      return { open: () => openStore(`sqlite:${file}`), cleanup: async () => undefined };
    },
    cleanup: async () => undefined,
  },
  {
    name: 'postgres',
    skip: !pgAvailable && !requirePostgres,
    open: () => openStore(PG_URL, { schema: newSchema() }),
    persistent() {
      const schema = newSchema();
      return { open: () => openStore(PG_URL, { schema }), cleanup: () => dropSchema(schema) };
    },
    async cleanup() {
      for (const schema of schemas.splice(0)) await dropSchema(schema);
    },
  },
];

const KEY = { key: 'idem-1', requestHash: 'sha256:aaa', expiresAt: T0 + 24 * 60 * MINUTE };

describe('parseDatabaseUrl', () => {
  it.each([
    ['sqlite:./data/kling-gateway.db', { dialect: 'sqlite', location: './data/kling-gateway.db' }],
    ['sqlite:/var/lib/kg.db', { dialect: 'sqlite', location: '/var/lib/kg.db' }],
    ['sqlite::memory:', { dialect: 'sqlite', location: ':memory:' }],
    ['sqlite:', { dialect: 'sqlite', location: ':memory:' }],
    ['./gateway.db', { dialect: 'sqlite', location: './gateway.db' }],
    ['data/gateway.sqlite', { dialect: 'sqlite', location: 'data/gateway.sqlite' }],
    ['postgres://kg:pw@db:5432/kling', { dialect: 'postgres', location: 'postgres://kg:pw@db:5432/kling' }],
    ['postgresql://db/kling', { dialect: 'postgres', location: 'postgresql://db/kling' }],
  ])('%s', (url, expected) => {
    expect(parseDatabaseUrl(url)).toEqual(expected);
  });

  it('refuses anything else, without echoing the password', () => {
    expect(() => parseDatabaseUrl('mysql://kg:hunter2@db/kling')).toThrow(
      'database.url must start with sqlite: or postgres:// (got "mysql://…@db/kling")',
    );
    expect(() => parseDatabaseUrl('mysql://kg:hunter2@db/kling')).not.toThrow(/hunter2/);
    // node-postgres also takes a password from the query.
    expect(() => parseDatabaseUrl('"postgres://kg@db/kling?sslmode=require&password=hunter3"')).toThrow(/sslmode=require&password=…"/);
    expect(() => parseDatabaseUrl('"postgres://kg@db/kling?sslmode=require&password=hunter3"')).not.toThrow(/hunter3/);
  });
});

describe.each(BACKENDS)('TaskStore on $name', (backend) => {
  describe.skipIf(backend.skip)(`${backend.name}`, () => {
    let store: Store;
    let tasks: TaskStore;

    storeForTests(backend, (opened) => {
      store = opened;
      tasks = new TaskStore(store);
    });

    /** Resolves once a statement of this schema waits for a row of `table` another transaction holds (PostgreSQL). */
    async function waitingForRow(table: 'tasks' | 'providers'): Promise<void> {
      // The first waiter for a locked row holds a lock on that tuple while it waits.
      const waiters = () => sql<{ n: number }>`select count(*)::int as n from pg_locks where locktype = 'tuple' and relation = ${table}::regclass`.execute(store.db);
      while ((await waiters()).rows[0]!.n === 0) await new Promise((resolve) => setImmediate(resolve));
    }

    beforeEach(() => clearTaskStore(store, tasks));

    describe('openStore and migrations', () => {
      it('reports which engine it is', () => {
        expect(store.dialect).toBe(backend.name);
        expect(store.description).not.toMatch(/:[^/@]*@/);
      });

      it('opens an existing database again without migrating twice, and keeps its rows', async () => {
        const location = backend.persistent();
        try {
          const first = await location.open();
          await new TaskStore(first).createTask(taskRow('t_kept'));
          await first.close();
          const second = await location.open();
          try {
            expect((await new TaskStore(second).getTask('t_kept'))?.id).toBe('t_kept');
            const ran = await sql<{ name: string }>`select name from kysely_migration`.execute(second.db);
            expect(ran.rows.map((row) => row.name)).toEqual([
              '0001_initial',
              '0002_recovery_and_fair_queue',
              '0003_shared_provider_state',
              '0004_cancel_and_custody',
              '0005_usage_and_budgets',
              '0006_provider_accounts',
              '0007_leaner_task_indexes',
              '0008_recovered_attempts',
              '0009_rate_window_table',
              '0010_partial_task_indexes',
              '0011_status_version',
              '0012_cancel_requests',
              '0013_usage_at_risk',
              '0014_account_in_flight_counts',
              '0015_output_ids',
              '0016_usage_account',
              '0017_usage_video_seconds',
              '0018_task_list_filters',
              '0019_tenant_turns',
              '0020_attempt_time_limit',
              '0021_attempt_named_task',
              '0022_finished_task_index',
              '0023_output_recopy',
              '0024_counted_usage_lines',
            ]);
          } finally {
            await second.close();
          }
        } finally {
          await location.cleanup();
        }
      });

      it('registers providers once, however often it is asked', async () => {
        await tasks.registerProviders(['freepik', 'kling3api', 'kling-legacy']);
        const rows = await store.db.selectFrom('providers').select('id').orderBy('id').execute();
        expect(rows.map((row) => row.id)).toEqual(['freepik', 'kling-legacy', 'kling3api']);
        await expect(tasks.ping()).resolves.toBeUndefined();
      });
    });

    describe('createTask', () => {
      it('inserts the task and reads it back as written, times as numbers', async () => {
        const row = taskRow('t_1', { next_poll_at: T0 + 5_000, lease_until: T0 + MINUTE, lease_owner: 'w1' });
        const outcome = await tasks.createTask(row);
        expect(outcome.created).toBe(true);
        const stored = await tasks.getTask('t_1');
        expect(stored).toEqual({ candidates: '', cancel_at: null, storage_expires_at: null, account: null, status_version: null, cancel_requested_at: null, recopy_at: null, ...row });
        expect(typeof stored?.created_at).toBe('number');
        expect(typeof stored?.deadline_at).toBe('number');
        expect(typeof stored?.lease_until).toBe('number');
        expect(stored?.created_at).toBe(T0);
      });

      it('records the idempotency key with the task', async () => {
        await tasks.createTask(taskRow('t_1'), KEY);
        expect(await tasks.getIdempotencyKey('acme', 'idem-1')).toEqual({
          tenant: 'acme',
          key: 'idem-1',
          request_hash: 'sha256:aaa',
          task_id: 't_1',
          created_at: T0,
          expires_at: KEY.expiresAt,
        });
      });

      it('a second create with the same key returns the first task and writes nothing', async () => {
        await tasks.createTask(taskRow('t_1'), KEY);
        const again = await tasks.createTask(taskRow('t_2', { created_at: T0 + MINUTE }), { ...KEY, requestHash: 'sha256:bbb' });
        expect(again).toEqual({ created: false, existing: { taskId: 't_1', requestHash: 'sha256:aaa' } });
        expect(await tasks.getTask('t_2')).toBeUndefined();
        expect((await tasks.getIdempotencyKey('acme', 'idem-1'))?.task_id).toBe('t_1');
      });

      it('two creates with the same key at once make exactly one task', async () => {
        const outcomes = await Promise.all(
          ['t_a', 't_b', 't_c'].map((id) => tasks.createTask(taskRow(id), KEY)),
        );
        const created = outcomes.filter((outcome) => outcome.created);
        expect(created).toHaveLength(1);
        const winner = created[0]?.created ? created[0].task.id : '';
        for (const outcome of outcomes.filter((o) => !o.created)) {
          expect(outcome).toEqual({ created: false, existing: { taskId: winner, requestHash: 'sha256:aaa' } });
        }
        const rows = await store.db.selectFrom('tasks').select('id').execute();
        expect(rows.map((row) => row.id)).toEqual([winner]);
      });

      it('replaces an expired key with the new task', async () => {
        await tasks.createTask(taskRow('t_old'), { ...KEY, expiresAt: T0 + MINUTE });
        const later = await tasks.createTask(taskRow('t_new', { created_at: T0 + MINUTE }), { ...KEY, requestHash: 'sha256:bbb' });
        expect(later.created).toBe(true);
        expect(await tasks.getIdempotencyKey('acme', 'idem-1')).toMatchObject({ task_id: 't_new', request_hash: 'sha256:bbb' });
        expect(await tasks.getTask('t_old')).toBeDefined();
      });

      it('keeps keys per tenant', async () => {
        await tasks.createTask(taskRow('t_acme'), KEY);
        const other = await tasks.createTask(taskRow('t_other', { tenant: 'other' }), KEY);
        expect(other.created).toBe(true);
      });

      it('writes no key when the task cannot be inserted', async () => {
        await tasks.createTask(taskRow('t_1'));
        await expect(tasks.createTask(taskRow('t_1'), { ...KEY, key: 'idem-dup' })).rejects.toThrow();
        expect(await tasks.getIdempotencyKey('acme', 'idem-dup')).toBeUndefined();
      });
    });

    describe('countRecordedProviderTasks', () => {
      it('counts the upstream tasks recorded on one account at one provider whose tracking holds the values, each once, literally', async () => {
        const family = (name: string) => JSON.stringify({ family: name, extra: 'x' });
        const recorded = async (task: string, provider: string, account: string, upstream: string | null, tracking: string | null) => {
          const seq = await tasks.addAttempt({ task_id: task, provider, outcome: upstream ? 'accepted' : 'ambiguous', at: T0, account });
          await tasks.updateAttempt(task, seq, { provider_task_id: upstream, tracking_json: tracking });
        };
        for (const id of ['t_1', 't_2', 't_3']) await tasks.createTask(taskRow(id));
        await recorded('t_1', 'freepik', 'default', 'up_1', family('/v1/ai/video/kling-v3'));
        await recorded('t_2', 'freepik', 'default', 'up_2', family('/v1/ai/video/kling-v3'));
        // The same upstream task on a second attempt counts once.
        await recorded('t_2', 'freepik', 'default', 'up_2', family('/v1/ai/video/kling-v3'));
        // Another family that starts with the same text, another account, another provider, no task yet.
        await recorded('t_3', 'freepik', 'default', 'up_3', family('/v1/ai/video/kling-v3-omni'));
        await recorded('t_3', 'freepik', 'second', 'up_4', family('/v1/ai/video/kling-v3'));
        await recorded('t_3', 'kling3api', 'default', 'up_5', family('/v1/ai/video/kling-v3'));
        await recorded('t_3', 'freepik', 'default', null, null);
        // LIKE's own characters in a value match only themselves.
        await recorded('t_3', 'freepik', 'default', 'up_6', family('/v1/ai/video/kling_v3%'));

        expect(await tasks.countRecordedProviderTasks('freepik', 'default', { family: '/v1/ai/video/kling-v3' })).toBe(2);
        expect(await tasks.countRecordedProviderTasks('freepik', 'default', { family: '/v1/ai/video/kling-v3-omni' })).toBe(1);
        expect(await tasks.countRecordedProviderTasks('freepik', 'default', { family: '/v1/ai/video/kling_v3%' })).toBe(1);
        expect(await tasks.countRecordedProviderTasks('freepik', 'default', { family: '/v1/ai/video/kling%' })).toBe(0);
        expect(await tasks.countRecordedProviderTasks('freepik', 'second', { family: '/v1/ai/video/kling-v3', extra: 'x' })).toBe(1);
        expect(await tasks.countRecordedProviderTasks('freepik', 'nobody', { family: '/v1/ai/video/kling-v3' })).toBe(0);
      });
    });

    describe('getTaskWithAttempts', () => {
      it('reads the same task and attempts in one statement as getTask and getAttempts in two', async () => {
        await tasks.createTask(taskRow('t_read', { provider: 'freepik', provider_task_id: 'up_1' }));
        await tasks.createTask(taskRow('t_other'));
        await tasks.addAttempt({ task_id: 't_read', provider: 'kling3api', outcome: 'failed', error_code: 'provider_error', provider_code: '503', http_status: 503, latency_ms: 1_234, message: 'upstream said "no"\nand then: ünïcødé ✓ \\ {"json": [1]}', at: T0 + 1, account: 'second' });
        await tasks.addAttempt({ task_id: 't_other', provider: 'freepik', outcome: 'accepted', at: T0 + 2 });
        const seq = await tasks.addAttempt({ task_id: 't_read', provider: 'freepik', outcome: 'accepted', at: T0 + 3, account: 'default' });
        await tasks.updateAttempt('t_read', seq, { provider_task_id: 'up_1', tracking_json: JSON.stringify({ family: '/v1/ai/video/kling-v3' }), recovered_by: 'webhook' });
        await tasks.addAttempt({ task_id: 't_read', provider: 'kling-legacy', outcome: 'passed', at: T0 + 4 });

        const read = await tasks.getTaskWithAttempts('t_read');
        expect(read?.task).toEqual(await tasks.getTask('t_read'));
        const attempts = await tasks.getAttempts('t_read');
        expect(attempts.map((attempt) => attempt.seq)).toEqual([1, 2, 3]);
        expect(read?.attempts).toEqual(attempts);
        expect(typeof read?.attempts[0]?.at).toBe('number');
      });

      it('reads a task without attempts with none, and no task as undefined', async () => {
        await tasks.createTask(taskRow('t_alone'));
        expect(await tasks.getTaskWithAttempts('t_alone')).toEqual({ task: await tasks.getTask('t_alone'), attempts: [] });
        expect(await tasks.getTaskWithAttempts('t_missing')).toBeUndefined();
      });
    });

    describe('reads beside an open transaction', () => {
      it('a read never sees what an open transaction wrote, and sees the committed row after it rolls back', async () => {
        await tasks.createTask(taskRow('t_read', { status: 'queued' }));
        let written!: () => void;
        const wrote = new Promise<void>((resolve) => (written = resolve));
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        const writer = store.db
          .transaction()
          .execute(async (trx) => {
            await trx.updateTable('tasks').set({ status: 'failed' }).where('id', '=', 't_read').execute();
            written();
            await released;
            throw new Error('rolled back');
          })
          .catch((error: Error) => error.message);
        await wrote;
        const read = tasks.getTask('t_read');
        release();
        expect(await writer).toBe('rolled back');
        expect((await read)?.status).toBe('queued');
        expect((await tasks.getTask('t_read'))?.status).toBe('queued');
      });
    });

    describe('listTasks', () => {
      beforeEach(async () => {
        await tasks.createTask(taskRow('t_1', { created_at: T0 + 1_000, status: 'succeeded', provider: 'freepik' }));
        await tasks.createTask(taskRow('t_2', { created_at: T0 + 2_000, status: 'failed', provider: 'kling3api' }));
        await tasks.createTask(taskRow('t_3a', { created_at: T0 + 3_000, status: 'succeeded', provider: 'kling3api' }));
        await tasks.createTask(taskRow('t_3b', { created_at: T0 + 3_000, status: 'queued' }));
        await tasks.createTask(taskRow('t_4', { created_at: T0 + 4_000, status: 'succeeded', provider: 'freepik' }));
        await tasks.createTask(taskRow('t_x', { created_at: T0 + 5_000, tenant: 'other' }));
      });

      const ids = (rows: { id: string }[]) => rows.map((row) => row.id);

      it('lists the tenant’s tasks newest first, same-millisecond ties by id', async () => {
        expect(ids(await tasks.listTasks({ tenant: 'acme', limit: 10 }))).toEqual(['t_4', 't_3b', 't_3a', 't_2', 't_1']);
      });

      it('pages with a keyset cursor, strictly before it, without gaps or repeats', async () => {
        const seen: string[] = [];
        let before: { createdAt: number; id: string } | undefined;
        for (let page = 0; page < 5; page++) {
          const rows = await tasks.listTasks({ tenant: 'acme', limit: 2, ...(before ? { before } : {}) });
          if (rows.length === 0) break;
          seen.push(...ids(rows));
          const last = rows[rows.length - 1];
          if (!last) break;
          before = { createdAt: last.created_at, id: last.id };
        }
        expect(seen).toEqual(['t_4', 't_3b', 't_3a', 't_2', 't_1']);
        expect(ids(await tasks.listTasks({ tenant: 'acme', limit: 10, before: { createdAt: T0 + 3_000, id: 't_3b' } }))).toEqual([
          't_3a',
          't_2',
          't_1',
        ]);
      });

      it('filters by status and by provider', async () => {
        expect(ids(await tasks.listTasks({ tenant: 'acme', status: 'succeeded', limit: 10 }))).toEqual(['t_4', 't_3a', 't_1']);
        expect(ids(await tasks.listTasks({ tenant: 'acme', provider: 'kling3api', limit: 10 }))).toEqual(['t_3a', 't_2']);
        expect(
          ids(await tasks.listTasks({ tenant: 'acme', status: 'succeeded', provider: 'kling3api', limit: 10 })),
        ).toEqual(['t_3a']);
      });

      it('never shows another tenant’s tasks', async () => {
        expect(ids(await tasks.listTasks({ tenant: 'other', limit: 10 }))).toEqual(['t_x']);
        expect(ids(await tasks.listTasks({ tenant: 'nobody', limit: 10 }))).toEqual([]);
      });
    });

    describe('updateTask', () => {
      it('applies the patch and bumps the version', async () => {
        await tasks.createTask(taskRow('t_1'));
        const updated = await tasks.updateTask('t_1', { status: 'processing', phase: 'tracking', updated_at: T0 + 1 });
        expect(updated).toMatchObject({ status: 'processing', phase: 'tracking', version: 1, updated_at: T0 + 1 });
        const again = await tasks.updateTask('t_1', { poll_count: 1 });
        expect(again?.version).toBe(2);
        expect(await tasks.getTask('t_1')).toMatchObject({ poll_count: 1, version: 2, phase: 'tracking' });
      });

      it('records the version at which the task took its status, and keeps it through writes that leave the status', async () => {
        await tasks.createTask(taskRow('t_1', { status_version: 0 }));
        expect(await tasks.updateTask('t_1', { poll_count: 1 })).toMatchObject({ version: 1, status_version: 0 });
        expect(await tasks.updateTask('t_1', { status: 'processing', phase: 'tracking' })).toMatchObject({ version: 2, status_version: 2 });
        expect(await tasks.updateTask('t_1', { status: 'processing', poll_count: 2 })).toMatchObject({ version: 3, status_version: 2 });
        expect(await tasks.updateTask('t_1', { next_poll_at: T0 + 9 })).toMatchObject({ version: 4, status_version: 2 });
        expect(await tasks.updateTask('t_1', { status: 'succeeded', phase: 'done' })).toMatchObject({ version: 5, status_version: 5 });
      });

      it('writes nothing when the task is no longer in the expected phase', async () => {
        await tasks.createTask(taskRow('t_1', { phase: 'done', status: 'succeeded' }));
        const result = await tasks.updateTask('t_1', { status: 'failed' }, { phases: ['tracking', 'submitting'] });
        expect(result).toBeUndefined();
        expect(await tasks.getTask('t_1')).toMatchObject({ status: 'succeeded', version: 0 });
      });

      it('writes nothing when another owner holds the lease', async () => {
        await tasks.createTask(trackedRow('t_1', T0, { lease_owner: 'replica-a', lease_until: T0 + MINUTE }));
        expect(await tasks.updateTask('t_1', { poll_count: 9 }, { leaseOwner: 'replica-b' })).toBeUndefined();
        expect(await tasks.updateTask('t_1', { poll_count: 9 }, { leaseOwner: null })).toBeUndefined();
        expect((await tasks.getTask('t_1'))?.poll_count).toBe(0);
        expect(await tasks.updateTask('t_1', { poll_count: 1 }, { leaseOwner: 'replica-a', phases: ['tracking'] })).toMatchObject({
          poll_count: 1,
        });
      });

      it('a version condition voids the write once the task changed, even back to the same phase and owner', async () => {
        await tasks.createTask(taskRow('t_1', { phase: 'submitting', provider: 'freepik', lease_owner: 'a', lease_until: T0 - 1 }));
        const read = (await tasks.getTask('t_1'))!;
        // Replica a puts it back in the queue and claims it again for another create: same phase, same owner.
        await tasks.updateTask('t_1', { phase: 'dispatch', lease_owner: null, lease_until: null }, { phases: ['submitting'], leaseOwner: 'a' });
        await tasks.updateTask('t_1', { phase: 'submitting', lease_owner: 'a', lease_until: T0 + MINUTE }, { phases: ['dispatch'] });
        // Replica b acts on what it read before: the owner and phase still match, the version does not.
        const condition = { phases: ['submitting' as const], leaseOwner: read.lease_owner };
        expect(await tasks.updateTask('t_1', { lease_owner: 'b' }, { ...condition, version: read.version })).toBeUndefined();
        expect(await tasks.getTask('t_1')).toMatchObject({ lease_owner: 'a', lease_until: T0 + MINUTE, version: read.version + 2 });
        expect(await tasks.updateTask('t_1', { lease_owner: 'b' }, { ...condition, version: read.version + 2 })).toMatchObject({ lease_owner: 'b' });
      });

      it('a lease condition of null matches only an unowned task', async () => {
        await tasks.createTask(taskRow('t_free'));
        expect(await tasks.updateTask('t_free', { lease_owner: 'me' }, { leaseOwner: null })).toMatchObject({ lease_owner: 'me' });
      });

      it('is undefined for a task that does not exist', async () => {
        expect(await tasks.updateTask('t_missing', { status: 'failed' })).toBeUndefined();
      });

      it('when two replicas race from the same phase, exactly one wins', async () => {
        await tasks.createTask(taskRow('t_1', { phase: 'submitting', lease_owner: 'a', lease_until: T0 + MINUTE }));
        const results = await Promise.all(
          ['replica-1', 'replica-2', 'replica-3'].map((owner) =>
            tasks.updateTask('t_1', { phase: 'tracking', lease_owner: owner }, { phases: ['submitting'] }),
          ),
        );
        expect(results.filter((row) => row !== undefined)).toHaveLength(1);
        expect((await tasks.getTask('t_1'))?.version).toBe(1);
      });

      it('inserts the delivery in the same transaction, built from the updated row', async () => {
        await tasks.createTask(trackedRow('t_1', T0, { webhook_url: 'https://hooks.example.com/kling' }));
        const seenStatus: string[] = [];
        const updated = await tasks.updateTask(
          't_1',
          { status: 'succeeded', phase: 'done', completed_at: T0 + 90_000 },
          { phases: ['tracking'] },
          (task) => {
            seenStatus.push(task.status);
            return deliveryRow('d_1', task.id, { url: task.webhook_url ?? '', payload_json: JSON.stringify({ status: task.status }) });
          },
        );
        expect(updated?.status).toBe('succeeded');
        expect(seenStatus).toEqual(['succeeded']);
        const deliveries = await tasks.listDeliveries('t_1');
        expect(deliveries).toHaveLength(1);
        expect(deliveries[0]).toMatchObject({
          id: 'd_1',
          url: 'https://hooks.example.com/kling',
          payload_json: '{"status":"succeeded"}',
          next_attempt_at: T0,
        });
      });

      it('inserts no delivery when the condition fails', async () => {
        await tasks.createTask(trackedRow('t_1', T0, { phase: 'done', status: 'failed' }));
        let asked = false;
        const result = await tasks.updateTask('t_1', { status: 'succeeded' }, { phases: ['tracking'] }, (task) => {
          asked = true;
          return deliveryRow('d_1', task.id);
        });
        expect(result).toBeUndefined();
        expect(asked).toBe(false);
        expect(await tasks.listDeliveries('t_1')).toEqual([]);
      });

      it('inserts no delivery when the callback returns none, and still updates', async () => {
        await tasks.createTask(trackedRow('t_1', T0));
        expect(await tasks.updateTask('t_1', { provider_status: 'IN_PROGRESS' }, {}, () => undefined)).toBeDefined();
        expect(await tasks.listDeliveries('t_1')).toEqual([]);
        expect((await tasks.getTask('t_1'))?.provider_status).toBe('IN_PROGRESS');
      });

      it('rolls the status change back when the delivery cannot be written', async () => {
        await tasks.createTask(trackedRow('t_1', T0));
        await tasks.insertDelivery(deliveryRow('d_taken', 't_1'));
        await expect(
          tasks.updateTask('t_1', { status: 'succeeded', phase: 'done' }, { phases: ['tracking'] }, (task) =>
            deliveryRow('d_taken', task.id),
          ),
        ).rejects.toThrow();
        expect(await tasks.getTask('t_1')).toMatchObject({ status: 'processing', phase: 'tracking', version: 0 });
      });
    });

    describe('claimSlot', () => {
      const claim = (taskId: string, overrides: Partial<Parameters<TaskStore['claimSlot']>[0]> = {}) =>
        tasks.claimSlot({
          taskId,
          provider: 'freepik',
          account: 'default',
          cap: 2,
          owner: 'replica-a',
          leaseUntil: T0 + MINUTE,
          now: T0 + 1,
          fromPhases: ['dispatch'],
          ...overrides,
        });

      it('moves a queued task into submitting under the owner’s lease', async () => {
        await tasks.createTask(taskRow('t_1'));
        expect(await claim('t_1')).toMatchObject({
          phase: 'submitting',
          provider: 'freepik',
          lease_owner: 'replica-a',
          lease_until: T0 + MINUTE,
          updated_at: T0 + 1,
          version: 1,
        });
        expect(await tasks.countInFlight('freepik', 'default')).toBe(1);
      });

      it('refuses once the cap is reached, counting submitting and tracking tasks', async () => {
        await tasks.createTask(trackedRow('t_tracking', T0 + MINUTE));
        await tasks.createTask(taskRow('t_1'));
        await tasks.createTask(taskRow('t_2'));
        expect(await claim('t_1')).toBeDefined();
        expect(await claim('t_2')).toBeUndefined();
        expect(await tasks.getTask('t_2')).toMatchObject({ phase: 'dispatch', provider: null, version: 0 });
      });

      it('does not count finished or queued tasks against the cap', async () => {
        await tasks.createTask(taskRow('t_done', { phase: 'done', status: 'succeeded', provider: 'freepik' }));
        await tasks.createTask(taskRow('t_queued', { provider: 'freepik' }));
        await tasks.createTask(taskRow('t_1'));
        expect(await claim('t_1', { cap: 1 })).toBeDefined();
      });

      it('never exceeds the cap when many claims race', async () => {
        const ids = Array.from({ length: 8 }, (_, i) => `t_${i}`);
        for (const id of ids) await tasks.createTask(taskRow(id));
        const results = await Promise.all(ids.map((id, i) => claim(id, { cap: 3, owner: `replica-${i % 3}` })));
        expect(results.filter((row) => row !== undefined)).toHaveLength(3);
        expect(await tasks.countInFlight('freepik', 'default')).toBe(3);
      });

      it('refuses a task that is not in a phase it may be claimed from', async () => {
        await tasks.createTask(trackedRow('t_1', T0));
        expect(await claim('t_1')).toBeUndefined();
        expect(await claim('t_missing')).toBeUndefined();
      });

      it('a task moving to another provider keeps one slot: it frees the old one as it takes the new', async () => {
        await tasks.createTask(taskRow('t_1'));
        await claim('t_1', { cap: 1 });
        const moved = await claim('t_1', { provider: 'kling3api', cap: 1, fromPhases: ['submitting'] });
        expect(moved).toMatchObject({ provider: 'kling3api', phase: 'submitting', lease_owner: 'replica-a' });
        expect(await tasks.countInFlight('freepik', 'default')).toBe(0);
        expect(await tasks.countInFlight('kling3api', 'default')).toBe(1);
        // Freepik's only slot is free again for the next task.
        await tasks.createTask(taskRow('t_2'));
        expect(await claim('t_2', { cap: 1 })).toBeDefined();
      });

      it('a task that already holds a slot of the provider may claim it again at the cap', async () => {
        await tasks.createTask(taskRow('t_1'));
        await claim('t_1', { cap: 1 });
        expect(await claim('t_1', { cap: 1, fromPhases: ['submitting'], leaseUntil: T0 + 2 * MINUTE })).toMatchObject({
          lease_until: T0 + 2 * MINUTE,
        });
        expect(await tasks.countInFlight('freepik', 'default')).toBe(1);
      });

      it('a task moving to a provider that is full stays where it is', async () => {
        await tasks.createTask(trackedRow('t_busy', T0, { provider: 'kling3api' }));
        await tasks.createTask(taskRow('t_1'));
        await claim('t_1');
        expect(await claim('t_1', { provider: 'kling3api', cap: 1, fromPhases: ['submitting'] })).toBeUndefined();
        expect(await tasks.getTask('t_1')).toMatchObject({ provider: 'freepik', phase: 'submitting' });
      });

      it('counts each account of a provider against its own cap', async () => {
        for (const id of ['t_1', 't_2', 't_3']) await tasks.createTask(taskRow(id));
        expect(await claim('t_1', { account: 'main', cap: 1 })).toMatchObject({ provider: 'freepik', account: 'main' });
        expect(await claim('t_2', { account: 'main', cap: 1 })).toBeUndefined();
        expect(await claim('t_2', { account: 'spare', cap: 1 })).toMatchObject({ account: 'spare' });
        expect(await tasks.countInFlight('freepik', 'main')).toBe(1);
        expect(Object.fromEntries(await tasks.countInFlightByAccount('freepik'))).toEqual({ main: 1, spare: 1 });
        // Moving to another account frees the old slot as it takes the new one.
        expect(await claim('t_3', { account: 'other', cap: 1 })).toBeDefined();
        expect(await claim('t_3', { account: 'main', cap: 2, fromPhases: ['submitting'] })).toMatchObject({ account: 'main' });
        expect(Object.fromEntries(await tasks.countInFlightByAccount('freepik'))).toEqual({ main: 2, spare: 1 });
      });

      it('another owner cannot take over a submission in progress', async () => {
        await tasks.createTask(taskRow('t_1'));
        await claim('t_1');
        expect(await claim('t_1', { owner: 'replica-b', fromPhases: ['submitting'] })).toBeUndefined();
        expect((await tasks.getTask('t_1'))?.lease_owner).toBe('replica-a');
      });
    });

    describe('addHeldAttempt', () => {
      const submitting = (id: string) => taskRow(id, { phase: 'submitting', provider: 'freepik', account: 'default', lease_owner: 'replica-a', lease_until: T0 + MINUTE });
      const sending = (taskId: string) => ({ task_id: taskId, provider: 'freepik', account: 'default', outcome: 'sending', at: T0 + 5 });
      const hold = { owner: 'replica-a', leaseUntil: T0 + 2 * MINUTE };
      /** A cancel of a submission whose create has not left, written on the version it read (`TaskLifecycle.cancelUnsent`). */
      const cancelAt = (id: string, version: number) =>
        tasks.updateTask(id, { phase: 'done', status: 'canceled', lease_owner: null, lease_until: null }, { phases: ['submitting'], version });

      it('writes the attempt only while the task is submitting under the owner’s lease, renewing the lease and moving the version', async () => {
        await tasks.createTask(submitting('t_1'));
        expect(await tasks.addHeldAttempt(sending('t_1'), hold)).toBe(1);
        expect(await tasks.getTaskWithAttempts('t_1')).toMatchObject({
          task: { phase: 'submitting', lease_owner: 'replica-a', lease_until: T0 + 2 * MINUTE, version: 1 },
          attempts: [{ seq: 1, outcome: 'sending', at: T0 + 5 }],
        });
        expect(await tasks.addHeldAttempt(sending('t_1'), { ...hold, owner: 'replica-b' })).toBeUndefined();
        await tasks.updateTask('t_1', { phase: 'done', status: 'canceled', lease_owner: null }, { phases: ['submitting'] });
        expect(await tasks.addHeldAttempt(sending('t_1'), hold)).toBeUndefined();
        expect(await tasks.getAttempts('t_1')).toHaveLength(1);
      });

      it('of a cancel on the version read and the attempt, the one written first wins and the other writes nothing', async () => {
        await tasks.createTask(submitting('t_sent'));
        const sentRead = (await tasks.getTaskWithAttempts('t_sent'))!;
        expect(await tasks.addHeldAttempt(sending('t_sent'), hold)).toBe(1);
        expect(await cancelAt('t_sent', sentRead.task.version)).toBeUndefined();
        expect((await tasks.getTask('t_sent'))?.phase).toBe('submitting');

        await tasks.createTask(submitting('t_canceled'));
        const canceledRead = (await tasks.getTaskWithAttempts('t_canceled'))!;
        expect(await cancelAt('t_canceled', canceledRead.task.version)).toMatchObject({ phase: 'done', status: 'canceled' });
        expect(await tasks.addHeldAttempt(sending('t_canceled'), hold)).toBeUndefined();
        expect(await tasks.getAttempts('t_canceled')).toEqual([]);
      });

      it('writes no attempt once a cancel was asked for while an earlier create was on its way; only a write that honours it ends the task', async () => {
        await tasks.createTask(submitting('t_asked'));
        expect(await tasks.addHeldAttempt(sending('t_asked'), hold)).toBe(1);
        const asked = await tasks.updateTask('t_asked', { cancel_requested_at: T0 + 6 }, { phases: ['submitting'] });
        expect(asked).toMatchObject({ phase: 'submitting', cancel_requested_at: T0 + 6 });
        expect(await tasks.addHeldAttempt(sending('t_asked'), hold)).toBeUndefined();
        expect(await tasks.getAttempts('t_asked')).toHaveLength(1);
        const held = { phases: ['submitting'] as const, leaseOwner: 'replica-a' };
        // Back to the queue (`requeue`) only without a cancel request; canceled only with one.
        expect(await tasks.updateTask('t_asked', { phase: 'dispatch', status: 'queued' }, { ...held, cancelRequested: false })).toBeUndefined();
        expect(await tasks.updateTask('t_asked', { phase: 'done', status: 'canceled' }, { ...held, cancelRequested: true })).toMatchObject({
          phase: 'done',
          status: 'canceled',
        });
      });

      it('a cancel and an attempt racing for the same submission: exactly one is written', async () => {
        const ids = Array.from({ length: 12 }, (_, i) => `t_race_${i}`);
        for (const id of ids) await tasks.createTask(submitting(id));
        const outcomes = await Promise.all(
          ids.map(async (id) => {
            const read = (await tasks.getTaskWithAttempts(id))!;
            const [canceled, seq] = await Promise.all([cancelAt(id, read.task.version), tasks.addHeldAttempt(sending(id), hold)]);
            return { canceled: canceled !== undefined, sent: seq !== undefined, attempts: (await tasks.getAttempts(id)).length };
          }),
        );
        for (const outcome of outcomes) {
          expect(outcome.canceled).toBe(!outcome.sent);
          expect(outcome.attempts).toBe(outcome.sent ? 1 : 0);
        }
      });
    });

    describe('claimDueForTracking', () => {
      it('leases due tasks, most overdue first, up to the limit', async () => {
        await tasks.createTask(trackedRow('t_late', T0 - 5_000));
        await tasks.createTask(trackedRow('t_due', T0));
        await tasks.createTask(trackedRow('t_later', T0 - 1_000));
        await tasks.createTask(trackedRow('t_future', T0 + 1));
        const claimed = await tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 2);
        expect(claimed.map((row) => row.id).sort()).toEqual(['t_late', 't_later']);
        for (const row of claimed) expect(row).toMatchObject({ lease_owner: 'replica-a', lease_until: T0 + MINUTE });
        const rest = await tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 10);
        expect(rest.map((row) => row.id)).toEqual(['t_due']);
      });

      it('skips tasks under a live lease, and takes over a lease that ran out', async () => {
        await tasks.createTask(trackedRow('t_live', T0, { lease_owner: 'replica-b', lease_until: T0 + 1 }));
        await tasks.createTask(trackedRow('t_expired', T0, { lease_owner: 'replica-b', lease_until: T0 - 1 }));
        const claimed = await tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 10);
        expect(claimed.map((row) => row.id)).toEqual(['t_expired']);
        expect((await tasks.getTask('t_live'))?.lease_owner).toBe('replica-b');
      });

      it('leaves tasks in other phases alone', async () => {
        await tasks.createTask(taskRow('t_queued', { next_poll_at: T0 - 1 }));
        await tasks.createTask(trackedRow('t_done', T0 - 1, { phase: 'done', status: 'succeeded' }));
        expect(await tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 10)).toEqual([]);
      });

      it('two replicas claiming at once get disjoint sets that cover every due task', async () => {
        const ids = Array.from({ length: 12 }, (_, i) => `t_${String(i).padStart(2, '0')}`);
        for (const [i, id] of ids.entries()) await tasks.createTask(trackedRow(id, T0 - i));
        const [a, b] = await Promise.all([
          tasks.claimDueForTracking(T0, 'replica-a', MINUTE, 6),
          tasks.claimDueForTracking(T0, 'replica-b', MINUTE, 6),
        ]);
        const aIds = (a ?? []).map((row) => row.id);
        const bIds = (b ?? []).map((row) => row.id);
        expect(aIds.filter((id) => bIds.includes(id))).toEqual([]);
        expect([...aIds, ...bIds].sort()).toEqual(ids);
        const stored = await Promise.all(ids.map((id) => tasks.getTask(id)));
        for (const row of stored) {
          expect(row?.lease_owner).toBe(aIds.includes(row?.id ?? '') ? 'replica-a' : 'replica-b');
        }
      });
    });

    describe('recovery queries', () => {
      it('listAbandonedSubmissions finds submissions whose lease ran out', async () => {
        await tasks.createTask(taskRow('t_dead', { phase: 'submitting', provider: 'freepik', lease_owner: 'gone', lease_until: T0 - 1 }));
        await tasks.createTask(taskRow('t_alive', { phase: 'submitting', provider: 'freepik', lease_owner: 'here', lease_until: T0 + MINUTE }));
        await tasks.createTask(trackedRow('t_tracked', T0, { lease_owner: 'gone', lease_until: T0 - 1 }));
        const rows = await tasks.listAbandonedSubmissions(T0, 10);
        expect(rows.map((row) => row.id)).toEqual(['t_dead']);
      });

      it('expireLeases(owner) ends the leases of one dead owner only, so the others take its work up now', async () => {
        await tasks.createTask(taskRow('t_dead_submit', { phase: 'submitting', provider: 'freepik', lease_owner: 'dead', lease_until: T0 + MINUTE }));
        await tasks.createTask(trackedRow('t_dead_poll', T0, { lease_owner: 'dead', lease_until: T0 + MINUTE }));
        await tasks.createTask(taskRow('t_alive', { phase: 'submitting', provider: 'freepik', lease_owner: 'alive', lease_until: T0 + MINUTE }));
        // Copying outputs, and finished (a lease a finished task kept is left as it is).
        await tasks.createTask(taskRow('t_dead_copy', { phase: 'storing', provider: 'freepik', next_poll_at: T0, lease_owner: 'dead', lease_until: T0 + MINUTE }));
        await tasks.createTask(taskRow('t_dead_done', { phase: 'done', status: 'succeeded', provider: 'freepik', lease_owner: 'dead', lease_until: T0 + MINUTE }));
        await tasks.insertDelivery(deliveryRow('d_dead', 't_dead_poll', { lease_owner: 'dead', lease_until: T0 + MINUTE }));
        await tasks.insertDelivery(deliveryRow('d_alive', 't_alive', { lease_owner: 'alive', lease_until: T0 + MINUTE }));
        expect((await tasks.listAbandonedSubmissions(T0, 10)).map((row) => row.id)).toEqual([]);

        await tasks.expireLeases('dead');
        expect((await tasks.listAbandonedSubmissions(T0, 10)).map((row) => row.id)).toEqual(['t_dead_submit']);
        expect((await tasks.getTask('t_dead_poll'))?.lease_until).toBe(0);
        expect((await tasks.getTask('t_dead_copy'))?.lease_until).toBe(0);
        expect((await tasks.getTask('t_dead_done'))?.lease_until).toBe(T0 + MINUTE);
        expect((await tasks.getTask('t_alive'))?.lease_until).toBe(T0 + MINUTE);
        const leases = await store.db.selectFrom('deliveries').select(['id', 'lease_until']).orderBy('id').execute();
        expect(leases.map((row) => [row.id, Number(row.lease_until)])).toEqual([
          ['d_alive', T0 + MINUTE],
          ['d_dead', 0],
        ]);
      });

      it('listOverdue finds queued and tracked tasks past their deadline that no live lease holds', async () => {
        const past = T0 - 1;
        await tasks.createTask(taskRow('t_queued', { deadline_at: past }));
        await tasks.createTask(trackedRow('t_tracking', T0, { deadline_at: past, lease_owner: 'gone', lease_until: T0 - 1 }));
        await tasks.createTask(trackedRow('t_held', T0, { deadline_at: past, lease_owner: 'here', lease_until: T0 + MINUTE }));
        await tasks.createTask(taskRow('t_done', { phase: 'done', status: 'succeeded', deadline_at: past }));
        await tasks.createTask(taskRow('t_in_time', { deadline_at: T0 + MINUTE }));
        await tasks.createTask(taskRow('t_exactly', { deadline_at: T0 }));
        await tasks.createTask(taskRow('t_submitting', { phase: 'submitting', deadline_at: past, lease_owner: 'gone', lease_until: T0 - 1 }));
        const rows = await tasks.listOverdue(T0, 10, 0);
        expect(rows.map((row) => row.id).sort()).toEqual(['t_queued', 't_tracking']);
        expect(await tasks.listOverdue(T0, 1, 0)).toHaveLength(1);
      });

      it('listDispatchable lists queued tasks that may go now and are in time, oldest first, by pages', async () => {
        await tasks.createTask(taskRow('t_b', { created_at: T0 + 2, candidates: ',freepik,' }));
        await tasks.createTask(taskRow('t_a', { created_at: T0 + 1, candidates: ',freepik,kling3api,' }));
        await tasks.createTask(taskRow('t_wait', { created_at: T0, dispatch_after: T0 + MINUTE, candidates: ',freepik,' }));
        await tasks.createTask(taskRow('t_late', { created_at: T0, deadline_at: T0 + 5, candidates: ',freepik,' }));
        await tasks.createTask(trackedRow('t_tracking', T0));
        expect((await tasks.listDispatchable(T0 + 10, 10)).map((row) => row.id)).toEqual(['t_a', 't_b']);
        expect((await tasks.listDispatchable(T0 + 10, 1)).map((row) => row.id)).toEqual(['t_a']);
        expect((await tasks.listDispatchable(T0 + 10, 1, { createdAt: T0 + 1, id: 't_a' })).map((row) => row.id)).toEqual(['t_b']);
      });

      it('lists the whole dispatchable queue in narrow columns, and reads back those still dispatchable by id', async () => {
        await tasks.createTask(taskRow('t_b', { created_at: T0 + 2, tenant: 'other', candidates: ',freepik,' }));
        await tasks.createTask(taskRow('t_a', { created_at: T0 + 1, candidates: ',freepik,kling3api,' }));
        await tasks.createTask(taskRow('t_wait', { created_at: T0, dispatch_after: T0 + MINUTE, candidates: ',freepik,' }));
        await tasks.createTask(taskRow('t_late', { created_at: T0, deadline_at: T0 + 5, candidates: ',freepik,' }));
        await tasks.createTask(trackedRow('t_tracking', T0));
        expect(await tasks.listDispatchableQueue(T0 + 10)).toEqual([
          { id: 't_a', tenant: 'acme', created_at: T0 + 1, candidates: ',freepik,kling3api,' },
          { id: 't_b', tenant: 'other', created_at: T0 + 2, candidates: ',freepik,' },
        ]);
        const read = await tasks.getDispatchable(T0 + 10, ['t_b', 't_wait', 't_late', 't_tracking', 't_none']);
        expect(read.map((row) => row.id)).toEqual(['t_b']);
        expect(await tasks.getDispatchable(T0 + 10, [])).toEqual([]);
      });

      it('counts tasks in flight by tenant and provider, and notes each tenant’s last turn as its task takes a slot', async () => {
        await tasks.createTask(trackedRow('t_tracking', T0));
        await tasks.createTask(taskRow('t_1', { created_at: T0 + 1, tenant: 'other' }));
        await tasks.createTask(taskRow('t_2', { created_at: T0 + 2, tenant: 'other' }));
        expect(await tasks.listTenantTurns()).toEqual([]);
        await tasks.claimSlot({ taskId: 't_1', provider: 'freepik', account: 'default', cap: 5, owner: 'replica-a', leaseUntil: T0 + MINUTE, now: T0 + 5, fromPhases: ['dispatch'] });
        await tasks.claimSlot({ taskId: 't_2', provider: 'kling3api', account: 'default', cap: 5, owner: 'replica-a', leaseUntil: T0 + MINUTE, now: T0 + 6, fromPhases: ['dispatch'] });
        const counts = await tasks.countInFlightByTenant();
        expect(counts.sort((x, y) => `${x.tenant}${x.provider}`.localeCompare(`${y.tenant}${y.provider}`))).toEqual([
          { tenant: 'acme', provider: 'freepik', count: 1 },
          { tenant: 'other', provider: 'freepik', count: 1 },
          { tenant: 'other', provider: 'kling3api', count: 1 },
        ]);
        // A slot refused (the cap reached) is no turn.
        await tasks.createTask(taskRow('t_3', { created_at: T0 + 3 }));
        expect(await tasks.claimSlot({ taskId: 't_3', provider: 'kling3api', account: 'default', cap: 1, owner: 'replica-a', leaseUntil: T0 + MINUTE, now: T0 + 7, fromPhases: ['dispatch'] })).toBeUndefined();
        // The next turn of a tenant at a provider replaces its last.
        await tasks.createTask(taskRow('t_4', { created_at: T0 + 4, tenant: 'other' }));
        await tasks.claimSlot({ taskId: 't_4', provider: 'freepik', account: 'default', cap: 5, owner: 'replica-a', leaseUntil: T0 + MINUTE, now: T0 + 8, fromPhases: ['dispatch'] });
        const turns = await tasks.listTenantTurns();
        expect(turns.sort((x, y) => x.provider.localeCompare(y.provider))).toEqual([
          { provider: 'freepik', tenant: 'other', served_at: T0 + 8 },
          { provider: 'kling3api', tenant: 'other', served_at: T0 + 6 },
        ]);
      });

      it('hasOlderWaitingTask only counts older tasks waiting for one of the same providers', async () => {
        await tasks.createTask(taskRow('t_a', { created_at: T0 + 1, candidates: ',freepik,kling3api,' }));
        await tasks.createTask(taskRow('t_b', { created_at: T0 + 2, candidates: ',kling3api,' }));
        expect(await tasks.hasOlderWaitingTask(T0 + 2, 't_b', ['kling3api'])).toBe(true);
        expect(await tasks.hasOlderWaitingTask(T0 + 3, 't_new', ['freepik'])).toBe(true);
        expect(await tasks.hasOlderWaitingTask(T0 + 3, 't_new', ['kling-legacy'])).toBe(false);
        expect(await tasks.hasOlderWaitingTask(T0 + 1, 't_a', ['freepik', 'kling3api'])).toBe(false);
        expect(await tasks.hasOlderWaitingTask(T0 + 3, 't_new', [])).toBe(false);
      });

      it('finds a task by its upstream id and by its callback token', async () => {
        await tasks.createTask(trackedRow('t_1', T0, { callback_token: 'tok_abc' }));
        expect((await tasks.findByProviderTask('freepik', 'up-t_1'))?.id).toBe('t_1');
        expect(await tasks.findByProviderTask('kling3api', 'up-t_1')).toBeUndefined();
        expect((await tasks.findByCallbackToken('tok_abc'))?.id).toBe('t_1');
        expect(await tasks.findByCallbackToken('tok_other')).toBeUndefined();
      });
    });

    describe('attempts', () => {
      const attempt = (taskId: string, provider: string, outcome: string) => ({
        task_id: taskId,
        provider,
        outcome,
        error_code: outcome === 'failed' ? 'provider_error' : null,
        http_status: outcome === 'failed' ? 503 : null,
        latency_ms: 120,
        message: null,
        at: T0,
      });

      it('numbers attempts 1, 2, 3 per task', async () => {
        await tasks.createTask(taskRow('t_1'));
        await tasks.createTask(taskRow('t_2'));
        expect(await tasks.addAttempt(attempt('t_1', 'freepik', 'failed'))).toBe(1);
        expect(await tasks.addAttempt(attempt('t_1', 'kling3api', 'sending'))).toBe(2);
        expect(await tasks.addAttempt(attempt('t_2', 'freepik', 'sending'))).toBe(1);
        await tasks.updateAttempt('t_1', 2, { outcome: 'accepted', latency_ms: 340 });
        expect(await tasks.addAttempt(attempt('t_1', 'kling3api', 'sending'))).toBe(3);
        const rows = await tasks.getAttempts('t_1');
        expect(rows.map((row) => [row.seq, row.provider, row.outcome])).toEqual([
          [1, 'freepik', 'failed'],
          [2, 'kling3api', 'accepted'],
          [3, 'kling3api', 'sending'],
        ]);
        expect(rows[0]).toMatchObject({ http_status: 503, error_code: 'provider_error', at: T0 });
        expect(typeof rows[0]?.at).toBe('number');
        const byTask = await tasks.getAttemptsFor(['t_1', 't_2', 't_none']);
        expect([...byTask.keys()].sort()).toEqual(['t_1', 't_2']);
        expect(byTask.get('t_2')?.map((row) => row.seq)).toEqual([1]);
        expect((await tasks.getAttemptsFor([])).size).toBe(0);
      });

      // Regression: see the commit that fixed it.
      it('numbers attempts added at once without colliding', async () => {
        await tasks.createTask(taskRow('t_1'));
        const seqs = await Promise.all(
          ['replica-a', 'replica-b', 'replica-c'].map((replica) => tasks.addAttempt({ ...attempt('t_1', 'freepik', 'skipped'), message: replica })),
        );
        expect([...seqs].sort()).toEqual([1, 2, 3]);
        expect((await tasks.getAttempts('t_1')).map((row) => row.seq)).toEqual([1, 2, 3]);
      });
    });

    describe('inbound webhook ids and purging', () => {
      it('rememberInboundWebhook is true the first time and false for a replay', async () => {
        expect(await tasks.rememberInboundWebhook('freepik', 'msg_1', T0)).toBe(true);
        expect(await tasks.rememberInboundWebhook('freepik', 'msg_1', T0 + 5)).toBe(false);
        expect(await tasks.rememberInboundWebhook('kling-legacy', 'msg_1', T0)).toBe(true);
      });

      it('purgeExpired drops expired keys and old webhook ids, and keeps the rest', async () => {
        await tasks.createTask(taskRow('t_old'), { key: 'k-old', requestHash: 'h', expiresAt: T0 + MINUTE });
        await tasks.createTask(taskRow('t_new'), { key: 'k-new', requestHash: 'h', expiresAt: T0 + 2 * MINUTE + 1 });
        await tasks.rememberInboundWebhook('freepik', 'msg_old', T0);
        await tasks.rememberInboundWebhook('freepik', 'msg_new', T0 + MINUTE);
        await tasks.purgeExpired(T0 + 2 * MINUTE, T0 + MINUTE);
        expect(await tasks.getIdempotencyKey('acme', 'k-old')).toBeUndefined();
        expect(await tasks.getIdempotencyKey('acme', 'k-new')).toBeDefined();
        // The old id is forgotten (a replay that old is refused by the timestamp check instead).
        expect(await tasks.rememberInboundWebhook('freepik', 'msg_old', T0 + 2 * MINUTE)).toBe(true);
        expect(await tasks.rememberInboundWebhook('freepik', 'msg_new', T0 + 2 * MINUTE)).toBe(false);
        // Tasks themselves are never purged.
        expect(await tasks.getTask('t_old')).toBeDefined();
      });
    });

    describe('deliveries', () => {
      it('claimDueDeliveries leases due pending deliveries once', async () => {
        await tasks.createTask(taskRow('t_1'));
        await tasks.insertDelivery(deliveryRow('d_due', 't_1', { next_attempt_at: T0 }));
        await tasks.insertDelivery(deliveryRow('d_later', 't_1', { next_attempt_at: T0 + MINUTE }));
        await tasks.insertDelivery(deliveryRow('d_sent', 't_1', { status: 'delivered', delivered_at: T0 }));
        const [a, b] = await Promise.all([
          tasks.claimDueDeliveries(T0, 'replica-a', 15_000, 10),
          tasks.claimDueDeliveries(T0, 'replica-b', 15_000, 10),
        ]);
        const claimed = [...(a ?? []), ...(b ?? [])];
        expect(claimed.map((row) => row.id)).toEqual(['d_due']);
        expect(claimed[0]?.lease_until).toBe(T0 + 15_000);
        const holder = claimed[0]!.lease_owner!;
        const other = holder === 'replica-a' ? 'replica-b' : 'replica-a';
        expect(await tasks.updateDelivery('d_due', other, { status: 'failed', attempts: 1, last_status: 500 })).toBe(false);
        expect(await tasks.updateDelivery('d_due', holder, { status: 'delivered', attempts: 1, last_status: 200, delivered_at: T0 + 1 })).toBe(true);
        expect((await tasks.listDeliveries('t_1')).find((row) => row.id === 'd_due')).toMatchObject({
          status: 'delivered',
          attempts: 1,
          last_status: 200,
        });
      });

      it("finds a task's delivery a status ended, and ends the task's pending ones to that URL no live lease holds", async () => {
        await tasks.createTask(taskRow('t_1'));
        await tasks.createTask(taskRow('t_2'));
        const other = 'https://elsewhere.example.com/hooks';
        await tasks.insertDelivery(deliveryRow('d_gone', 't_1', { status: 'failed', attempts: 1, last_status: 410, created_at: T0 + 1 }));
        await tasks.insertDelivery(deliveryRow('d_failed', 't_1', { status: 'failed', attempts: 8, last_status: 500 }));
        await tasks.insertDelivery(deliveryRow('d_waiting', 't_1', { attempts: 1, last_status: 500, next_attempt_at: T0 + MINUTE }));
        await tasks.insertDelivery(deliveryRow('d_on_its_way', 't_1', { lease_owner: 'replica-b', lease_until: T0 + MINUTE }));
        await tasks.insertDelivery(deliveryRow('d_lease_ran_out', 't_1', { lease_owner: 'replica-c', lease_until: T0 - 1 }));
        await tasks.insertDelivery(deliveryRow('d_other_url', 't_1', { url: other }));
        await tasks.insertDelivery(deliveryRow('d_other_task', 't_2'));

        expect((await tasks.failedDeliveryAnswered('t_1', 'https://hooks.example.com/kling', 410))?.id).toBe('d_gone');
        expect(await tasks.failedDeliveryAnswered('t_1', other, 410)).toBeUndefined();
        expect(await tasks.failedDeliveryAnswered('t_2', 'https://hooks.example.com/kling', 410)).toBeUndefined();

        const ended = await tasks.settlePendingDeliveries('t_1', 'https://hooks.example.com/kling', T0, { status: 'failed', last_error: 'not sent', lease_owner: null, lease_until: null });
        expect(ended.map((row) => row.id).sort()).toEqual(['d_lease_ran_out', 'd_waiting']);
        const byId = new Map([...(await tasks.listDeliveries('t_1')), ...(await tasks.listDeliveries('t_2'))].map((row) => [row.id, row]));
        expect(byId.get('d_waiting')).toMatchObject({ status: 'failed', attempts: 1, last_status: 500, last_error: 'not sent', lease_owner: null });
        expect(byId.get('d_on_its_way')).toMatchObject({ status: 'pending', lease_owner: 'replica-b' });
        expect(byId.get('d_other_url')).toMatchObject({ status: 'pending' });
        expect(byId.get('d_other_task')).toMatchObject({ status: 'pending' });
        expect(await tasks.claimDueDeliveries(T0 + MINUTE, 'replica-a', 15_000, 10)).toHaveLength(2);
      });

      it("claimDueDeliveries leases of each tenant only its room, however many of one tenant's are due first", async () => {
        await tasks.createTask(taskRow('t_1'));
        for (let index = 0; index < 100; index++) {
          await tasks.insertDelivery(deliveryRow(`d_busy_${index}`, 't_1', { tenant: 'busy', next_attempt_at: T0 - 1_000 + 2 * index }));
        }
        await tasks.insertDelivery(deliveryRow('d_acme_early', 't_1', { next_attempt_at: T0 - 1_000 + 11 }));
        await tasks.insertDelivery(deliveryRow('d_acme_late', 't_1', { next_attempt_at: T0 }));
        const ids = (rows: readonly DeliveryRow[]) => rows.map((row) => row.id).sort();
        const busy = (from: number, to: number) => Array.from({ length: to - from }, (_, index) => `d_busy_${from + index}`);
        const claim = (onTheirWay: [string, number][]) => tasks.claimDueDeliveries(T0, 'replica-a', 15_000, 50, { perTenant: 10, onTheirWay: new Map(onTheirWay) });

        // Of the 50 earliest due, busy's first 10 and acme's one there.
        const first = await claim([]);
        expect(ids(first)).toEqual([...busy(0, 10), 'd_acme_early'].sort());
        // The rest of busy's backlog was not leased (so there is nothing to give back).
        const leased = (await tasks.listDeliveries('t_1')).filter((row) => row.lease_owner !== null);
        expect(ids(leased)).toEqual(ids(first));

        // busy at its share: passed over, and acme's later one is found behind its backlog.
        expect(ids(await claim([['busy', 10], ['acme', 1]]))).toEqual(['d_acme_late']);
        // Seven of busy's still on their way: three more of its earliest.
        expect(ids(await claim([['busy', 7]]))).toEqual(busy(10, 13).sort());
        expect(await claim([['busy', 10]])).toEqual([]);
      });

      it.skipIf(backend.name !== 'postgres')(
        "claimDueDeliveries leases the next due deliveries while another replica's claim holds the earliest",
        async () => {
          await tasks.createTask(taskRow('t_1'));
          for (let index = 1; index <= 6; index++) {
            await tasks.insertDelivery(deliveryRow(`d_${index}`, 't_1', { tenant: index % 2 === 0 ? 'acme' : 'globex', next_attempt_at: T0 - 10 + index }));
          }
          const ids = (rows: readonly DeliveryRow[]) => rows.map((row) => row.id).sort();
          // Another replica's claim, mid-statement: it holds the two earliest.
          const other = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${store.schema}` });
          await other.connect();
          try {
            await other.query('begin');
            await other.query(`select id from deliveries where id in ('d_1', 'd_2') for update`);
            expect(ids(await tasks.claimDueDeliveries(T0, 'replica-a', 15_000, 2))).toEqual(['d_3', 'd_4']);
            // So too while this replica has deliveries of a tenant on their way.
            const share = { perTenant: 10, onTheirWay: new Map([['acme', 1]]) };
            expect(ids(await tasks.claimDueDeliveries(T0, 'replica-a', 15_000, 2, share))).toEqual(['d_5', 'd_6']);
          } finally {
            await other.query('rollback');
            await other.end();
          }
        },
      );
    });

    describe('a slot taken in the create\'s own transaction', () => {
      const claim = (overrides: Partial<NewTaskClaim> = {}): NewTaskClaim => ({
        provider: 'freepik',
        account: 'default',
        cap: 1,
        owner: 'replica-a',
        leaseUntil: T0 + MINUTE,
        now: T0,
        providers: ['freepik'],
        admit: async () => true,
        attempt: { provider: 'freepik', account: 'default', outcome: 'sending', at: T0 },
        lockedAt: () => ({ now: T0, leaseUntil: T0 + MINUTE }),
        ...overrides,
      });

      it('writes the task in submitting under the lease with its first attempt sending, all or nothing', async () => {
        const outcome = await tasks.createTask(taskRow('t_first', { candidates: ',freepik,' }), undefined, undefined, claim());
        expect(outcome).toMatchObject({ created: true, first: { claimed: true, seq: 1 } });
        expect(outcome.created && outcome.task).toMatchObject({ phase: 'submitting', provider: 'freepik', account: 'default', lease_owner: 'replica-a', lease_until: T0 + MINUTE });
        expect((await tasks.getAttempts('t_first')).map((attempt) => [attempt.seq, attempt.outcome, attempt.account])).toEqual([[1, 'sending', 'default']]);
        // A failure later in the same transaction leaves neither the task nor its attempt.
        const failing = claim({ cap: 5, admit: async () => { throw new Error('boom'); } });
        await expect(tasks.createTask(taskRow('t_rolled_back'), undefined, undefined, failing)).rejects.toThrow('boom');
        expect(await tasks.getTask('t_rolled_back')).toBeUndefined();
        expect(await tasks.getAttempts('t_rolled_back')).toEqual([]);
      });

      it('creates the task queued, with no attempt, when the account is full, the call may not go now, or an older task waits', async () => {
        await tasks.createTask(taskRow('t_holder', { phase: 'tracking', provider: 'freepik', account: 'default' }));
        let asked = false;
        const full = await tasks.createTask(taskRow('t_full', { created_at: T0 + 1 }), undefined, undefined, claim({ admit: async () => (asked = true) }));
        expect(full).toMatchObject({ created: true, first: { claimed: false, why: 'full' } });
        // The rate windows are not asked (nor a call spent) for a slot that is not free.
        expect(asked).toBe(false);
        const refused = await tasks.createTask(taskRow('t_refused', { created_at: T0 + 2 }), undefined, undefined, claim({ cap: 5, admit: async () => false }));
        expect(refused).toMatchObject({ created: true, first: { claimed: false, why: 'refused' } });
        await tasks.createTask(taskRow('t_older', { created_at: T0 + 3, candidates: ',freepik,' }));
        const behind = await tasks.createTask(taskRow('t_behind', { created_at: T0 + 4 }), undefined, undefined, claim({ cap: 5 }));
        expect(behind).toMatchObject({ created: true, first: { claimed: false, why: 'queue' } });
        for (const id of ['t_full', 't_refused', 't_behind']) {
          expect((await tasks.getTask(id))?.phase).toBe('dispatch');
          expect(await tasks.getAttempts(id)).toEqual([]);
        }
      });

      it.skipIf(backend.name !== 'postgres')(
        'never closes a circle of waits with a slot claim and a status change: the provider is locked before the budget row',
        async () => {
          // A status change holds a task's row, then wants its budget's row; a slot claim holds the
          // provider's lock, then wants that task's row; a create wants the same provider and budget.
          await store.db.insertInto('budgets').values({ tenant: 'acme', period: '2026-01', spent_micros: 0, reserved_micros: 0, warned_at: null, exhausted_at: null, updated_at: T0 }).execute();
          await tasks.createTask(taskRow('t_queued', { candidates: ',kling3api,' }));
          const change = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${store.schema}` });
          await change.connect();
          try {
            await change.query('begin');
            await change.query(`update tasks set version = version + 1 where id = 't_queued'`);
            const claiming = tasks.claimSlot({ provider: 'freepik', account: 'default', cap: 5, owner: 'replica-b', leaseUntil: T0 + MINUTE, now: T0, taskId: 't_queued', fromPhases: ['dispatch'] });
            await waitingForRow('tasks');
            const reserve = async (trx: Kysely<Database>) => {
              await trx.updateTable('budgets').set((eb) => ({ reserved_micros: eb('reserved_micros', '+', 1) })).where('tenant', '=', 'acme').execute();
            };
            const creating = tasks.createTask(taskRow('t_new', { created_at: T0 + 1, candidates: ',freepik,' }), undefined, reserve, claim({ cap: 5 }));
            await waitingForRow('providers');
            await change.query(`update budgets set reserved_micros = reserved_micros + 2 where tenant = 'acme'`);
            await change.query('commit');
            expect(await claiming).toMatchObject({ id: 't_queued', phase: 'submitting', provider: 'freepik' });
            expect(await creating).toMatchObject({ created: true, first: { claimed: true, seq: 1 } });
            expect(await store.db.selectFrom('budgets').select('reserved_micros').executeTakeFirst()).toEqual({ reserved_micros: 3 });
          } finally {
            await change.end();
          }
        },
      );
    });

    describe('counts', () => {
      it('countByPhase counts unfinished tasks by phase and provider', async () => {
        await tasks.createTask(taskRow('t_q1'));
        await tasks.createTask(taskRow('t_q2'));
        await tasks.createTask(trackedRow('t_t1', T0));
        await tasks.createTask(taskRow('t_d', { phase: 'done', status: 'succeeded', provider: 'freepik' }));
        const counts = await tasks.countByPhase();
        expect(Object.fromEntries(counts)).toEqual({ 'dispatch::': 2, 'tracking:freepik:default': 1 });
        expect(typeof (await tasks.countInFlight('freepik', 'default'))).toBe('number');
      });
    });
  });
});

if (!pgAvailable && !requirePostgres) {
  // Say so once, so a skipped PostgreSQL run is visible in the output.
  console.warn(`task-store: PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, '//…@')} is unreachable; its suite is skipped.`);
}

describe('indexes on SQLite', () => {
  /** The plan SQLite picks for the store's own query (as `TaskStore` compiles it). */
  async function planOf(store: Store, query: { compile(): { sql: string; parameters: readonly unknown[] } }): Promise<string> {
    const compiled = query.compile();
    let next = 0;
    const literal = (value: unknown) => (typeof value === 'number' ? String(value) : `'${String(value)}'`);
    const inlined = compiled.sql.replace(/\?/g, () => literal(compiled.parameters[next++]));
    const rows = await sql<{ detail: string }>`explain query plan ${sql.raw(inlined)}`.execute(store.db);
    return rows.rows.map((row) => row.detail).join('; ');
  }

  it('finds cancel-due tasks through the queue\'s partial index (no index of their own) and indexes only tasks with a retention deadline', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const names = await sql<{ name: string }>`select name from sqlite_master where type = 'index' and tbl_name = 'tasks'`.execute(store.db);
      expect(names.rows.map((row) => row.name)).not.toContain('tasks_phase_cancel');
      // As `listCancelDue` asks: the queue's phase as the literal term of its partial index.
      const cancelDue = store.db.selectFrom('tasks').selectAll().where(sql<boolean>`phase = 'dispatch'`).where('cancel_at', '<=', 1);
      expect(await planOf(store, cancelDue)).toMatch(/SCAN tasks USING INDEX tasks_queue/);
      const queue = await sql<{ sql: string }>`select sql from sqlite_master where name = 'tasks_queue'`.execute(store.db);
      expect(queue.rows[0]?.sql).toMatch(/where phase = 'dispatch'/i);
      // Only tasks with a retention deadline are in its index.
      const retention = await sql<{ sql: string }>`select sql from sqlite_master where name = 'tasks_storage_expires'`.execute(store.db);
      expect(retention.rows[0]?.sql).toMatch(/where "storage_expires_at" is not null/i);
    } finally {
      await store.close();
    }
  });
});

describe('tasks in flight per account on SQLite (kept by triggers)', () => {
  const PHASES = ['dispatch', 'submitting', 'tracking', 'storing', 'done'] as const;
  /** What a slot claim used to count: the tasks holding a slot, per provider and account. */
  async function counted(store: Store): Promise<Record<string, number>> {
    const rows = await sql<{ provider: string; account: string; n: number }>`
      select provider, account, count(*) as n from tasks
      where phase in ('submitting', 'tracking') and provider is not null and account is not null
      group by provider, account`.execute(store.db);
    return Object.fromEntries(rows.rows.map((row) => [`${row.provider}/${row.account}`, Number(row.n)]));
  }
  async function kept(store: Store): Promise<Record<string, number>> {
    const rows = await store.db.selectFrom('account_in_flight').selectAll().where('tasks', '<>', 0).execute();
    return Object.fromEntries(rows.map((row) => [`${row.provider}/${row.account}`, Number(row.tasks)]));
  }

  it('match a count of the tasks after any sequence of inserts, changes of phase, provider or account, and deletes', async () => {
    const store = await openStore('sqlite::memory:');
    const tasks = new TaskStore(store);
    const provider = fc.constantFrom('freepik', 'kling3api', null);
    const account = fc.constantFrom('default', 'spare', null);
    const phase = fc.constantFrom(...PHASES);
    const step = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), phase, provider, account }),
      fc.record({ kind: fc.constant('update' as const), pick: fc.nat(), phase: fc.option(phase), provider: fc.option(provider), account: fc.option(account) }),
      fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
    );
    try {
      let next = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
          await store.db.deleteFrom('tasks').execute();
          await store.db.deleteFrom('account_in_flight').execute();
          for (const change of steps) {
            const ids = (await store.db.selectFrom('tasks').select('id').orderBy('id').execute()).map((row) => row.id);
            const target = 'pick' in change ? ids[change.pick % Math.max(1, ids.length)] : undefined;
            if (change.kind === 'insert') {
              const done = change.phase === 'done';
              await tasks.createTask(
                taskRow(`t_${next++}`, { phase: change.phase, status: done ? 'succeeded' : 'queued', provider: change.provider, account: change.account }),
              );
            } else if (change.kind === 'update' && target) {
              const set = {
                ...(change.phase !== null ? { phase: change.phase } : {}),
                ...(change.provider !== null ? { provider: change.provider } : {}),
                ...(change.account !== null ? { account: change.account } : {}),
              };
              // A change naming none of the three columns still rewrites another (as a status change does).
              await store.db.updateTable('tasks').set({ ...set, updated_at: T0 + next++ }).where('id', '=', target).execute();
            } else if (change.kind === 'delete' && target) {
              await store.db.deleteFrom('tasks').where('id', '=', target).execute();
            }
          }
          expect(await kept(store)).toEqual(await counted(store));
        }),
        { numRuns: 150 },
      );
    } finally {
      await store.close();
    }
  });

  it('are counted from the tasks already in flight when a database made before them is migrated', async () => {
    const { db: older, open } = await sqliteFileMigratedTo('0013_usage_at_risk');
    await older.insertInto('tasks').values([
      trackedRow('t_1', T0),
      trackedRow('t_2', T0, { phase: 'submitting' }),
      trackedRow('t_3', T0, { account: 'spare' }),
      trackedRow('t_4', T0, { provider: 'kling3api' }),
      taskRow('t_queued'),
      taskRow('t_done', { phase: 'done', status: 'succeeded', provider: 'freepik', account: 'default' }),
    ]).execute();
    await older.destroy();
    const store = await open();
    try {
      const tasks = new TaskStore(store);
      expect(await tasks.countInFlight('freepik', 'default')).toBe(2);
      expect(Object.fromEntries(await tasks.countInFlightByAccount('freepik'))).toEqual({ default: 2, spare: 1 });
      expect(await tasks.countInFlight('kling3api', 'default')).toBe(1);
      expect(await tasks.countInFlight('kling3api', 'spare')).toBe(0);
      // The triggers keep it from there: the task's end frees its slot.
      await store.db.updateTable('tasks').set({ phase: 'done', status: 'succeeded' }).where('id', '=', 't_1').execute();
      expect(await tasks.countInFlight('freepik', 'default')).toBe(1);
    } finally {
      await store.close();
    }
  });
});
