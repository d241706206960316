/**
 * `output_ids`: which tenant's task made each result the provider names by id (what `video_id`
 * takes), on both engines, and the migration that notes the results tasks already hold.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';
import { TaskStore } from '../../src/store/task-store.js';
import { POSTGRES_URL, dropSchema, newSchemaName, postgresAvailable } from '../support/postgres.js';
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
      const file = join(mkdtempSync(join(tmpdir(), 'kg-output-ids-')), 'gateway.db');
      const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
      await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo(migration);
      return { db, open: () => openStore(`sqlite:${file}`), cleanup: async () => undefined };
    },
  },
  {
    name: 'postgres',
    skip: !pgAvailable,
    async migratedTo(migration) {
      const schema = newSchemaName();
      const setup = new pg.Client({ connectionString: POSTGRES_URL });
      await setup.connect();
      await setup.query(`CREATE SCHEMA ${schema}`);
      await setup.end();
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 });
      const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
      await new Migrator({ db, provider: new CodeMigrationProvider('postgres'), migrationTableSchema: schema }).migrateTo(migration);
      return { db, open: () => openStore(POSTGRES_URL, { schema }), cleanup: () => dropSchema(schema) };
    },
  },
];

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
      expect(await tasks.outputIdOfAnotherTenant('v-acme', 'other')).toBe(true);
      expect(await tasks.outputIdOfAnotherTenant('v-acme', 'acme')).toBe(false);
      expect(await tasks.outputIdOfAnotherTenant('v-other', 'acme')).toBe(true);
      expect(await tasks.outputIdOfAnotherTenant('v-unknown', 'acme')).toBe(false);

      await tasks.createTask(taskRow('t_new', { tenant: 'acme', provider: 'kling-legacy' }));
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v-new']);
      // Written again (a later write of the same outputs): kept as it was.
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v-new']);
      expect(await tasks.outputIdOfAnotherTenant('v-new', 'other')).toBe(true);
      expect(await tasks.outputIdOfAnotherTenant('v-new', 'acme')).toBe(false);

      // A provider id PostgreSQL cannot hold (a NUL) is not noted, and asking for one finds nothing.
      await tasks.recordOutputIds({ id: 't_new', tenant: 'acme', provider: 'kling-legacy' }, ['v\u0000nul', 'v-beside']);
      expect(await tasks.outputIdOfAnotherTenant('v\u0000nul', 'other')).toBe(false);
      expect(await tasks.outputIdOfAnotherTenant('v-beside', 'other')).toBe(true);
    } finally {
      await store.close();
      await older.cleanup();
    }
  });
});
