/**
 * The times the migration table records are the clock of whoever applied each migration (a
 * replica on another host, `kling-gateway migrate` in a container, a clock stepped back between
 * two migrations of one start). A database whose recorded times do not follow the migrations'
 * order is still the schema those migrations made: each start after the upgrade opens it.
 */
import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import { postgresSchemaMigratedTo, sqliteFileMigratedTo } from '../support/migrated-store.js';
import { postgresAvailable } from '../support/postgres.js';

const pgAvailable = await postgresAvailable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const BACKENDS = [
  { name: 'sqlite', skip: false, older: async (migration: string) => ({ ...(await sqliteFileMigratedTo(migration)), cleanup: async () => undefined }) },
  { name: 'postgres', skip: !pgAvailable, older: (migration: string) => postgresSchemaMigratedTo(migration) },
];

describe.each(BACKENDS)('migration times on $name', (backend) => {
  it.skipIf(backend.skip)('a schema migrated by a clock ahead of the one that applies the next migration opens at every start after', async () => {
    const older = await backend.older('0021_attempt_named_task');
    cleanups.push(older.cleanup);
    // The release before ran its migrations on a host whose clock was a day ahead.
    const ahead = new Date(Date.now() + 86_400_000).toISOString();
    await sql`update kysely_migration set timestamp = ${ahead}`.execute(older.db as Kysely<any>);
    await older.db.destroy();
    const all = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations());

    const upgrade: Store = await older.open();
    expect(upgrade.migrated).toEqual(all.slice(all.indexOf('0021_attempt_named_task') + 1));
    expect(upgrade.migrated?.[0]).toBe('0022_finished_task_index');
    await upgrade.close();
    // The next start (a restart, another replica) opens it, applying nothing.
    const restart = await older.open();
    try {
      expect(restart.migrated).toEqual([]);
      const recorded = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(restart.db);
      expect(recorded.rows.map((row) => row.name)).toEqual(all);
    } finally {
      await restart.close();
    }
  });
});
