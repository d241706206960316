/**
 * PostgreSQL for tests: a fresh schema per suite on the server named by TEST_DATABASE_URL
 * (default: the local trust-auth server). Outside CI the PostgreSQL suites skip when no server
 * answers; in CI (`CI=true`) an unreachable server fails them.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { openStore, type OpenStoreOptions, type Store } from '../../src/store/database.js';
import type { TaskStore } from '../../src/store/task-store.js';

export const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Whether the server answers (checked once per process). */
export async function postgresAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    if (process.env.CI === 'true') {
      throw new Error(`PostgreSQL is required in CI but ${POSTGRES_URL} did not answer: ${(error as Error).message}`);
    }
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function newSchemaName(): string {
  return `kg_test_${randomBytes(6).toString('hex')}`;
}

/** Options of a test's store: `url` reaches the same server another way (through a relay a test can break). */
export type PostgresStoreOptions = Omit<OpenStoreOptions, 'schema'> & { url?: string };

export async function openPostgresStore(schema: string, { url = POSTGRES_URL, ...options }: PostgresStoreOptions = {}): Promise<Store> {
  return openStore(url, { ...options, schema });
}

/** Runs one statement on a connection of its own (the tests' administration: schemas, terminated backends, checks), closed after it. */
export async function adminQuery<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<Row>> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await client.query<Row>(text, values);
  } finally {
    await client.end();
  }
}

/**
 * Ends, from the server side, the listening connections of `channels` (a replica's LISTEN/NOTIFY
 * connection each), found by their backend's pid; how many it ended. Not by the query
 * pg_stat_activity shows: that is the connection's LISTEN only until its first heartbeat
 * (`SELECT 1`, 10 s on), which a loaded machine reaches before the test does.
 */
export async function endListeningConnections(...channels: (object | undefined)[]): Promise<number> {
  const pids = channels.flatMap((channel) => {
    const pid = (channel as { client?: { processID?: number | null } } | undefined)?.client?.processID;
    return typeof pid === 'number' ? [pid] : [];
  });
  const ended = await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
  return ended.rowCount ?? 0;
}

export async function dropSchema(schema: string): Promise<void> {
  await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/**
 * The two engines a store test runs on: SQLite in memory, and a PostgreSQL schema of its own
 * (skipped when no server answers; dropped by `cleanup`).
 */
export async function storeBackends() {
  const available = await postgresAvailable();
  const schema = newSchemaName();
  return [
    { name: 'sqlite', skip: false, open: () => openStore('sqlite::memory:'), cleanup: async () => undefined },
    { name: 'postgres', skip: !available, open: () => openPostgresStore(schema), cleanup: () => dropSchema(schema) },
  ] as const;
}

/**
 * Opens `backend`'s store before the tests of the enclosing describe, handing it to `opened`,
 * and closes it (dropping its PostgreSQL schema) after them.
 */
export function storeForTests(backend: { open(): Promise<Store>; cleanup(): Promise<void> }, opened: (store: Store) => void): void {
  let store: Store | undefined;
  beforeAll(async () => {
    store = await backend.open();
    opened(store);
  });
  afterAll(async () => {
    await store?.close();
    await backend.cleanup();
  });
}

/** Empties every table a task writes, and registers Freepik and kling3api again: a store as a new gateway finds it. */
export async function clearTaskStore(store: Store, tasks: TaskStore): Promise<void> {
  for (const table of ['deliveries', 'attempts', 'idempotency_keys', 'inbound_webhooks', 'tasks', 'providers', 'tenant_turns'] as const) {
    await store.db.deleteFrom(table).execute();
  }
  await tasks.registerProviders(['freepik', 'kling3api']);
}
