/** A database as an older release left it: migrated only up to a given migration (a SQLite file, a PostgreSQL schema). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { droppedElsewhere, openStore, type Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';
import { adminQuery, dropSchema, newSchemaName, POSTGRES_URL } from './postgres.js';

/** The file, a connection to it (destroy it before opening), and how the gateway opens it (migrating the rest). */
export async function sqliteFileMigratedTo(migration: string): Promise<{ file: string; db: Kysely<Database>; open: () => Promise<Store> }> {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-older-')), 'gateway.db');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
  const { error } = await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo(migration);
  if (error) throw error;
  return { file, db, open: () => openStore(`sqlite:${file}`) };
}

/** The same on PostgreSQL: a fresh schema migrated up to `migration`, how the gateway opens it, and its removal. */
export async function postgresSchemaMigratedTo(migration: string): Promise<{ db: Kysely<Database>; open: () => Promise<Store>; cleanup: () => Promise<void> }> {
  const schema = newSchemaName();
  await adminQuery(`CREATE SCHEMA ${schema}`);
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await postgresMigrateTo(db, schema, migration);
  return { db, open: () => openStore(POSTGRES_URL, { schema }), cleanup: () => dropSchema(schema) };
}

/**
 * Migrates `schema` up to `migration`, as the gateway's own start does: Kysely's migrator reads the
 * catalogue of every schema, and another test file dropping its schema at that moment fails the
 * read (not the migration, which has not run), so that read is tried again.
 */
export async function postgresMigrateTo(db: Kysely<any>, schema: string, migration: string): Promise<void> {
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider('postgres'), migrationTableSchema: schema });
  let { error, results } = await migrator.migrateTo(migration);
  for (let round = 1; error && round < 5 && droppedElsewhere(error, schema, results); round++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * round));
    ({ error, results } = await migrator.migrateTo(migration));
  }
  if (error) throw error;
}
