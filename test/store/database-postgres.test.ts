/**
 * The PostgreSQL store outlives a connection the server ends: an operator's
 * `pg_terminate_backend`, a restart or a failover ends idle pool connections, and the process must
 * go on (the pool opens a new connection for the next query) rather than die of the error.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { droppedElsewhere, isStoreUnreachable, openStore, type Store } from '../../src/store/database.js';
import { adminQuery, dropSchema, newSchemaName, openPostgresStore, POSTGRES_URL, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

async function terminate(pid: number): Promise<void> {
  await adminQuery('SELECT pg_terminate_backend($1)', [pid]);
}

describe.skipIf(!available)('PostgreSQL store', () => {
  const schema = newSchemaName();
  let store: Store | undefined;

  afterEach(async () => {
    await store?.close();
    store = undefined;
    await dropSchema(schema);
  });

  it('goes on after the server ends an idle pool connection, and tells whoever listens', async () => {
    const errors: string[] = [];
    store = await openPostgresStore(schema, { maxConnections: 1, onConnectionError: (error) => errors.push((error as Error).message) });
    const { rows } = await store.pool!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const idle = rows[0]!.pid;

    await terminate(idle);
    for (let tries = 0; errors.length === 0 && tries < 500; tries++) await new Promise((resolve) => setTimeout(resolve, 20));

    expect(errors).toEqual([expect.stringMatching(/terminating connection/)]);
    const after = await store.pool!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(after.rows[0]!.pid).not.toBe(idle);
  });

  it('goes on after the server ends a connection held between two queries of a transaction', async () => {
    const errors: string[] = [];
    store = await openPostgresStore(schema, { maxConnections: 2, onConnectionError: (error) => errors.push((error as Error).message) });
    const held = store.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx);
      // Between two queries (a transaction waiting on other work) the server ends it.
      await terminate(rows[0]!.pid);
      for (let tries = 0; errors.length === 0 && tries < 500; tries++) await new Promise((resolve) => setTimeout(resolve, 20));
      await sql`SELECT 1`.execute(trx);
    });

    await expect(held).rejects.toThrow();
    expect(errors).toEqual([expect.stringMatching(/terminating connection/)]);
    const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(store.db);
    expect(rows).toEqual([{ one: 1 }]);
  });

  // A replica stopped (SIGSTOP) inside a transaction keeps its connection: without this limit the
  // server kept the transaction and its locks (a provider's, every create's) until it resumed.
  it('has the server end a transaction left idle between statements for 5 s, as a process stopped in it leaves it', async () => {
    store = await openPostgresStore(schema, { maxConnections: 1 });
    const { rows } = await sql<{ limit: string }>`SELECT current_setting('idle_in_transaction_session_timeout') AS limit`.execute(store.db);
    expect(rows).toEqual([{ limit: '5s' }]);
  });

  // The process that resumes after the server ended its idle transaction tells its caller the
  // database could not be reached (a 503 with Retry-After), never a 500: whether the server's
  // 25P03 reaches it before the connection closes or not.
  it('takes the end of an idle transaction for the store unreachable, not a fault of the request', async () => {
    store = await openPostgresStore(schema, { maxConnections: 1, idleInTransactionTimeoutMs: 100 });
    const client = await store.pool!.connect();
    let error: unknown;
    try {
      await client.query('BEGIN');
      await new Promise((resolve) => setTimeout(resolve, 600));
      await client.query('SELECT 1').catch((caught: unknown) => {
        error = caught;
      });
    } finally {
      client.release(true);
    }
    expect(error).toBeInstanceOf(Error);
    expect(isStoreUnreachable(error)).toBe(true);
    expect(isStoreUnreachable(Object.assign(new Error('terminating connection due to idle-in-transaction timeout'), { code: '25P03', severity: 'FATAL' }))).toBe(true);
  });

  // A failover that leaves the old primary up as a standby (or read-only) keeps the pool's
  // connections on it: under load none is idle long enough to be closed, so every write failed
  // with 25006 for as long as the process ran. Now the connection that heard it is not reused.
  it('opens a new connection after one whose server took no writes (25006), instead of reusing it', async () => {
    store = await openPostgresStore(schema, { maxConnections: 1 });
    const db = store.db;
    // The one connection's session becomes read-only, as on a server demoted under it.
    await sql`SET SESSION default_transaction_read_only = on`.execute(db);
    const before = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db)).rows[0]!.pid;
    await expect(sql`CREATE TABLE read_only_probe (id int)`.execute(db)).rejects.toMatchObject({ code: '25006' });
    await sql`CREATE TABLE read_only_probe (id int)`.execute(db);
    const after = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db)).rows[0]!.pid;
    expect(after).not.toBe(before);
  });

  it('starts while another replica creates the same schema at that very moment', async () => {
    // The other replica's CREATE SCHEMA is held open, so this one's runs into it: PostgreSQL then
    // answers a duplicate key although both said IF NOT EXISTS.
    const other = new pg.Client({ connectionString: POSTGRES_URL });
    await other.connect();
    try {
      const blocker = (await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await other.query('BEGIN');
      await other.query(`CREATE SCHEMA ${schema}`);
      const opening = openStore(`${POSTGRES_URL}?schema=${schema}`);
      await waitForBlockedQuery('CREATE SCHEMA IF NOT EXISTS', blocker);
      await other.query('COMMIT');
      store = await opening;
    } finally {
      await other.end();
    }
    const { rows } = await store.pool!.query<{ tasks: string }>('SELECT count(*) AS tasks FROM tasks');
    expect(rows).toEqual([{ tasks: 0 }]);
  });

  it("migrates a URL without ?schema= into its own default schema while another schema holds the gateway's tables", async () => {
    // A second deployment (or a test run) keeps its tables in a schema of its own in the same
    // database. The URL names no schema: the tables go where the connection's search_path says
    // (set here through the URL's options, as a database's default schema would be).
    const other = await openPostgresStore(`${schema}_other`);
    await other.close();
    await adminQuery(`CREATE SCHEMA ${schema}`);
    try {
      const url = `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      const opened = await Promise.allSettled([openStore(url), openStore(url), openStore(url)]);
      for (const result of opened) if (result.status === 'fulfilled') await result.value.close();
      expect(opened.map((result) => (result.status === 'rejected' ? String(result.reason) : 'started'))).toEqual(['started', 'started', 'started']);
      store = await openStore(url);
      const { rows } = await store.pool!.query<{ tasks: string }>(`SELECT count(*) AS tasks FROM ${schema}.tasks`);
      expect(rows).toEqual([{ tasks: 0 }]);
    } finally {
      await dropSchema(`${schema}_other`);
    }
  });
});

/**
 * Waits until a query starting with `start` waits for a lock the backend `blocker` holds (watched
 * from a connection of its own: a transaction sees one snapshot of pg_stat_activity). Only that
 * backend's waiters count: the test files running beside this one start gateways on the same
 * server, whose own CREATE SCHEMA IF NOT EXISTS may wait for locks of theirs.
 */
