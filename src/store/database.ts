/**
 * One query layer (Kysely) over two engines: SQLite through better-sqlite3 in WAL mode as the
 * embedded default, PostgreSQL through `pg` for replicas that share one database. The URL in
 * config picks the engine; nothing above this file knows which it is, except where a statement
 * needs row locks (`dialect === 'postgres'`).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { registerDirectReader } from './compiled-query.js';
import { parseDatabaseUrl } from './database-url.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  sql,
  type SqliteDialectConfig,
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect as KyselyDialect,
  type Driver,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { CodeMigrationProvider } from './migrations.js';
import { PostgresNotificationChannel } from './notification-channel.js';
import type { Database, Dialect } from './schema.js';

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** Where it is, without credentials (for logs). */
  description: string;
  /** The PostgreSQL schema its tables are in, when not the default. */
  schema?: string;
  /**
   * Whether other processes may use this store at the same time: always for PostgreSQL (replicas);
   * for a SQLite file only when opened for several workers (`sharedByProcesses`). Whoever shares
   * keeps leases, circuits and rate windows in the store rather than in memory.
   */
  shared: boolean;
  /**
   * The migrations this open applied, oldest first (empty when the schema was current): what an
   * upgrade did to the database, for the start to log.
   */
  migrated?: readonly string[];
  /** The connection pool under `db` (PostgreSQL only), for libraries that keep rows of their own. */
  pool?: pg.Pool;
  /**
   * A LISTEN/NOTIFY channel between the replicas sharing this database (PostgreSQL only; a SQLite
   * file has one process). Not started: call `start()`.
   */
  openNotificationChannel?(onError?: (error: unknown, what: string) => void): PostgresNotificationChannel;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** PostgreSQL schema to use (created when missing); tests use one per run. */
  schema?: string;
  /** Pool size for PostgreSQL. */
  maxConnections?: number;
  /**
   * How long a PostgreSQL query waits for a connection (a new one to be made, or one of a full
   * pool to come back) before it fails as the store being unreachable: 10 s by default.
   */
  connectTimeoutMs?: number;
  /** A SQLite file other processes (the gateway's `WORKERS`) use at the same time. */
  sharedByProcesses?: boolean;
  /**
   * Checkpoint a SQLite file's write-ahead log from a thread of its own (`sqlite-checkpointer.ts`)
   * rather than inside commits; on by default. Off, SQLite checkpoints as it does by default.
   */
  backgroundCheckpoints?: boolean;
  /**
   * Told when the background checkpoint thread fails (`what`: "sqlite checkpoints"; SQLite then
   * checkpoints as by default), or when its rounds start failing ("sqlite checkpoint rounds", a
   * full disk; the thread goes on).
   */
  onBackgroundError?: (error: unknown, what: string) => void;
  /** Told when the background checkpoint rounds succeed again after failing ones. */
  onBackgroundResumed?: (what: string) => void;
  /**
   * How long PostgreSQL lets one of this pool's transactions sit idle between two statements
   * before it ends the connection, rolling the transaction back and releasing its locks
   * (`idle_in_transaction_session_timeout`): 5 s by default.
   */
  idleInTransactionTimeoutMs?: number;
  /**
   * Told when PostgreSQL ends a pool connection (a restart, `pg_terminate_backend`): the pool drops
   * it and opens another for the next query.
   */
  onConnectionError?: (error: unknown) => void;
  /**
   * Told the migrations this open is about to apply (none: the schema is current), before any
   * runs; throwing stops the open with nothing applied (`kling-gateway migrate` refuses to migrate
   * a SQLite file a running gateway uses).
   */
  beforeMigrating?: (pending: readonly string[]) => void | Promise<void>;
}

const PG_INT8 = 20;
/** Longest a pool connection's transaction may sit idle between statements (`OpenStoreOptions.idleInTransactionTimeoutMs`). */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 5_000;
const PG_UNIQUE_VIOLATION = '23505';
const PG_UNDEFINED_TABLE = '42P01';
const PG_UNDEFINED_COLUMN = '42703';

function describePostgres(url: string): string {
  try {
    const parsed = new URL(url);
    return `postgres://${parsed.host}${parsed.pathname}`;
  } catch {
    return 'postgres';
  }
}

