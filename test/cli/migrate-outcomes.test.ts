/**
 * `kling-gateway migrate`'s exit code says what went wrong, whatever the database is called: a
 * database it cannot reach is "try again later" (9), a migration that failed or a schema a newer
 * release migrated is 1, each with nothing changed.
 */
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { runCliCaptured } from '../support/cli-run.js';
import { sqliteFileMigratedTo } from '../support/migrated-store.js';
import { REFUSED_PORT } from '../support/refused-port.js';

const migrate = (url: string) => runCliCaptured(['migrate', '--database-url', url], { env: {} });

describe('kling-gateway migrate: exit codes', { timeout: 30_000 }, () => {
  it('a database it cannot reach is "try again later" (9) also when its name says "migration"', async () => {
    for (const name of ['gateway', 'migration_test', 'migrations']) {
      const refused = await migrate(`postgres://gateway@127.0.0.1:${REFUSED_PORT}/${name}`);
      expect([refused.code, refused.stderr], name).toEqual([ExitCode.unreachable, expect.stringContaining('could not reach the database')]);
    }
  });

  it('a migration that fails (an index of that name already there) exits 1, names it, and applies none', async () => {
    const older = await sqliteFileMigratedTo('0016_usage_account');
    await sql`create index tasks_tenant_model on tasks (tenant)`.execute(older.db);
    await older.db.destroy();
    const failed = await migrate(`sqlite:${older.file}`);
    expect([failed.code, failed.stderr]).toEqual([ExitCode.unexpected, expect.stringContaining('database migration 0018_task_list_filters failed: index tasks_tenant_model already exists')]);
    const raw = new SqliteDatabase(older.file, { readonly: true });
    try {
      expect((raw.prepare('select name from kysely_migration order by name desc limit 1').get() as { name: string }).name).toBe('0016_usage_account');
    } finally {
      raw.close();
    }
  });

  it('a schema a newer release migrated exits 1 naming the migration it does not know', async () => {
    const newer = await sqliteFileMigratedTo('0022_finished_task_index');
    await sql`insert into kysely_migration (name, timestamp) values ('9000_of_a_newer_release', '2030-01-01T00:00:00.000Z')`.execute(newer.db);
    await newer.db.destroy();
    const refused = await migrate(`sqlite:${newer.file}`);
    expect([refused.code, refused.stderr]).toEqual([ExitCode.unexpected, expect.stringContaining('was migrated by a newer release of the gateway (migration 9000_of_a_newer_release')]);
  });
});

describe('kling-gateway migrate: what it says it applied', { timeout: 30_000 }, () => {
  it('"applied now" names only what this run applied, not migrations another process recorded with a clock ahead of this one', async () => {
    // A replica on another host (its clock a few minutes ahead of the operator's) migrated the
    // database up to 0021; this run applies the migrations after it only.
    const older = await sqliteFileMigratedTo('0021_attempt_named_task');
    const ahead = new Date(Date.now() + 5 * 60_000).toISOString();
    await sql`update kysely_migration set timestamp = ${ahead}`.execute(older.db);
    await older.db.destroy();
    const run = await runCliCaptured(['--json', 'migrate', '--database-url', `sqlite:${older.file}`], { env: {} });
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { migrations: { name: string; now: boolean }[] };
    const names = report.migrations.map((migration) => migration.name);
    const after = names.slice(names.indexOf('0021_attempt_named_task') + 1);
    expect(after[0]).toBe('0022_finished_task_index');
    expect(report.migrations.filter((migration) => migration.now).map((migration) => migration.name)).toEqual(after);
  });
});
