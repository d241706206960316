/**
 * `output_ids`: which tenant's task made each result the provider names by id (what `video_id`
 * takes), on both engines, and the migration that notes the results tasks already hold.
 */
import { randomBytes } from 'node:crypto';
import { Kysely, Migrator, sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { CreateVideoRequest, VIDEO_ID_MAX_LENGTH } from '../../src/core/model/canonical.js';
import { openStore, type Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import { NOTED_OUTPUT_ID_MAX_LENGTH, type Database } from '../../src/store/schema.js';
import { TaskStore } from '../../src/store/task-store.js';
import { postgresAvailable } from '../support/postgres.js';
import { postgresSchemaMigratedTo, sqliteFileMigratedTo } from '../support/migrated-store.js';
import { taskRow } from '../support/task-rows.js';

const pgAvailable = await postgresAvailable();

interface Backend {
  name: string;
  skip: boolean;
  /** A database migrated only up to `migration`, and a way to open it as the gateway does. */
  migratedTo(migration: string): Promise<{ db: Kysely<Database>; open: () => Promise<Store>; cleanup: () => Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async migratedTo(migration) {
      const { db, open } = await sqliteFileMigratedTo(migration);
      return { db, open, cleanup: async () => undefined };
    },
  },
  {
    name: 'postgres',
    skip: !pgAvailable,
    migratedTo: postgresSchemaMigratedTo,
  },
];

/** Whether a task of a tenant other than `tenant` made the result with this provider id. */
async function ofAnotherTenant(tasks: TaskStore, upstreamId: string, tenant: string): Promise<boolean> {
  return (await tasks.outputIdMaker(upstreamId, tenant))?.another_tenant === true;
}

const output = (upstreamId: string | null) => ({ type: 'video', upstreamUrl: 'https://cdn.example.com/v.mp4', upstreamId, storage: 'passthrough' });

describe.each(BACKENDS)('output ids on $name', (backend) => {
  it.skipIf(backend.skip)("notes the results tasks held before the table existed, and tells another tenant's from one's own", async () => {
    const older = await backend.migratedTo('0013_usage_at_risk');
    await older.db
      .insertInto('tasks')
      .values([
        taskRow('t_made', { tenant: 'acme', provider: 'kling-legacy', status: 'succeeded', phase: 'done', outputs_json: JSON.stringify([output('v-acme'), output(null)]) }),
        taskRow('t_other', { tenant: 'other', provider: 'kling-legacy', status: 'succeeded', phase: 'done', outputs_json: JSON.stringify([output('v-other')]) }),
        taskRow('t_none', { tenant: 'acme', provider: 'freepik', status: 'succeeded', phase: 'done', outputs_json: JSON.stringify([output(null)]) }),
      ])
      .execute();
    await older.db.destroy();
    const store = await older.open();
    try {
      const tasks = new TaskStore(store);
      expect(await ofAnotherTenant(tasks, 'v-acme', 'other')).toBe(true);
      expect(await ofAnotherTenant(tasks, 'v-acme', 'acme')).toBe(false);
      expect(await ofAnotherTenant(tasks, 'v-other', 'acme')).toBe(true);
      expect(await ofAnotherTenant(tasks, 'v-unknown', 'acme')).toBe(false);

      await tasks.createTask(taskRow('t_new', { tenant: 'acme', provider: 'kling-legacy' }));
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v-new']);
      // Written again (a later write of the same outputs): kept as it was.
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v-new']);
      expect(await ofAnotherTenant(tasks, 'v-new', 'other')).toBe(true);
      expect(await ofAnotherTenant(tasks, 'v-new', 'acme')).toBe(false);

      // A provider id PostgreSQL cannot hold (a NUL) is not noted, and asking for one finds nothing.
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v\u0000nul', 'v-beside']);
      expect(await ofAnotherTenant(tasks, 'v\u0000nul', 'other')).toBe(false);
      expect(await ofAnotherTenant(tasks, 'v-beside', 'other')).toBe(true);
    } finally {
      await store.close();
      await older.cleanup();
    }
  });
});

describe.each(BACKENDS)('a provider id longer than any video_id, on $name', (backend) => {
  it.skipIf(backend.skip)('is not noted, so neither the migration nor the outputs written with it fail (past what a PostgreSQL index holds)', async () => {
    // Random, so that no compression brings it under the index's limit of about 2,700 bytes.
    const long = randomBytes(2_000).toString('hex');
    const older = await backend.migratedTo('0014_account_in_flight_counts');
    await older.db
      .insertInto('tasks')
      .values(taskRow('t_old', { tenant: 'acme', provider: 'kling-legacy', status: 'succeeded', phase: 'done', outputs_json: JSON.stringify([output(long), output('v-old')]) }))
      .execute();
    await older.db.destroy();
    const store = await older.open();
    try {
      const tasks = new TaskStore(store);
      expect(await ofAnotherTenant(tasks, 'v-old', 'other')).toBe(true);
      await tasks.createTask(taskRow('t_long', { tenant: 'acme', provider: 'kling-legacy' }));
      await tasks.recordOutputIds({ id: 't_long', tenant: 'acme', provider: 'kling-legacy' }, [long, 'v-short']);
      expect(await ofAnotherTenant(tasks, 'v-short', 'other')).toBe(true);
    } finally {
      await store.close();
      await older.cleanup();
    }
  });
});

describe('the longest video_id', () => {
  it('that a request may name is noted and found; one longer is refused by the request and never noted', async () => {
    // The store's limit and the request's are one number, each side written where its layer keeps it.
    expect(NOTED_OUTPUT_ID_MAX_LENGTH).toBe(VIDEO_ID_MAX_LENGTH);
    const longest = 'v'.repeat(VIDEO_ID_MAX_LENGTH);
    const lipSync = { model: 'kling-v1-6', lip_sync: { text: 'hello', voice_id: 'v' } };
    expect(CreateVideoRequest.safeParse({ ...lipSync, video_id: longest }).success).toBe(true);
    expect(CreateVideoRequest.safeParse({ ...lipSync, video_id: `${longest}v` }).success).toBe(false);
    const { db, open } = await sqliteFileMigratedTo('0015_output_ids');
    await db.destroy();
    const store = await open();
    try {
      const tasks = new TaskStore(store);
      await tasks.createTask(taskRow('t_long', { tenant: 'acme', provider: 'kling-legacy', account: 'default' }));
      await tasks.recordOutputIds({ id: 't_long', tenant: 'acme', provider: 'kling-legacy' }, [longest, `${longest}v`]);
      expect(await tasks.outputIdMaker(longest, 'other')).toEqual({ another_tenant: true });
      expect(await store.db.selectFrom('output_ids').select('upstream_id').execute()).toEqual([{ upstream_id: longest }]);
    } finally {
      await store.close();
    }
  });
});

describe('a start stopped in the middle of migrations 0014 and 0015 on SQLite', () => {
  // Releases before a start's migrations ran in one transaction on SQLite ran them statement by
  // statement: a gateway of such a release killed during one (a supervisor's start timeout during
  // 0015's pass over every task) left its first tables behind, unrecorded, and the next start
  // runs the migration again.
  async function olderFile() {
    const { file, db } = await sqliteFileMigratedTo('0013_usage_at_risk');
    await db
      .insertInto('tasks')
      .values([
        taskRow('t_flying', { tenant: 'acme', provider: 'kling-legacy', account: 'default', phase: 'tracking', status: 'processing' }),
        taskRow('t_made', { tenant: 'acme', provider: 'kling-legacy', account: 'default', status: 'succeeded', phase: 'done', outputs_json: JSON.stringify([output('v-acme')]) }),
      ])
      .execute();
    return { file, db };
  }

  it('starts when 0014 was stopped after its table was made and counted', async () => {
    const { file, db } = await olderFile();
    await sql`create table account_in_flight (provider text not null, account text not null, tasks integer not null, primary key (provider, account)) without rowid`.execute(db);
    await sql`insert into account_in_flight (provider, account, tasks) values ('kling-legacy', 'default', 1)`.execute(db);
    await db.destroy();
    const store = await openStore(`sqlite:${file}`);
    try {
      const tasks = new TaskStore(store);
      expect(await tasks.countInFlight('kling-legacy', 'default')).toBe(1);
      // The triggers are there: the task's end frees its slot.
      await store.db.updateTable('tasks').set({ phase: 'done', status: 'succeeded' }).where('id', '=', 't_flying').execute();
      expect(await tasks.countInFlight('kling-legacy', 'default')).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('starts when 0015 was stopped during its pass over the tasks, and notes every result', async () => {
    const { file, db } = await olderFile();
    await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo('0014_account_in_flight_counts');
    await db.schema
      .createTable('output_ids')
      .addColumn('upstream_id', 'text', (c) => c.notNull())
      .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('output_ids_pk', ['upstream_id', 'task_id'])
      .execute();
    await db.destroy();
    const store = await openStore(`sqlite:${file}`);
    try {
      expect(await ofAnotherTenant(new TaskStore(store), 'v-acme', 'other')).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe.each(BACKENDS)('where a video_id was made, on $name', (backend) => {
  it.skipIf(backend.skip)("names the provider and account of this tenant's newest task that made it, another tenant's as such, and nothing for an unknown id", async () => {
    const migrated = await backend.migratedTo('0015_output_ids');
    await migrated.db.destroy();
    const store = await migrated.open();
    try {
      const tasks = new TaskStore(store);
      await tasks.createTask(taskRow('t_east', { tenant: 'acme', provider: 'kling-legacy', account: 'east', created_at: 1_000 }));
      await tasks.createTask(taskRow('t_west', { tenant: 'acme', provider: 'kling-legacy', account: 'west', created_at: 2_000 }));
      await tasks.createTask(taskRow('t_other', { tenant: 'other', provider: 'kling-legacy', account: 'east', created_at: 3_000 }));
      await tasks.recordOutputIds({ id: 't_east', tenant: 'acme', provider: 'kling-legacy' }, ['v-east', 'v-both']);
      await tasks.recordOutputIds({ id: 't_west', tenant: 'acme', provider: 'kling-legacy' }, ['v-both']);
      await tasks.recordOutputIds({ id: 't_other', tenant: 'other', provider: 'kling-legacy' }, ['v-other', 'v-shared']);
      await tasks.recordOutputIds({ id: 't_west', tenant: 'acme', provider: 'kling-legacy' }, ['v-shared']);
      const own = (task_id: string, account: string) => ({ another_tenant: false, task_id, provider: 'kling-legacy', account });
      expect(await tasks.outputIdMaker('v-east', 'acme')).toEqual(own('t_east', 'east'));
      expect(await tasks.outputIdMaker('v-both', 'acme')).toEqual(own('t_west', 'west'));
      expect(await tasks.outputIdMaker('v-other', 'acme')).toEqual({ another_tenant: true });
      // Made by another tenant's task too: that decides, whatever this tenant's tasks made.
      expect(await tasks.outputIdMaker('v-shared', 'acme')).toEqual({ another_tenant: true });
      expect(await tasks.outputIdMaker('v-other', 'other')).toEqual({ another_tenant: false, task_id: 't_other', provider: 'kling-legacy', account: 'east' });
      expect(await tasks.outputIdMaker('v-unknown', 'acme')).toBeUndefined();
      expect(await tasks.outputIdMaker('v\u0000nul', 'acme')).toBeUndefined();
    } finally {
      await store.close();
      await migrated.cleanup();
    }
  });
});