/** Takes `schema` out of a PostgreSQL URL's query. */
function splitSchema(url: string): { url: string; schema?: string } {
  try {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema');
    if (!schema) return { url };
    parsed.searchParams.delete('schema');
    return { url: parsed.toString(), schema };
  } catch {
    return { url };
  }
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const { dialect, location } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') {
    const inMemory = location === ':memory:';
    if (!inMemory) mkdirSync(dirname(resolve(location)), { recursive: true });
    const sqlite = new SqliteDatabase(location);
    if (!inMemory) sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    // Shared by worker processes: a lock another process holds is waited for here, without
    // blocking the event loop (`TurnTakingDriver`), not in SQLite's busy handler, which sleeps
    // the whole process with growing pauses (up to 100 ms each) and starves under contention.
    const shared = !inMemory && options.sharedByProcesses === true;
    sqlite.pragma(`busy_timeout = ${shared ? 0 : 5000}`);
    // Statement journals and sorts in memory: on disk, each was a temp file opened, written and
    // unlinked (about one every other create).
    sqlite.pragma('temp_store = MEMORY');
    const { onBackgroundError } = options;
    const checkpointer =
      !inMemory && options.backgroundCheckpoints !== false
        ? startCheckpointer(
            sqlite,
            resolve(location),
            onBackgroundError
              ? {
                  onError: (error) => onBackgroundError(error, 'sqlite checkpoints'),
                  onRoundsFailing: (error) => onBackgroundError(error, 'sqlite checkpoint rounds'),
                  ...(options.onBackgroundResumed ? { onRoundsResumed: () => options.onBackgroundResumed?.('sqlite checkpoint rounds') } : {}),
                }
              : {},
          )
        : undefined;
    const statements = withStatementCache(sqlite);
    const engine = new TransactionalDdlSqliteDialect({ database: statements }, sqlite);
    const db = new Kysely<Database>({ dialect: shared ? new TurnTakingSqliteDialect(engine, sqlite) : engine });
    // Hot reads outside transactions skip Kysely's connection hand-off (see `compiled-query.ts`).
    // Shared by processes, only true reads do: a write (an `UPDATE … RETURNING`) may find another
    // process holding the lock, and must then wait its turn in the driver instead of failing.
    registerDirectReader(db, (text, parameters) => {
      if (sqlite.inTransaction) return undefined;
      const statement = statements.prepare(text);
      return statement.reader && (statement.readonly || !shared) ? statement.all(parameters) : undefined;
    });
    const store: Store = {
      db,
      dialect,
      shared,
      description: inMemory ? 'sqlite (in memory)' : `sqlite:${location}`,
      close: async () => {
        // The thread's connection first: closed last, the gateway's folds the log in and removes it.
        await checkpointer?.stop();
        await db.destroy();
      },
    };
    await migrateOrClose(store, options.beforeMigrating);
    return store;
  }

  // `?schema=name` in the URL puts the gateway's tables in their own schema.
  const { url: connectionUrl, schema: urlSchema } = splitSchema(location);
  // A server that takes the connection but never answers (a host gone mid-failover, a dropped
  // route) would otherwise hold the start, and every request after it, for as long as TCP tries.
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const schema = options.schema ?? urlSchema;
  if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  if (schema) {
    const setup = new pg.Client({ connectionString: connectionUrl, connectionTimeoutMillis: connectTimeoutMs });
    await setup.connect().catch((error: unknown) => {
      throw notOpened({ description: `${describePostgres(connectionUrl)} (schema ${schema})` }, error);
    });
    try {
      await setup.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch((error: unknown) => {
        // Two replicas creating it at the same moment: the second is told of a duplicate key
        // (IF NOT EXISTS notwithstanding); the schema is there, which is all this wanted.
        if ((error as { code?: string }).code !== PG_UNIQUE_VIOLATION) throw error;
      });
    } finally {
      await setup.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: connectionUrl,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: connectTimeoutMs,
    // A replica stopped in the middle of a transaction (SIGSTOP, a paused VM) keeps its
    // connection, so the server would keep the transaction and its locks until it resumed: a
    // create's provider lock held that way stopped every replica's creates to that provider. No
    // transaction here waits on anything but its own statements, so one idle for seconds belongs
    // to a process that is not running: the server ends it and the other replicas go on.
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? IDLE_IN_TRANSACTION_TIMEOUT_MS,
    // A peer that vanished without closing is noticed by TCP's keep-alive probes from 30 s of
    // silence (the operating system's probe interval and count decide the rest: README).
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    // Times are bigint columns; read them back as numbers (safe up to 2^53 ms).
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === PG_INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // A connection the server ends emits `error`; unheard, that would end the process. Every
  // connection listens from the start, idle or checked out between two queries (a transaction
  // waiting on other work): the pool drops an idle one at once, a checked-out one fails its next
  // query and is dropped when given back. The pool's own `error` repeats an idle one's.
  // A connection ended this way errs twice (the server's notice, then the socket's end): told once.
  pool.on('connect', (client) => {
    let told = false;
    client.on('error', (error) => {
      if (told) return;
      told = true;
      options.onConnectionError?.(error);
    });
  });
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: dropReadOnlyConnections(pool) }) });
  const store: Store = {
    db,
    dialect,
    shared: true,
    description: describePostgres(connectionUrl) + (schema ? ` (schema ${schema})` : ''),
    ...(schema ? { schema } : {}),
    pool,
    openNotificationChannel: (onError) =>
      new PostgresNotificationChannel({
        url: connectionUrl,
        ...(schema ? { schema } : {}),
        ...(onError ? { onError } : {}),
        send: async (channel, payload) => {
          await sql`SELECT pg_notify(${channel}, ${payload})`.execute(db);
        },
      }),
    close: () => db.destroy(),
  };
  await migrateOrClose(store, options.beforeMigrating);
  return store;
}

