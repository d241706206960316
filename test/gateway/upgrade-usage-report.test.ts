/**
 * Usage reports read the same before and after an upgrade from a release before usage lines
 * (migration 0005 writes the lines of the tasks the database holds): tasks that succeeded, failed
 * before any provider accepted them, and were canceled while queued.
 */
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { postgresMigrateTo } from '../support/migrated-store.js';
import { dropSchema, newSchemaName, postgresAvailable, POSTGRES_URL } from '../support/postgres.js';

const pgAvailable = await postgresAvailable();
const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
});

/** A fresh database: its URL, and how to take its schema back to `migration`. */
const BACKENDS = [
  {
    name: 'sqlite',
    skip: false,
    database() {
      const url = tempDatabaseUrl();
      return {
        url,
        async rollBackTo(migration: string) {
          const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(url.slice('sqlite:'.length)) }) });
          const { error } = await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo(migration);
          await db.destroy();
          if (error) throw error;
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: !pgAvailable,
    database() {
      const schema = newSchemaName();
      cleanups.push(() => dropSchema(schema));
      const url = new URL(POSTGRES_URL);
      url.searchParams.set('schema', schema);
      return {
        url: url.toString(),
        async rollBackTo(migration: string) {
          const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 }) }) });
          try {
            await postgresMigrateTo(db, schema, migration);
          } finally {
            await db.destroy();
          }
        },
      };
    },
  },
];

describe.each(BACKENDS)('upgrading on $name from before usage lines', (backend) => {
it.skipIf(backend.skip)('a database from before usage lines reports its finished tasks as the release that ran them did', { timeout: 60_000 }, async () => {
  const database = backend.database();
  const config = { database: { url: database.url }, providers: { kling3api: { max_in_flight: 1 } } };
  const before = await startTestGateway({ config });
  open.push(before);
  const onKling3api = { model: 'kling-v3', prompt: 'a lighthouse', duration: 5, routing: { providers: ['kling3api'] } };
  // Refused by the provider (a 400): failed, no provider ever accepted it.
  before.simulator('kling3api').injectFault({ status: 400 });
  expect((await before.finish((await before.create(onKling3api)).body.id)).status).toBe('failed');
  // One succeeded; one canceled while it waited for the provider's one slot.
  const done = await before.create(onKling3api);
  const canceled = await before.create(onKling3api);
  expect(canceled.body.status).toBe('queued');
  const cancel = await before.request('POST', `/v1/videos/${canceled.body.id}/cancel`);
  expect([cancel.status, (await before.get(canceled.body.id)).body.status]).toEqual([200, 'canceled']);
  expect((await before.finish(done.body.id)).status).toBe('succeeded');
  const path = '/v1/usage?group_by=provider,account';
  const reported = (await before.request('GET', path)).body;
  await before.close();
  open.splice(0);

  // The schema of a release before usage lines: the current release starts on it.
  await database.rollBackTo('0004_cancel_and_custody');
  const after = await startTestGateway({ config, clock: before.clock, endpoints: before.endpoints, simulators: before.simulators });
  open.push(after);
  expect((await after.request("GET", path)).body.data).toEqual(reported.data);
});
});
