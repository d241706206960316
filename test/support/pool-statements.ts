/**
 * Counts what a PostgreSQL store's pool runs: each statement in order, whether it ran inside a
 * transaction, the transactions themselves (`begin` … `commit`/`rollback`), and connections taken
 * while a transaction was open. Marks of the test's own (an upstream request arriving) go in the
 * same log, so a test can say what was committed before what.
 */
import type pg from 'pg';

export type PoolEvent =
  | { kind: 'statement'; sql: string; inTransaction: boolean }
  | { kind: 'begin' | 'commit' | 'rollback' }
  | { kind: 'mark'; what: string };

export interface PoolStatements {
  /** Everything since the last `reset`, in the order it finished. */
  readonly events: readonly PoolEvent[];
  /** Transactions committed since the last `reset`. */
  readonly commits: number;
  /** Statements run outside any transaction (each one a transaction of its own to PostgreSQL). */
  readonly outside: readonly string[];
  /** Connections taken from the pool, since the last `reset`, while a transaction was open on another. */
  readonly takenDuringTransaction: number;
  mark(what: string): void;
  reset(): void;
}

const WATCHED = new WeakSet<object>();

type ConnectCallback = (error: Error | undefined, client: pg.PoolClient | undefined, release: (error?: unknown) => void) => void;

/** Starts counting on `pool` (every client it hands out from now on). */
export function countPoolStatements(pool: pg.Pool): PoolStatements {
  const events: PoolEvent[] = [];
  const inTransaction = new Set<object>();
  let takenDuringTransaction = 0;
  pool.on('acquire', () => {
    if (inTransaction.size > 0) takenDuringTransaction += 1;
  });
  const connect = pool.connect.bind(pool) as (callback?: ConnectCallback) => Promise<pg.PoolClient> | undefined;
  const watch = (client: pg.PoolClient) => {
    if (WATCHED.has(client)) return client;
    WATCHED.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string })?.text ?? '');
      const word = text.trim().toLowerCase();
      // Open from the moment `begin` is sent until `commit` or `rollback` has come back.
      if (word === 'begin') inTransaction.add(client);
      const result = await query(...args);
      if (word === 'begin' || word === 'commit' || word === 'rollback') {
        if (word !== 'begin') inTransaction.delete(client);
        events.push({ kind: word });
      } else {
        events.push({ kind: 'statement', sql: text, inTransaction: inTransaction.has(client) });
      }
      return result;
    };
    return client;
  };
  // Kysely awaits `connect()`; `pool.query` (used by the tenant create limiter) passes a callback.
  (pool as unknown as { connect: (callback?: ConnectCallback) => unknown }).connect = (callback?: ConnectCallback) =>
    callback
      ? connect((error, client, release) => callback(error, client && watch(client), release))
      : connect()!.then(watch);
  return {
    events,
    get commits() {
      return events.filter((event) => event.kind === 'commit').length;
    },
    get outside() {
      return events.flatMap((event) => (event.kind === 'statement' && !event.inTransaction ? [event.sql] : []));
    },
    get takenDuringTransaction() {
      return takenDuringTransaction;
    },
    mark: (what) => events.push({ kind: 'mark', what }),
    reset: () => {
      events.splice(0);
      takenDuringTransaction = 0;
    },
  };
}