/**
 * `pool` as Kysely takes it, except that a connection on which a statement was refused with
 * `PG_READ_ONLY` is closed when given back rather than reused: its server is a standby now (the
 * old primary, demoted by a failover) and a connection made anew reaches the primary the URL's
 * name points at now. Under load no connection is idle long enough for the pool to close it, so
 * every write failed for as long as the process ran.
 */
function dropReadOnlyConnections(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const readOnly = new WeakSet<pg.PoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let each = wrapped.get(client);
    if (!each) {
      each = {
        query: ((...args: unknown[]) => {
          const result = (client.query as (...args: unknown[]) => unknown)(...args);
          // A cursor (Kysely's streams) is not a promise: only a statement's refusal is read.
          if (!(result instanceof Promise)) return result;
          return result.catch((error: unknown) => {
            if (isStoreReadOnly(error)) readOnly.add(client);
            throw error;
          });
        }) as PostgresPoolClient['query'],
        // `release` is the pool's anew at each checkout: called as it is now.
        release: () => (readOnly.has(client) ? client.release(true) : client.release()),
      };
      wrapped.set(client, each);
    }
    return each;
  };
  return { connect: async () => wrap(await pool.connect()), end: () => pool.end() };
}

/**
 * PostgreSQL's classes and codes of "the server is not there right now": connection exceptions,
 * shutting down, starting up, full; and `25P03`, a transaction the server ended for sitting idle
 * (`idle_in_transaction_session_timeout`: its process was stopped).
 */
const UNREACHABLE_CODES = /^(08...|57P0[123]|53300|25P03)$/;
/** Socket errors `pg` passes on as they are, and the ones it makes of its own. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const PG_CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|timeout expired)/;

/**
 * Whether `error` says the store could not be reached or used right now (a database restarting,
 * a dropped connection, SQLite's write lock held past the wait) rather than that something is
 * wrong with what was asked: the same request may succeed shortly.
 */
export function isStoreUnreachable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNREACHABLE_CODES.test(code) || SOCKET_CODES.has(code) || code.startsWith('SQLITE_BUSY'))) return true;
  return typeof message === 'string' && PG_CONNECTION_MESSAGES.test(message);
}

/** PostgreSQL's "disk full" (class 53, insufficient resources). */
const PG_DISK_FULL = '53100';

/**
 * Whether `error` says the store has no room to write: SQLite's file cannot grow (`SQLITE_FULL`,
 * its disk is full) or PostgreSQL's disk is full. Nothing of the statement was kept, reads still
 * work, and the same request succeeds once an operator frees space; it is not the request's fault.
 */
export function isStoreFull(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: unknown };
  return code === 'SQLITE_FULL' || code === PG_DISK_FULL;
}

/**
 * SQLite's I/O errors that are its file system refusing, not its file damaged: `SQLITE_IOERR` and
 * its extended codes (better-sqlite3 reports those: `SQLITE_IOERR_WRITE` for a disk quota, EDQUOT,
 * or a file past its size limit; `SQLITE_IOERR_FSYNC`, `_READ`, `_SHORT_READ` for a failing disk
 * or a lost network volume; `_LOCK`, `_SHM*` for the files beside it), and `SQLITE_READONLY` and
 * its extended codes (a file or folder the process may no longer write, a read-only remount).
 * Not damage seen by SQLite or the file system (`SQLITE_IOERR_DATA`, a page whose checksum is
 * wrong; `SQLITE_IOERR_CORRUPTFS`), nor a file deleted or replaced under the open database
 * (`SQLITE_READONLY_DBMOVED`, which only a restart on the file at its path ends), nor
 * `SQLITE_CORRUPT` or `SQLITE_NOTADB`: no wait repairs those, so they stay errors (500).
 */
