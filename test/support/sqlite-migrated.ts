/** A SQLite file as an older release left it: migrated only up to a given migration. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { openStore, type Store } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';

/** The file, a connection to it (destroy it before opening), and how the gateway opens it (migrating the rest). */
export async function sqliteFileMigratedTo(migration: string): Promise<{ file: string; db: Kysely<Database>; open: () => Promise<Store> }> {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-older-')), 'gateway.db');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
  const { error } = await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo(migration);
  if (error) throw error;
  return { file, db, open: () => openStore(`sqlite:${file}`) };
}
