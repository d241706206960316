/** A database as an older release left it: migrated only up to a given migration (a SQLite file, a PostgreSQL schema). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';
import { dropSchema, newSchemaName, POSTGRES_URL } from './postgres.js';

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
  const setup = new pg.Client({ connectionString: POSTGRES_URL });
  await setup.connect();
  await setup.query(`CREATE SCHEMA ${schema}`);
  await setup.end();
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const { error } = await new Migrator({ db, provider: new CodeMigrationProvider('postgres'), migrationTableSchema: schema }).migrateTo(migration);
  if (error) throw error;
  return { db, open: () => openStore(POSTGRES_URL, { schema }), cleanup: () => dropSchema(schema) };
}