const SQLITE_REFUSED_IO = /^SQLITE_(IOERR|READONLY)(_[A-Z_]+)?$/;
const SQLITE_DAMAGE = new Set(['SQLITE_IOERR_DATA', 'SQLITE_IOERR_CORRUPTFS', 'SQLITE_READONLY_DBMOVED']);
/** PostgreSQL's `io_error` (class 58, errors external to PostgreSQL: its disk refused a read or write). */
const PG_IO_ERROR = '58030';

/**
 * Whether `error` says the store's disk refused a read or write (`SQLITE_REFUSED_IO`,
 * PostgreSQL's `io_error`): nothing of the statement was kept, and the same request succeeds once
 * an operator has the disk take writes again (a quota raised, a volume remounted read-write, a
 * disk replaced); it is not the request's fault.
 */
export function isStoreIoError(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: unknown };
  if (code === PG_IO_ERROR) return true;
  return typeof code === 'string' && SQLITE_REFUSED_IO.test(code) && !SQLITE_DAMAGE.has(code);
}

/**
 * PostgreSQL's `read_only_sql_transaction`: the server takes no writes — a standby (the old
 * primary demoted by a failover, or a URL naming a replica: "cannot execute INSERT in a
 * read-only transaction", "… during recovery") or a server set read-only
 * (`default_transaction_read_only`). Nothing of the statement was kept.
 */
const PG_READ_ONLY = '25006';

/**
 * Whether `error` says the database takes no writes right now (`PG_READ_ONLY`): the same request
 * succeeds once the gateway's connections reach a primary again (after a failover, new
 * connections do); it is not the request's fault.
 */
export function isStoreReadOnly(error: unknown): boolean {
  return (error as { code?: unknown } | null | undefined)?.code === PG_READ_ONLY;
}

/**
 * What a store error says about the store rather than the request (`StoreTrouble`, for the HTTP
 * answers): it has no room to write, its disk refused a read or write, it takes no writes (a
 * standby), or it could not be reached; undefined for anything else (a damaged database file
 * among them).
 */
export function storeTrouble(error: unknown): 'full' | 'io' | 'read-only' | 'unreachable' | undefined {
  if (isStoreFull(error)) return 'full';
  if (isStoreIoError(error)) return 'io';
  if (isStoreReadOnly(error)) return 'read-only';
  return isStoreUnreachable(error) ? 'unreachable' : undefined;
}

/** Migrates a store just opened; one that cannot be migrated is closed (its connections and thread) before the error goes on. */
async function migrateOrClose(store: Store, beforeMigrating?: OpenStoreOptions['beforeMigrating']): Promise<void> {
  try {
    store.migrated = await migrate(store, beforeMigrating);
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}

/**
 * SQLite runs schema changes inside a transaction, as PostgreSQL does; Kysely's SQLite adapter
 * says it does not, so its migrator ran a start's migrations statement by statement, and a start
 * stopped (or failing) half-way left a migration's first tables behind, unrecorded: the next start
 * then failed on them ("table task_usage already exists"). Said here, the migrator runs the
 * migrations a start applies in one transaction (`begin immediate`, see `withStatementCache`):
 * they all commit, or the database stays as it was.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/**
 * SQLite ends a transaction by itself on some errors: a full disk (`SQLITE_FULL`, most often at
 * the COMMIT, when WAL mode writes the pages to the log), an I/O error, no memory. The ROLLBACK
 * that follows then fails with "cannot rollback - no transaction is active", and that error
 * replaced the one that ended the transaction: a full disk answered 500, not 503. Here the
 * ROLLBACK is left out when no transaction is open any more, and the first error goes on.
 */
class SelfRollbackAwareSqliteDriver extends SqliteDriver {
  constructor(
    config: SqliteDialectConfig,
    private readonly sqlite: SqliteDatabase.Database,
  ) {
    super(config);
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.sqlite.inTransaction) return;
    await super.rollbackTransaction(connection);
  }
}