async function waitForBlockedQuery(start: string, blocker: number): Promise<void> {
  const watcher = new pg.Client({ connectionString: POSTGRES_URL });
  await watcher.connect();
  try {
    for (let tries = 0; tries < 1_000; tries++) {
      const { rows } = await watcher.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND $2 = ANY(pg_blocking_pids(pid))", [`${start}%`, blocker]);
      if (rows.length > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no query ${start} waited`);
  } finally {
    await watcher.end();
  }
}

describe('a PostgreSQL server the gateway cannot reach', () => {
  it('stops the start saying it could not reach which database, not that a migration failed, and without the password', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const refused = await openStore('postgres://gateway:SuperSecretPass99@127.0.0.1:1/gateway').then(
      () => undefined,
      (error: unknown) => (error as Error).message,
    );
    expect(refused).toMatch(/^could not reach the database postgres:\/\/127\.0\.0\.1:1\/gateway: .*ECONNREFUSED/);
    expect(refused).not.toContain('SuperSecretPass99');
  });

  it('gives up on a server that takes the connection but never answers, in its own schema or the default one', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      const outcomes = await Promise.all(
        [`postgres://127.0.0.1:${port}/gateway`, `postgres://127.0.0.1:${port}/gateway?schema=gw`].map((url) =>
          openStore(url, { connectTimeoutMs: 300 }).then(
            () => 'opened',
            (error: unknown) => (error as Error).message,
          ),
        ),
      );
      expect(outcomes).toEqual([
        expect.stringMatching(new RegExp(`^could not reach the database postgres://127\\.0\\.0\\.1:${port}/gateway: .*timeout`, 'i')),
        expect.stringMatching(new RegExp(`^could not reach the database postgres://127\\.0\\.0\\.1:${port}/gateway \\(schema gw\\): timeout`)),
      ]);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('the migrator tried again after a catalogue read that raced another process', () => {
  const pgError = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  it('tries again when a schema, table or column named by the read was dropped or altered elsewhere before any migration ran', () => {
    expect(droppedElsewhere(pgError('schema "kg_test_other" does not exist', '3F000'), 'kg_test_mine', undefined)).toBe(true);
    // Seen with two test files migrating side by side: pg_get_serial_sequence on another schema's table.
    expect(droppedElsewhere(pgError('column "webhook_url" of relation "tasks" does not exist', '42703'), 'kg_test_mine', undefined)).toBe(true);
    expect(droppedElsewhere(pgError('relation "kg_test_other.tasks" does not exist', '42P01'), 'kg_test_mine', undefined)).toBe(true);
    expect(droppedElsewhere(pgError('could not open relation with OID 16384', 'XX000'), 'kg_test_mine', undefined)).toBe(true);
  });

  it('does not when its own schema is missing, when a migration ran and failed, or for any other error', () => {
    expect(droppedElsewhere(pgError('schema "kg_test_mine" does not exist', '3F000'), 'kg_test_mine', undefined)).toBe(false);
    expect(droppedElsewhere(pgError('column "webhook_url" of relation "tasks" does not exist', '42703'), 'kg_test_mine', [{ status: 'Error' }])).toBe(false);
    expect(droppedElsewhere(pgError('permission denied for schema kg_test_mine', '42501'), 'kg_test_mine', undefined)).toBe(false);
  });
});