class TransactionalDdlSqliteDialect extends SqliteDialect {
  constructor(
    private readonly settings: SqliteDialectConfig,
    private readonly sqlite: SqliteDatabase.Database,
  ) {
    super(settings);
  }

  override createAdapter(): SqliteAdapter {
    return new TransactionalDdlSqliteAdapter();
  }

  override createDriver(): Driver {
    return new SelfRollbackAwareSqliteDriver(this.settings, this.sqlite);
  }
}

/** How long a statement waits for another process's write lock before it fails (as `busy_timeout` did). */
const TURN_WAIT_MS = 5_000;

function isBusy(error: unknown): boolean {
  return typeof (error as { code?: unknown })?.code === 'string' && (error as { code: string }).code.startsWith('SQLITE_BUSY');
}

/**
 * SQLite shared by several processes (`WORKERS`): a statement that finds another process holding
 * the write lock (`SQLITE_BUSY`, with `busy_timeout` 0) is tried again after a millisecond, the
 * event loop free meanwhile, for up to `TURN_WAIT_MS`. Only outside a transaction: that is where
 * a write lock is taken (`begin immediate`, or a lone write), and where nothing has been written
 * yet when it is refused. Everything else is Kysely's SQLite dialect.
 */
class TurnTakingSqliteDialect implements KyselyDialect {
  constructor(
    private readonly inner: SqliteDialect,
    private readonly sqlite: SqliteDatabase.Database,
  ) {}

  createDriver(): Driver {
    return new TurnTakingDriver(this.inner.createDriver(), this.sqlite);
  }

  createQueryCompiler() {
    return this.inner.createQueryCompiler();
  }

  createAdapter() {
    return this.inner.createAdapter();
  }

  createIntrospector(db: Kysely<unknown>) {
    return this.inner.createIntrospector(db);
  }
}

class TurnTakingDriver implements Driver {
  private readonly wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(
    private readonly inner: Driver,
    private readonly sqlite: SqliteDatabase.Database,
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.inner.acquireConnection();
    let turnTaking = this.wrapped.get(connection);
    if (!turnTaking) {
      turnTaking = {
        executeQuery: <R>(query: CompiledQuery) => this.takingTurns(() => connection.executeQuery<R>(query)),
        streamQuery: <R>(query: CompiledQuery, chunkSize?: number) => connection.streamQuery<R>(query, chunkSize),
      };
      this.wrapped.set(connection, turnTaking);
    }
    return turnTaking;
  }

  private async takingTurns<R>(run: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const giveUpAt = Date.now() + TURN_WAIT_MS;
    for (;;) {
      try {
        return await run();
      } catch (error) {
        if (!isBusy(error) || this.sqlite.inTransaction || Date.now() >= giveUpAt) throw error;
        await sleep(1);
      }
    }
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** Prepared statements kept per SQL text; the gateway issues a few dozen distinct ones. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely prepares every query anew; better-sqlite3 statements can be reused, which saves most of
 * a simple query's cost (preparing was about a tenth of the gateway's CPU in the benchmark).
 * Bounded, oldest first out, for SQL that varies (e.g. `IN (…)` with different lengths).
 *
 * Kysely opens a transaction with a plain (deferred) `begin`: its first write would then have to
 * upgrade a read snapshot, which fails at once (`SQLITE_BUSY`, no waiting) when another process
 * wrote meanwhile. Every transaction here reads and then writes, so it takes the write lock at
 * its start (`begin immediate`), waiting its turn under `busy_timeout`; with one process it
 * changes nothing.
 */
function withStatementCache(sqlite: SqliteDatabase.Database) {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      const sql = text === 'begin' ? 'begin immediate' : text;
      let statement = cache.get(sql);
      if (!statement) {
        statement = sqlite.prepare(sql);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}

/**
 * Whether the migrator failed in its catalogue read, before running any migration (`ran`, its
 * results, is then absent), on a schema, table or column that another process dropped or
 * altered meanwhile: a "schema … does not exist" about a schema not the one being migrated, or
 * a table or column gone between the read naming it and asking about it.
 */
export function droppedElsewhere(error: unknown, schema: string | undefined, ran: readonly unknown[] | undefined): boolean {
  // A migration that failed is never tried again here: only the reads before any migration.
  if (ran !== undefined) return false;
  const message = (error as Error)?.message ?? '';
  const found = /schema "([^"]+)" does not exist/.exec(message);
  if (found) return found[1] !== schema;
  // The catalogue read names every table and column of every schema, then asks about each by
  // name: one another process drops or alters meanwhile (its own migration, its suite's cleanup)
  // is "not there" by then.
  const code = (error as { code?: unknown })?.code;
  return code === PG_UNDEFINED_TABLE || code === PG_UNDEFINED_COLUMN || /could not open relation with OID|cache lookup failed/.test(message);
}

/**
 * The schema whose migration tables Kysely's migrator must use. Told none, it looks for them in
 * every schema of the database: another schema holding the gateway's tables (a second deployment,
 * a test run) then made it skip creating them here and fail on their absence. So a PostgreSQL URL
 * without `?schema=` names the connection's own default schema (`current_schema()`).
 */
async function migrationSchema(store: Store): Promise<string | undefined> {
  if (store.schema || store.dialect !== 'postgres') return store.schema;
  const { rows } = await sql<{ schema: string | null }>`SELECT current_schema() AS schema`.execute(store.db);
  return rows[0]?.schema ?? undefined;
}

/**
 * The error of a start whose store could not be used before any migration ran: the server was
 * not reached (a system error: refused, unknown host …) or refused the session (a role, a
 * database, a password). Named by the store's description, which leaves the password out.
 */
function notOpened(store: Pick<Store, 'description'>, error: unknown): Error {
  const message = (error as Error).message ?? String(error);
  const code = (error as { code?: unknown }).code;
  const what =
    (typeof code === 'string' && /^E[A-Z]+$/.test(code)) || isStoreUnreachable(error) ? 'could not reach the database' : 'could not open the database';
  return new Error(`${what} ${store.description}: ${message}`);
}

/**
 * A start's migrations did not bring the store to the current schema although the store answered:
 * one of them failed, or a newer release migrated the schema. Not the store being unreachable: a
 * caller tells the two apart by this class, never by the message, which names the database (whose
 * name or path may say "migration" as well).
 */
export class StoreMigrationError extends Error {}

/**
 * The migration recorded in the database that this release does not know, when Kysely's migrator
 * refused for that reason (it calls the database "corrupted").
 */
function newerMigration(error: unknown): string | undefined {
  return /previously executed migration (\S+) is missing/.exec((error as Error)?.message ?? '')?.[1];
}

/**
 * The error of a start on a schema a newer release migrated (a rolling upgrade, when a replica of
 * the older release restarts after a replica of the newer one): this code does not know what that
 * schema holds, so it does not run on it, and says why rather than that the database is corrupted.
 */
function migratedByNewerRelease(store: Pick<Store, 'description'>, migration: string): Error {
  return new StoreMigrationError(
    `database ${store.description} was migrated by a newer release of the gateway (migration ${migration}, which this release does not know): ` +
      'run that release or a later one; an older release does not start on a newer schema',
  );
}

async function migrate(store: Store, beforeMigrating?: OpenStoreOptions['beforeMigrating']): Promise<string[]> {
  let schema: string | undefined;
  try {
    schema = await migrationSchema(store);
  } catch (error) {
    throw notOpened(store, error);
  }
  const migrator = new Migrator({
    db: store.db,
    provider: new CodeMigrationProvider(store.dialect),
    ...(schema ? { migrationTableSchema: schema } : {}),
    // Kysely orders the migrations a database ran by the times it recorded, each the clock of
    // whoever applied it (a replica on another host, `migrate` in a container, a clock stepped
    // back during a start), and called a database "corrupted" when that order was not the
    // names': one upgraded by a clock behind the one before could not be opened again. The
    // migrations here are one list, each run once by name; their recorded times do not matter.
    allowUnorderedMigrations: true,
  });
  if (beforeMigrating) await beforeMigrating((await migrator.getMigrations()).filter((migration) => migration.executedAt === undefined).map((migration) => migration.name));
  let { error, results } = await migrator.migrateToLatest();
  // Kysely's migrator reads the catalogue of every schema in the database; a schema dropped or a
  // table altered by someone else at that moment (test suites do, one schema each, and two test
  // files run at once) fails the read, not our migration. Nothing ran then, so trying again is safe.
  for (let round = 1; error && round < 5 && droppedElsewhere(error, schema, results); round++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * round));
    ({ error, results } = await migrator.migrateToLatest());
  }
  if (error) {
    const newer = newerMigration(error);
    if (newer) throw migratedByNewerRelease(store, newer);
    const failed = results?.find((result) => result.status === 'Error');
    if (failed) throw new StoreMigrationError(`database migration ${failed.migrationName} failed: ${(error as Error).message ?? String(error)}`);
    throw notOpened(store, error);
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
